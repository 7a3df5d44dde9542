package casbinbench

import (
	"testing"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"

	"github.com/custos-audit/custos/internal/authz"
	"github.com/custos-audit/custos/internal/authz/authztest"
)

// rbac is casbin's RBAC with role inheritance: g(user or role, role) links a
// user to a role and a role to its parent, and a request is allowed when
// some policy line of a role the subject has, directly or inherited, names
// the permission.
const rbac = `
[request_definition]
r = sub, act

[policy_definition]
p = sub, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
`

// The matchers: as casbin's RBAC example writes it, and with the cheap
// comparison first, so that g is evaluated only for the policy lines that
// name the permission.
const (
	roleFirst = "m = g(r.sub, p.sub) && r.act == p.act"
	actFirst  = "m = r.act == p.act && g(r.sub, p.sub)"
)

// fixture is the hierarchy of issue 9 (8 deep, 500 roles, 5,000
// permissions), users each holding one leaf role, and decisions over it.
type fixture struct {
	policy  *authz.Policy
	users   map[string][]string // user → roles, for authz
	queries []authztest.Query
}

func newFixture(tb testing.TB) fixture {
	tb.Helper()
	roles, leaves := authztest.Hierarchy(authztest.Issue9)
	p, err := authz.Compile(1, roles)
	if err != nil {
		tb.Fatal(err)
	}
	f := fixture{policy: p, users: make(map[string][]string), queries: authztest.Queries(roles, leaves, 4096)}
	for _, q := range f.queries {
		f.users[q.User] = q.Roles
	}
	return f
}

// load puts the same roles, parents and user assignments into e.
func (f fixture) load(tb testing.TB, e casbin.IEnforcer) {
	tb.Helper()
	roles, _ := authztest.Hierarchy(authztest.Issue9)
	var rules, links [][]string
	for _, r := range roles {
		for _, perm := range r.Permissions {
			rules = append(rules, []string{r.Name, string(perm)})
		}
		if r.ParentRole != "" {
			links = append(links, []string{r.Name, r.ParentRole})
		}
	}
	for user, held := range f.users {
		for _, r := range held {
			links = append(links, []string{user, r})
		}
	}
	if _, err := e.AddPolicies(rules); err != nil {
		tb.Fatal(err)
	}
	if _, err := e.AddGroupingPolicies(links); err != nil {
		tb.Fatal(err)
	}
}

func newEnforcer(tb testing.TB, f fixture, matcher string) *casbin.Enforcer {
	tb.Helper()
	m, err := model.NewModelFromString(rbac + matcher)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := casbin.NewEnforcer(m)
	if err != nil {
		tb.Fatal(err)
	}
	f.load(tb, e)
	return e
}

func newCachedEnforcer(tb testing.TB, f fixture, matcher string) *casbin.CachedEnforcer {
	tb.Helper()
	m, err := model.NewModelFromString(rbac + matcher)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := casbin.NewCachedEnforcer(m)
	if err != nil {
		tb.Fatal(err)
	}
	f.load(tb, e)
	return e
}

// TestSameAnswers: every engine answers the decisions as the hierarchy
// says.
func TestSameAnswers(t *testing.T) {
	f := newFixture(t)
	engines := map[string]casbin.IEnforcer{
		"role first": newEnforcer(t, f, roleFirst),
		"act first":  newEnforcer(t, f, actFirst),
		"cached":     newCachedEnforcer(t, f, actFirst),
	}
	for _, q := range f.queries[:256] {
		if got := f.policy.HasAny(f.users[q.User], q.Perm); got != q.Want {
			t.Errorf("authz: %s %s = %v, want %v", q.User, q.Perm, got, q.Want)
		}
		for name, e := range engines {
			got, err := e.Enforce(q.User, string(q.Perm))
			if err != nil {
				t.Fatal(err)
			}
			if got != q.Want {
				t.Errorf("casbin %s: %s %s = %v, want %v", name, q.User, q.Perm, got, q.Want)
			}
		}
	}
}

var sink bool

// BenchmarkDecision asks the same decisions of authz (the user's roles
// looked up, then HasAny) and of casbin: its Enforcer with either matcher,
// and its CachedEnforcer with every decision already cached.
func BenchmarkDecision(b *testing.B) {
	f := newFixture(b)
	b.Run("authz", func(b *testing.B) {
		i := 0
		for b.Loop() {
			q := f.queries[i%len(f.queries)]
			sink = f.policy.HasAny(f.users[q.User], q.Perm)
			i++
		}
	})
	enforce := func(b *testing.B, e casbin.IEnforcer) {
		i := 0
		for b.Loop() {
			q := f.queries[i%len(f.queries)]
			sink, _ = e.Enforce(q.User, string(q.Perm))
			i++
		}
	}
	b.Run("casbin-role-first", func(b *testing.B) { enforce(b, newEnforcer(b, f, roleFirst)) })
	b.Run("casbin-act-first", func(b *testing.B) { enforce(b, newEnforcer(b, f, actFirst)) })
	b.Run("casbin-cached", func(b *testing.B) {
		e := newCachedEnforcer(b, f, actFirst)
		for _, q := range f.queries {
			if _, err := e.Enforce(q.User, string(q.Perm)); err != nil {
				b.Fatal(err)
			}
		}
		enforce(b, e)
	})
}
