package fhir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/fhir"
	"github.com/google/go-cmp/cmp"
)

const ctFHIR = "application/fhir+json"

// strip removes what Custos owns in a served resource (id, meta's version
// and time) so that it compares with what was sent.
func strip(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "id")
	if meta, ok := m["meta"].(map[string]any); ok {
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
		if len(meta) == 0 {
			delete(m, "meta")
		}
	}
	return m
}

// Every official R4 and BALP example goes in through POST /fhir/AuditEvent
// and comes back out of GET /fhir/AuditEvent/{id} as sent, plus id and
// meta; the read is recorded first; what is served validates.
func TestCreateAndReadBackLossless(t *testing.T) {
	e := newEnv(t)
	for name, raw := range fhir.SampleResources(t) {
		t.Run(name, func(t *testing.T) {
			ct := ctFHIR
			if strings.HasPrefix(name, "audit") {
				ct = "application/json; charset=utf-8"
			}
			r := e.do("POST", "/fhir/AuditEvent", adminToken, ct, string(raw))
			if r.code != http.StatusCreated {
				t.Fatalf("create: %d %s", r.code, r.body)
			}
			loc := r.hdr.Get("Location")
			i := strings.Index(loc, "/fhir/AuditEvent/")
			if i < 0 || !strings.HasSuffix(loc, "/_history/1") {
				t.Fatalf("Location %q", loc)
			}
			id := strings.TrimSuffix(loc[i+len("/fhir/AuditEvent/"):], "/_history/1")
			fhir.Validate(t, "AuditEvent", r.body)
			before := e.size()
			got := e.do("GET", "/fhir/AuditEvent/"+id, adminToken, "", "")
			if got.code != http.StatusOK {
				t.Fatalf("read: %d %s", got.code, got.body)
			}
			if e.size() != before+1 {
				t.Errorf("the read was not recorded: size %d → %d", before, e.size())
			}
			fhir.Validate(t, "AuditEvent", got.body)
			var served struct{ ID string }
			json.Unmarshal(got.body, &served)
			if served.ID != id {
				t.Errorf("id %q, want %q", served.ID, id)
			}
			if d := cmp.Diff(strip(t, raw), strip(t, got.body)); d != "" {
				t.Errorf("not lossless (-sent +served):\n%s", d)
			}
			vr := e.do("GET", "/fhir/AuditEvent/"+id+"/_history/1", adminToken, "", "")
			if vr.code != http.StatusOK {
				t.Errorf("vread: %d %s", vr.code, vr.body)
			}
		})
	}
}

// Every shape of record Custos holds that came in another way is served as
// an AuditEvent that validates: events of /v1/events and Custos's own
// records of reads and searches.
func TestReadRecordsNotReceivedAsFHIR(t *testing.T) {
	e := newEnv(t)
	body := `[{"user":{"id":"dr.grey","name":"Meredith Grey","roles":["physician"]},"action":"READ","resource_type":"Patient","resource_id":"p-1","patient_id":"p-1","ip_address":"203.0.113.7","status_code":200,"source":"ehr-web"},
	{"user":{"id":"u2"},"action":"LOGIN","resource_type":"Session","outcome":"failure","ip_address":"2001:db8::1"},
	{"user":{"id":"u3"},"action":"EXPORT","resource_type":"Report","resource_id":"r 1","patient_id":"12345^^^&1.2&ISO","changes":{"rows":3},"break_glass":true,"break_glass_reason":"emergency"},
	{"user":{"id":"u4"},"action":"DELETE","resource_type":"Observation","resource_id":"o-1","status_code":500}]`
	r := e.do("POST", "/v1/events", adminToken, "application/json", body)
	if r.code != http.StatusCreated {
		t.Fatalf("%d %s", r.code, r.body)
	}
	e.do("GET", "/v1/events?patient_id=p-1", adminToken, "", "")             // a server search record
	e.do("GET", "/fhir/AuditEvent?patient=p-1&_count=5", adminToken, "", "") // a FHIR search record
	// State records of several kinds: a key created and revoked, a role.
	ctx := context.Background()
	k, _, err := e.keys.Create(ctx, nil, authn.KeySpec{Name: "ehr", Scopes: []custos.Scope{custos.ScopeIngest}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.keys.Revoke(ctx, nil, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.keys.PutRole(ctx, nil, custos.Role{Name: "ward_nurse", Permissions: []custos.Permission{"patient:read"}}, true); err != nil {
		t.Fatal(err)
	}
	states, err := e.st.StateRecords(ctx, -1)
	if err != nil {
		t.Fatal(err)
	}
	isState := map[uint64]bool{}
	for _, st := range states {
		isState[st.Index] = true
	}
	n := e.size()
	served := 0
	for i := range n { // every record of the ledger reads as an AuditEvent
		got := e.do("GET", fmt.Sprintf("/fhir/AuditEvent/%d", i), adminToken, "", "")
		if got.code != http.StatusOK {
			t.Fatalf("read %d: %d %s", i, got.code, got.body)
		}
		fhir.Validate(t, "AuditEvent", got.body)
		if isState[i] {
			served++
			if bytes.Contains(got.body, []byte("hash")) || bytes.Contains(got.body, []byte("scopes")) {
				t.Errorf("state record %d shows its document: %s", i, got.body)
			}
		}
	}
	if served < 3 {
		t.Errorf("served %d state records", served)
	}
}

func TestReadUnknownAndMalformedIDs(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"999999", "abc", "-1", "01", "1.5"} {
		wantOutcome(t, e.do("GET", "/fhir/AuditEvent/"+id, adminToken, "", ""), http.StatusNotFound, "")
	}
	wantOutcome(t, e.do("GET", "/fhir/AuditEvent/0/_history/2", adminToken, "", ""), http.StatusNotFound, "")
	wantOutcome(t, e.do("GET", "/fhir/Patient/1", adminToken, "", ""), http.StatusNotFound, "")
}
