// Package storetest is the conformance suite every store.Store must pass. A
// store's own test calls Run with a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
	"github.com/google/go-cmp/cmp"
)

// Opener opens a fresh, empty store that the test may close.
type Opener func(t *testing.T) store.Store

// Run runs the whole suite.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"EmptyHead", testEmptyHead},
		{"AppendAndRead", testAppendAndRead},
		{"FailedBatchWritesNothing", testFailedBatch},
		{"Filters", testFilters},
		{"KeysetPaging", testPaging},
		{"NodesAndCheckpoints", testNodesAndCheckpoints},
		{"State", testState},
		{"Scans", testScans},
		{"PatientDays", testPatientDays},
		{"Deliveries", testDeliveries},
		{"Aggregates", testAggregates},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tt.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)

// Events returns n valid, normalised events at indices from..from+n-1 whose
// fields vary with the index (patients p-0..p-9, users u-0..u-2; every fifth
// a server event with extensions, every thirteenth a version 1 leaf).
func Events(from uint64, n int) []custos.Event {
	out := make([]custos.Event, n)
	for i := range out {
		idx := from + uint64(i)
		occurred := t0.Add(time.Duration(idx) * time.Second)
		out[i] = custos.Event{
			Index: idx, Timestamp: t0.Add(time.Duration(idx) * time.Minute), OccurredAt: &occurred,
			User:   custos.User{ID: fmt.Sprintf("u-%d", idx%3), Name: "Dr. Test", Roles: []string{"physician"}},
			Action: custos.Actions[idx%4], ResourceType: "Patient", ResourceID: fmt.Sprintf("p-%d", idx%10),
			PatientID: fmt.Sprintf("p-%d", idx%10), IPAddress: fmt.Sprintf("203.0.113.%d", idx%5),
			UserAgent: "test/1", RequestMethod: "GET", RequestPath: fmt.Sprintf("/Patient/p-%d", idx%10),
			Outcome: custos.OutcomeSuccess, StatusCode: 200, Source: "ehr",
			LeafVersion: leaf.Current, Kind: custos.KindClient, SubmittedBy: "apikey:test",
		}
		if idx%5 == 0 {
			out[i].Kind, out[i].SubmittedBy = custos.KindServer, "custos"
			out[i].Disclosure = &custos.Disclosure{Recipient: "Acme Insurance", Purpose: "PAYMENT"}
			out[i].Original = &custos.Original{Format: "application/fhir+json", Data: []byte(`{"resourceType":"AuditEvent"}`)}
		}
		if idx%13 == 0 {
			out[i].LeafVersion, out[i].Kind, out[i].SubmittedBy = leaf.Version1, custos.KindClient, ""
			out[i].Disclosure, out[i].Original = nil, nil
		}
		if idx%7 == 0 {
			out[i].Changes = json.RawMessage(`{"field":"name","to":"x"}`)
			out[i].Outcome, out[i].StatusCode = custos.OutcomeFailure, 403
			out[i].PatientID, out[i].IPAddress = "", ""
		}
		if idx%11 == 0 {
			out[i].BreakGlass, out[i].BreakGlassReason = true, "emergency"
			out[i].OccurredAt = nil
		}
	}
	return out
}

func nodes(from uint64, n int) []store.Node {
	out := make([]store.Node, n)
	for i := range out {
		out[i] = store.Node{Pos: from + uint64(i), Hash: []byte(fmt.Sprintf("%032d", from+uint64(i)))}
	}
	return out
}

func mustAppend(t *testing.T, s store.Store, b *store.Batch) {
	t.Helper()
	if err := s.Append(context.Background(), b); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func testEmptyHead(t *testing.T, s store.Store) {
	h, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(store.Head{}, h); diff != "" {
		t.Errorf("head of empty store (-want +got):\n%s", diff)
	}
	if _, err := s.Event(context.Background(), 0); !errors.Is(err, custos.ErrNotFound) {
		t.Errorf("Event(0) on empty store: %v, want ErrNotFound", err)
	}
	if _, err := s.LatestCheckpoint(context.Background()); !errors.Is(err, custos.ErrNotFound) {
		t.Errorf("LatestCheckpoint on empty store: %v, want ErrNotFound", err)
	}
}

func testAppendAndRead(t *testing.T, s store.Store) {
	ctx := context.Background()
	evs := Events(0, 300) // more than one multi-row insert
	mustAppend(t, s, &store.Batch{Events: evs, Nodes: nodes(0, 10)})
	h, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Size != 300 || h.NodeCount != 10 || !h.LastTimestamp.Equal(evs[299].Timestamp) {
		t.Errorf("head = %+v, want size 300, 10 nodes, last ts %v", h, evs[299].Timestamp)
	}
	for _, i := range []uint64{0, 7, 11, 77, 299} {
		got, err := s.Event(ctx, i)
		if err != nil {
			t.Fatalf("Event(%d): %v", i, err)
		}
		if diff := cmp.Diff(evs[i], got); diff != "" {
			t.Errorf("Event(%d) round trip (-want +got):\n%s", i, diff)
		}
	}
}

func testFailedBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	// A batch that commits tells so once, when readers see it.
	var told []uint64
	mustAppend(t, s, &store.Batch{Events: Events(0, 5), Nodes: nodes(0, 8), Committed: func() {
		h, err := s.Head(ctx)
		if err != nil {
			t.Error(err)
		}
		told = append(told, h.Size)
	}})
	if len(told) != 1 || told[0] != 5 {
		t.Errorf("a committed batch of 5 told %v (the head it saw), want it told once with the batch visible", told)
	}
	// Index 4 again: the batch must fail as a whole, and tells nothing.
	bad := append(Events(5, 3), Events(4, 1)...)
	if err := s.Append(ctx, &store.Batch{Events: bad, Nodes: nodes(8, 4), Committed: func() { t.Error("a failed batch told it committed") }}); err == nil {
		t.Fatal("Append of a batch with a duplicate index succeeded")
	}
	h, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Size != 5 || h.NodeCount != 8 {
		t.Errorf("after a failed batch head = %+v, want size 5 and 8 nodes (nothing of it stored)", h)
	}
}

func testFilters(t *testing.T, s store.Store) {
	evs := Events(0, 200)
	mustAppend(t, s, &store.Batch{Events: evs})
	for _, tc := range []struct {
		name string
		q    store.Query
		keep func(custos.Event) bool
	}{
		{"all", store.Query{}, func(custos.Event) bool { return true }},
		{"user", store.Query{User: "u-1"}, func(e custos.Event) bool { return e.User.ID == "u-1" }},
		{"action", store.Query{Action: "READ"}, func(e custos.Event) bool { return e.Action == "READ" }},
		{"resource", store.Query{ResourceType: "Patient", ResourceID: "p-3"}, func(e custos.Event) bool { return e.ResourceID == "p-3" }},
		{"resource type only", store.Query{ResourceType: "Patient"}, func(custos.Event) bool { return true }},
		{"resource id only", store.Query{ResourceID: "p-4"}, func(e custos.Event) bool { return e.ResourceID == "p-4" }},
		{"patient", store.Query{PatientID: "p-2"}, func(e custos.Event) bool { return e.PatientID == "p-2" }},
		{"ip", store.Query{IPAddress: "203.0.113.4"}, func(e custos.Event) bool { return e.IPAddress == "203.0.113.4" }},
		{"outcome", store.Query{Outcome: "failure"}, func(e custos.Event) bool { return e.Outcome == "failure" }},
		{"source", store.Query{Source: "nope"}, func(custos.Event) bool { return false }},
		{"time range", store.Query{From: evs[50].Timestamp, To: evs[60].Timestamp}, func(e custos.Event) bool { return e.Index >= 50 && e.Index <= 60 }},
		{"patient and range", store.Query{PatientID: "p-5", From: evs[100].Timestamp}, func(e custos.Event) bool { return e.PatientID == "p-5" && e.Index >= 100 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Limit = store.MaxLimit
			got, err := s.Events(context.Background(), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			want := []uint64{}
			for i := len(evs) - 1; i >= 0; i-- {
				if tc.keep(evs[i]) {
					want = append(want, evs[i].Index)
				}
			}
			if diff := cmp.Diff(want, indices(got)); diff != "" {
				t.Errorf("indices, newest first (-want +got):\n%s", diff)
			}
		})
	}
}

func indices(evs []custos.Event) []uint64 {
	out := []uint64{}
	for _, e := range evs {
		out = append(out, e.Index)
	}
	return out
}

func testPaging(t *testing.T, s store.Store) {
	mustAppend(t, s, &store.Batch{Events: Events(0, 95)})
	for _, q := range []store.Query{{}, {PatientID: "p-1"}, {Action: "CREATE"}} {
		all, err := s.Events(context.Background(), store.Query{PatientID: q.PatientID, Action: q.Action, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var paged []custos.Event
		q.Limit = 4
		for page := 0; ; page++ {
			got, err := s.Events(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			paged = append(paged, got...)
			if len(got) < q.Limit || page > 100 {
				break
			}
			last := got[len(got)-1]
			q.After = &store.Cursor{Timestamp: last.Timestamp, Index: last.Index}
		}
		if diff := cmp.Diff(indices(all), indices(paged)); diff != "" {
			t.Errorf("paging %+v differs from one query (-want +got):\n%s", q, diff)
		}
	}
}

func testNodesAndCheckpoints(t *testing.T, s store.Store) {
	ctx := context.Background()
	cp := &store.Checkpoint{Size: 3, Note: []byte("note 3\n"), CreatedAt: t0}
	mustAppend(t, s, &store.Batch{Events: Events(0, 3), Nodes: nodes(0, 4), Checkpoint: cp})
	mustAppend(t, s, &store.Batch{Checkpoint: &store.Checkpoint{Size: 5, Note: []byte("note 5\n"), CreatedAt: t0.Add(time.Second)}})
	got, err := s.Nodes(ctx, []uint64{3, 0, 2})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{nodes(3, 1)[0].Hash, nodes(0, 1)[0].Hash, nodes(2, 1)[0].Hash}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Nodes in asked order (-want +got):\n%s", diff)
	}
	if _, err := s.Nodes(ctx, []uint64{1, 99}); err == nil {
		t.Error("Nodes with a missing position succeeded")
	}
	latest, err := s.LatestCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if latest.Size != 5 || string(latest.Note) != "note 5\n" || !latest.CreatedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("latest checkpoint = %+v", latest)
	}
}

func testState(t *testing.T, s store.Store) {
	ctx := context.Background()
	put := func(idx uint64, id, doc string) leaf.StateRecord {
		return leaf.StateRecord{Index: idx, Timestamp: t0, SubmittedBy: "apikey:admin", Entity: "api_key", ID: id,
			Op: leaf.OpPut, Doc: []byte(doc)}
	}
	mustAppend(t, s, &store.Batch{Events: Events(0, 1), States: []leaf.StateRecord{put(1, "k1", `{"v":1}`), put(2, "k2", `{"v":2}`)}})
	mustAppend(t, s, &store.Batch{States: []leaf.StateRecord{put(3, "k1", `{"v":3}`),
		{Index: 4, Timestamp: t0, SubmittedBy: "custos", Entity: "api_key", ID: "k2", Op: leaf.OpDelete}}})
	if h, err := s.Head(ctx); err != nil || h.Size != 5 {
		t.Errorf("Head after state records = %+v, %v; want size 5", h, err)
	}
	recs, err := s.StateRecords(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0].Index != 2 || recs[2].Op != leaf.OpDelete || recs[2].Doc != nil || string(recs[1].Doc) != `{"v":3}` {
		t.Errorf("StateRecords(after 1) = %+v", recs)
	}
	rows, err := s.StateRows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.StateRow{{Entity: "api_key", ID: "k1", Doc: []byte(`{"v":3}`), Index: 3}}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("StateRows (-want +got):\n%s", diff)
	}
	if n, size, err := s.RecordCount(ctx); err != nil || n != 5 || size != 5 {
		t.Errorf("RecordCount = %d, %d, %v; want 5, 5", n, size, err)
	}
	// A batch whose state record collides fails whole: nothing of it is stored.
	if err := s.Append(ctx, &store.Batch{Events: Events(5, 1), States: []leaf.StateRecord{put(3, "k9", `{}`)}}); err == nil {
		t.Error("a state record at a used index was stored")
	}
	if h, _ := s.Head(ctx); h.Size != 5 {
		t.Errorf("the failed batch stored its event: size %d, want 5", h.Size)
	}
	// A create commits only for a new entity: the batch fails whole.
	dup := put(5, "k1", `{"v":5}`)
	dup.Op = leaf.OpCreate
	if err := s.Append(ctx, &store.Batch{Events: Events(6, 1), States: []leaf.StateRecord{dup}}); custos.KindOf(err) != custos.Conflict {
		t.Errorf("create of an existing entity: %v, want a conflict", err)
	}
	fresh := put(5, "k5", `{"v":5}`)
	fresh.Op = leaf.OpCreate
	mustAppend(t, s, &store.Batch{States: []leaf.StateRecord{fresh}})
	if h, _ := s.Head(ctx); h.Size != 6 {
		t.Errorf("after a create: size %d, want 6", h.Size)
	}
	if legacy, err := s.LegacyKeys(ctx); err != nil || len(legacy) != 0 {
		t.Errorf("LegacyKeys = %v, %v", legacy, err)
	}
}

func testScans(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 12_345 // several scan chunks
	for from := 0; from < n; from += 4000 {
		cnt := min(4000, n-from)
		mustAppend(t, s, &store.Batch{Events: Events(uint64(from), cnt), Nodes: nodes(uint64(2*from), 2*cnt),
			Checkpoint: &store.Checkpoint{Size: uint64(from + cnt), Note: []byte("n"), CreatedAt: t0}})
	}
	var next uint64
	if err := s.ScanEvents(ctx, 0, func(e custos.Event) error {
		if e.Index != next {
			return fmt.Errorf("scan gave %d, want %d", e.Index, next)
		}
		next++
		return nil
	}); err != nil || next != n {
		t.Errorf("ScanEvents: %v after %d events, want %d", err, next, n)
	}
	var pos uint64
	if err := s.ScanNodes(ctx, func(nd store.Node) error {
		if nd.Pos != pos {
			return fmt.Errorf("scan gave node %d, want %d", nd.Pos, pos)
		}
		pos++
		return nil
	}); err != nil || pos != 2*n {
		t.Errorf("ScanNodes: %v after %d nodes, want %d", err, pos, 2*n)
	}
	var sizes []uint64
	if err := s.ScanCheckpoints(ctx, func(c store.Checkpoint) error { sizes = append(sizes, c.Size); return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint64{4000, 8000, 12000, 12345}, sizes); diff != "" {
		t.Errorf("ScanCheckpoints sizes (-want +got):\n%s", diff)
	}
	stop := errors.New("stop")
	if err := s.ScanEvents(ctx, 10, func(custos.Event) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("ScanEvents did not pass on the callback's error: %v", err)
	}
	// A range is read whole and only it: across chunks, at the ends, empty.
	for _, r := range []struct{ from, to, want uint64 }{
		{0, n, n}, {4990, 5012, 22}, {100, 10_100, 10_000}, {0, 1, 1}, {n - 3, n + 100, 3},
		{7, 7, 0}, {9, 8, 0}, {n, n + 5, 0},
	} {
		next := r.from
		if err := s.ScanEventRange(ctx, r.from, r.to, func(e custos.Event) error {
			if e.Index != next || e.Index >= r.to {
				return fmt.Errorf("scan gave %d, want %d", e.Index, next)
			}
			next++
			return nil
		}); err != nil || next-r.from != r.want {
			t.Errorf("ScanEventRange(%d, %d): %v after %d events, want %d", r.from, r.to, err, next-r.from, r.want)
		}
	}
	if err := s.ScanEventRange(ctx, 10, 20, func(custos.Event) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("ScanEventRange did not pass on the callback's error: %v", err)
	}
}

// testPatientDays: the per-user, per-day distinct patients of client events
// are what a walk over the same events counts.
func testPatientDays(t *testing.T, s store.Store) {
	evs := Events(0, 3000) // a minute apart: a little over two days
	for i := 0; i < len(evs); i += 500 {
		mustAppend(t, s, &store.Batch{Events: evs[i : i+500]})
	}
	want := map[string]int{}
	seen := map[string]bool{}
	for _, e := range evs {
		if e.Kind != custos.KindClient || e.PatientID == "" || e.Timestamp.Before(t0.Add(time.Hour)) {
			continue
		}
		day := e.Timestamp.UTC().Truncate(24 * time.Hour).Format(time.DateOnly)
		if k := e.User.ID + "|" + day + "|" + e.PatientID; !seen[k] {
			seen[k] = true
			want[e.User.ID+"|"+day]++
		}
	}
	days, err := s.PatientDays(context.Background(), t0.Add(time.Hour), t0.Add(72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, d := range days {
		got[d.UserID+"|"+d.Day.Format(time.DateOnly)] = d.Patients
		if len(d.Roles) != 1 || d.Roles[0] != "physician" {
			t.Errorf("roles %v", d.Roles)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("patient days (-walk +store):\n%s", diff)
	}
}

// testDeliveries: an event naming a delivery is found by submitter and key;
// a second use of the key by the same submitter fails its whole batch as a
// conflict; another submitter's key of the same name is its own.
func testDeliveries(t *testing.T, s store.Store) {
	ctx := context.Background()
	withDelivery := func(from uint64, n int, by, key string) []custos.Event {
		evs := Events(from, n)
		for i := range evs {
			evs[i].LeafVersion, evs[i].SubmittedBy = leaf.Current, by // deliveries are version 2 leaves
		}
		evs[0].Delivery = &custos.Delivery{Key: key, Digest: strings.Repeat("ab", 32), Count: n}
		return evs
	}
	mustAppend(t, s, &store.Batch{Events: withDelivery(0, 3, "apikey:a", "k-1")})
	mustAppend(t, s, &store.Batch{Events: withDelivery(3, 2, "apikey:b", "k-1")})
	for _, tc := range []struct {
		by   string
		want uint64
	}{{"apikey:a", 0}, {"apikey:b", 3}} {
		idx, err := s.Delivery(ctx, tc.by, "k-1")
		if err != nil || idx != tc.want {
			t.Errorf("Delivery(%s, k-1) = %d, %v; want %d", tc.by, idx, err, tc.want)
		}
	}
	if _, err := s.Delivery(ctx, "apikey:a", "k-2"); !errors.Is(err, custos.ErrNotFound) {
		t.Errorf("an unknown key: %v, want not found", err)
	}
	err := s.Append(ctx, &store.Batch{Events: withDelivery(5, 2, "apikey:a", "k-1")})
	if custos.KindOf(err) != custos.Conflict {
		t.Fatalf("a key used twice: %v, want a conflict", err)
	}
	if h, _ := s.Head(ctx); h.Size != 5 {
		t.Errorf("the refused batch left the ledger at size %d, want 5", h.Size)
	}
	e, err := s.Event(ctx, 0)
	if err != nil || e.Delivery == nil || e.Delivery.Key != "k-1" || e.Delivery.Count != 3 {
		t.Errorf("the delivery did not round-trip: %+v, %v", e.Delivery, err)
	}
	rows, err := s.DeliveryRows(ctx)
	want := []store.DeliveryRow{{SubmittedBy: "apikey:a", Key: "k-1", Index: 0}, {SubmittedBy: "apikey:b", Key: "k-1", Index: 3}}
	if diff := cmp.Diff(want, rows); err != nil || diff != "" {
		t.Errorf("DeliveryRows: %v\n%s", err, diff)
	}
}
