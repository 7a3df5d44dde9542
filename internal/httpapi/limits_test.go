package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/sqlite"
	"github.com/prometheus/client_golang/prometheus"
)

const limitToken = "test-limits-admin-token-0123456789"

// limitEnv is a real API (SQLite ledger, keys) behind a real HTTP server.
type limitEnv struct {
	t   *testing.T
	srv *httptest.Server
	st  *sqlite.Store
	api *API
}

type limitResponse struct {
	code int
	hdr  http.Header
	body []byte
}

// newLimitEnv serves an API with the bounds of cfg, and the store the API
// reads wrapped by wrap (nil for none).
func newLimitEnv(t *testing.T, cfg Config, wrap func(*sqlite.Store) store.Store) *limitEnv {
	t.Helper()
	ctx := context.Background()
	l := ledgertest.Open(t, t.TempDir(), "custos.test/limits", ledger.Config{CheckpointInterval: 10 * time.Millisecond})
	keys, err := authn.NewDirectory(ctx, l.Seq, ledger.NewStateFeed(l.Store, l.Signer.VerifierKey()), authn.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Bootstrap(ctx, limitToken); err != nil {
		t.Fatal(err)
	}
	var st store.Store = l.Store
	if wrap != nil {
		st = wrap(l.Store)
	}
	cfg.CursorKey, cfg.Registry = []byte("k"), prometheus.NewRegistry()
	api := New(l.Seq, st, keys, cfg)
	e := &limitEnv{t: t, srv: httptest.NewServer(api.Handler()), st: l.Store, api: api}
	t.Cleanup(func() {
		e.srv.CloseClientConnections()
		e.srv.Close()
		l.Close()
	})
	return e
}

func (e *limitEnv) do(method, path, ctype, body string) limitResponse {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+limitToken)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return limitResponse{resp.StatusCode, resp.Header, b}
}

func (e *limitEnv) size() uint64 {
	e.t.Helper()
	h, err := e.st.Head(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return h.Size
}

func limitEvent(patient string) string {
	return fmt.Sprintf(`{"user":{"id":"dr.grey","name":"Meredith Grey","roles":["physician"]},"action":"READ",
		"resource_type":"Patient","resource_id":%[1]q,"patient_id":%[1]q,"ip_address":"203.0.113.7",
		"request_method":"GET","request_path":"/Patient/%[1]s","status_code":200,"source":"ehr-web"}`, patient)
}

// metric returns the value of the metric line that starts with name (with
// its labels), or -1.
func (e *limitEnv) metric(name string) float64 {
	e.t.Helper()
	r := e.do("GET", "/metrics", "", "")
	sc := bufio.NewScanner(strings.NewReader(string(r.body)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				e.t.Fatal(err)
			}
			return f
		}
	}
	return -1
}

// slowUpload starts a POST /v1/events whose body (size bytes, padded with
// spaces) arrives in two parts: it returns once the server holds the request
// (its body in the budget), and finish sends the rest and returns the status.
func (e *limitEnv) slowUpload(size int) (finish func() int) {
	e.t.Helper()
	body := "[" + limitEvent("p-slow") + "]"
	body += strings.Repeat(" ", size-len(body))
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", e.srv.URL+"/v1/events", pr)
	if err != nil {
		e.t.Fatal(err)
	}
	req.ContentLength = int64(size)
	req.Header.Set("Authorization", "Bearer "+limitToken)
	req.Header.Set("Content-Type", "application/json")
	before := e.api.lim.bodies.used.Load()
	code := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			code <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		code <- resp.StatusCode
	}()
	if _, err := pw.Write([]byte(body[:size/2])); err != nil {
		e.t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); e.api.lim.bodies.used.Load() < before+int64(size); runtime.Gosched() {
		if time.Now().After(deadline) {
			e.t.Fatal("the slow upload never reached its handler")
		}
	}
	return func() int {
		pw.Write([]byte(body[size/2:]))
		pw.Close()
		return <-code
	}
}

// chunked sends body with no Content-Length (chunked transfer coding).
func (e *limitEnv) chunked(body string) limitResponse {
	e.t.Helper()
	pr, pw := io.Pipe()
	go func() {
		for b := []byte(body); len(b) > 0; {
			n := min(len(b), 4<<10)
			if _, err := pw.Write(b[:n]); err != nil {
				return // the server answered without reading the rest
			}
			b = b[n:]
		}
		pw.Close()
	}()
	req, err := http.NewRequest("POST", e.srv.URL+"/v1/events", pr)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+limitToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	pr.Close()
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return limitResponse{resp.StatusCode, resp.Header, b}
}

func requireBusy(t *testing.T, what string, r limitResponse) {
	t.Helper()
	if r.code != http.StatusServiceUnavailable || r.hdr.Get("Retry-After") == "" ||
		r.hdr.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%s: %d %v %s, want 503 problem+json with Retry-After", what, r.code, r.hdr, r.body)
	}
}

// TestBodyBudget: the bytes of request bodies in flight are bounded across
// requests: past the budget a request is answered 503 with Retry-After at
// once (by its Content-Length before it is read, or at the read that
// exceeds the budget for a chunked body), nothing of it is stored, and the
// budget is whole again once the requests complete.
func TestBodyBudget(t *testing.T) {
	e := newLimitEnv(t, Config{MaxBodyBytes: 64 << 10, BodyBudget: 100 << 10}, nil)
	finish := e.slowUpload(60 << 10) // holds 60 KiB of the 100
	size := e.size()

	// Declared too large for what is left: refused before it is read.
	big := "[" + limitEvent("p-big") + "]" + strings.Repeat(" ", 50<<10)
	requireBusy(t, "a 50 KiB body beside 60 KiB in flight", e.do("POST", "/v1/events", "application/json", big))
	// Chunked: refused at the read that exceeds the budget.
	requireBusy(t, "a chunked 50 KiB body beside 60 KiB in flight", e.chunked(big))
	if got := e.size(); got != size {
		t.Fatalf("the ledger grew from %d to %d with refused bodies", size, got)
	}
	if n := e.metric(`custos_http_limited_total{limit="bodies"}`); n != 2 {
		t.Errorf("custos_http_limited_total{limit=\"bodies\"} = %v, want 2", n)
	}
	// What fits goes through, declared or chunked.
	if r := e.do("POST", "/v1/events", "application/json", limitEvent("p-small")); r.code != http.StatusCreated {
		t.Fatalf("a small body beside the slow one: %d %s", r.code, r.body)
	}
	if r := e.chunked(limitEvent("p-small-chunked")); r.code != http.StatusCreated {
		t.Fatalf("a small chunked body beside the slow one: %d %s", r.code, r.body)
	}
	if code := finish(); code != http.StatusCreated {
		t.Fatalf("the slow upload: %d", code)
	}
	if n := e.metric("custos_http_body_bytes_in_flight"); n != 0 {
		t.Fatalf("%v bytes still held after every request completed", n)
	}
	// The budget is whole again.
	if r := e.do("POST", "/v1/events", "application/json", big); r.code != http.StatusCreated {
		t.Fatalf("the 50 KiB body alone: %d %s", r.code, r.body)
	}
	if r := e.chunked(big); r.code != http.StatusCreated {
		t.Fatalf("the chunked 50 KiB body alone: %d %s", r.code, r.body)
	}
	// A body over the route's own limit is still refused as too large.
	huge := "[" + limitEvent("p-huge") + "]" + strings.Repeat(" ", 70<<10)
	if r := e.do("POST", "/v1/events", "application/json", huge); r.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body over --max-body: %d %s", r.code, r.body)
	}
	if r := e.chunked(huge); r.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("a chunked body over --max-body: %d %s", r.code, r.body)
	}
}

// TestBodyBudgetNeverBelowTheBodyLimit: a budget smaller than the body
// limit is raised to it, so that a body the API accepts always fits alone.
func TestBodyBudgetNeverBelowTheBodyLimit(t *testing.T) {
	e := newLimitEnv(t, Config{MaxBodyBytes: 64 << 10, BodyBudget: 1 << 10}, nil)
	body := "[" + limitEvent("p-1") + "]" + strings.Repeat(" ", 60<<10)
	if r := e.do("POST", "/v1/events", "application/json", body); r.code != http.StatusCreated {
		t.Fatalf("%d %s", r.code, r.body)
	}
}

// stuckSearches is a store whose searches run until released (or, with
// honour, until their context ends), as an expensive scan would.
type stuckSearches struct {
	*sqlite.Store
	honour  bool
	started chan struct{}
	release chan struct{}
}

// recent is a from parameter an hour ago: a bounded scan.
func recent() string { return time.Now().Add(-time.Hour).UTC().Format(time.RFC3339) }

func (s *stuckSearches) Events(ctx context.Context, q store.Query) ([]custos.Event, error) {
	s.started <- struct{}{}
	if s.honour {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sqlite: events: interrupted (9): %w", ctx.Err())
		case <-s.release:
		}
	} else {
		<-s.release
	}
	return s.Store.Events(ctx, q)
}

// TestSearchTimeLimit: a search past the query timeout is answered 503
// with Retry-After and a detail that says what to do and names no filter
// value; the time limit covers the search, not the READ record of it.
func TestSearchTimeLimit(t *testing.T) {
	st := &stuckSearches{honour: true, started: make(chan struct{}, 8), release: make(chan struct{})}
	e := newLimitEnv(t, Config{QueryTimeout: 200 * time.Millisecond, MaxSearches: 2},
		func(s *sqlite.Store) store.Store { st.Store = s; return st })
	size := e.size()
	r := e.do("GET", "/v1/events?patient_id=secret-patient-42", "", "")
	requireBusy(t, "a search past the time limit", r)
	if !strings.Contains(string(r.body), "did not finish within 200ms") || strings.Contains(string(r.body), "secret-patient") {
		t.Errorf("detail: %s", r.body)
	}
	if e.size() != size {
		t.Errorf("a search that was not answered was recorded as a READ")
	}
	if n := e.metric(`custos_http_limited_total{limit="query_time"}`); n != 1 {
		t.Errorf(`custos_http_limited_total{limit="query_time"} = %v, want 1`, n)
	}
	// A search within the limit is answered.
	close(st.release)
	if r := e.do("GET", "/v1/events?patient_id=p-1", "", ""); r.code != http.StatusOK {
		t.Fatalf("a search within the limit: %d %s", r.code, r.body)
	}
}

// TestSearchesNeverHoldAppendsOrReadiness: while every search slot is taken
// by a search that does not end, appends, point reads, proofs and /readyz
// are answered at once, and a further search waits for a slot no longer
// than the query timeout, then is answered 503.
func TestSearchesNeverHoldAppendsOrReadiness(t *testing.T) {
	st := &stuckSearches{started: make(chan struct{}, 8), release: make(chan struct{})}
	e := newLimitEnv(t, Config{QueryTimeout: 300 * time.Millisecond, MaxSearches: 2, SearchShare: 1},
		func(s *sqlite.Store) store.Store { st.Store = s; return st })
	r := e.do("POST", "/v1/events", "application/json", limitEvent("p-1"))
	var posted struct{ Receipts []custos.Receipt }
	if r.code != http.StatusCreated {
		t.Fatal(r.code, string(r.body))
	}
	if err := json.Unmarshal(r.body, &posted); err != nil || len(posted.Receipts) != 1 {
		t.Fatalf("receipts %s: %v", r.body, err)
	}
	index := strconv.FormatUint(posted.Receipts[0].Index, 10)
	var wg sync.WaitGroup
	stuck := make([]limitResponse, 2)
	for i := range stuck {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stuck[i] = e.do("GET", "/v1/events?outcome=success&from="+recent(), "", "")
		}()
		<-st.started
	}
	// Both slots are held by searches that outlive their deadline.
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/readyz", ""}, {"GET", "/healthz", ""},
		{"POST", "/v1/events", limitEvent("p-2")}, {"GET", "/v1/events/" + index, ""},
		{"GET", "/v1/checkpoint", ""}, {"GET", "/v1/events/0/proof", ""},
	} {
		start := time.Now()
		ctype := ""
		if c.body != "" {
			ctype = "application/json"
		}
		// Were they to wait behind the searches, they would wait until the
		// test releases them: 5 s tells a wait from an answer.
		r := e.do(c.method, c.path, ctype, c.body)
		if r.code >= 300 || time.Since(start) > 5*time.Second {
			t.Errorf("%s %s while the searches run: %d after %v: %s", c.method, c.path, r.code, time.Since(start), r.body)
		}
	}
	// A search read from an index takes no slot: it is answered at once
	// (here, held by the stuck store until the time limit).
	r = e.do("GET", "/v1/events?outcome=failure&from="+recent(), "", "")
	requireBusy(t, "a scanning search while every slot is held", r)
	if !strings.Contains(string(r.body), "as many searches as the server runs at once") {
		t.Errorf("detail: %s", r.body)
	}
	if n := e.metric(`custos_http_limited_total{limit="searches"}`); n != 1 {
		t.Errorf(`custos_http_limited_total{limit="searches"} = %v, want 1`, n)
	}
	close(st.release)
	wg.Wait()
	for i, r := range stuck {
		if r.code != http.StatusServiceUnavailable && r.code != http.StatusOK {
			t.Errorf("stuck search %d: %d %s", i, r.code, r.body)
		}
	}
	if r := e.do("GET", "/v1/events?patient_id=p-2", "", ""); r.code != http.StatusOK {
		t.Fatalf("a search once the slots are free: %d %s", r.code, r.body)
	}
}

// sleepySearches is a store whose searches take a fixed time (on the
// bubble's clock, in synctest), or until their context ends unless deaf.
type sleepySearches struct {
	store.Store
	took time.Duration
	deaf bool
	ran  int
}

func (s *sleepySearches) Events(ctx context.Context, q store.Query) ([]custos.Event, error) {
	s.ran++
	if s.deaf {
		time.Sleep(s.took)
		return nil, nil
	}
	select {
	case <-time.After(s.took):
		return nil, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
}

// TestSearchShare: after a search, its slot rests in proportion to the
// search's duration before the next search may take it; the answer itself
// is not delayed.
func TestSearchShare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{QueryTimeout: 5 * time.Second, MaxSearches: 1, SearchShare: 0.2}
		st := &sleepySearches{took: 200 * time.Millisecond}
		b := newBoundedStore(st, cfg, newLimits(cfg))
		ctx := context.Background()
		start := time.Now()
		if _, err := b.Events(ctx, store.Query{Outcome: "failure"}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 200*time.Millisecond {
			t.Errorf("the first search was answered after %v, want 200ms (the rest comes after the answer)", d)
		}
		if _, err := b.Events(ctx, store.Query{Outcome: "failure"}); err != nil {
			t.Fatal(err)
		}
		// 200 ms of search, 800 ms of rest (share 0.2), 200 ms of search.
		if d := time.Since(start); d != 1200*time.Millisecond {
			t.Errorf("two searches in one slot took %v, want 1.2s", d)
		}
	})
}

// TestSearchWaitsForASlotWithinItsTime: a search that finds every slot
// taken waits no longer than the query timeout, then is refused as busy; a
// search past its time is refused as late. Both are Unavailable (503 with
// Retry-After); the client's own cancellation is neither.
func TestSearchWaitsForASlotWithinItsTime(t *testing.T) {
	unavailable := func(t *testing.T, err error, detail string) {
		t.Helper()
		var e *custos.Error
		if !errors.As(err, &e) || e.Kind != custos.Unavailable || !strings.Contains(e.Detail, detail) {
			t.Fatalf("got %v, want Unavailable saying %q", err, detail)
		}
	}
	cfg := Config{QueryTimeout: time.Second, MaxSearches: 1, SearchShare: 1}
	ctx := context.Background()
	t.Run("busy", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := &sleepySearches{took: time.Hour, deaf: true} // holds its slot past its deadline
			b := newBoundedStore(st, cfg, newLimits(cfg))
			done := make(chan struct{})
			go func() { b.Events(ctx, store.Query{Outcome: "failure"}); close(done) }()
			synctest.Wait()
			start := time.Now()
			_, err := b.Events(ctx, store.Query{Outcome: "failure"})
			unavailable(t, err, "as many searches as the server runs at once")
			if d := time.Since(start); d != time.Second {
				t.Errorf("refused after %v, want 1s", d)
			}
			if st.ran != 1 {
				t.Errorf("%d searches ran, want 1", st.ran)
			}
			<-done
		})
	})
	t.Run("late", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBoundedStore(&sleepySearches{took: time.Hour}, cfg, newLimits(cfg))
			start := time.Now()
			_, err := b.Events(ctx, store.Query{Outcome: "failure"})
			unavailable(t, err, "did not finish within 1s")
			if d := time.Since(start); d != time.Second {
				t.Errorf("refused after %v, want 1s", d)
			}
		})
	})
	t.Run("cancelled by the client", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBoundedStore(&sleepySearches{took: time.Hour}, cfg, newLimits(cfg))
			cctx, cancel := context.WithCancel(ctx)
			go func() { time.Sleep(10 * time.Millisecond); cancel() }()
			if _, err := b.Events(cctx, store.Query{}); err == nil || custos.KindOf(err) == custos.Unavailable {
				t.Errorf("a search its client gave up answered %v", err)
			}
		})
	})
}

// TestCheckQueryBounded: a filter no index serves is accepted only with an
// indexed filter or a time range of at most 31 days; the refusal names the
// filters and the rule.
func TestCheckQueryBounded(t *testing.T) {
	now := time.Now().UTC()
	day := 24 * time.Hour
	for _, tc := range []struct {
		name   string
		q      store.Query
		fields []string // nil: accepted
	}{
		{"everything", store.Query{}, nil},
		{"time range only", store.Query{From: now.Add(-365 * day), To: now}, nil},
		{"patient", store.Query{PatientID: "p"}, nil},
		{"user and outcome", store.Query{User: "u", Outcome: "failure"}, nil},
		{"ip and source", store.Query{IPAddress: "192.0.2.1", Source: "x"}, nil},
		{"resource and action", store.Query{ResourceType: "Patient", ResourceID: "p", Action: "READ"}, nil},
		{"outcome within 31 days", store.Query{Outcome: "failure", From: now.Add(-31 * day), To: now}, nil},
		{"source from 30 days ago", store.Query{Source: "x", From: now.Add(-30 * day)}, nil},
		{"action within a past month", store.Query{Action: "DELETE", From: now.Add(-400 * day), To: now.Add(-370 * day)}, nil},
		{"outcome alone", store.Query{Outcome: "failure"}, []string{"outcome"}},
		{"action and source", store.Query{Action: "READ", Source: "x"}, []string{"action", "source"}},
		{"resource type alone", store.Query{ResourceType: "Patient"}, []string{"resource_type"}},
		{"resource id alone", store.Query{ResourceID: "p-1"}, []string{"resource_id"}},
		{"outcome over 32 days", store.Query{Outcome: "failure", From: now.Add(-32 * day), To: now}, []string{"outcome"}},
		{"outcome until", store.Query{Outcome: "failure", To: now}, []string{"outcome"}},
		{"outcome from 40 days ago", store.Query{Outcome: "failure", From: now.Add(-40 * day)}, []string{"outcome"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := store.CheckQueryBounded(tc.q)
			if tc.fields == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *custos.Error
			if !errors.As(err, &e) || e.Kind != custos.Invalid {
				t.Fatalf("got %v, want an Invalid error", err)
			}
			var got []string
			for _, f := range e.Fields {
				got = append(got, f.Field)
				if !strings.Contains(f.Message, "31 days") || !strings.Contains(f.Message, "patient_id") {
					t.Errorf("message %q does not state the rule", f.Message)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("fields %v, want %v", got, tc.fields)
			}
		})
	}
}

// TestIndexedSearchesTakeNoSlot: a search read from an index (at most the
// page it returns: a patient's history) is never held back behind the
// scans that hold every slot, so patient-history throughput is not rationed.
func TestIndexedSearchesTakeNoSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{QueryTimeout: time.Second, MaxSearches: 1, SearchShare: 0.1}
		st := &sleepySearches{took: 10 * time.Millisecond}
		b := newBoundedStore(st, cfg, newLimits(cfg))
		ctx := context.Background()
		if _, err := b.Events(ctx, store.Query{Outcome: "failure"}); err != nil { // the slot now rests 90 ms
			t.Fatal(err)
		}
		start := time.Now()
		for _, q := range []store.Query{{PatientID: "p-1"}, {User: "u"}, {IPAddress: "203.0.113.7"}, {ResourceType: "Patient", ResourceID: "p-1"}, {}} {
			if _, err := b.Events(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Errorf("five indexed searches took %v, want 50ms (no waiting for the resting slot)", d)
		}
	})
}
