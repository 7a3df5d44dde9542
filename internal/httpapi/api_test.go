package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/httpapi"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/sqlite"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/proof"
)

const adminToken = "test-admin-token-0123456789"

type env struct {
	t      *testing.T
	srv    *httptest.Server
	st     *sqlite.Store
	seq    *ledger.Sequencer
	signer *ledger.Signer
	keys   *authn.Directory
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	l := ledgertest.Open(t, t.TempDir(), "custos.test/api", ledger.Config{CheckpointInterval: 10 * time.Millisecond})
	st, seq, signer := l.Store, l.Seq, l.Signer
	keys, err := authn.NewDirectory(ctx, seq, ledger.NewStateFeed(st, signer.VerifierKey()), authn.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Bootstrap(ctx, adminToken); err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(seq, st, keys, httpapi.Config{MaxBodyBytes: 64 << 10, MaxBatch: 50,
		CursorKey: []byte("k"), Registry: prometheus.NewRegistry()})
	e := &env{t: t, srv: httptest.NewServer(api.Handler()), st: st, seq: seq, signer: signer, keys: keys}
	t.Cleanup(func() {
		e.srv.Close()
		l.Close()
	})
	return e
}

type response struct {
	code int
	hdr  http.Header
	body []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends one request; hdr holds further header names and values, in pairs.
func (e *env) do(method, path, token, ctype, body string, hdr ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header[hdr[i]] = append(req.Header[hdr[i]], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func (e *env) size() uint64 {
	h, err := e.st.Head(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return h.Size
}

func (e *env) newKey(scope custos.Scope) string {
	_, tok, err := e.keys.Create(context.Background(), nil, authn.KeySpec{Name: "test " + string(scope), Scopes: []custos.Scope{scope}}, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func ev(patient string) string {
	return fmt.Sprintf(`{"user":{"id":"dr.grey","name":"Meredith Grey","roles":["physician"]},"action":"READ",
		"resource_type":"Patient","resource_id":%[1]q,"patient_id":%[1]q,"ip_address":"203.0.113.7",
		"request_method":"GET","request_path":"/Patient/%[1]s","status_code":200,"source":"ehr-web"}`, patient)
}

func TestIngestShapesAndReceipts(t *testing.T) {
	e := newEnv(t)
	before := e.size()
	for _, tc := range []struct{ ctype, body string }{
		{"application/json", ev("p-1")},
		{"application/json", "[" + ev("p-2") + "," + ev("p-3") + "]"},
		{"application/x-ndjson", strings.ReplaceAll(ev("p-4"), "\n\t\t", "") + "\n" + strings.ReplaceAll(ev("p-5"), "\n\t\t", "") + "\n"},
	} {
		r := e.do("POST", "/v1/events", adminToken, tc.ctype, tc.body)
		if r.code != http.StatusCreated {
			t.Fatalf("POST %s: %d %s", tc.ctype, r.code, r.body)
		}
		var got struct{ Receipts []custos.Receipt }
		r.json(t, &got)
		for _, rc := range got.Receipts {
			stored, err := e.st.Event(context.Background(), rc.Index)
			if err != nil {
				t.Fatalf("receipt %d not stored: %v", rc.Index, err)
			}
			if string(leaf.LeafHash(&stored)) != string(rc.LeafHash) {
				t.Fatalf("receipt %d leaf hash does not match the stored event", rc.Index)
			}
		}
	}
	if got := e.size() - before; got != 5 {
		t.Fatalf("stored %d events, want 5", got)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	ingest := e.newKey(custos.ScopeIngest)
	big := strings.Replace(ev("p-1"), `"action"`, `"user_agent":"`+strings.Repeat("x", 70<<10)+`","action"`, 1)
	many := `[` + strings.Repeat(`{"user":{"id":"u"},"action":"READ","resource_type":"P"},`, 50) + `{"user":{"id":"u"},"action":"READ","resource_type":"P"}]`
	for _, tc := range []struct {
		name, method, path, token, ctype, body string
		code                                   int
		field                                  string
	}{
		{"malformed JSON", "POST", "/v1/events", adminToken, "application/json", `{"user":`, 400, ""},
		{"wrong content type", "POST", "/v1/events", adminToken, "text/plain", ev("p"), 415, ""},
		{"unknown action", "POST", "/v1/events", adminToken, "application/json", strings.Replace(ev("p"), `"READ"`, `"PEEK"`, 1), 400, "action"},
		{"invalid address", "POST", "/v1/events", adminToken, "application/json", strings.Replace(ev("p"), `203.0.113.7`, `203.0.113.700`, 1), 400, "ip_address"},
		{"over-long field", "POST", "/v1/events", adminToken, "application/json", strings.Replace(ev("p"), `"GET"`, `"GETGETGETGET"`, 1), 400, "request_method"},
		{"unknown field", "POST", "/v1/events", adminToken, "application/json", strings.Replace(ev("p"), `"action"`, `"color":1,"action"`, 1), 400, "color"},
		{"over-sized body", "POST", "/v1/events", adminToken, "application/json", big, 413, ""},
		{"over-sized batch", "POST", "/v1/events", adminToken, "application/json", many, 413, ""},
		{"one invalid of many", "POST", "/v1/events", adminToken, "application/json", "[" + ev("a") + "," + ev("b") + "," + strings.Replace(ev("c"), `"Patient"`, `""`, 1) + "]", 400, "[2].resource_type"},
		{"no credential", "POST", "/v1/events", "", "application/json", ev("p"), 401, ""},
		{"wrong credential", "POST", "/v1/events", "cus_nope", "application/json", ev("p"), 401, ""},
		{"ingest key reads", "GET", "/v1/events", ingest, "", "", 403, ""},
		{"ingest key reads one", "GET", "/v1/events/0", ingest, "", "", 403, ""},
		{"ingest key makes keys", "POST", "/v1/api-keys", ingest, "application/json", `{"name":"x","scopes":["admin"]}`, 403, ""},
		{"tampered cursor", "GET", "/v1/events?cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", adminToken, "", "", 400, "cursor"},
		{"from after to", "GET", "/v1/events?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", adminToken, "", "", 400, "from"},
		{"bad time", "GET", "/v1/events?from=yesterday", adminToken, "", "", 400, "from"},
		{"unknown filter", "GET", "/v1/events?patientid=p-1", adminToken, "", "", 400, "patientid"},
		{"bad limit", "GET", "/v1/events?limit=5000", adminToken, "", "", 400, "limit"},
		{"over-long filter", "GET", "/v1/events?patient_id=" + strings.Repeat("p", 65), adminToken, "", "", 400, "patient_id"},
		{"bad action filter", "GET", "/v1/events?action=PEEK", adminToken, "", "", 400, "action"},
		{"bad index", "GET", "/v1/events/minus-one", adminToken, "", "", 400, "index"},
		{"bad key scope", "POST", "/v1/api-keys", adminToken, "application/json", `{"name":"x","scopes":["root"]}`, 400, "scopes[0]"},
		{"unknown route", "GET", "/v2/events", adminToken, "", "", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.size()
			r := e.do(tc.method, tc.path, tc.token, tc.ctype, tc.body)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d: %s", r.code, tc.code, r.body)
			}
			if ct := r.hdr.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("content type %q, want application/problem+json", ct)
			}
			var p struct {
				Status int
				Title  string
				Errors []custos.FieldError
			}
			r.json(t, &p)
			if p.Status != tc.code || p.Title == "" {
				t.Errorf("problem body %s", r.body)
			}
			if tc.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tc.field) {
				t.Errorf("errors %+v, want field %q first", p.Errors, tc.field)
			}
			want := before
			if tc.code == http.StatusForbidden {
				want++ // the denial itself is evidence: one failure record, nothing the request asked for
				last, err := e.st.Event(context.Background(), before)
				if err != nil || last.Outcome != custos.OutcomeFailure || last.ResourceType != "Route" || last.StatusCode != 403 {
					t.Errorf("the denial's record: %+v %v", last, err)
				}
			}
			if after := e.size(); after != want {
				t.Errorf("the ledger grew from %d to %d", before, after)
			}
		})
	}
}

func TestQueryPagingAndReadAudit(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 7; i++ {
		if r := e.do("POST", "/v1/events", adminToken, "application/json", ev("p-9")); r.code != 201 {
			t.Fatal(r.code, string(r.body))
		}
	}
	e.do("POST", "/v1/events", adminToken, "application/json", ev("p-other"))
	reader := e.newKey(custos.ScopeRead)
	var all []custos.Event
	path := "/v1/events?patient_id=p-9&limit=3"
	for pages := 0; pages < 10; pages++ {
		r := e.do("GET", path, reader, "", "")
		if r.code != 200 {
			t.Fatalf("GET %s: %d %s", path, r.code, r.body)
		}
		var page struct {
			Items      []custos.Event
			NextCursor string `json:"next_cursor"`
		}
		r.json(t, &page)
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			break
		}
		path = "/v1/events?patient_id=p-9&limit=3&cursor=" + page.NextCursor
	}
	if len(all) != 7 {
		t.Fatalf("paged %d events for p-9, want 7", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Index >= all[i-1].Index {
			t.Fatalf("not newest first: %d then %d", all[i-1].Index, all[i].Index)
		}
	}
	// Each page read was itself recorded: READ of AuditEvent by the reader.
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	r := e.do("GET", "/v1/events?resource_type=AuditEvent&action=READ&limit=100&from="+from, adminToken, "", "")
	var reads struct{ Items []custos.Event }
	r.json(t, &reads)
	if len(reads.Items) < 3 {
		t.Fatalf("%d recorded reads of the trail, want at least the 3 pages", len(reads.Items))
	}
	if !strings.HasPrefix(reads.Items[len(reads.Items)-1].User.ID, "apikey:") {
		t.Errorf("read recorded for user %q, want the API key", reads.Items[0].User.ID)
	}
}

func TestCheckpointAndProofs(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 5; i++ {
		e.do("POST", "/v1/events", adminToken, "application/json", "["+ev("a")+","+ev("b")+"]")
	}
	var cp []byte
	deadline := time.Now().Add(5 * time.Second)
	var parsed uint64
	var root []byte
	for time.Now().Before(deadline) {
		r := e.do("GET", "/v1/checkpoint", adminToken, "", "")
		if r.code == 200 {
			c, err := ledger.OpenCheckpoint(r.body, e.signer.VerifierKey())
			if err != nil {
				t.Fatalf("checkpoint does not verify: %v\n%s", err, r.body)
			}
			if c.Size >= 11 {
				cp, parsed, root = r.body, c.Size, c.Hash
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if cp == nil {
		t.Fatal("no checkpoint covering 11 events within 5 s")
	}
	var inc struct {
		Size     uint64   `json:"tree_size"`
		LeafHash []byte   `json:"leaf_hash"`
		Hashes   [][]byte `json:"hashes"`
	}
	r := e.do("GET", "/v1/events/4/proof", adminToken, "", "")
	r.json(t, &inc)
	if err := proof.VerifyInclusion(ledger.Hasher, 4, inc.Size, inc.LeafHash, inc.Hashes, root); err != nil || inc.Size != parsed {
		t.Fatalf("inclusion proof (size %d of %d): %v", inc.Size, parsed, err)
	}
	var cons struct {
		From, To uint64
		Hashes   [][]byte
	}
	r = e.do("GET", fmt.Sprintf("/v1/proofs/consistency?from=3&to=%d", parsed), adminToken, "", "")
	r.json(t, &cons)
	root3, err := ledger.RootAt(context.Background(), e.st, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(ledger.Hasher, 3, parsed, cons.Hashes, root3, root); err != nil {
		t.Fatalf("consistency proof: %v", err)
	}
	for _, bad := range []string{"/v1/events/4/proof?tree_size=999999", "/v1/proofs/consistency?from=5&to=3", "/v1/proofs/consistency?to=3"} {
		if r := e.do("GET", bad, adminToken, "", ""); r.code != 400 {
			t.Errorf("GET %s: %d, want 400", bad, r.code)
		}
	}
}

func TestKeysLifecycle(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", "/v1/api-keys", adminToken, "application/json", `{"name":"ehr","scopes":["ingest"]}`)
	var k struct{ ID, Token string }
	r.json(t, &k)
	if r.code != 201 || !strings.HasPrefix(k.Token, "cus_") {
		t.Fatalf("create key: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/v1/events", k.Token, "application/json", ev("p")); r.code != 201 {
		t.Fatalf("ingest with the new key: %d", r.code)
	}
	if r := e.do("DELETE", "/v1/api-keys/"+k.ID, adminToken, "", ""); r.code != 204 {
		t.Fatalf("revoke: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/v1/events", k.Token, "application/json", ev("p")); r.code != 401 {
		t.Fatalf("ingest with a revoked key: %d, want 401", r.code)
	}
	if r := e.do("DELETE", "/v1/api-keys/"+k.ID, adminToken, "", ""); r.code != 404 {
		t.Fatalf("revoke twice: %d, want 404", r.code)
	}
	// Both changes are ledger records.
	evs, err := e.st.Events(context.Background(), store.Query{ResourceType: "ApiKey", ResourceID: k.ID, Limit: 10})
	if err != nil || len(evs) != 2 || evs[0].Action != custos.ActionDelete || evs[1].Action != custos.ActionCreate {
		t.Fatalf("key changes in the ledger: %+v %v", evs, err)
	}
}

func TestProbesAndMetrics(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := e.do("GET", p, "", "", ""); r.code != 200 {
			t.Errorf("%s: %d", p, r.code)
		}
	}
	if r := e.do("GET", "/metrics", "", "", ""); r.code != 401 {
		t.Errorf("/metrics without a credential: %d, want 401", r.code)
	}
	e.do("GET", "/v1/events?patient_id=secret-patient", adminToken, "", "")
	r := e.do("GET", "/metrics", adminToken, "", "")
	if r.code != 200 || !strings.Contains(string(r.body), `custos_http_requests_total{code="200",route="GET /v1/events"}`) {
		t.Fatalf("/metrics: %d\n%s", r.code, r.body)
	}
	if strings.Contains(string(r.body), "secret-patient") {
		t.Fatal("/metrics leaks a patient id")
	}
}

// TestReadRecordedWhateverTheHeaders: the READ record of a query is valid by
// construction, so an over-long, multi-byte User-Agent neither fails the
// query nor goes unrecorded.
func TestReadRecordedWhateverTheHeaders(t *testing.T) {
	e := newEnv(t)
	req, err := http.NewRequest("GET", e.srv.URL+"/v1/events?patient_id=p-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("User-Agent", strings.Repeat("é", 600))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("query with a 600-character User-Agent: %d", resp.StatusCode)
	}
	evs, err := e.st.Events(context.Background(), store.Query{ResourceType: "AuditEvent", Limit: 1})
	if err != nil || len(evs) != 1 {
		t.Fatalf("READ record: %v %v", evs, err)
	}
	if ua := evs[0].UserAgent; ua != strings.Repeat("é", 512) {
		t.Errorf("recorded User-Agent has %d characters, want the first 512", len([]rune(ua)))
	}
}
