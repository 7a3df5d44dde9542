package authn_test

import (
	"context"
	"github.com/custos-audit/custos/internal/clocktest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/authn/password"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/google/go-cmp/cmp"
)

// cheapHasher keeps password work negligible in tests.
func cheapHasher(tb testing.TB) *password.Hasher {
	tb.Helper()
	h, err := password.NewHasher(password.Config{Params: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// racer is a node's ledger that, once armed, runs another node's change
// just before this node's next append: the two nodes then each checked
// their change against a view without the other's.
type racer struct {
	authn.Appender
	mu     sync.Mutex
	before func()
}

func (r *racer) arm(f func()) { r.mu.Lock(); r.before = f; r.mu.Unlock() }

func (r *racer) Append(ctx context.Context, by string, events []custos.Event, states ...leaf.StateRecord) ([]custos.Receipt, error) {
	r.mu.Lock()
	f := r.before
	r.before = nil
	r.mu.Unlock()
	if f != nil {
		f()
	}
	return r.Appender.Append(ctx, by, events, states...)
}

// nodes is directories on one ledger, as nodes share a database, with one
// clock.
type nodes struct {
	l     *ledgertest.Ledger
	clock *clocktest.Clock
	dirs  []*authn.Directory
	racer []*racer
}

func newNodes(t *testing.T, n int) *nodes {
	t.Helper()
	l := ledgertest.Open(t, t.TempDir(), "custos.test/authn", ledger.Config{})
	t.Cleanup(l.Close)
	ns := &nodes{l: l, clock: clocktest.New(time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC))}
	for range n {
		ns.add(t)
	}
	return ns
}

// add starts one more node, which replays the ledger from its start.
func (ns *nodes) add(t *testing.T) *authn.Directory {
	t.Helper()
	r := &racer{Appender: ns.l.Seq}
	d, err := authn.NewDirectory(context.Background(), r, ledger.NewStateFeed(ns.l.Store, ns.l.Signer.VerifierKey()),
		authn.Config{Now: ns.clock.Now, Hasher: cheapHasher(t), Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	ns.dirs, ns.racer = append(ns.dirs, d), append(ns.racer, r)
	return d
}

func putRole(t *testing.T, d *authn.Directory, create bool, name, parent string, perms ...custos.Permission) {
	t.Helper()
	if _, _, err := d.PutRole(context.Background(), nil, custos.Role{Name: name, ParentRole: parent, Permissions: perms}, create); err != nil {
		t.Fatalf("put role %s: %v", name, err)
	}
}

// TestChangesReachOtherNodes: a change made on one node takes effect on
// another within the 2 s reload.
func TestChangesReachOtherNodes(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 2)
	a, b := ns.dirs[0], ns.dirs[1]
	putRole(t, a, true, "reader", "", custos.PermEventsRead)
	_, token, err := a.Create(ctx, nil, authn.KeySpec{Name: "k", Roles: []string{"reader"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	ns.clock.Add(300 * time.Millisecond)
	p, err := b.Authenticate(ctx, token)
	if err != nil || !p.Can(custos.PermEventsRead) {
		t.Fatalf("node B: %+v %v", p, err)
	}

	putRole(t, a, false, "reader", "", custos.PermProofsRead)
	ns.clock.Add(2100 * time.Millisecond)
	p, err = b.Authenticate(ctx, token)
	if err != nil || p.Can(custos.PermEventsRead) || !p.Can(custos.PermProofsRead) {
		t.Fatalf("node B 2.1 s after the role changed on node A: %+v %v", p, err)
	}

	// A user suspended on A: refused on B within 2 s, session and key.
	name, pw, roles := "Ann", "correct horse battery staple", []string{"reader"}
	if _, _, err := a.SaveUser(ctx, nil, authn.UserChange{ID: "ann", Name: &name, Roles: &roles, Password: &pw}, true); err != nil {
		t.Fatal(err)
	}
	s, err := a.Login(ctx, authn.Login{UserID: "ann", Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	ns.clock.Add(300 * time.Millisecond)
	if _, err := b.Authenticate(ctx, s.Token); err != nil {
		t.Fatalf("node B refuses a session opened on node A: %v", err)
	}
	suspended := authn.StatusSuspended
	if _, _, err := a.SaveUser(ctx, nil, authn.UserChange{ID: "ann", Status: &suspended}, false); err != nil {
		t.Fatal(err)
	}
	ns.clock.Add(2100 * time.Millisecond)
	if _, err := b.Authenticate(ctx, s.Token); custos.KindOf(err) != custos.Unauthenticated {
		t.Fatalf("node B 2.1 s after the user was suspended on node A: %v", err)
	}
}

// TestConcurrentCycleSkippedAtReplay: node A sets a.parent=b while node B
// sets b.parent=a, each valid against its own view. The ledger holds both;
// every node replays A's (first) and skips B's, so all nodes hold the same
// policy, and decisions terminate.
func TestConcurrentCycleSkippedAtReplay(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 2)
	a, b := ns.dirs[0], ns.dirs[1]
	putRole(t, a, true, "a", "", "patient:read")
	putRole(t, a, true, "b", "", "patient:write")

	ns.racer[1].arm(func() { putRole(t, a, false, "a", "b", "patient:read") })
	_, _, err := b.PutRole(ctx, nil, custos.Role{Name: "b", ParentRole: "a", Permissions: []custos.Permission{"patient:write"}}, false)
	if custos.KindOf(err) != custos.Conflict {
		t.Errorf("node B's change, skipped at replay, answered %v; want a conflict", err)
	}
	ns.clock.Add(2100 * time.Millisecond)
	c := ns.add(t) // a node started afterwards replays the same ledger
	want := []custos.Role{
		{Name: "a", Permissions: []custos.Permission{"patient:read"}, ParentRole: "b",
			EffectivePermissions: []custos.Permission{"patient:read", "patient:write"}},
		{Name: "b", Permissions: []custos.Permission{"patient:write"}, EffectivePermissions: []custos.Permission{"patient:write"}},
	}
	for i, d := range []*authn.Directory{a, b, c} {
		var custom []custos.Role
		for _, r := range d.Policy().Roles() {
			if !r.BuiltIn {
				custom = append(custom, r)
			}
		}
		if diff := cmp.Diff(want, custom); diff != "" {
			t.Errorf("node %d's custom roles (-want +got):\n%s", i, diff)
		}
		done := make(chan bool)
		go func() {
			done <- d.Policy().Decide([]string{"b"}, "patient:read").Allowed
		}()
		select {
		case allowed := <-done:
			if allowed {
				t.Errorf("node %d: b inherits from a, whose record was skipped", i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("node %d: a decision loops", i)
		}
	}
	if a.Policy().Version() != b.Policy().Version() || b.Policy().Version() != c.Policy().Version() {
		t.Errorf("policy versions %d, %d, %d: the nodes replayed differently",
			a.Policy().Version(), b.Policy().Version(), c.Policy().Version())
	}
}

// TestConcurrentDeleteOfAParent: node A deletes role p while node B creates a
// child of p. Node A's delete comes first; B's child then has no parent and
// is skipped everywhere, and B's caller is told.
func TestConcurrentDeleteOfAParent(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 2)
	a, b := ns.dirs[0], ns.dirs[1]
	putRole(t, a, true, "p", "", "patient:read")
	ns.racer[1].arm(func() {
		if err := a.DeleteRole(ctx, nil, "p", false, ""); err != nil {
			t.Errorf("delete on node A: %v", err)
		}
	})
	_, _, err := b.PutRole(ctx, nil, custos.Role{Name: "child", ParentRole: "p"}, true)
	if custos.KindOf(err) != custos.Conflict {
		t.Errorf("node B's create, skipped at replay, answered %v; want a conflict", err)
	}
	ns.clock.Add(2100 * time.Millisecond)
	for i, d := range ns.dirs {
		if _, err := d.Role(ctx, "child"); custos.KindOf(err) != custos.NotFound {
			t.Errorf("node %d: role child: %v, want not found", i, err)
		}
		if _, err := d.Role(ctx, "p"); custos.KindOf(err) != custos.NotFound {
			t.Errorf("node %d: role p: %v, want not found", i, err)
		}
	}

	// And the other way round: B's child first, then A's delete of its
	// parent is skipped, and A's caller is told.
	putRole(t, a, true, "q", "", "patient:read")
	ns.clock.Add(2100 * time.Millisecond)
	ns.racer[0].arm(func() { putRole(t, b, true, "child2", "q") })
	if err := a.DeleteRole(ctx, nil, "q", false, ""); custos.KindOf(err) != custos.Conflict {
		t.Errorf("node A's delete, skipped at replay, answered %v; want a conflict", err)
	}
	for i, d := range ns.dirs {
		if r, err := d.Role(ctx, "child2"); err != nil || !slices.Contains(r.EffectivePermissions, "patient:read") {
			t.Errorf("node %d: role child2: %+v %v", i, r, err)
		}
	}
}
