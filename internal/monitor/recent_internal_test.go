package monitor

// The records a pass observes when it takes this node's commits from memory
// (Committed) are the records the store holds, in ledger order: the same
// stream, whoever committed them, however many fell out of the buffer.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/rules"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
)

// countingStore counts the events the monitor reads from the store.
type countingStore struct {
	Store
	mu   sync.Mutex
	read int
}

func (c *countingStore) count(fn func(custos.Event) error) func(custos.Event) error {
	return func(e custos.Event) error {
		c.mu.Lock()
		c.read++
		c.mu.Unlock()
		return fn(e)
	}
}

func (c *countingStore) ScanEvents(ctx context.Context, from uint64, fn func(custos.Event) error) error {
	return c.Store.ScanEvents(ctx, from, c.count(fn))
}

func (c *countingStore) ScanEventRange(ctx context.Context, from, to uint64, fn func(custos.Event) error) error {
	return c.Store.ScanEventRange(ctx, from, to, c.count(fn))
}

// reads returns the events read since the last call.
func (c *countingStore) reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.read
	c.read = 0
	return n
}

// node is one server: a store handle, its sequencer and a monitor that
// takes the sequencer's commits.
type node struct {
	t   *testing.T
	st  store.Store
	seq *ledger.Sequencer
	cs  *countingStore
	m   *Monitor
	// told counts the events committed while the monitor was told;
	// untold those committed with it muted (as another node's would be).
	told, untold int
	mu           sync.Mutex
}

func startNode(t *testing.T, st store.Store, seq *ledger.Sequencer, sig *ledger.Signer, recent int) *node {
	t.Helper()
	n := &node{t: t, st: st, seq: seq, cs: &countingStore{Store: st}}
	m, err := New(context.Background(), n.cs, seq, ledger.NewStateFeed(st, sig.VerifierKey()),
		Config{Rules: rules.DefaultConfig(), Recent: recent})
	if err != nil {
		t.Fatal(err)
	}
	n.m = m
	n.cs.reads()
	seq.SetCommitted(m.Committed)
	return n
}

// item is one record a pass observed.
type item struct {
	ev *custos.Event
	st *leaf.StateRecord
}

func (it item) index() uint64 {
	if it.ev != nil {
		return it.ev.Index
	}
	return it.st.Index
}

// follow runs the tail of a pass to the head and returns what it observed.
func (n *node) follow() []item {
	n.t.Helper()
	ctx := context.Background()
	h, err := n.st.Head(ctx)
	if err != nil {
		n.t.Fatal(err)
	}
	var out []item
	err = n.m.tail(ctx, h.Size, func(ev *custos.Event, rec *leaf.StateRecord) {
		if ev != nil {
			e := *ev
			out = append(out, item{ev: &e})
			return
		}
		r := *rec
		out = append(out, item{st: &r})
	})
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// truth is every record of [from, size) as the store holds it, in ledger
// order.
func truth(t *testing.T, st store.Store, from uint64) []item {
	t.Helper()
	ctx := context.Background()
	h, err := st.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var evs []custos.Event
	if err := st.ScanEventRange(ctx, from, h.Size, func(e custos.Event) error { evs = append(evs, e); return nil }); err != nil {
		t.Fatal(err)
	}
	recs, err := st.StateRecords(ctx, int64(from)-1)
	if err != nil {
		t.Fatal(err)
	}
	var out []item
	for len(evs) > 0 || len(recs) > 0 {
		if len(recs) == 0 || len(evs) > 0 && evs[0].Index < recs[0].Index {
			out = append(out, item{ev: &evs[0]})
			evs = evs[1:]
			continue
		}
		out = append(out, item{st: &recs[0]})
		recs = recs[1:]
	}
	if uint64(len(out)) != h.Size-from {
		t.Fatalf("the store holds %d records in [%d, %d)", len(out), from, h.Size)
	}
	return out
}

func sameItems(t *testing.T, what string, got, want []item) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.index() != w.index() || (g.ev == nil) != (w.ev == nil) {
			t.Fatalf("%s: record %d is index %d (event %v), want index %d (event %v)", what, i, g.index(), g.ev != nil, w.index(), w.ev != nil)
		}
		if g.ev != nil && !reflect.DeepEqual(*g.ev, *w.ev) {
			t.Fatalf("%s: event %d differs from the store's:\n%#v\nstore\n%#v", what, g.index(), *g.ev, *w.ev)
		}
		if g.st != nil && !reflect.DeepEqual(*g.st, *w.st) {
			t.Fatalf("%s: state record %d differs from the store's", what, g.index())
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: observed %d records, the store holds %d", what, len(got), len(want))
	}
}

var testTime = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)

func testEvent(by string, i int) custos.Event {
	e := custos.Event{User: custos.User{ID: fmt.Sprintf("%s-u%d", by, i%5), Roles: []string{"nurse"}}, Action: custos.ActionRead,
		ResourceType: "Patient", ResourceID: fmt.Sprintf("%s-%d", by, i), PatientID: fmt.Sprintf("p%d", i%11),
		IPAddress: fmt.Sprintf("192.0.2.%d", i%200), Source: "ehr"}
	switch i % 4 {
	case 1:
		e.User.Roles, e.Action, e.Outcome, e.StatusCode = nil, custos.ActionLogin, custos.OutcomeFailure, 401
	case 2:
		at := testTime.Add(time.Duration(i)*time.Second + 999) // nanoseconds: stored as microseconds
		e.OccurredAt, e.Changes = &at, json.RawMessage(`{ "field" : "name" }`)
	}
	return e
}

func testState(id string) leaf.StateRecord {
	return leaf.StateRecord{Entity: "test_entity", ID: id, Op: leaf.OpPut, Doc: json.RawMessage(`{"id":"` + id + `"}`)}
}

// append commits a request of n events (and the state records) through the
// node's sequencer; untold, with the monitor muted, as another node's
// commit would be.
func (n *node) append(by string, first, count int, untold bool, states ...leaf.StateRecord) {
	n.t.Helper()
	evs := make([]custos.Event, count)
	for i := range evs {
		evs[i] = testEvent(by, first+i)
	}
	if untold {
		n.seq.SetCommitted(func(uint64, uint64, []custos.Event) {})
		defer n.seq.SetCommitted(n.m.Committed)
	}
	if _, err := n.seq.Append(context.Background(), "apikey:"+by, evs, states...); err != nil {
		n.t.Error(err)
		return
	}
	n.mu.Lock()
	if untold {
		n.untold += count
	} else {
		n.told += count
	}
	n.mu.Unlock()
}

func (n *node) counts() (told, untold int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	told, untold = n.told, n.untold
	n.told, n.untold = 0, 0
	return told, untold
}

// TestTailTakesThisNodesCommitsFromMemory: on one SQLite ledger, commits
// of events, of events with state records, of state records alone, group
// commits of concurrent requests, and commits the monitor is not told of
// (another node's, in effect) between them. Each pass observes exactly the
// records the store holds, in order, and reads from the store exactly the
// events it was not told of: a gap between two told commits is read alone,
// and a state record inside a told commit is never mistaken for a gap.
func TestTailTakesThisNodesCommitsFromMemory(t *testing.T) {
	l := ledgertest.Open(t, t.TempDir(), "custos.test/recent", ledger.Config{})
	t.Cleanup(l.Close)
	pre := startNode(t, l.Store, l.Seq, l.Signer, 0)
	pre.append("before", 0, 7, false) // a backlog for the monitor's start
	n := startNode(t, l.Store, l.Seq, l.Signer, 0)
	h, _ := l.Store.Head(context.Background())
	from := h.Size
	var seen []item
	var allTold, allUntold int
	for round := range 6 {
		var wg sync.WaitGroup
		for w := range 4 { // concurrent requests: group commits
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range 5 {
					var states []leaf.StateRecord
					if k%2 == 0 {
						states = append(states, testState(fmt.Sprintf("s-%d-%d-%d", round, w, k)))
					}
					n.append(fmt.Sprintf("w%d", w), 100*round+10*k, 1+(w+k)%5, false, states...)
				}
			}()
		}
		wg.Wait()
		n.append("other", 1000*round, 1+round, true) // another node's commit
		n.append("mine", 2000*round, 2, false)       // this node's, right after
		n.append("other", 3000*round, 3, true)       // and another node's
		n.append("other", 4000*round, 1, true, testState(fmt.Sprintf("o-%d", round)))
		if _, err := l.Seq.Append(context.Background(), "custos", nil, testState(fmt.Sprintf("alone-%d", round))); err != nil {
			t.Fatal(err)
		}
		if round%2 == 1 {
			n.append("mine", 5000*round, 4, false)
		}
		got := n.follow()
		told, untold := n.counts()
		if reads := n.cs.reads(); reads != untold {
			t.Errorf("round %d: %d events read from the store; %d were committed untold (and %d told)", round, reads, untold, told)
		}
		allTold, allUntold = allTold+told, allUntold+untold
		seen = append(seen, got...)
	}
	if memory, stored := n.m.Observed(); memory != uint64(allTold) || stored != uint64(allUntold) {
		t.Errorf("Observed() = %d from memory, %d from the store; %d were told, %d not", memory, stored, allTold, allUntold)
	}
	sameItems(t, "a monitor told of this node's commits", seen, truth(t, l.Store, from))
}

// TestTailBufferOverflow: more events are committed between two passes
// than the monitor holds; the oldest were dropped, and the pass reads them
// from the store: nothing is missed, nothing is read that it holds. A
// single commit larger than the whole buffer is read from the store too.
func TestTailBufferOverflow(t *testing.T) {
	l := ledgertest.Open(t, t.TempDir(), "custos.test/recent", ledger.Config{})
	t.Cleanup(l.Close)
	n := startNode(t, l.Store, l.Seq, l.Signer, 10)
	h, _ := l.Store.Head(context.Background())
	from := h.Size
	for i := range 70 {
		var states []leaf.StateRecord
		if i%5 == 0 {
			states = append(states, testState(fmt.Sprintf("s%d", i)))
		}
		n.append("a", 3*i, 3, false, states...)
	}
	n.m.recent.mu.Lock()
	held := n.m.recent.events
	n.m.recent.mu.Unlock()
	if held > 10 || held < 8 {
		t.Fatalf("the buffer of 10 holds %d events", held)
	}
	got := n.follow()
	if reads := n.cs.reads(); reads != 210-held {
		t.Errorf("%d events read from the store, want the %d the buffer dropped", reads, 210-held)
	}
	n.append("big", 0, 25, false) // more than the buffer holds, in one commit
	n.append("small", 0, 4, false)
	got = append(got, n.follow()...)
	if reads := n.cs.reads(); reads != 25 {
		t.Errorf("%d events read from the store after a commit larger than the buffer, want 25", reads)
	}
	sameItems(t, "a monitor whose buffer overflowed", got, truth(t, l.Store, from))
}

// TestTailRestartedWithAnEmptyBuffer: commits told to a monitor that stops
// before its next pass are not lost: the monitor started next (an empty
// buffer) catches up from the store, then takes new commits from memory.
func TestTailRestartedWithAnEmptyBuffer(t *testing.T) {
	l := ledgertest.Open(t, t.TempDir(), "custos.test/recent", ledger.Config{})
	t.Cleanup(l.Close)
	old := startNode(t, l.Store, l.Seq, l.Signer, 0)
	old.append("a", 0, 5, false)
	old.follow()
	old.append("a", 5, 5, false, testState("x")) // told, never passed: the monitor stops
	n := startNode(t, l.Store, l.Seq, l.Signer, 0)
	if reads := n.cs.reads(); reads != 0 {
		t.Fatalf("counted %d reads before the first pass", reads)
	}
	h, _ := l.Store.Head(context.Background())
	n.append("b", 0, 6, false)
	got := n.follow()
	if reads := n.cs.reads(); reads != 0 {
		t.Errorf("the restarted monitor read %d events that it was told of", reads)
	}
	sameItems(t, "a restarted monitor", got, truth(t, l.Store, h.Size))
	if len(got) != 6 {
		t.Errorf("observed %d records after the restart, want the 6 new events", len(got))
	}
}

// TestTailTwoNodesOnPostgreSQL: two nodes append to one PostgreSQL ledger
// at once, each monitor told of its own node's commits only. Each observes
// every record of both in ledger order, and reads from the store exactly
// the other node's events.
func TestTailTwoNodesOnPostgreSQL(t *testing.T) {
	db := pgtest.FreshSchema(t)
	ctx := context.Background()
	sig, _, err := ledger.LoadOrCreateKey(filepath.Join(t.TempDir(), ledger.KeyFileName), "custos.test/recent")
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*node
	for range 2 {
		st, err := postgres.Open(ctx, db, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		seq, err := ledger.Open(ctx, st, st, st, sig, ledger.Config{CheckpointInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(seq.Close)
		nodes = append(nodes, startNode(t, st, seq, sig, 0))
	}
	h, err := nodes[0].st.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := make([][]item, len(nodes))
	for round := range 4 {
		var wg sync.WaitGroup
		for i, n := range nodes {
			for w := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := range 6 {
						var states []leaf.StateRecord
						if k%3 == 0 {
							states = append(states, testState(fmt.Sprintf("n%d-%d-%d-%d", i, round, w, k)))
						}
						n.append(fmt.Sprintf("n%dw%d", i, w), 100*round+10*k, 1+(w+k)%4, false, states...)
					}
				}()
			}
		}
		wg.Wait()
		told := make([]int, len(nodes))
		for i, n := range nodes {
			told[i], _ = n.counts()
		}
		for i, n := range nodes {
			seen[i] = append(seen[i], n.follow()...)
			if reads := n.cs.reads(); reads != told[1-i] {
				t.Errorf("round %d: node %d read %d events from the store; the other node committed %d", round, i, reads, told[1-i])
			}
		}
	}
	want := truth(t, nodes[0].st, h.Size)
	for i := range nodes {
		sameItems(t, fmt.Sprintf("node %d", i), seen[i], want)
	}
}
