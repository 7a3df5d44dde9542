package httpaudit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/client"
	"github.com/custos-audit/custos/httpaudit"
	"github.com/custos-audit/custos/httpaudit/internal/custostest"
	"github.com/google/go-cmp/cmp"
)

type userKey struct{}

// auth is the application's authentication: "Bearer <user id>" puts the
// user in the request's context.
func auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			r = r.WithContext(context.WithValue(r.Context(), userKey{}, custos.User{ID: id, Name: "Dr " + id, Roles: []string{"physician"}}))
		}
		next.ServeHTTP(w, r)
	})
}

func userOf(r *http.Request) (custos.User, bool) {
	u, ok := r.Context().Value(userKey{}).(custos.User)
	return u, ok
}

// instant is a retry timer that fires at once.
func instant(time.Duration) <-chan time.Time {
	c := make(chan time.Time, 1)
	c <- time.Time{}
	return c
}

func start(t *testing.T, srv *custostest.Server, cfg httpaudit.Config, after func(time.Duration) <-chan time.Time) *httpaudit.Auditor {
	t.Helper()
	if cfg.Client == nil {
		cfg.Client = client.New(srv.URL, srv.Key(), nil)
	}
	if cfg.Source == "" {
		cfg.Source = "test-app"
	}
	if after == nil {
		after = instant
	}
	a, err := httpaudit.NewWithRetryTimer(cfg, after)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Close(ctx)
	})
	return a
}

func flush(t *testing.T, a *httpaudit.Auditor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Flush(ctx); err != nil {
		t.Fatalf("flush: %v (stats %+v)", err, a.Stats())
	}
}

type call struct {
	method, path, user, ctype, body string
	header                          map[string]string
}

func do(t *testing.T, base string, c call) (int, string) {
	t.Helper()
	var rd io.Reader
	if c.body != "" {
		rd = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, base+c.path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if c.user != "" {
		req.Header.Set("Authorization", "Bearer "+c.user)
	}
	if c.ctype != "" {
		req.Header.Set("Content-Type", c.ctype)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// recorded is the part of an event the tests compare.
type recorded struct {
	User, Action, Type, ID, Patient, IP, Method, Path, Outcome string
	Status                                                     int
	Changes                                                    string
}

func summarize(evs []custos.Event) []recorded {
	var out []recorded
	for _, e := range evs {
		out = append(out, recorded{User: e.User.ID, Action: string(e.Action), Type: e.ResourceType, ID: e.ResourceID,
			Patient: e.PatientID, IP: e.IPAddress, Method: e.RequestMethod, Path: e.RequestPath, Outcome: string(e.Outcome),
			Status: e.StatusCode, Changes: string(e.Changes)})
	}
	return out
}

// app is an EHR-like application: a FHIR API, a login, notes behind a
// ServeMux pattern; every handler reads its whole body.
func app() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/fhir/", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPut {
			httpaudit.Annotate(r.Context()).SetPrevious(json.RawMessage(`{"resourceType":"Patient","id":"123","name":"Ann","ssn":"1"}`))
		}
		fmt.Fprintf(w, `{"read":%d}`, len(b))
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ User, Password string }
		json.NewDecoder(r.Body).Decode(&in)
		httpaudit.Annotate(r.Context()).SetUser(custos.User{ID: in.User})
		if in.Password != "right" {
			http.Error(w, "no", http.StatusUnauthorized)
		}
	})
	mux.HandleFunc("GET /patients/{pid}/notes/{id}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "a note")
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	return mux
}

// TestRecordsWhatHappened: each request becomes one event in Custos, with
// the user from the application's authentication, the action, resource
// and patient from the route, FHIR path or pattern, the outcome, and
// redacted changes for writes, including bodies that are malformed, not
// JSON or too large, which are still served whole.
func TestRecordsWhatHappened(t *testing.T) {
	srv := custostest.Start(t)
	a := start(t, srv, httpaudit.Config{FHIRBase: "/fhir", MaxBody: 1 << 10,
		SessionID: func(r *http.Request) string { return r.Header.Get("X-Session") },
		User:      userOf, Routes: []httpaudit.Route{{Pattern: "POST /login", Action: custos.ActionLogin, ResourceType: "Session"},
			{Pattern: "GET /healthz", Skip: true}}}, nil)
	ts := httptest.NewServer(a.Handler(auth(a.Attribute(app()))))
	defer ts.Close()

	big := `{"note":"` + strings.Repeat("x", 2<<10) + `"}`
	for _, c := range []struct {
		call call
		code int
		body string
	}{
		{call{method: "GET", path: "/fhir/Patient/123", user: "grey", header: map[string]string{"X-Session": "s-1", "X-Request-Id": "r-1", "User-Agent": "ehr/1.0"}}, 200, `{"read":0}`},
		{call{method: "GET", path: "/fhir/Observation?patient=Patient/42&access_token=t0k", user: "grey"}, 200, ""},
		{call{method: "POST", path: "/fhir/Observation", user: "grey", ctype: "application/fhir+json", body: `{"resourceType":"Observation","subject":{"password":"pw"}}`}, 200, ""},
		{call{method: "PUT", path: "/fhir/Patient/123", user: "grey", ctype: "application/json", body: `{"resourceType":"Patient","id":"123","name":"Anne","ssn":"2"}`}, 200, ""},
		{call{method: "POST", path: "/fhir/Observation", user: "grey", ctype: "application/json", body: `{"broken":`}, 200, `{"read":10}`},
		{call{method: "POST", path: "/fhir/Observation", user: "grey", ctype: "text/plain", body: "ssn 123-45-6789"}, 200, ""},
		{call{method: "POST", path: "/fhir/Observation", user: "grey", ctype: "application/json", body: big}, 200, fmt.Sprintf(`{"read":%d}`, len(big))},
		{call{method: "POST", path: "/login", ctype: "application/json", body: `{"user":"mallory","password":"guess"}`}, 401, ""},
		{call{method: "GET", path: "/patients/p9/notes/n1"}, 200, "a note"},
		{call{method: "GET", path: "/healthz"}, 200, ""},
	} {
		code, body := do(t, ts.URL, c.call)
		if code != c.code || c.body != "" && body != c.body {
			t.Errorf("%s %s: %d %q, want %d %q", c.call.method, c.call.path, code, body, c.code, c.body)
		}
	}
	flush(t, a)
	ip := "127.0.0.1"
	want := []recorded{
		{"grey", "READ", "Patient", "123", "123", ip, "GET", "/fhir/Patient/123", "success", 200, ""},
		{"grey", "READ", "Observation", "", "42", ip, "GET", "/fhir/Observation?access_token=%5BREDACTED%5D&patient=Patient%2F42", "success", 200, ""},
		{"grey", "CREATE", "Observation", "", "", ip, "POST", "/fhir/Observation", "success", 200, `{"resourceType":"Observation","subject":{"password":"[REDACTED]"}}`},
		{"grey", "UPDATE", "Patient", "123", "123", ip, "PUT", "/fhir/Patient/123", "success", 200, `[{"op":"replace","path":"/name","old":"Ann","value":"Anne"},{"op":"replace","path":"/ssn","old":"[REDACTED]","value":"[REDACTED]"}]`},
		{"grey", "CREATE", "Observation", "", "", ip, "POST", "/fhir/Observation", "success", 200, `{"body":"malformed JSON","bytes":10,"content_type":"application/json"}`},
		{"grey", "CREATE", "Observation", "", "", ip, "POST", "/fhir/Observation", "success", 200, `{"body":"not JSON","bytes":15,"content_type":"text/plain"}`},
		{"grey", "CREATE", "Observation", "", "", ip, "POST", "/fhir/Observation", "success", 200, `{"body":"truncated","bytes_captured":1024,"content_type":"application/json"}`},
		{"mallory", "LOGIN", "Session", "", "", ip, "POST", "/login", "failure", 401, ""},
		{httpaudit.Unauthenticated, "READ", "notes", "n1", "p9", ip, "GET", "/patients/p9/notes/n1", "success", 200, ""},
	}
	evs := srv.Events("test-app")
	if diff := cmp.Diff(want, summarize(evs)); diff != "" {
		t.Errorf("the trail (-want +got):\n%s", diff)
	}
	if e := evs[0]; e.SessionID != "s-1" || e.RequestID != "r-1" || e.UserAgent != "ehr/1.0" || e.Source != "test-app" ||
		e.User.Name != "Dr grey" || len(e.User.Roles) != 1 || e.OccurredAt == nil {
		t.Errorf("the first event: %+v", e)
	}
	if st := a.Stats(); st.Delivered != uint64(len(want)) || st.Dropped != 0 || st.SpoolBytes != 0 {
		t.Errorf("stats: %+v", st)
	}
}

// TestSpoofedForwardingIgnored: X-Forwarded-For and Forwarded from a peer
// that is not a trusted proxy change nothing: the event names the peer,
// and a spoofed blocked address does not get the peer refused either.
func TestSpoofedForwardingIgnored(t *testing.T) {
	srv := custostest.Start(t)
	a := start(t, srv, httpaudit.Config{}, nil)
	ts := httptest.NewServer(a.Handler(app()))
	defer ts.Close()
	do(t, ts.URL, call{method: "GET", path: "/patients/p1/notes/n1", header: map[string]string{"X-Forwarded-For": "198.51.100.7", "Forwarded": "for=198.51.100.8"}})
	flush(t, a)
	evs := srv.Events("test-app")
	if len(evs) != 1 || evs[0].IPAddress != "127.0.0.1" {
		t.Errorf("events: %+v", summarize(evs))
	}
}

// TestBlockedAddressRefused: a range blocked in Custos is refused with 403
// before the handler runs (the address from a trusted proxy's header), the
// refusal is recorded, and other addresses pass.
func TestBlockedAddressRefused(t *testing.T) {
	srv := custostest.Start(t)
	srv.Block("198.51.100.0/24", time.Hour)
	a := start(t, srv, httpaudit.Config{BlockRefresh: time.Hour, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, nil)
	if err := a.RefreshBlocks(context.Background()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	served := 0
	ts := httptest.NewServer(a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served++
		mu.Unlock()
	})))
	defer ts.Close()
	code, body := do(t, ts.URL, call{method: "GET", path: "/records/1", header: map[string]string{"X-Forwarded-For": "198.51.100.7"}})
	if code != 403 || !strings.Contains(body, "blocked") || served != 0 {
		t.Errorf("a blocked address: %d %s, %d served", code, body, served)
	}
	if code, _ := do(t, ts.URL, call{method: "GET", path: "/records/2", header: map[string]string{"X-Forwarded-For": "203.0.113.1"}}); code != 200 || served != 1 {
		t.Errorf("a free address: %d, %d served", code, served)
	}
	flush(t, a)
	got := summarize(srv.Events("test-app"))
	if len(got) != 2 || got[0].IP != "198.51.100.7" || got[0].Status != 403 || got[0].Outcome != "failure" || got[1].IP != "203.0.113.1" {
		t.Errorf("events: %+v", got)
	}
}

// TestFailClosed: an export route answers only once Custos acknowledged
// its event; with Custos unreachable the client gets 503 and none of the
// data, and the refusal reaches the trail once Custos is back.
func TestFailClosed(t *testing.T) {
	srv := custostest.Start(t)
	a := start(t, srv, httpaudit.Config{Routes: []httpaudit.Route{{Pattern: "GET /Patient/{id}/$export", Action: custos.ActionExport, FailClosed: true}},
		FailClosedTimeout: 2 * time.Second, SpoolDir: t.TempDir()}, nil)
	ts := httptest.NewServer(a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", "attachment")
		io.WriteString(w, "PHI export")
	})))
	defer ts.Close()

	code, body := do(t, ts.URL, call{method: "GET", path: "/Patient/7/$export"})
	if code != 200 || body != "PHI export" {
		t.Fatalf("with Custos up: %d %q", code, body)
	}
	// Acknowledged before the answer: in the ledger already, without a flush.
	if got := summarize(srv.Events("test-app")); len(got) != 1 || got[0].Action != "EXPORT" || got[0].Patient != "7" || got[0].Status != 200 {
		t.Errorf("after the answer: %+v", got)
	}

	srv.Stop()
	code, body = do(t, ts.URL, call{method: "GET", path: "/Patient/8/$export"})
	if code != 503 || strings.Contains(body, "PHI") {
		t.Errorf("with Custos down: %d %q", code, body)
	}
	srv.Restart()
	flush(t, a)
	got := summarize(srv.Events("test-app"))
	if len(got) != 2 || got[1].Patient != "8" || got[1].Status != 503 || got[1].Outcome != "failure" {
		t.Errorf("the refusal: %+v", got)
	}
}

// TestFailClosedLargeExport: a fail-closed response larger than the hold
// bound is not buffered whole: its event is delivered once the bound is
// reached, then it streams; with Custos unreachable the client gets 503 and
// not one byte of the export.
func TestFailClosedLargeExport(t *testing.T) {
	srv := custostest.Start(t)
	a := start(t, srv, httpaudit.Config{Routes: []httpaudit.Route{{Pattern: "GET /Patient/{id}/$export", Action: custos.ActionExport, FailClosed: true}},
		FailClosedTimeout: 2 * time.Second, FailClosedHold: 4 << 10, SpoolDir: t.TempDir()}, nil)
	chunk := strings.Repeat("PHI row\n", 128) // 1 KiB
	var writeFailed atomic.Bool
	ts := httptest.NewServer(a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 64 {
			if _, err := io.WriteString(w, chunk); err != nil {
				writeFailed.Store(true)
				return
			}
		}
	})))
	defer ts.Close()

	code, body := do(t, ts.URL, call{method: "GET", path: "/Patient/7/$export"})
	if code != 200 || len(body) != 64*len(chunk) {
		t.Fatalf("with Custos up: %d, %d bytes", code, len(body))
	}
	if got := summarize(srv.Events("test-app")); len(got) != 1 || got[0].Action != "EXPORT" || got[0].Status != 200 {
		t.Errorf("after the answer: %+v", got)
	}

	srv.Stop()
	code, body = do(t, ts.URL, call{method: "GET", path: "/Patient/8/$export"})
	if code != 503 || strings.Contains(body, "PHI") {
		t.Errorf("with Custos down: %d %q", code, body)
	}
	if !writeFailed.Load() {
		t.Error("the handler's writes succeeded after its response was refused")
	}
	srv.Restart()
	flush(t, a)
	if got := summarize(srv.Events("test-app")); len(got) != 2 || got[1].Patient != "8" || got[1].Status != 503 {
		t.Errorf("the refusal: %+v", got)
	}
}

// outage is how long Custos stays unreachable in TestUnreachableThenBack,
// in the deliverer's time (its retry timer is the test's): one minute
// unless CUSTOS_OUTAGE_SECONDS says otherwise. It costs no wall time.
func outage(t *testing.T) time.Duration {
	if s := os.Getenv("CUSTOS_OUTAGE_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("CUSTOS_OUTAGE_SECONDS=%q: want a positive number of seconds", s)
		}
		return time.Duration(n) * time.Second
	}
	return time.Minute
}

// outageTimer is the deliverer's retry timer during an outage: it fires at
// once until the retries add up to d, then tells the test and waits for it.
type outageTimer struct {
	mu      sync.Mutex
	d, sum  time.Duration
	tries   int
	elapsed chan struct{}
	resume  chan time.Time
}

func (o *outageTimer) after(wait time.Duration) <-chan time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tries++
	if o.sum >= o.d {
		return instant(wait)
	}
	o.sum += wait
	if o.sum >= o.d {
		close(o.elapsed)
		return o.resume
	}
	return instant(wait)
}

// TestUnreachableThenBack: Custos is unreachable for a minute while the
// application keeps serving; every event arrives once it is back, in
// order, none twice.
func TestUnreachableThenBack(t *testing.T) {
	srv := custostest.Start(t)
	ot := &outageTimer{d: outage(t), elapsed: make(chan struct{}), resume: make(chan time.Time, 1)}
	a := start(t, srv, httpaudit.Config{SpoolDir: t.TempDir(), BatchSize: 4, RetryMax: 10 * time.Second}, ot.after)
	ts := httptest.NewServer(a.Handler(app()))
	defer ts.Close()
	n := 0
	serve := func(k int) {
		for range k {
			n++
			if code, _ := do(t, ts.URL, call{method: "GET", path: "/patients/p1/notes/" + strconv.Itoa(n)}); code != 200 {
				t.Fatalf("request %d: %d", n, code)
			}
		}
	}
	serve(5)
	flush(t, a)
	srv.Stop()
	serve(10)
	select {
	case <-ot.elapsed:
	case <-time.After(30 * time.Second):
		t.Fatalf("the deliverer did not retry through the outage: %d tries, %v", ot.tries, ot.sum)
	}
	serve(10) // still serving, the outage a minute old
	if err := a.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := a.Stats()
	if st.Delivered != 5 || st.Spooled != 25 || st.LastError == "" || st.SpoolBytes == 0 {
		t.Errorf("during the outage: %+v", st)
	}
	srv.Restart()
	ot.resume <- time.Time{}
	serve(5)
	flush(t, a)

	var paths []string
	for _, e := range srv.Events("test-app") {
		paths = append(paths, e.RequestPath)
	}
	var want []string
	for i := 1; i <= n; i++ {
		want = append(want, "/patients/p1/notes/"+strconv.Itoa(i))
	}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("the trail after a %v outage, %d retries (-want +got):\n%s", ot.d, ot.tries, diff)
	}
}

// TestLostAcknowledgementNotAppendedTwice: Custos commits a batch but the
// answer never reaches the application (the connection drops); the retry
// carries the same key and body, and Custos appends nothing again.
func TestLostAcknowledgementNotAppendedTwice(t *testing.T) {
	srv := custostest.Start(t)
	var mu sync.Mutex
	dropped := 0
	srv.SetHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		mu.Lock()
		drop := r.Method == "POST" && r.URL.Path == "/v1/events" && dropped < 2
		if drop {
			dropped++
		}
		mu.Unlock()
		if !drop {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r) // committed
		if rec.Code != http.StatusCreated && rec.Code != http.StatusOK {
			t.Errorf("the first attempt: %d %s", rec.Code, rec.Body)
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // the answer is lost
		}
	})
	a := start(t, srv, httpaudit.Config{SpoolDir: t.TempDir(), BatchSize: 3}, nil)
	ts := httptest.NewServer(a.Handler(app()))
	defer ts.Close()
	for i := range 6 {
		do(t, ts.URL, call{method: "GET", path: "/patients/p1/notes/" + strconv.Itoa(i)})
	}
	flush(t, a)
	if got := len(srv.Events("test-app")); got != 6 || dropped != 2 {
		t.Errorf("%d events in the trail after %d lost answers, want 6", got, dropped)
	}
}

// TestMemoryQueue: without a spool directory events wait in memory, in
// the same order and with the same keys, while Custos is unreachable.
func TestMemoryQueue(t *testing.T) {
	srv := custostest.Start(t)
	a := start(t, srv, httpaudit.Config{BatchSize: 2}, func(time.Duration) <-chan time.Time { return time.After(time.Millisecond) })
	ts := httptest.NewServer(a.Handler(app()))
	defer ts.Close()
	srv.Stop()
	for _, p := range notePaths(1, 5) {
		do(t, ts.URL, call{method: "GET", path: p})
	}
	if err := a.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.Delivered != 0 || st.Spooled != 5 {
		t.Errorf("while down: %+v", st)
	}
	srv.Restart()
	flush(t, a)
	if diff := cmp.Diff(notePaths(1, 5), trailPaths(srv, "test-app")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
