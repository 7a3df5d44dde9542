package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
	"github.com/google/go-cmp/cmp"
)

// testAggregates: every count the Aggregator makes in SQL is what a walk
// over the same events counts, for each dimension and filter; windows end
// at their bounds and below a checkpoint's size; state records and record
// counts are read by index.
func testAggregates(t *testing.T, s store.Store) {
	ctx := context.Background()
	evs := Events(0, 3000) // a minute apart
	// Interleave state records: every 500 events, one.
	var idx uint64
	var all []custos.Event
	var states []leaf.StateRecord
	for i := 0; i < len(evs); i += 500 {
		batch := Events(idx, 500)
		for j := range batch { // logins, exports and a second role, which Events lacks
			e := &batch[j]
			switch {
			case e.Index%6 == 1:
				e.Action = custos.ActionLogin
			case e.Index%17 == 0:
				e.Action = custos.ActionExport
			}
			if e.Index%4 == 3 {
				e.User.Roles = []string{"nurse", "physician"}
			}
		}
		idx += 500
		st := leaf.StateRecord{Index: idx, Timestamp: batch[499].Timestamp, SubmittedBy: "custos",
			Entity: []string{"user", "role"}[i/500%2], ID: fmt.Sprintf("x-%d", i), Op: leaf.OpPut, Doc: []byte(`{}`)}
		idx++
		mustAppend(t, s, &store.Batch{Events: batch, States: []leaf.StateRecord{st}})
		all = append(all, batch...)
		states = append(states, st)
	}
	from, to := all[100].Timestamp, all[2400].Timestamp
	below := all[2000].Index // a checkpoint of 2000-odd records
	w, ok, err := s.EventWindow(ctx, from, to, below)
	if err != nil || !ok {
		t.Fatalf("EventWindow: %v, %v", ok, err)
	}
	var in []custos.Event
	for _, e := range all {
		if !e.Timestamp.Before(from) && e.Timestamp.Before(to) && e.Index < below {
			in = append(in, e)
		}
	}
	if w.First != in[0].Index || w.Last != in[len(in)-1].Index || w.Events != int64(len(in)) {
		t.Errorf("window %d..%d (%d), want %d..%d (%d)", w.First, w.Last, w.Events, in[0].Index, in[len(in)-1].Index, len(in))
	}
	if _, ok, err := s.EventWindow(ctx, t0.Add(-time.Hour), t0, 1<<40); ok || err != nil {
		t.Errorf("an empty window: %v, %v", ok, err)
	}

	key := map[store.Dimension]func(e *custos.Event) string{
		store.ByNothing:      func(*custos.Event) string { return "" },
		store.ByAction:       func(e *custos.Event) string { return string(e.Action) },
		store.ByResourceType: func(e *custos.Event) string { return e.ResourceType },
		store.ByUser:         func(e *custos.Event) string { return e.User.ID },
		store.ByRoles: func(e *custos.Event) string {
			b, _ := json.Marshal(e.User.Roles)
			return string(b)
		},
		store.BySource:  func(e *custos.Event) string { return e.Source },
		store.ByOutcome: func(e *custos.Event) string { return string(e.Outcome) },
		store.ByDay:     func(e *custos.Event) string { return strconv.FormatInt(e.Timestamp.Unix()/86400, 10) },
		store.ByIP:      func(e *custos.Event) string { return e.IPAddress },
		store.ByPatient: func(e *custos.Event) string { return e.PatientID },
	}
	filters := []store.EventFilter{{}, {Action: custos.ActionRead}, {Outcome: custos.OutcomeFailure}, {PHI: true}, {BreakGlass: true}, {Extended: true}}
	dims := make([]store.Dimension, 0, len(key))
	for d := range key {
		dims = append(dims, d)
	}
	for _, f := range filters {
		want := map[store.Dimension]map[string]store.Measures{}
		for d, k := range key {
			want[d] = map[string]store.Measures{}
			for i := range in {
				if e := &in[i]; matches(e, f) {
					m := want[d][k(e)]
					add(&m, e)
					want[d][k(e)] = m
				}
			}
		}
		got := map[store.Dimension]map[string]store.Measures{}
		for d := range key {
			got[d] = map[string]store.Measures{}
		}
		err := s.CountEvents(ctx, w, dims, f, func(d store.Dimension, key string, m store.Measures) error {
			if _, dup := got[d][key]; dup {
				t.Errorf("CountEvents(%+v): group %d %q twice", f, d, key)
			}
			got[d][key] = m
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("CountEvents(%+v) (-walk +store):\n%s", f, diff)
		}
		for d := range key {
			n, err := s.CountDistinct(ctx, w, d, f)
			if err != nil || n != int64(len(want[d])) {
				t.Errorf("CountDistinct(%d, %+v) = %d, %v; want %d", d, f, n, err, len(want[d]))
			}
		}
	}
	// One dimension alone, and none.
	n := 0
	if err := s.CountEvents(ctx, w, []store.Dimension{store.ByAction}, store.EventFilter{}, func(d store.Dimension, _ string, _ store.Measures) error {
		if d != store.ByAction {
			t.Errorf("dimension %d", d)
		}
		n++
		return nil
	}); err != nil || n != len(byActionWant(in)) {
		t.Errorf("CountEvents(ByAction): %d groups, %v", n, err)
	}
	// A filter that matches nothing: no group, not even ByNothing's.
	err = s.CountEvents(ctx, w, dims, store.EventFilter{Action: custos.ActionImport}, func(d store.Dimension, k string, m store.Measures) error {
		t.Errorf("a group of no event: %d %q %+v", d, k, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// WindowEvents pages through the matching events, oldest first.
	var got, want []uint64
	for _, e := range in {
		if matches(&e, store.EventFilter{Action: custos.ActionUpdate}) {
			want = append(want, e.Index)
		}
	}
	for after := int64(-1); ; {
		page, err := s.WindowEvents(ctx, w, store.EventFilter{Action: custos.ActionUpdate}, after, 37)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, indices(page)...)
		after = int64(page[len(page)-1].Index)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WindowEvents (-walk +store):\n%s", diff)
	}
	// State records by entity, below a size.
	recs, err := s.StateRecordsOf(ctx, []string{"role"}, states[0].Timestamp.Add(time.Microsecond), time.Time{}, states[5].Index)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff([]string{"x-500", "x-1500"}, ids); diff != "" {
		t.Errorf("StateRecordsOf (-want +got):\n%s", diff)
	}
	recs, err = s.StateRecordsOf(ctx, []string{"user", "role"}, states[0].Timestamp, states[3].Timestamp, 1<<40)
	if err != nil || len(recs) != 3 || recs[0].ID != "x-0" || recs[2].ID != "x-1000" {
		t.Errorf("StateRecordsOf in a time range: %+v, %v", recs, err)
	}
	if n, err := s.RecordsIn(ctx, 400, 1600); err != nil || n != 1201 {
		t.Errorf("RecordsIn(400, 1600) = %d, %v; want 1201", n, err)
	}
}

func matches(e *custos.Event, f store.EventFilter) bool {
	return (f.Action == "" || e.Action == f.Action) && (f.Outcome == "" || e.Outcome == f.Outcome) &&
		(!f.PHI || e.PatientID != "") && (!f.BreakGlass || e.BreakGlass) &&
		(!f.Extended || (e.LeafVersion == leaf.Version2 && len(leaf.EncodeExt(e)) > 1))
}

func add(m *store.Measures, e *custos.Event) {
	b := func(c bool) int64 {
		if c {
			return 1
		}
		return 0
	}
	m.Events++
	m.Failures += b(e.Outcome == custos.OutcomeFailure)
	m.PHI += b(e.PatientID != "")
	m.Exports += b(e.Action == custos.ActionExport)
	m.BreakGlass += b(e.BreakGlass)
	m.LoginSuccess += b(e.Action == custos.ActionLogin && e.Outcome == custos.OutcomeSuccess)
	m.LoginFailure += b(e.Action == custos.ActionLogin && e.Outcome == custos.OutcomeFailure)
	m.Logouts += b(e.Action == custos.ActionLogout)
}

func byActionWant(in []custos.Event) map[custos.Action]bool {
	m := map[custos.Action]bool{}
	for _, e := range in {
		m[e.Action] = true
	}
	return m
}

// Aggregates runs the aggregate conformance test alone, for a store
// configured to take another path (the SQLite store's parallel fold).
func Aggregates(t *testing.T, s store.Store) { testAggregates(t, s) }
