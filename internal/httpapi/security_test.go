package httpapi_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/authn/password"
	"github.com/custos-audit/custos/internal/clocktest"
	"github.com/custos-audit/custos/internal/httpapi"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/monitor"
	"github.com/custos-audit/custos/internal/rules"
	"github.com/custos-audit/custos/internal/store"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// newMonitoredEnv is an access env whose API runs security monitoring.
func newMonitoredEnv(t *testing.T) (*accessEnv, *monitor.Monitor) {
	t.Helper()
	ctx := context.Background()
	c := clocktest.New(time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC))
	l := ledgertest.Open(t, t.TempDir(), "custos.test/security", ledger.Config{Now: c.Now, LocalClock: true})
	h, err := password.NewHasher(password.Config{Params: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	feed := ledger.NewStateFeed(l.Store, l.Signer.VerifierKey())
	dir, err := authn.NewDirectory(ctx, l.Seq, feed, authn.Config{Now: c.Now, Hasher: h})
	if err != nil {
		t.Fatal(err)
	}
	l.Seq.SetEnrich(dir.FlagEmergency)
	if _, err := dir.Bootstrap(ctx, adminToken); err != nil {
		t.Fatal(err)
	}
	mon, err := monitor.New(ctx, l.Store, l.Seq, feed, monitor.Config{Rules: rules.DefaultConfig(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(l.Seq, l.Store, dir, httpapi.Config{MaxBodyBytes: 64 << 10, MaxBatch: 50,
		CursorKey: []byte("k"), Registry: prometheus.NewRegistry(), Monitor: mon})
	e := &accessEnv{env: &env{t: t, st: l.Store, seq: l.Seq, signer: l.Signer, keys: dir}, clock: c, api: api, dir: dir}
	e.srv = httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		e.srv.Close()
		api.Close()
		l.Close()
	})
	return e, mon
}

// TestBlockedAddressIsRefused: five failed logins from the test's address
// block it; every route answers 403 at once, the health probes still
// answer; a lift lets it back in.
func TestBlockedAddressIsRefused(t *testing.T) {
	e, mon := newMonitoredEnv(t)
	for i := range 5 {
		e.clock.Add(time.Second)
		r := e.call("POST", "/v1/login", "", `{"user_id":"mallory","password":"guess number `+string(rune('a'+i))+`"}`)
		if r.code != 401 {
			t.Fatalf("failed login %d: %d %s", i+1, r.code, r.body)
		}
	}
	// The login handler woke the monitor; a pass makes the test deterministic.
	if err := mon.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := e.call("GET", "/v1/me", adminToken, "")
	if r.code != 403 || !strings.Contains(string(r.body), "blocked until") {
		t.Fatalf("a request from the blocked address: %d %s", r.code, r.body)
	}
	if r := e.call("GET", "/healthz", "", ""); r.code != 200 {
		t.Errorf("/healthz from a blocked address: %d", r.code)
	}
	blocks := mon.Blocks(true)
	if len(blocks) != 1 {
		t.Fatalf("blocks: %+v", blocks)
	}
	if _, err := mon.Lift(context.Background(), "apikey:bootstrap", blocks[0].ID, "the test's own address"); err != nil {
		t.Fatal(err)
	}
	var page struct {
		Items []monitor.SecurityEvent `json:"items"`
	}
	e.want(200, "GET", "/v1/security-events?event_type=BRUTE_FORCE", adminToken, "", &page)
	if len(page.Items) != 1 || page.Items[0].Severity != custos.SeverityHigh || page.Items[0].Count != 5 {
		t.Errorf("BRUTE_FORCE listed: %+v", page.Items)
	}
	e.want(200, "GET", "/v1/security-events?event_type=AUTH_FAILURE&limit=2", adminToken, "", &page)
	if len(page.Items) != 2 {
		t.Errorf("a page of 2 AUTH_FAILUREs: %d", len(page.Items))
	}
}

// TestSecurityRoutes: reports, status changes, manual blocks and the check,
// and their refusals, which change nothing.
func TestSecurityRoutes(t *testing.T) {
	e, _ := newMonitoredEnv(t)
	ingest := e.key(custos.RoleIngestService)
	var se monitor.SecurityEvent
	e.want(201, "POST", "/v1/security-events", ingest,
		`{"event_type":"DATA_EXPORT","severity":"MEDIUM","description":"nightly export","user":"etl","additional_data":{"records":12}}`, &se)
	if se.ID == "" || se.Status != custos.StatusOpen || se.ReportedBy == "" || se.Rule != "" {
		t.Errorf("reported: %+v", se)
	}
	e.want(200, "POST", "/v1/security-events/"+se.ID+"/status", adminToken, `{"status":"acknowledged","note":"expected"}`, &se)
	if se.Status != custos.StatusAcknowledged || len(se.History) != 1 {
		t.Errorf("after the status change: %+v", se)
	}
	var b monitor.Block
	e.want(201, "POST", "/v1/blocks", adminToken, `{"cidr":"198.51.100.0/24","reason":"scanner","duration":"2h"}`, &b)
	var check struct {
		Blocked bool          `json:"blocked"`
		Block   monitor.Block `json:"block"`
	}
	e.want(200, "GET", "/v1/blocks/check?ip=198.51.100.7", ingest, "", &check)
	if !check.Blocked || check.Block.ID != b.ID {
		t.Errorf("check of a blocked address: %+v", check)
	}
	e.want(200, "GET", "/v1/blocks/check?ip=198.51.101.7", ingest, "", &check)
	if check.Blocked {
		t.Errorf("check of a free address: %+v", check)
	}
	changes, err := e.st.Events(context.Background(), store.Query{ResourceType: "Block", ResourceID: b.ID, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Action != custos.ActionCreate {
		t.Errorf("the manual block's change record: %+v", changes)
	}
	e.want(200, "DELETE", "/v1/blocks/"+b.ID+"?note=done", adminToken, "", &b)
	if b.Active || b.LiftedAt == "" {
		t.Errorf("lifted: %+v", b)
	}
	for _, c := range []struct{ name, method, path, token, body, field string }{
		{"unknown type", "POST", "/v1/security-events", ingest, `{"event_type":"PEEK","severity":"LOW","description":"x"}`, "event_type"},
		{"unknown severity", "POST", "/v1/security-events", ingest, `{"event_type":"AUTH_FAILURE","severity":"SEVERE","description":"x"}`, "severity"},
		{"a rule from a client", "POST", "/v1/security-events", ingest, `{"event_type":"AUTH_FAILURE","severity":"LOW","description":"x","rule":"brute_force"}`, "rule"},
		{"bad address", "POST", "/v1/security-events", ingest, `{"event_type":"AUTH_FAILURE","severity":"LOW","description":"x","ip_address":"1.2.3"}`, "ip_address"},
		{"bad status", "POST", "/v1/security-events/" + se.ID + "/status", adminToken, `{"status":"closed"}`, "status"},
		{"bad cidr", "POST", "/v1/blocks", adminToken, `{"cidr":"198.51.100.0/33","reason":"x","duration":"1h"}`, "cidr"},
		{"too wide", "POST", "/v1/blocks", adminToken, `{"cidr":"10.0.0.0/8","reason":"x","duration":"1h"}`, "cidr"},
		{"everything", "POST", "/v1/blocks", adminToken, `{"cidr":"::/0","reason":"x","duration":"1h"}`, "cidr"},
		{"zero duration", "POST", "/v1/blocks", adminToken, `{"ip":"198.51.100.9","reason":"x","duration":"0s"}`, "duration"},
		{"negative duration", "POST", "/v1/blocks", adminToken, `{"ip":"198.51.100.9","reason":"x","duration":"-1h"}`, "duration"},
		{"ip and cidr", "POST", "/v1/blocks", adminToken, `{"ip":"198.51.100.9","cidr":"198.51.100.0/24","reason":"x","duration":"1h"}`, "ip"},
		{"unknown filter", "GET", "/v1/security-events?kind=x", adminToken, "", "kind"},
		{"bad check", "GET", "/v1/blocks/check?ip=nope", ingest, "", "ip"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.size()
			r := e.call(c.method, c.path, c.token, c.body)
			if r.code != 400 || !strings.Contains(string(r.body), `"field":"`+c.field+`"`) {
				t.Errorf("%d %s, want 400 naming %s", r.code, r.body, c.field)
			}
			if after := e.size(); after != before {
				t.Errorf("the ledger grew from %d to %d", before, after)
			}
		})
	}
	// An ingest key cannot manage blocks; the refusal is recorded.
	if r := e.call("POST", "/v1/blocks", ingest, `{"ip":"198.51.100.9","reason":"x","duration":"1h"}`); r.code != 403 {
		t.Errorf("an ingest key blocking: %d", r.code)
	}
}

// TestActiveBlocks: an application's key (blocks:check) lists the blocks in
// force, ranges and ends only; a lifted block leaves the list; a stranger
// parameter is refused naming it; a key without blocks:check is refused.
func TestActiveBlocks(t *testing.T) {
	e, _ := newMonitoredEnv(t)
	ingest := e.key(custos.RoleIngestService)
	var b monitor.Block
	e.want(201, "POST", "/v1/blocks", adminToken, `{"cidr":"198.51.100.0/24","reason":"scanner","duration":"2h"}`, &b)
	var lifted monitor.Block
	e.want(201, "POST", "/v1/blocks", adminToken, `{"ip":"203.0.113.9","reason":"mistake","duration":"1h"}`, &lifted)
	e.want(200, "DELETE", "/v1/blocks/"+lifted.ID+"?note=wrong", adminToken, "", &lifted)

	var list struct {
		Items []map[string]string `json:"items"`
	}
	r := e.want(200, "GET", "/v1/blocks/active", ingest, "", &list)
	want := []map[string]string{{"cidr": "198.51.100.0/24", "blocked_until": b.BlockedUntil}}
	if diff := cmp.Diff(want, list.Items); diff != "" {
		t.Errorf("active blocks (-want +got):\n%s", diff)
	}
	if strings.Contains(string(r.body), "scanner") {
		t.Errorf("the list carries a reason: %s", r.body)
	}
	if r := e.call("GET", "/v1/blocks/active?cidr=x", ingest, ""); r.code != 400 || !strings.Contains(string(r.body), `"field":"cidr"`) {
		t.Errorf("an unknown parameter: %d %s", r.code, r.body)
	}
	if r := e.call("GET", "/v1/blocks/active", e.key(custos.RoleAuditor), ""); r.code != 403 {
		t.Errorf("an auditor's key: %d %s", r.code, r.body)
	}
}
