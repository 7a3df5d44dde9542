package authz_test

import (
	"cmp"
	"fmt"
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authz"
)

// role is a custom role for tests: name, parent ("" for none), permissions.
func role(name, parent string, perms ...custos.Permission) custos.Role {
	return custos.Role{Name: name, ParentRole: parent, Permissions: perms}
}

func mustCompile(tb testing.TB, roles ...custos.Role) *authz.Policy {
	tb.Helper()
	p, err := authz.Compile(1, roles)
	if err != nil {
		tb.Fatalf("Compile: %v", err)
	}
	return p
}

// chain returns n roles c1 … cn, each the parent of the next, each holding
// app:c<i>.
func chain(n int) []custos.Role {
	roles := make([]custos.Role, n)
	for i := range roles {
		parent := ""
		if i > 0 {
			parent = fmt.Sprintf("c%d", i)
		}
		roles[i] = role(fmt.Sprintf("c%d", i+1), parent, custos.Permission(fmt.Sprintf("app:c%d", i+1)))
	}
	return roles
}

// refused is the error a refused graph or change gives: one field at fault
// whose message is the detail.
func refused(op string, kind custos.Kind, fieldName, detail string) *custos.Error {
	return &custos.Error{Op: op, Kind: kind, Detail: detail, Fields: []custos.FieldError{field(fieldName, detail)}}
}

// conflicts is the error of a change refused because of the roles as they are.
func conflicts(op, detail string) *custos.Error {
	return &custos.Error{Op: op, Kind: custos.Conflict, Detail: detail}
}

func TestCompileRefuses(t *testing.T) {
	const op = "policy.compile"
	tests := []struct {
		name  string
		roles []custos.Role
		want  *custos.Error
	}{
		{"duplicate name", []custos.Role{role("a", ""), role("b", ""), role("a", "")},
			conflicts(op, `role "a" is defined twice ([0] and [2])`)},
		{"built-in name", []custos.Role{role(custos.RoleAuditor, "", "patient:read")},
			conflicts(op, `role "auditor" is built in`)},
		{"missing parent", []custos.Role{role("a", ""), role("b", "ghost")},
			refused(op, custos.Invalid, "[1].parent_role", `role "ghost" does not exist`)},
		{"own parent", []custos.Role{role("x", ""), role("a", "a")},
			conflicts(op, "the roles would form the cycle a → a")},
		{"cycle through three roles", []custos.Role{role("c", "a"), role("b", "c"), role("a", "b"), role("d", "b")},
			conflicts(op, "the roles would form the cycle a → b → c → a")},
		{"too deep", chain(authz.MaxDepth + 1),
			refused(op, custos.Invalid, "[16].parent_role",
				`the hierarchy would be more than 16 levels deep at role "c17"; roles nest at most 16 levels`)},
		{"too deep under a built-in", append([]custos.Role{role("c1", custos.RoleAuditor)}, chain(authz.MaxDepth)[1:]...),
			refused(op, custos.Invalid, "[15].parent_role",
				`the hierarchy would be more than 16 levels deep at role "c16"; roles nest at most 16 levels`)},
		{"invalid role", []custos.Role{role("a", ""), role("b", "a", "events:delete")},
			&custos.Error{Op: op, Kind: custos.Invalid, Detail: "the role is invalid", Fields: []custos.FieldError{
				field("[1].permissions[0]", `unknown permission codename "events:delete": the area "events" is Custos's own`)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := authz.Compile(7, tt.roles)
			if p != nil {
				t.Errorf("Compile returned a policy with the error")
			}
			if diff := gocmp.Diff(tt.want, asError(t, err)); diff != "" {
				t.Errorf("Compile error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileAcceptsDepthCap(t *testing.T) {
	p := mustCompile(t, chain(authz.MaxDepth)...)
	if !p.Has("c16", "app:c1") || p.Has("c1", "app:c16") {
		t.Error("a chain of MaxDepth roles does not inherit downwards only")
	}
}

func TestInheritance(t *testing.T) {
	p := mustCompile(t,
		role("ward_nurse", "nurse", "ward:read"),
		role("nurse", "clinician", "chart:write"),
		role("clinician", custos.RoleAuditor, "patient:read"),
		role("cardiology", "clinician", "ecg:read"),
	)
	wantEffective := []custos.Permission{"chart:write", "events:read", "patient:read", "proofs:read",
		"reports:generate", "ward:read"}
	got, ok := p.Role("ward_nurse")
	if !ok {
		t.Fatal("ward_nurse missing")
	}
	want := custos.Role{Name: "ward_nurse", ParentRole: "nurse", Permissions: []custos.Permission{"ward:read"},
		EffectivePermissions: wantEffective}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("Role (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		role string
		perm custos.Permission
		want bool
	}{
		{"ward_nurse", "ward:read", true},
		{"ward_nurse", "chart:write", true},
		{"ward_nurse", "patient:read", true},
		{"ward_nurse", custos.PermEventsRead, true},
		{"ward_nurse", "ecg:read", false}, // a sibling's
		{"nurse", "ward:read", false},     // a child's
		{"clinician", custos.PermEventsWrite, false},
		{"ghost", "patient:read", false}, // unknown role
		{"", "patient:read", false},
		{custos.RoleAdministrator, "patient:read", false}, // administrator holds Custos's permissions only
	} {
		if got := p.Has(tt.role, tt.perm); got != tt.want {
			t.Errorf("Has(%q, %s) = %v, want %v", tt.role, tt.perm, got, tt.want)
		}
	}
	var nilPolicy *authz.Policy
	if nilPolicy.Has(custos.RoleAdministrator, custos.PermEventsRead) || nilPolicy.HasAny([]string{"a"}, "a:b") {
		t.Error("a nil policy allowed")
	}
	if diff := gocmp.Diff([]string{"cardiology", "nurse"}, p.Children("clinician")); diff != "" {
		t.Errorf("Children (-want +got):\n%s", diff)
	}
}

func TestDecide(t *testing.T) {
	p := mustCompile(t,
		role("ward_nurse", "nurse", "ward:read"),
		role("nurse", "clinician", "chart:write"),
		role("clinician", "", "patient:read"),
		role("billing", "", "invoice:read", "patient:read"),
	)
	tests := []struct {
		roles  []string
		perm   custos.Permission
		want   authz.Decision
		reason string
	}{
		{[]string{"ward_nurse"}, "ward:read", authz.Decision{Allowed: true, Role: "ward_nurse", Holder: "ward_nurse"},
			"allowed by role ward_nurse"},
		{[]string{"ghost", "ward_nurse"}, "patient:read", authz.Decision{Allowed: true, Role: "ward_nurse", Holder: "clinician"},
			"allowed by role ward_nurse (inherited from clinician)"},
		{[]string{"billing", "ward_nurse"}, "patient:read", authz.Decision{Allowed: true, Role: "billing", Holder: "billing"},
			"allowed by role billing"},
		{[]string{"ward_nurse", "billing"}, "invoice:read", authz.Decision{Allowed: true, Role: "billing", Holder: "billing"},
			"allowed by role billing"},
		{[]string{"ward_nurse"}, "invoice:read", authz.Decision{}, "no role of the user grants invoice:read"},
		{nil, "patient:read", authz.Decision{}, "no role of the user grants patient:read"},
		{[]string{"ghost"}, "patient:read", authz.Decision{}, "no role of the user grants patient:read"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.roles, tt.perm), func(t *testing.T) {
			got := p.Decide(tt.roles, tt.perm)
			if diff := gocmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
			if r := got.Reason(tt.perm); r != tt.reason {
				t.Errorf("Reason = %q, want %q", r, tt.reason)
			}
			if has := p.HasAny(tt.roles, tt.perm); has != tt.want.Allowed {
				t.Errorf("HasAny = %v, Decide = %v", has, tt.want.Allowed)
			}
		})
	}
}

func TestPermissions(t *testing.T) {
	p := mustCompile(t,
		role("nurse", "clinician", "chart:write"),
		role("clinician", "", "patient:read"),
		role("billing", "", "invoice:read"),
		role("observer", "clinician"), // nothing of its own
	)
	set := func(perms ...custos.Permission) map[custos.Permission]bool {
		m := make(map[custos.Permission]bool)
		for _, perm := range perms {
			m[perm] = true
		}
		return m
	}
	tests := []struct {
		roles []string
		want  map[custos.Permission]bool
	}{
		{nil, set()},
		{[]string{"ghost"}, set()},
		{[]string{"nurse"}, set("chart:write", "patient:read")},
		{[]string{"clinician", "nurse", "observer"}, set("chart:write", "patient:read")},
		{[]string{"observer"}, set("patient:read")},
		{[]string{"nurse", "billing", "ghost"}, set("chart:write", "patient:read", "invoice:read")},
		{[]string{"metrics", "ingest_service"}, set(custos.PermMetricsRead, custos.PermEventsWrite, custos.PermSecurityReport, custos.PermBlocksCheck)},
	}
	for _, tt := range tests {
		if diff := gocmp.Diff(tt.want, p.Permissions(tt.roles)); diff != "" {
			t.Errorf("Permissions(%v) (-want +got):\n%s", tt.roles, diff)
		}
	}
	// A union is the caller's: writing to it leaves the policy as it was.
	u := p.Permissions([]string{"nurse", "billing"})
	u["forged:perm"] = true
	if p.Has("nurse", "forged:perm") || p.Has("billing", "forged:perm") {
		t.Error("a union shares storage with the policy")
	}
}

func TestBuiltIns(t *testing.T) {
	p := mustCompile(t)
	sorted := func(perms ...custos.Permission) []custos.Permission {
		return slices.Sorted(slices.Values(perms))
	}
	want := map[string][]custos.Permission{
		custos.RoleAdministrator: sorted(custos.Permissions...),
		custos.RoleSecurityOfficer: sorted(custos.PermSecurityRead, custos.PermSecurityManage, custos.PermBlocksManage,
			custos.PermEventsRead, custos.PermProofsRead, custos.PermReportsGenerate, custos.PermGrantsRead),
		custos.RolePrivacyOfficer: sorted(custos.PermEventsRead, custos.PermProofsRead, custos.PermReportsGenerate,
			custos.PermGrantsRead, custos.PermGrantsReview, custos.PermSecurityRead),
		custos.RoleAuditor:       sorted(custos.PermEventsRead, custos.PermProofsRead, custos.PermReportsGenerate),
		custos.RoleIngestService: {custos.PermBlocksCheck, custos.PermEventsWrite, custos.PermSecurityReport},
		custos.RoleMetrics:       {custos.PermMetricsRead},
	}
	got := make(map[string][]custos.Permission)
	for _, r := range p.Roles() {
		if !r.BuiltIn || !authz.IsBuiltIn(r.Name) {
			t.Errorf("%s: BuiltIn %v, IsBuiltIn %v", r.Name, r.BuiltIn, authz.IsBuiltIn(r.Name))
		}
		if r.ParentRole != "" || !slices.Equal(r.Permissions, r.EffectivePermissions) {
			t.Errorf("%s has a parent or inherits", r.Name)
		}
		got[r.Name] = r.EffectivePermissions
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("built-in roles (-want +got):\n%s", diff)
	}
	builtIns := authz.BuiltIns()
	slices.SortFunc(builtIns, func(a, b custos.Role) int { return cmp.Compare(a.Name, b.Name) })
	if diff := gocmp.Diff(p.Roles(), builtIns); diff != "" {
		t.Errorf("BuiltIns differs from a compiled policy's roles (-policy +BuiltIns):\n%s", diff)
	}
	// Each key scope stands for a built-in role that grants what the scope did.
	scopeGrants := map[custos.Scope][]custos.Permission{
		custos.ScopeAdmin:   custos.Permissions,
		custos.ScopeIngest:  {custos.PermEventsWrite},
		custos.ScopeRead:    {custos.PermEventsRead, custos.PermProofsRead},
		custos.ScopeMetrics: {custos.PermMetricsRead},
	}
	for _, s := range custos.Scopes {
		for _, perm := range scopeGrants[s] {
			if !p.Has(s.Role(), perm) {
				t.Errorf("scope %s (role %q) lost %s", s, s.Role(), perm)
			}
		}
	}
}
