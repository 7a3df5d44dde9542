package authz_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authz"
)

// hospital is a small hierarchy: clinician ← nurse ← ward_nurse, clinician ←
// cardiology, and billing on its own.
func hospital(tb testing.TB) *authz.Policy {
	tb.Helper()
	return mustCompile(tb,
		role("clinician", custos.RoleAuditor, "patient:read"),
		role("nurse", "clinician", "chart:write"),
		role("ward_nurse", "nurse", "ward:read"),
		role("cardiology", "clinician", "ecg:read"),
		role("billing", "", "invoice:read"),
	)
}

func TestChangesRefuse(t *testing.T) {
	deep := func(tb testing.TB) *authz.Policy { return mustCompile(tb, chain(authz.MaxDepth-1)...) }
	tests := []struct {
		name   string
		policy func(testing.TB) *authz.Policy
		change func(*authz.Policy) (*authz.Policy, error)
		want   *custos.Error
	}{
		{"duplicate", hospital, func(p *authz.Policy) (*authz.Policy, error) { return p.Add(role("nurse", "")) },
			conflicts("role.create", `role "nurse" already exists`)},
		{"built-in name", hospital, func(p *authz.Policy) (*authz.Policy, error) { return p.Add(role("metrics", "")) },
			conflicts("role.create", `role "metrics" is built in`)},
		{"missing parent", hospital, func(p *authz.Policy) (*authz.Policy, error) { return p.Add(role("x", "ghost")) },
			refused("role.create", custos.Invalid, "parent_role", `role "ghost" does not exist`)},
		{"own parent on create", hospital, func(p *authz.Policy) (*authz.Policy, error) { return p.Add(role("x", "x")) },
			conflicts("role.create", "the roles would form the cycle x → x")},
		{"unknown codename", hospital, func(p *authz.Policy) (*authz.Policy, error) {
			return p.Add(role("x", "", "patient:read", "keys:read"))
		}, &custos.Error{Op: "role.create", Kind: custos.Invalid, Detail: "the role is invalid", Fields: []custos.FieldError{
			field("permissions[1]", `unknown permission codename "keys:read": the area "keys" is Custos's own`)}}},
		{"own parent on update", hospital, func(p *authz.Policy) (*authz.Policy, error) {
			return p.Replace(role("nurse", "nurse"))
		}, conflicts("role.update", "the roles would form the cycle nurse → nurse")},
		{"cycle through three roles", hospital, func(p *authz.Policy) (*authz.Policy, error) {
			return p.Replace(role("clinician", "ward_nurse", "patient:read"))
		}, conflicts("role.update", "the roles would form the cycle clinician → ward_nurse → nurse → clinician")},
		{"update missing parent", hospital, func(p *authz.Policy) (*authz.Policy, error) {
			return p.Replace(role("nurse", "ghost"))
		}, refused("role.update", custos.Invalid, "parent_role", `role "ghost" does not exist`)},
		{"update unknown role", hospital, func(p *authz.Policy) (*authz.Policy, error) { return p.Replace(role("ghost", "")) },
			&custos.Error{Op: "role.update", Kind: custos.NotFound, Detail: `role "ghost" does not exist`}},
		{"update built-in", hospital, func(p *authz.Policy) (*authz.Policy, error) {
			return p.Replace(role(custos.RoleAuditor, "", custos.PermKeysManage))
		}, conflicts("role.update", `built-in role "auditor" cannot be changed`)},
		{"too deep on create", deep, func(p *authz.Policy) (*authz.Policy, error) {
			p, err := p.Add(role("c16", "c15"))
			if err != nil {
				return nil, err
			}
			return p.Add(role("c17", "c16"))
		}, refused("role.create", custos.Invalid, "parent_role",
			`the hierarchy would be more than 16 levels deep at role "c17"; roles nest at most 16 levels`)},
		{"too deep below a moved role", deep, func(p *authz.Policy) (*authz.Policy, error) {
			p, err := p.Add(role("x", ""))
			if err == nil {
				p, err = p.Add(role("y", "x"))
			}
			if err != nil {
				return nil, err
			}
			return p.Replace(role("x", "c15")) // y, below x, would be at level 17
		}, refused("role.update", custos.Invalid, "parent_role",
			`the hierarchy would be more than 16 levels deep at role "y"; roles nest at most 16 levels`)},
		{"delete with children", hospital, func(p *authz.Policy) (*authz.Policy, error) { return p.Without("clinician") },
			conflicts("role.delete", `role "clinician" is the parent of "cardiology" and "nurse": give them another parent first, or delete it with re-parenting`)},
		{"delete a built-in with children", hospital, func(p *authz.Policy) (*authz.Policy, error) {
			return p.WithoutReparent(custos.RoleAuditor, "")
		}, conflicts("role.delete", `built-in role "auditor" cannot be deleted`)},
		{"delete a built-in", hospital, func(p *authz.Policy) (*authz.Policy, error) { return p.Without(custos.RoleMetrics) },
			conflicts("role.delete", `built-in role "metrics" cannot be deleted`)},
		{"delete unknown", hospital, func(p *authz.Policy) (*authz.Policy, error) { return p.Without("ghost") },
			&custos.Error{Op: "role.delete", Kind: custos.NotFound, Detail: `role "ghost" does not exist`}},
		{"re-parent under a descendant", hospital, func(p *authz.Policy) (*authz.Policy, error) {
			return p.WithoutReparent("clinician", "ward_nurse")
		}, conflicts("role.delete", "the roles would form the cycle nurse → ward_nurse → nurse")},
		{"re-parent under itself", hospital, func(p *authz.Policy) (*authz.Policy, error) {
			return p.WithoutReparent("clinician", "clinician")
		}, refused("role.delete", custos.Invalid, "reparent", `the children of role "clinician" cannot take it as their parent`)},
		{"re-parent under a missing role", hospital, func(p *authz.Policy) (*authz.Policy, error) {
			return p.WithoutReparent("clinician", "ghost")
		}, refused("role.delete", custos.Invalid, "reparent", `role "ghost" does not exist`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.policy(t)
			before := p.Roles()
			got, err := tt.change(p)
			if got != nil {
				t.Error("a refused change returned a policy")
			}
			if diff := cmp.Diff(tt.want, asError(t, err)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, p.Roles()); diff != "" {
				t.Errorf("a refused change changed the policy (-before +after):\n%s", diff)
			}
		})
	}
}

func TestDeleteNamesAtMostTenChildren(t *testing.T) {
	roles := []custos.Role{role("parent", "")}
	for _, c := range "abcdefghijkl" {
		roles = append(roles, role(string(c), "parent"))
	}
	_, err := mustCompile(t, roles...).Without("parent")
	want := `role "parent" is the parent of "a", "b", "c", "d", "e", "f", "g", "h", "i", "j" and 2 more: ` +
		"give them another parent first, or delete it with re-parenting"
	if got := asError(t, err).Detail; got != want {
		t.Errorf("detail = %q\nwant     %q", got, want)
	}
}

func TestChangesLeaveTheOldPolicy(t *testing.T) {
	p1 := hospital(t)
	before := p1.Roles()
	p2, err := p1.Replace(role("nurse", "billing", "chart:write", "chart:sign"))
	if err != nil {
		t.Fatal(err)
	}
	if p1.Version() != 1 || p2.Version() != 2 {
		t.Errorf("versions %d, %d; want 1, 2", p1.Version(), p2.Version())
	}
	if diff := cmp.Diff(before, p1.Roles()); diff != "" {
		t.Errorf("the old policy changed (-before +after):\n%s", diff)
	}
	for _, tt := range []struct {
		role   string
		perm   custos.Permission
		v1, v2 bool
	}{
		{"ward_nurse", "patient:read", true, false}, // no longer under clinician
		{"ward_nurse", "invoice:read", false, true}, // now under billing
		{"ward_nurse", "chart:sign", false, true},
		{"ward_nurse", custos.PermEventsRead, true, false},
		{"cardiology", "patient:read", true, true}, // a branch the change did not touch
		{"cardiology", custos.PermEventsRead, true, true},
	} {
		if got := p1.Has(tt.role, tt.perm); got != tt.v1 {
			t.Errorf("v1 Has(%s, %s) = %v", tt.role, tt.perm, got)
		}
		if got := p2.Has(tt.role, tt.perm); got != tt.v2 {
			t.Errorf("v2 Has(%s, %s) = %v", tt.role, tt.perm, got)
		}
	}
	p3, err := p2.Add(role("oncology", "clinician", "chemo:order"))
	if err != nil {
		t.Fatal(err)
	}
	if p2.Has("oncology", "chemo:order") || !p3.Has("oncology", "patient:read") || p3.Version() != 3 {
		t.Error("Add did not make a new version holding the role alone")
	}
	// A role's slices are the caller's.
	r, _ := p3.Role("oncology")
	r.Permissions[0], r.EffectivePermissions[0] = "forged:perm", "forged:perm"
	if again, _ := p3.Role("oncology"); again.Permissions[0] == "forged:perm" || p3.Has("oncology", "forged:perm") {
		t.Error("Role shares storage with the policy")
	}
}

func TestDeleteAndReparent(t *testing.T) {
	p := hospital(t)
	gone, err := p.Without("ward_nurse")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := gone.Role("ward_nurse"); ok || gone.Has("ward_nurse", "ward:read") {
		t.Error("the deleted role still decides")
	}
	if !p.Has("ward_nurse", "ward:read") {
		t.Error("deleting changed the old policy")
	}

	moved, err := p.WithoutReparent("clinician", "billing")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nurse", "cardiology"} {
		r, _ := moved.Role(name)
		if r.ParentRole != "billing" {
			t.Errorf("%s's parent is %q, want billing", name, r.ParentRole)
		}
	}
	if moved.Has("ward_nurse", "patient:read") || !moved.Has("ward_nurse", "invoice:read") ||
		!moved.Has("ward_nurse", "chart:write") {
		t.Error("the children did not trade clinician's permissions for billing's")
	}
	roots, err := p.WithoutReparent("clinician", "")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := roots.Role("nurse"); r.ParentRole != "" || roots.Has("nurse", "patient:read") {
		t.Errorf("re-parenting to none: nurse is %+v", r)
	}
}

func TestZeroPolicyStartsFromBuiltIns(t *testing.T) {
	var zero authz.Policy
	p, err := zero.Add(role("x", custos.RoleAuditor, "patient:read"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Has("x", custos.PermEventsRead) || !p.Has(custos.RoleMetrics, custos.PermMetricsRead) || p.Version() != 1 {
		t.Error("a change to the zero Policy lost the built-in roles")
	}
}
