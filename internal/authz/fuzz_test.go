package authz_test

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authz"
)

// The pools the fuzz input draws from: enough names for a chain deeper than
// MaxDepth, two built-in names, one invalid name and one invalid and one
// unknown codename.
var (
	fuzzNames = func() []string {
		names := []string{custos.RoleAuditor, custos.RoleMetrics, "Bad"}
		for i := range 20 {
			names = append(names, fmt.Sprintf("r%d", i))
		}
		return names
	}()
	fuzzPerms = []custos.Permission{"app:a", "app:b", "app:c", "app:d", "app:e", "chart:read",
		custos.PermEventsRead, custos.PermMetricsRead, "events:delete", "x"}
)

// bytesReader hands out the fuzz input a byte at a time, then zeros.
type bytesReader []byte

func (r *bytesReader) next() int {
	if len(*r) == 0 {
		return 0
	}
	b := (*r)[0]
	*r = (*r)[1:]
	return int(b)
}

func (r *bytesReader) name() string { return fuzzNames[r.next()%len(fuzzNames)] }

// parent is a name from the pool or, one time in len+1, none.
func (r *bytesReader) parent() string {
	if i := r.next() % (len(fuzzNames) + 1); i < len(fuzzNames) {
		return fuzzNames[i]
	}
	return ""
}

func (r *bytesReader) role() custos.Role {
	ro := custos.Role{Name: r.name(), ParentRole: r.parent()}
	for range r.next() % 4 {
		ro.Permissions = append(ro.Permissions, fuzzPerms[r.next()%len(fuzzPerms)])
	}
	return ro
}

// FuzzCompile compiles an arbitrary role graph, then applies up to 64
// arbitrary changes to it. Nothing may panic or loop; every refusal is a
// client error that leaves the policy as it was; every policy's effective
// sets are those of a naive walk up the parents, and equal a fresh compile
// of its roles.
func FuzzCompile(f *testing.F) {
	f.Add([]byte{3, 3, 23, 1, 0, 4, 3, 1, 1, 5, 4, 2, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytesReader(data)
		roles := make([]custos.Role, r.next()%24)
		for i := range roles {
			roles[i] = r.role()
		}
		p, err := authz.Compile(1, roles)
		if err != nil {
			if k := custos.KindOf(err); p != nil || (k != custos.Invalid && k != custos.Conflict) {
				t.Fatalf("Compile: policy %v, error %v (kind %v)", p != nil, err, k)
			}
			p = mustCompile(t)
		}
		checkPolicy(t, p)
		for ops := 0; len(r) > 0 && ops < 64; ops++ {
			before := p.Roles()
			var q *authz.Policy
			switch r.next() % 4 {
			case 0:
				q, err = p.Add(r.role())
			case 1:
				q, err = p.Replace(r.role())
			case 2:
				q, err = p.Without(r.name())
			default:
				q, err = p.WithoutReparent(r.name(), r.parent())
			}
			same(t, "the old policy after a change", before, p.Roles())
			if err != nil {
				if k := custos.KindOf(err); q != nil || k == custos.Internal {
					t.Fatalf("change: policy %v, error %v (kind %v)", q != nil, err, k)
				}
				continue
			}
			if q.Version() != p.Version()+1 {
				t.Fatalf("version %d after %d", q.Version(), p.Version())
			}
			checkPolicy(t, q)
			p = q
		}
	})
}

// checkPolicy compares every role of p with a naive walk up its parents, and
// p with a fresh compile of its custom roles.
func checkPolicy(t *testing.T, p *authz.Policy) {
	t.Helper()
	roles := p.Roles()
	byName := make(map[string]custos.Role, len(roles))
	var custom []custos.Role
	for _, ro := range roles {
		byName[ro.Name] = ro
		if !ro.BuiltIn {
			custom = append(custom, custos.Role{Name: ro.Name, Description: ro.Description,
				Permissions: ro.Permissions, ParentRole: ro.ParentRole})
		}
	}
	for _, ro := range roles {
		want := make(map[custos.Permission]bool)
		depth := 0
		for cur, ok := ro, true; ok; cur, ok = byName[cur.ParentRole] {
			if depth++; depth > authz.MaxDepth {
				t.Fatalf("role %q is more than %d deep, or on a cycle", ro.Name, authz.MaxDepth)
			}
			for _, perm := range cur.Permissions {
				want[perm] = true
			}
			if cur.ParentRole != "" {
				if _, ok := byName[cur.ParentRole]; !ok {
					t.Fatalf("role %q has a missing parent %q", cur.Name, cur.ParentRole)
				}
			}
		}
		same(t, "the effective permissions of "+ro.Name, slices.Sorted(maps.Keys(want)), ro.EffectivePermissions)
		for _, perm := range fuzzPerms {
			if p.Has(ro.Name, perm) != want[perm] {
				t.Fatalf("Has(%q, %s) = %v, naive %v", ro.Name, perm, !want[perm], want[perm])
			}
			if d := p.Decide([]string{ro.Name}, perm); d.Allowed != want[perm] ||
				(d.Allowed && !slices.Contains(byName[d.Holder].Permissions, perm)) {
				t.Fatalf("Decide(%q, %s) = %+v", ro.Name, perm, d)
			}
		}
	}
	fresh, err := authz.Compile(p.Version(), custom)
	if err != nil {
		t.Fatalf("the roles of a compiled policy do not compile again: %v", err)
	}
	same(t, "a fresh compile of the policy's roles", roles, fresh.Roles())
}

// same fails the test when got is not want; cmp.Diff only then, as it is
// slow.
func same[T any](t *testing.T, what string, want, got T) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("%s (-want +got):\n%s", what, cmp.Diff(want, got))
	}
}
