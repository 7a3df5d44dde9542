package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/sqlite"
)

// told records what the sequencer tells of its commits (SetCommitted).
type told struct {
	mu    sync.Mutex
	spans []toldSpan
}

type toldSpan struct {
	from, to uint64
	events   []custos.Event
	copies   []custos.Event // deep copies taken when told: nothing may write the events since
}

func (c *told) commit(from, to uint64, events []custos.Event) {
	copies := make([]custos.Event, len(events))
	for i, e := range events {
		copies[i] = deepCopy(e)
	}
	c.mu.Lock()
	c.spans = append(c.spans, toldSpan{from, to, events, copies})
	c.mu.Unlock()
}

func deepCopy(e custos.Event) custos.Event {
	b, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	var c custos.Event
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	c.LeafVersion = e.LeafVersion
	return c
}

// check compares what was told with the store: the spans follow each other
// in ledger order and tile [0, size) (this sequencer is the ledger's only
// writer); each told event is the one ScanEvents reads at its index, field
// for field; every other index of a span is a state record; no stored event
// went untold; and nothing wrote the told events after they were told.
func (c *told) check(t *testing.T, st store.Store) {
	t.Helper()
	ctx := context.Background()
	h, err := st.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := map[uint64]bool{}
	recs, err := st.StateRecords(ctx, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		states[r.Index] = true
	}
	var stored []custos.Event
	if err := st.ScanEvents(ctx, 0, func(e custos.Event) error { stored = append(stored, e); return nil }); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var next uint64
	var all []custos.Event
	for _, s := range c.spans {
		if s.from != next || s.to <= s.from {
			t.Fatalf("told [%d, %d) after [.., %d)", s.from, s.to, next)
		}
		next = s.to
		at := s.from
		for i, e := range s.events {
			if e.Index < at || e.Index >= s.to {
				t.Fatalf("span [%d, %d) tells event %d out of place", s.from, s.to, e.Index)
			}
			for ; at < e.Index; at++ {
				if !states[at] {
					t.Fatalf("index %d of span [%d, %d) is neither a told event nor a state record", at, s.from, s.to)
				}
			}
			at++
			if got := deepCopy(e); !reflect.DeepEqual(got, s.copies[i]) {
				t.Fatalf("event %d was modified after it was told:\n%+v\nwas\n%+v", e.Index, got, s.copies[i])
			}
		}
		for ; at < s.to; at++ {
			if !states[at] {
				t.Fatalf("index %d of span [%d, %d) is neither a told event nor a state record", at, s.from, s.to)
			}
		}
		all = append(all, s.events...)
	}
	if next != h.Size {
		t.Fatalf("told up to %d, the ledger holds %d", next, h.Size)
	}
	if len(all) != len(stored) {
		t.Fatalf("told %d events, the store holds %d", len(all), len(stored))
	}
	for i := range all {
		if !reflect.DeepEqual(all[i], stored[i]) {
			t.Fatalf("told event differs from the stored one:\n%#v\nstored\n%#v", all[i], stored[i])
		}
	}
}

// TestCommittedEventsAreTheStoredOnes: what the sequencer tells of each
// commit is exactly what the store then holds, whatever form the caller
// gave (times in other zones with nanoseconds, no roles or an empty list,
// JSON with spaces, a mapped IPv4 address, extensions, server events),
// with state records among the events, from concurrent requests (group
// commits), while the clock goes back (the ledger's time does not); and a
// caller that reuses its events after Append changes nothing told.
func TestCommittedEventsAreTheStoredOnes(t *testing.T) {
	eachStore(t, func(t *testing.T, tg *target) {
		ctx := context.Background()
		var mu sync.Mutex
		clock := time.Date(2026, 11, 3, 9, 0, 0, 123456789, time.FixedZone("CET", 3600))
		now := func() time.Time { // 1 ms back per reading, with nanoseconds
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(-time.Millisecond + 7)
			return clock
		}
		seq, _ := openSeq(t, tg, Config{Now: now, LocalClock: true, CheckpointEvery: 7})
		var c told
		seq.SetCommitted(c.commit)
		occurred := time.Date(2026, 11, 2, 23, 59, 59, 999999999, time.FixedZone("EST", -5*3600))
		variety := func(i int) custos.Event {
			e := isoEvent(i)
			switch i % 8 {
			case 0:
				e.User.Roles, e.OccurredAt = nil, &occurred
			case 1:
				e.User.Roles, e.Changes = []string{}, json.RawMessage(` { "a" : [1, 2] , "b":null } `)
			case 2:
				e.User.Roles, e.IPAddress, e.Changes = []string{"physician", "on-call"}, "::ffff:192.0.2.7", nil
			case 3:
				e.Action, e.Disclosure = custos.ActionExport, &custos.Disclosure{Recipient: "payer", Purpose: "billing"}
			case 4:
				e.Original = &custos.Original{Format: "application/fhir+json", Data: []byte(`{"resourceType":"AuditEvent"}`)}
			case 5:
				e.Kind, e.StatusCode, e.Changes = custos.KindServer, 403, json.RawMessage(`null`)
			case 6:
				e.BreakGlass, e.BreakGlassReason, e.PurposeOfUse = true, "emergency", "TREAT"
			case 7:
				e.IPAddress, e.UserAgent, e.RequestMethod, e.RequestPath = "2001:db8::1", "curl/8", "GET", "/fhir/Patient/1"
			}
			return e
		}
		var wg sync.WaitGroup
		var reqs [][]custos.Event
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range 8 {
					n := 1 + (w+r)%4
					evs := make([]custos.Event, n)
					for j := range evs {
						evs[j] = variety(w*100 + r*10 + j)
					}
					if r%3 == 0 { // an idempotent delivery: the first event names it
						evs[0].Delivery = &custos.Delivery{Key: fmt.Sprintf("k-%d-%d", w, r), Digest: fmt.Sprintf("%064x", w*100+r), Count: n}
					}
					var states []leaf.StateRecord
					if r%2 == 1 {
						id := fmt.Sprintf("e-%d-%d", w, r)
						states = append(states, leaf.StateRecord{Entity: "test_entity", ID: id, Op: leaf.OpPut, Doc: json.RawMessage(`{"id":"` + id + `"}`)})
					}
					if _, err := seq.Append(ctx, fmt.Sprintf("apikey:client-%d", w), evs, states...); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					reqs = append(reqs, evs)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		// Only state records in a commit: a span without events.
		if _, err := seq.Append(ctx, "custos", nil, leaf.StateRecord{Entity: "test_entity", ID: "alone", Op: leaf.OpPut, Doc: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
		// The callers reuse what they sent.
		for _, evs := range reqs {
			for j := range evs {
				e := &evs[j]
				if len(e.User.Roles) > 0 {
					e.User.Roles[0] = "changed"
				}
				if e.OccurredAt != nil {
					*e.OccurredAt = e.OccurredAt.Add(time.Hour)
				}
				if e.Disclosure != nil {
					e.Disclosure.Recipient = "changed"
				}
				if e.Original != nil {
					e.Original.Data[0] = 'X'
				}
				if e.Delivery != nil {
					e.Delivery.Key = "changed"
				}
				if len(e.Changes) > 0 {
					e.Changes[0] = 'X'
				}
			}
		}
		seq.Close()
		c.check(t, tg.st)
		c.mu.Lock()
		n := len(c.spans)
		c.mu.Unlock()
		if n < 2 {
			t.Fatalf("%d commits told", n)
		}
	})
}

// TestCommittedTellsOnlyWhatCommitted: a group the database refuses in part
// is committed apart; only the commits that stored something are told, and
// they tile the ledger. A group the database pushes back is not told.
func TestCommittedTellsOnlyWhatCommitted(t *testing.T) {
	eachStore(t, func(t *testing.T, tg *target) {
		seq, _ := openSeq(t, tg, Config{CheckpointInterval: time.Hour})
		var c told
		seq.SetCommitted(c.commit)
		tg.refuse(t)
		reqs := make([][]custos.Event, 12)
		for i := range reqs {
			reqs[i] = []custos.Event{isoEvent(2 * i), isoEvent(2*i + 1)}
		}
		reqs[5][1].ResourceID = "poison"
		out := group(t, tg, seq, len(reqs), sendEvents(seq, reqs))
		if out[5].err == nil {
			t.Fatal("the poisoned request was acknowledged")
		}
		end := tg.pushback(t)
		pushed := group(t, tg, seq, 3, sendEvents(seq, [][]custos.Event{{isoEvent(50)}, {isoEvent(51)}, {isoEvent(52)}}))
		end()
		for i, o := range pushed {
			if o.err == nil {
				t.Fatalf("request %d of the pushed-back group was acknowledged", i)
			}
		}
		if _, err := seq.Append(context.Background(), "apikey:after", []custos.Event{isoEvent(60)}); err != nil {
			t.Fatal(err)
		}
		seq.Close()
		c.check(t, tg.st)
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, s := range c.spans {
			if slices.ContainsFunc(s.events, func(e custos.Event) bool { return e.ResourceID == "poison" }) {
				t.Fatal("a refused event was told")
			}
		}
	})
}

// appendWatch is a SQLite store whose Append says whether it is running.
type appendWatch struct {
	*sqlite.Store
	in bool
}

func (w *appendWatch) Append(ctx context.Context, b *store.Batch) error {
	w.in = true
	defer func() { w.in = false }()
	return w.Store.Append(ctx, b)
}

// TestCommittedToldAtTheStoresCommit: a commit is told as soon as the store
// has committed it, inside Append, before the store's own work after the
// commit (the SQLite index's queue, which may wait): a monitor reading the
// head then finds it told rather than reading it back.
func TestCommittedToldAtTheStoresCommit(t *testing.T) {
	tg := sqliteTarget(t)
	w := &appendWatch{Store: tg.st.(*sqlite.Store)}
	sig, _, err := LoadOrCreateKey(filepath.Join(tg.dir, KeyFileName), "custos.test/committed")
	if err != nil {
		t.Fatal(err)
	}
	seq, err := Open(context.Background(), w, tg.st, tg.st, sig, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	n := 0
	seq.SetCommitted(func(from, to uint64, events []custos.Event) {
		n++
		if !w.in {
			t.Errorf("[%d, %d) told after the store's Append returned", from, to)
		}
	})
	for i := range 3 {
		if _, err := seq.Append(context.Background(), "apikey:test", []custos.Event{isoEvent(2 * i), isoEvent(2*i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if n != 3 {
		t.Fatalf("%d commits told, want 3", n)
	}
}
