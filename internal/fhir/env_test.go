package fhir_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/httpapi"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/store/sqlite"
	"github.com/prometheus/client_golang/prometheus"
)

const adminToken = "test-admin-token-0123456789"

// env is a real server on a SQLite ledger in a temporary folder.
type env struct {
	t    *testing.T
	srv  *httptest.Server
	st   *sqlite.Store
	keys *authn.Directory
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	l := ledgertest.Open(t, t.TempDir(), "custos.test/fhir", ledger.Config{CheckpointInterval: 10 * time.Millisecond})
	keys, err := authn.NewDirectory(ctx, l.Seq, ledger.NewStateFeed(l.Store, l.Signer.VerifierKey()), authn.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Bootstrap(ctx, adminToken); err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(l.Seq, l.Store, keys, httpapi.Config{MaxBodyBytes: 1 << 20, MaxBatch: 600,
		CursorKey: []byte("k"), Registry: prometheus.NewRegistry()})
	e := &env{t: t, srv: httptest.NewServer(api.Handler()), st: l.Store, keys: keys}
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

// do sends a request; hdr is pairs of header names and values.
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
		req.Header.Add(hdr[i], hdr[i+1])
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
	e.t.Helper()
	h, err := e.st.Head(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return h.Size
}

func (e *env) newKey(scope custos.Scope) string {
	e.t.Helper()
	_, tok, err := e.keys.Create(context.Background(), nil, authn.KeySpec{Name: "test " + string(scope), Scopes: []custos.Scope{scope}}, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// outcome is an OperationOutcome as the tests read it.
type outcome struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Severity, Code, Diagnostics string
		Expression                  []string
	} `json:"issue"`
}

// wantOutcome checks that r is an OperationOutcome with status code and
// an issue about expr (a prefix of one of its expressions; "" for any).
func wantOutcome(t *testing.T, r response, code int, expr string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d: %s", r.code, code, r.body)
	}
	var oo outcome
	r.json(t, &oo)
	if oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("not an OperationOutcome: %s", r.body)
	}
	if ct := r.hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type %q", ct)
	}
	if expr == "" {
		return
	}
	for _, is := range oo.Issue {
		for _, x := range is.Expression {
			if strings.HasPrefix(x, expr) {
				return
			}
		}
	}
	t.Errorf("no issue names %s: %s", expr, r.body)
}
