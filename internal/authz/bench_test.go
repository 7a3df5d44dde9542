package authz_test

import (
	"slices"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authz"
	"github.com/custos-audit/custos/internal/authz/authztest"
)

// issue9 compiles the hierarchy of issue 9's target (8 deep, 500 roles,
// 5,000 permissions) and returns it with 4,096 decisions over it, checked.
func issue9(tb testing.TB) (*authz.Policy, []authztest.Query) {
	tb.Helper()
	roles, leaves := authztest.Hierarchy(authztest.Issue9)
	p, err := authz.Compile(1, roles)
	if err != nil {
		tb.Fatal(err)
	}
	qs := authztest.Queries(roles, leaves, 4096)
	for _, q := range qs {
		if got := p.HasAny(q.Roles, q.Perm); got != q.Want {
			tb.Fatalf("HasAny(%v, %s) = %v, want %v", q.Roles, q.Perm, got, q.Want)
		}
	}
	return p, qs
}

func TestIssue9Hierarchy(t *testing.T) {
	p, _ := issue9(t)
	roles := p.Roles()
	deepest, perms := 0, make(map[custos.Permission]bool)
	for _, r := range roles {
		depth := 1
		for x, _ := p.Role(r.Name); x.ParentRole != ""; x, _ = p.Role(x.ParentRole) {
			depth++
		}
		deepest = max(deepest, depth)
		for _, perm := range r.Permissions {
			perms[perm] = true
		}
	}
	custom := len(roles) - len(authz.BuiltIns())
	if deepest != 8 || custom != 500 || len(perms) != 5000+len(custos.Permissions) {
		t.Errorf("hierarchy: %d deep, %d custom roles, %d permissions", deepest, custom, len(perms))
	}
}

func TestDecisionsAllocateNothing(t *testing.T) {
	p, qs := issue9(t)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		q := qs[i%len(qs)]
		i++
		_ = p.Has(q.Roles[0], q.Perm)
		_ = p.HasAny(q.Roles, q.Perm)
		_ = p.Decide(q.Roles, q.Perm)
	})
	if allocs != 0 {
		t.Errorf("a decision allocates %v times", allocs)
	}
}

var sink bool

// BenchmarkHas is one decision for a user holding one leaf role.
func BenchmarkHas(b *testing.B) {
	p, qs := issue9(b)
	i := 0
	for b.Loop() {
		q := qs[i%len(qs)]
		sink = p.Has(q.Roles[0], q.Perm)
		i++
	}
}

// BenchmarkHasAny is one decision for a user holding three roles, the one
// that decides last.
func BenchmarkHasAny(b *testing.B) {
	p, qs := issue9(b)
	users := make([][]string, len(qs))
	for i, q := range qs {
		users[i] = []string{qs[(i+1)%len(qs)].Roles[0], qs[(i+2)%len(qs)].Roles[0], q.Roles[0]}
	}
	i := 0
	for b.Loop() {
		sink = p.HasAny(users[i%len(qs)], qs[i%len(qs)].Perm)
		i++
	}
}

// BenchmarkDecide is a decision with its reason.
func BenchmarkDecide(b *testing.B) {
	p, qs := issue9(b)
	i := 0
	for b.Loop() {
		q := qs[i%len(qs)]
		sink = p.Decide(q.Roles, q.Perm).Allowed
		i++
	}
}

// BenchmarkDecisionLatency times single decisions one by one, by Has and
// by Decide, and reports their p50 and p99: ns/op is the mean, which
// preemption and a busy machine inflate. Each time includes reading the
// clock twice: clock-ns is the p50 of the same loop without a decision.
func BenchmarkDecisionLatency(b *testing.B) {
	p, qs := issue9(b)
	b.Run("Has", func(b *testing.B) {
		timeEach(b, func(q authztest.Query) bool { return p.Has(q.Roles[0], q.Perm) }, qs)
	})
	b.Run("Decide", func(b *testing.B) {
		timeEach(b, func(q authztest.Query) bool { return p.Decide(q.Roles, q.Perm).Allowed }, qs)
	})
}

func timeEach(b *testing.B, decide func(authztest.Query) bool, qs []authztest.Query) {
	const keep = 1 << 16
	took := make([]time.Duration, keep)
	b.ResetTimer()
	for i := range b.N {
		q := qs[i%len(qs)]
		start := time.Now()
		sink = decide(q)
		took[i%keep] = time.Since(start)
	}
	b.StopTimer()
	n := min(b.N, keep)
	b.ReportMetric(percentile(took[:n], 50), "p50-ns")
	b.ReportMetric(percentile(took[:n], 99), "p99-ns")
	clock := make([]time.Duration, keep)
	for i := range clock {
		start := time.Now()
		clock[i] = time.Since(start)
	}
	b.ReportMetric(percentile(clock, 50), "clock-ns")
}

func percentile(d []time.Duration, pct int) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[(len(s)-1)*pct/100].Nanoseconds())
}

// BenchmarkPermissions is the effective set of a principal holding two leaf
// roles: computed once per credential, not per request.
func BenchmarkPermissions(b *testing.B) {
	p, qs := issue9(b)
	i := 0
	for b.Loop() {
		_ = p.Permissions([]string{qs[i%len(qs)].Roles[0], qs[(i+1)%len(qs)].Roles[0]})
		i++
	}
}

// BenchmarkCompile compiles the whole hierarchy, as a node does when it
// loads the roles.
func BenchmarkCompile(b *testing.B) {
	roles, _ := authztest.Hierarchy(authztest.Issue9)
	for b.Loop() {
		if _, err := authz.Compile(1, roles); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplace changes a role on level 4, recompiling its subtree only.
func BenchmarkReplace(b *testing.B) {
	p, _ := issue9(b)
	r, _ := p.Role("r4-0")
	r.EffectivePermissions = nil
	r.Permissions = append(r.Permissions, "app:extra")
	for b.Loop() {
		if _, err := p.Replace(r); err != nil {
			b.Fatal(err)
		}
	}
}
