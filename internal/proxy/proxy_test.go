package proxy

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/demo"
)

// recorder stands in for the audit middleware at its boundary: it builds
// an event the way the middleware's hooks contract says (User before,
// Expand after the handler) and keeps what Expand returns. The real
// middleware is exercised end to end in internal/cli.
type recorder struct {
	p      *Proxy
	mu     sync.Mutex
	events []custos.EventInput
	done   chan struct{} // one send per request recorded
}

// recorded waits for the request just answered to be recorded (the
// stand-in records after the client has its answer, as the middleware
// does), and returns every event so far.
func (rec *recorder) recorded(t *testing.T) []custos.EventInput {
	t.Helper()
	<-rec.done
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]custos.EventInput(nil), rec.events...)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }
func (s *statusWriter) Flush()               { s.ResponseWriter.(http.Flusher).Flush() }

func (rec *recorder) audit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: 200}
		next.ServeHTTP(sw, r)
		ev := custos.EventInput{Action: custos.ActionRead, ResourceType: "Patient", RequestMethod: r.Method,
			RequestPath: r.URL.Path, StatusCode: sw.status}
		if u, ok := rec.p.User(r); ok {
			ev.User = &u
		}
		evs := rec.p.Expand(r, ev)
		rec.mu.Lock()
		rec.events = append(rec.events, evs...)
		rec.mu.Unlock()
		rec.done <- struct{}{}
	})
}

func newTestProxy(t *testing.T, upstream string, cfg Config) (*httptest.Server, *recorder) {
	t.Helper()
	u, _ := url.Parse(upstream)
	cfg.Upstream = u
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{p: p, done: make(chan struct{}, 16)}
	srv := httptest.NewServer(p.Handler(rec.audit))
	t.Cleanup(srv.Close)
	return srv, rec
}

func get(t *testing.T, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestSearchExpandsToPatients(t *testing.T) {
	up := httptest.NewServer(demo.Handler("/fhir"))
	defer up.Close()
	srv, rec := newTestProxy(t, up.URL, Config{FHIRBase: "/fhir", MaxPatients: 2})
	if resp, body := get(t, srv.URL+"/fhir/Observation?code=heart", nil); resp.StatusCode != 200 || !strings.Contains(body, "searchset") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	evs := rec.recorded(t)
	var patients []string
	for _, e := range evs[1:] {
		patients = append(patients, e.PatientID)
	}
	if len(evs) != 3 || strings.Join(patients, ",") != "p-123,p-124" || !strings.Contains(string(evs[0].Changes), `"truncated":true`) {
		t.Fatalf("%+v", evs)
	}
	get(t, srv.URL+"/fhir/Patient/p-123", nil) // a read, not a search: one event
	if evs = rec.recorded(t)[3:]; len(evs) != 1 || evs[0].Changes != nil {
		t.Fatalf("%+v", evs)
	}
}

func TestIsSearch(t *testing.T) {
	p, _ := New(Config{Upstream: &url.URL{Scheme: "http", Host: "x"}, FHIRBase: "/fhir/"})
	for target, want := range map[string]bool{
		"GET /fhir/Patient?name=x": true, "GET /fhir/Patient": true, "POST /fhir/Patient/_search": true,
		"GET /fhir/Patient/p-1/Observation": true, "GET /fhir?_type=Patient": true, "GET /fhir/?_type=Patient": true,
		"GET /fhir/Patient/p-1": false, "POST /fhir/Patient": false, "GET /other/Patient": false, "GET /fhirPatient": false,
		"GET /fhir/metadata": false, "DELETE /fhir/Patient": false,
	} {
		method, path, _ := strings.Cut(target, " ")
		r := httptest.NewRequest(method, path, nil)
		if got := p.isSearch(r); got != want {
			t.Errorf("%s: %v, want %v", target, got, want)
		}
	}
}

func TestHeaderIdentityOnlyFromTrustedPeers(t *testing.T) {
	var seen http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.Header.Clone() }))
	defer up.Close()
	spoof := map[string]string{"X-User": "mallory", "X-Roles": "admin", "X-Forwarded-For": "198.51.100.1", "Forwarded": "for=198.51.100.1"}
	untrusted, rec := newTestProxy(t, up.URL, Config{UserHeader: "X-User", RolesHeader: "X-Roles",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if resp, _ := get(t, untrusted.URL+"/x", spoof); resp.StatusCode != 401 {
		t.Fatalf("no trusted identity: %d", resp.StatusCode)
	}
	if seen != nil {
		t.Fatal("the upstream was reached")
	}
	if evs := rec.recorded(t); len(evs) != 1 || evs[0].User != nil || evs[0].StatusCode != 401 {
		t.Fatalf("%+v", evs)
	}
	trusted, rec := newTestProxy(t, up.URL, Config{UserHeader: "X-User", RolesHeader: "X-Roles",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if resp, _ := get(t, trusted.URL+"/x", spoof); resp.StatusCode != 200 {
		t.Fatalf("trusted: %d", resp.StatusCode)
	}
	if got := seen.Get("X-Forwarded-For"); got != "198.51.100.1, 127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", got)
	}
	if u := rec.recorded(t)[0].User; u == nil || u.ID != "mallory" || strings.Join(u.Roles, ",") != "admin" {
		t.Errorf("user %+v", u)
	}
	anon, _ := newTestProxy(t, up.URL, Config{AllowAnonymous: true, UserHeader: "X-User",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	seen = nil
	if resp, _ := get(t, anon.URL+"/x", spoof); resp.StatusCode != 200 {
		t.Fatalf("anonymous: %d", resp.StatusCode)
	}
	if seen.Get("X-User") != "" || seen.Get("Forwarded") != "" || seen.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("the upstream got what an untrusted peer sent: %v", seen)
	}
}

func TestUpstreamDown(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	up.Close()
	srv, rec := newTestProxy(t, up.URL, Config{AllowAnonymous: true})
	resp, body := get(t, srv.URL+"/Patient/p-1", nil)
	var pb problemBody
	json.Unmarshal([]byte(body), &pb)
	if resp.StatusCode != 502 || resp.Header.Get("Content-Type") != "application/problem+json" || pb.Status != 502 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if evs := rec.recorded(t); len(evs) != 1 || evs[0].Outcome != custos.OutcomeFailure || evs[0].StatusCode != 502 {
		t.Fatalf("%+v", evs)
	}
}

// TestMalformedBundlePassesThrough: a search answer that breaks off is
// passed to the client byte for byte; the patients before the break are
// recorded and the search's event says the Bundle was incomplete.
func TestMalformedBundlePassesThrough(t *testing.T) {
	const body = `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"p-1"}},{"resource":{"resourceType":"Patient","id":` + "\x00"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
		w.Write([]byte(body))
	}))
	defer up.Close()
	srv, rec := newTestProxy(t, up.URL, Config{AllowAnonymous: true})
	resp, got := get(t, srv.URL+"/Patient?name=x", nil)
	if resp.StatusCode != 200 || got != body {
		t.Fatalf("%d %q", resp.StatusCode, got)
	}
	evs := rec.recorded(t)
	if len(evs) != 2 || evs[1].PatientID != "p-1" || !strings.Contains(string(evs[0].Changes), `"incomplete"`) {
		t.Fatalf("%+v", evs)
	}
}

// TestGzipSearchAnswer: a search answered with Content-Encoding gzip is
// passed on compressed, and its patients recorded; an encoding the walk
// cannot read is passed on too, and the search's event says its patients
// are missing.
func TestGzipSearchAnswer(t *testing.T) {
	const bundle = `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"p-7"}}]}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(bundle))
	zw.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		if r.URL.Query().Get("enc") == "br" {
			w.Header().Set("Content-Encoding", "br")
			w.Write([]byte("not really brotli"))
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz.Bytes())
	}))
	defer up.Close()
	srv, rec := newTestProxy(t, up.URL, Config{AllowAnonymous: true})
	resp, body := get(t, srv.URL+"/Patient?name=x", map[string]string{"Accept-Encoding": "gzip"})
	if resp.StatusCode != 200 || body != gz.String() {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if evs := rec.recorded(t); len(evs) != 2 || evs[1].PatientID != "p-7" {
		t.Fatalf("%+v", evs)
	}
	get(t, srv.URL+"/Patient?enc=br", map[string]string{"Accept-Encoding": "br"})
	if evs := rec.recorded(t)[2:]; len(evs) != 1 || !strings.Contains(string(evs[0].Changes), "(br) was not read") {
		t.Fatalf("%+v", evs)
	}
}

// TestGzipBomb: a small gzip body that inflates past the cap ends the walk.
func TestGzipBomb(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"resourceType":"Bundle","entry":[`))
	zw.Write(bytes.Repeat([]byte(`{},`), 1<<20))
	zw.Close()
	s := newScanner(10, true, 1<<20)
	s.Write(gz.Bytes())
	s.Close()
	if got := s.Result(); !errors.Is(got.Err, ErrInflatedTooLarge) {
		t.Fatalf("%+v", got)
	}
}
