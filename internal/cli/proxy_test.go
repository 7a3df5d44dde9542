package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/demo"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// The end-to-end tests of custos proxy: a real Custos (SQLite in a
// temporary folder), the demo application on a real listener, the proxy
// as `custos proxy` runs it, and JWTs from a real OpenID Connect provider.

const proxyAdmin = "proxy-admin-token-0123456789"

// proxyUpstream is the demo application, plus /stream for the streaming
// test, counting the requests that reach it and keeping the last
// X-Forwarded-For and X-Remote-User it saw.
type proxyUpstream struct {
	*httptest.Server
	hits    atomic.Int64
	mu      sync.Mutex
	xff     string
	user    string
	release chan struct{} // closed by the streaming test
}

const (
	streamFirst = `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Patient","id":"p-900"}}`
	streamRest  = `,{"resource":{"resourceType":"Patient","id":"p-901"}}]}`
)

func newProxyUpstream(t *testing.T) *proxyUpstream {
	t.Helper()
	u := &proxyUpstream{release: make(chan struct{})}
	fhir := demo.Handler("/fhir")
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		u.xff, u.user = r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Remote-User")
		u.mu.Unlock()
		if r.URL.Query().Get("_stream") != "" { // a search answered in two chunks
			w.Header().Set("Content-Type", "application/fhir+json")
			w.Write([]byte(streamFirst))
			w.(http.Flusher).Flush()
			<-u.release // the rest only once the client has the first chunk
			w.Write([]byte(streamRest))
			return
		}
		fhir.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *proxyUpstream) seen() (xff, user string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.xff, u.user
}

// runProxy runs custos proxy with args until the returned stop, which
// returns only after every event was sent to Custos.
func runProxy(t *testing.T, custosURL string, args ...string) (base string, stop func() int, stderr *syncBuffer) {
	t.Helper()
	addr := freeAddr(t)
	stderr = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	all := append([]string{"proxy", "--addr", addr, "--custos-url", custosURL, "--token", proxyAdmin,
		"--spool", t.TempDir(), "--fhir-base", "/fhir", "--flush-interval", "5ms"}, args...)
	go func() { done <- Main(ctx, all, io.Discard, stderr) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		select {
		case code := <-done:
			t.Fatalf("proxy exited with %d:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy not listening after 20 s:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a real listener's readiness
	}
	var once sync.Once
	code := 0
	stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { stop() })
	return "http://" + addr, stop, stderr
}

// startCustos runs custos serve on a fresh SQLite store.
func startCustos(t *testing.T) string {
	t.Helper()
	t.Setenv("CUSTOS_BOOTSTRAP_TOKEN", proxyAdmin)
	addr, _, _, _ := runServe(t, "--data", t.TempDir())
	return "http://" + addr
}

// events returns the events of a search of the trail.
func events(t *testing.T, custosURL string, q url.Values) []custos.Event {
	t.Helper()
	code, body := call(t, "GET", custosURL+"/v1/events?"+q.Encode(), proxyAdmin, "")
	if code != 200 {
		t.Fatalf("GET /v1/events?%s: %d %s", q.Encode(), code, body)
	}
	var page struct{ Items []custos.Event }
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatal(err)
	}
	return page.Items
}

type proxyCall struct {
	method, path, body string
	header             map[string]string
}

func (c proxyCall) do(t *testing.T, base string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
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
	return resp.StatusCode, resp.Header, string(b)
}

func startOIDC(t *testing.T) *mockoidc.MockOIDC {
	t.Helper()
	kp, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mockoidc.NewServer(kp.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	m.Keypair = kp
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return m
}

func signJWT(t *testing.T, m *mockoidc.MockOIDC, kp *mockoidc.Keypair, aud, sub string, exp time.Time, roles ...string) string {
	t.Helper()
	c := jwt.MapClaims{"iss": m.Issuer(), "aud": aud, "sub": sub, "name": "Dr " + sub,
		"iat": exp.Add(-10 * time.Minute).Unix(), "exp": exp.Unix(), "realm_access": map[string]any{"roles": roles}}
	tok, err := kp.SignJWT(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestProxyJWT: a verified token's user and roles are recorded with the
// patient read; a token with a bad signature, for another audience or
// expired is answered 401 before the upstream is contacted and recorded as
// a failed login, which the monitoring rules raise as AUTH_FAILURE.
func TestProxyJWT(t *testing.T) {
	custosURL := startCustos(t)
	up := newProxyUpstream(t)
	m := startOIDC(t)
	base, stop, stderr := runProxy(t, custosURL, "--upstream", up.URL, "--jwt-issuer", m.Issuer(),
		"--jwt-audience", m.ClientID, "--jwt-roles-claim", "realm_access.roles")
	now := time.Now()
	good := signJWT(t, m, m.Keypair, m.ClientID, "dr.grey", now.Add(5*time.Minute), "physician", "surgery")
	code, _, body := proxyCall{method: "GET", path: "/fhir/Patient/p-123", header: map[string]string{"Authorization": "Bearer " + good}}.do(t, base)
	if code != 200 || !strings.Contains(body, `"id":"p-123"`) {
		t.Fatalf("a valid token: %d %s\n%s", code, body, stderr.String())
	}
	other, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]string{
		"bad signature":  signJWT(t, m, other, m.ClientID, "mallory-1", now.Add(5*time.Minute)),
		"wrong audience": signJWT(t, m, m.Keypair, "another-app", "mallory-2", now.Add(5*time.Minute)),
		"expired":        signJWT(t, m, m.Keypair, m.ClientID, "mallory-3", now.Add(-5*time.Minute)),
		"not a JWT":      "not.a.jwt",
	}
	hits := up.hits.Load()
	for name, tok := range refused {
		code, h, body := proxyCall{method: "GET", path: "/fhir/Patient/p-124", header: map[string]string{"Authorization": "Bearer " + tok}}.do(t, base)
		if code != 401 || h.Get("Content-Type") != "application/problem+json" || h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d %s %s", name, code, h, body)
		}
	}
	if code, _, _ := (proxyCall{method: "GET", path: "/fhir/Patient/p-124"}).do(t, base); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
	if n := up.hits.Load() - hits; n != 0 {
		t.Errorf("refused requests reached the upstream %d times", n)
	}
	if code := stop(); code != 0 {
		t.Fatalf("proxy exit %d:\n%s", code, stderr.String())
	}
	reads := events(t, custosURL, url.Values{"patient_id": {"p-123"}})
	if len(reads) != 1 || reads[0].User.ID != "dr.grey" || !slices.Equal(reads[0].User.Roles, []string{"physician", "surgery"}) ||
		reads[0].Action != custos.ActionRead || reads[0].StatusCode != 200 || reads[0].Source != "custos-proxy" {
		t.Fatalf("the read of p-123: %+v", reads)
	}
	failed := events(t, custosURL, url.Values{"action": {"LOGIN"}, "outcome": {"failure"}, "ip_address": {"127.0.0.1"}})
	var users []string
	for _, e := range failed {
		if e.StatusCode != 401 || e.IPAddress != "127.0.0.1" || e.PatientID != "" {
			t.Errorf("a failed login: %+v", e)
		}
		users = append(users, e.User.ID)
	}
	slices.Sort(users)
	if want := []string{"(invalid token)", "mallory-1", "mallory-2", "mallory-3"}; !slices.Equal(users, want) {
		t.Errorf("failed logins by %v, want %v", users, want)
	}
	// The rules count them: AUTH_FAILURE security events, raised as the
	// records commit (polled: the monitor runs behind the ledger).
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := call(t, "GET", custosURL+"/v1/security-events?event_type=AUTH_FAILURE", proxyAdmin, "")
		if strings.Count(body, `"AUTH_FAILURE"`) >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no AUTH_FAILURE for the refused tokens: %s", body)
		}
		time.Sleep(50 * time.Millisecond) // polling another process's asynchronous work
	}
}

// TestProxyJWKSURL: keys from a JWKS URL, without discovery.
func TestProxyJWKSURL(t *testing.T) {
	custosURL := startCustos(t)
	up := newProxyUpstream(t)
	m := startOIDC(t)
	base, _, stderr := runProxy(t, custosURL, "--upstream", up.URL, "--jwks-url", m.JWKSEndpoint(),
		"--jwt-audience", m.ClientID)
	good := signJWT(t, m, m.Keypair, m.ClientID, "dr.yang", time.Now().Add(5*time.Minute))
	if code, _, body := (proxyCall{method: "GET", path: "/fhir/Patient/p-125", header: map[string]string{"Authorization": "Bearer " + good}}).do(t, base); code != 200 {
		t.Fatalf("%d %s\n%s", code, body, stderr.String())
	}
	bad := signJWT(t, m, m.Keypair, "another-app", "dr.yang", time.Now().Add(5*time.Minute))
	if code, _, _ := (proxyCall{method: "GET", path: "/fhir/Patient/p-125", header: map[string]string{"Authorization": "Bearer " + bad}}).do(t, base); code != 401 {
		t.Fatalf("wrong audience: %d", code)
	}
}

// TestProxySearchBALP: a search answered with a Bundle records one READ per
// patient returned, so "who saw this patient" finds the search; past
// --max-patients the search's event says it was truncated.
func TestProxySearchBALP(t *testing.T) {
	custosURL := startCustos(t)
	up := newProxyUpstream(t)
	base, stop, stderr := runProxy(t, custosURL, "--upstream", up.URL, "--user-header", "X-Remote-User",
		"--trusted-proxy", "127.0.0.1", "--max-patients", "2")
	as := map[string]string{"X-Remote-User": "nurse.kim"}
	for _, c := range []proxyCall{
		{method: "GET", path: "/fhir/Patient?name=doe", header: as},                      // p-123, p-124
		{method: "GET", path: "/fhir/Observation?code=heart", header: as},                // p-123, p-124, p-126: over the cap
		{method: "POST", path: "/fhir/Patient/_search", body: "name=rivera", header: as}, // p-125
		{method: "GET", path: "/fhir/Patient/p-126/Observation", header: as},             // p-126
	} {
		if c.method == "POST" {
			c.header = map[string]string{"X-Remote-User": "nurse.kim", "Content-Type": "application/x-www-form-urlencoded"}
		}
		if code, _, body := c.do(t, base); code != 200 || !strings.Contains(body, `"searchset"`) {
			t.Fatalf("%s %s: %d %s\n%s", c.method, c.path, code, body, stderr.String())
		}
	}
	if code := stop(); code != 0 {
		t.Fatalf("proxy exit %d:\n%s", code, stderr.String())
	}
	who := func(patient string) []string {
		var paths []string
		for _, e := range events(t, custosURL, url.Values{"patient_id": {patient}}) {
			if e.User.ID != "nurse.kim" || e.Action != custos.ActionRead {
				t.Errorf("patient %s: %+v", patient, e)
			}
			paths = append(paths, e.RequestMethod+" "+e.RequestPath)
		}
		slices.Sort(paths)
		return paths
	}
	if got := who("p-124"); len(got) != 2 || !strings.HasPrefix(got[0], "GET /fhir/Observation") || !strings.HasPrefix(got[1], "GET /fhir/Patient") {
		t.Errorf("who saw p-124: %v", got)
	}
	var search []custos.Event
	for _, p := range []string{"p-123", "p-124"} {
		for _, e := range events(t, custosURL, url.Values{"patient_id": {p}}) {
			if e.RequestPath == "/fhir/Patient?name=doe" {
				search = append(search, e)
			}
		}
	}
	if len(search) != 2 || search[0].RequestID == "" || search[0].RequestID != search[1].RequestID {
		t.Errorf("the events of one search do not share a request id: %+v", search)
	}
	if got := who("p-125"); len(got) != 1 || got[0] != "POST /fhir/Patient/_search" {
		t.Errorf("who saw p-125: %v", got)
	}
	if got := who("p-126"); len(got) != 1 || !strings.HasPrefix(got[0], "GET /fhir/Patient/p-126/Observation") {
		t.Errorf("who saw p-126 (beyond the cap in the Observation search, in its compartment): %v", got)
	}
	var truncated int
	for _, e := range events(t, custosURL, url.Values{"user": {"nurse.kim"}, "limit": {"100"}}) {
		if strings.Contains(string(e.Changes), `"truncated":true`) {
			truncated++
			if !strings.HasPrefix(e.RequestPath, "/fhir/Observation") || e.PatientID != "" {
				t.Errorf("truncated: %+v", e)
			}
		}
	}
	if truncated != 1 {
		t.Errorf("%d events say truncated, want the Observation search's", truncated)
	}
}

// TestProxyStreams: the client has the upstream's first chunk of a search
// answer while the upstream is still writing (the Bundle walk does not hold
// it back), and the patients of both chunks are recorded.
func TestProxyStreams(t *testing.T) {
	custosURL := startCustos(t)
	up := newProxyUpstream(t)
	base, stop, _ := runProxy(t, custosURL, "--upstream", up.URL, "--allow-anonymous")
	var resp *http.Response
	first := make(chan string, 1)
	go func() { // the headers, then the first chunk, while the upstream waits
		var err error
		if resp, err = http.Get(base + "/fhir/Patient?_stream=1"); err != nil {
			first <- err.Error()
			return
		}
		b := make([]byte, len(streamFirst))
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			first <- err.Error()
			return
		}
		first <- string(b)
	}()
	select {
	case got := <-first:
		if got != streamFirst {
			t.Fatalf("first chunk: %q", got)
		}
	case <-time.After(15 * time.Second): // a deadlock guard, not a timing assertion
		close(up.release)
		t.Fatal("the first chunk did not arrive while the upstream was still writing: the proxy buffers")
	}
	close(up.release)
	defer resp.Body.Close()
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != streamRest {
		t.Fatalf("rest: %q", rest)
	}
	stop()
	for _, p := range []string{"p-900", "p-901"} {
		if evs := events(t, custosURL, url.Values{"patient_id": {p}}); len(evs) != 1 || evs[0].RequestPath != "/fhir/Patient?_stream=1" {
			t.Errorf("who saw %s: %+v", p, evs)
		}
	}
}

// TestProxyUpstreamDown: 502 problem+json, and the event records it.
func TestProxyUpstreamDown(t *testing.T) {
	custosURL := startCustos(t)
	base, stop, stderr := runProxy(t, custosURL, "--upstream", "http://"+freeAddr(t), "--user-header", "X-Remote-User",
		"--trusted-proxy", "127.0.0.0/8")
	code, h, body := proxyCall{method: "GET", path: "/fhir/Patient/p-123", header: map[string]string{"X-Remote-User": "dr.grey"}}.do(t, base)
	if code != 502 || h.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, `"status":502`) {
		t.Fatalf("%d %s %s", code, h, body)
	}
	stop()
	evs := events(t, custosURL, url.Values{"patient_id": {"p-123"}})
	if len(evs) != 1 || evs[0].Outcome != custos.OutcomeFailure || evs[0].StatusCode != 502 || evs[0].User.ID != "dr.grey" {
		t.Fatalf("%+v\n%s", evs, stderr.String())
	}
	if strings.Contains(stderr.String(), "p-123") {
		t.Errorf("the log names a patient:\n%s", stderr.String())
	}
}

// TestProxyForwardedFor: X-Forwarded-For and identity headers from a peer
// that is not a trusted proxy are not believed, nor passed on; from a
// trusted one they are.
func TestProxyForwardedFor(t *testing.T) {
	custosURL := startCustos(t)
	up := newProxyUpstream(t)
	spoof := map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Remote-User": "dr.admin"}
	t.Run("untrusted peer", func(t *testing.T) {
		base, stop, _ := runProxy(t, custosURL, "--upstream", up.URL, "--user-header", "X-Remote-User",
			"--trusted-proxy", "10.0.0.0/8", "--allow-anonymous")
		if code, _, body := (proxyCall{method: "GET", path: "/fhir/Patient/p-125", header: spoof}).do(t, base); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		if xff, user := up.seen(); xff != "127.0.0.1" || user != "" {
			t.Errorf("the upstream saw X-Forwarded-For %q and X-Remote-User %q", xff, user)
		}
		stop()
		evs := events(t, custosURL, url.Values{"patient_id": {"p-125"}})
		if len(evs) != 1 || evs[0].IPAddress != "127.0.0.1" || evs[0].User.ID == "dr.admin" {
			t.Fatalf("%+v", evs)
		}
	})
	t.Run("trusted peer", func(t *testing.T) {
		base, stop, _ := runProxy(t, custosURL, "--upstream", up.URL, "--user-header", "X-Remote-User",
			"--trusted-proxy", "127.0.0.1")
		if code, _, body := (proxyCall{method: "GET", path: "/fhir/Patient/p-126", header: spoof}).do(t, base); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		if xff, user := up.seen(); xff != "203.0.113.9, 127.0.0.1" || user != "dr.admin" {
			t.Errorf("the upstream saw X-Forwarded-For %q and X-Remote-User %q", xff, user)
		}
		stop()
		evs := events(t, custosURL, url.Values{"patient_id": {"p-126"}})
		if len(evs) != 1 || evs[0].IPAddress != "203.0.113.9" || evs[0].User.ID != "dr.admin" {
			t.Fatalf("%+v", evs)
		}
	})
}

// TestProxyBodies: an oversized body is refused with 413 naming the field,
// whether its length is declared or streamed, before the upstream sees it
// whole; a malformed one reaches the application, whose refusal is
// recorded.
func TestProxyBodies(t *testing.T) {
	custosURL := startCustos(t)
	up := newProxyUpstream(t)
	base, stop, _ := runProxy(t, custosURL, "--upstream", up.URL, "--allow-anonymous", "--max-body", "1024")
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	hits := up.hits.Load()
	code, h, body := proxyCall{method: "POST", path: "/fhir/Patient/_search", body: "name=" + strings.Repeat("a", 2000), header: form}.do(t, base)
	if code != 413 || h.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, `"field":"body"`) {
		t.Errorf("declared length: %d %s", code, body)
	}
	if up.hits.Load() != hits {
		t.Error("a body declared too large reached the upstream")
	}
	// Streamed (chunked, no length): refused once the limit is passed.
	req, _ := http.NewRequest("POST", base+"/fhir/Patient/_search", io.MultiReader(strings.NewReader("name="), strings.NewReader(strings.Repeat("b", 4000))))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(b), `"field":"body"`) {
		t.Errorf("streamed: %d %s", resp.StatusCode, b)
	}
	code, _, body = proxyCall{method: "POST", path: "/fhir/Patient/_search", body: "name=%zz", header: form}.do(t, base)
	if code != 400 || !strings.Contains(body, "OperationOutcome") {
		t.Errorf("malformed form: %d %s", code, body)
	}
	stop()
	var got []string
	for _, e := range events(t, custosURL, url.Values{"limit": {"100"}}) {
		if e.RequestPath == "/fhir/Patient/_search" {
			got = append(got, fmt.Sprint(e.StatusCode, " ", e.Outcome))
		}
	}
	slices.Sort(got)
	if want := []string{"400 failure", "413 failure", "413 failure"}; !slices.Equal(got, want) {
		t.Errorf("recorded %v, want %v", got, want)
	}
}

// TestProxyBlockedAddress: a client address Custos blocked is refused by
// the proxy (403) without reaching the application, once the proxy's copy
// of the block list has been refreshed; the refusal is recorded.
func TestProxyBlockedAddress(t *testing.T) {
	custosURL := startCustos(t)
	up := newProxyUpstream(t)
	base, stop, _ := runProxy(t, custosURL, "--upstream", up.URL, "--allow-anonymous", "--trusted-proxy", "127.0.0.1",
		"--block-refresh", "50ms")
	if code, body := call(t, "POST", custosURL+"/v1/blocks", proxyAdmin,
		`{"ip":"203.0.113.66","reason":"proxy test","duration":"1h"}`); code != 201 {
		t.Fatalf("block: %d %s", code, body)
	}
	// The attacker, behind the trusted gateway on 127.0.0.1, is refused within a refresh;
	// another client behind the same gateway is not.
	attacker := proxyCall{method: "GET", path: "/fhir/Patient/p-123", header: map[string]string{"X-Forwarded-For": "203.0.113.66"}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _, _ := attacker.do(t, base)
		if code == 403 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the blocked address still gets %d", code)
		}
		time.Sleep(20 * time.Millisecond) // polling the proxy's refresh of the block list
	}
	hits := up.hits.Load()
	if code, h, body := attacker.do(t, base); code != 403 || h.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("blocked: %d %s", code, body)
	}
	if up.hits.Load() != hits {
		t.Error("a blocked request reached the application")
	}
	other := proxyCall{method: "GET", path: "/fhir/Patient/p-123", header: map[string]string{"X-Forwarded-For": "203.0.113.67"}}
	if code, _, _ := other.do(t, base); code != 200 {
		t.Errorf("another address: %d", code)
	}
	stop()
	refused := 0
	for _, e := range events(t, custosURL, url.Values{"ip_address": {"203.0.113.66"}}) {
		if e.StatusCode == 403 && e.Outcome == custos.OutcomeFailure {
			refused++
		}
	}
	if refused < 2 {
		t.Errorf("%d refusals recorded, want at least 2", refused)
	}
}

// TestBenchProxySmoke: bench --mode proxy runs both phases and finds
// every proxied request's event in Custos.
func TestBenchProxySmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs load against a server")
	}
	var out, errb strings.Builder
	if code := Main(context.Background(), []string{"bench", "--mode", "proxy", "--duration", "1s", "--concurrency", "4"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"upstream ", "proxy ", "ratio ", "cpu ", "acknowledged: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q line:\n%s", want, out.String())
		}
	}
}

// TestProxyIdentityProviderDown: a token that cannot be checked (the
// provider does not answer) is 503 with Retry-After, recorded as a failure
// but not as a failed login: the token may well be valid.
func TestProxyIdentityProviderDown(t *testing.T) {
	custosURL := startCustos(t)
	up := newProxyUpstream(t)
	base, stop, _ := runProxy(t, custosURL, "--upstream", up.URL, "--jwt-issuer", "http://"+freeAddr(t)+"/oidc",
		"--jwt-audience", "ehr")
	code, h, body := proxyCall{method: "GET", path: "/fhir/Patient/p-126",
		header: map[string]string{"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"}}.do(t, base)
	if code != 503 || h.Get("Retry-After") == "" || !strings.Contains(body, `"status":503`) {
		t.Fatalf("%d %v %s", code, h, body)
	}
	if up.hits.Load() != 0 {
		t.Error("the upstream was reached")
	}
	stop()
	evs := events(t, custosURL, url.Values{"patient_id": {"p-126"}})
	if len(evs) != 1 || evs[0].Action != custos.ActionRead || evs[0].StatusCode != 503 || evs[0].Outcome != custos.OutcomeFailure {
		t.Fatalf("%+v", evs)
	}
}

// TestProxyFailClosed: with Custos unreachable, a --fail-closed route is
// refused (503) rather than served unrecorded; any other route is served,
// its event waiting in the spool.
func TestProxyFailClosed(t *testing.T) {
	up := newProxyUpstream(t)
	base, _, stderr := runProxy(t, "http://"+freeAddr(t), "--upstream", up.URL, "--allow-anonymous",
		"--fail-closed", "GET /fhir/Patient/{id}", "--block-refresh", "0", "--shutdown-timeout", "1s")
	code, h, body := proxyCall{method: "GET", path: "/fhir/Patient/p-123"}.do(t, base)
	if code != 503 || h.Get("Content-Type") != "application/problem+json" || strings.Contains(body, "Doe") {
		t.Fatalf("fail-closed route with Custos down: %d %s\n%s", code, body, stderr.String())
	}
	if code, _, body := (proxyCall{method: "GET", path: "/fhir/Observation/o-1"}).do(t, base); code != 200 {
		t.Fatalf("another route with Custos down: %d %s", code, body)
	}
}
