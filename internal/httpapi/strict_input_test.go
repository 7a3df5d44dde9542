package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// strictRefused runs one request that must be refused with code, naming field
// first, and must leave the ledger as it was (no event, no READ record).
func (e *env) strictRefused(t *testing.T, method, path, token, ctype, body string, code int, field string) {
	t.Helper()
	before := e.size()
	r := e.do(method, path, token, ctype, body)
	if r.code != code {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.code, code, r.body)
	}
	if ct := r.hdr.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("content type %q, want application/problem+json", ct)
	}
	var p struct{ Errors []custos.FieldError }
	r.json(t, &p)
	if field != "-" && (len(p.Errors) == 0 || p.Errors[0].Field != field) {
		t.Errorf("errors %+v, want field %q first", p.Errors, field)
	}
	if after := e.size(); after != before {
		t.Errorf("the ledger grew from %d to %d", before, after)
	}
}

// TestStrictEventBodies: through real HTTP, a body that encoding/json would
// read as something other than it says is refused and nothing is stored.
func TestStrictEventBodies(t *testing.T) {
	e := newEnv(t)
	line := strings.ReplaceAll(ev("p-1"), "\n\t\t", "")
	for _, tc := range []struct {
		name, ctype, body, field string
	}{
		{"duplicate action, last would win", "application/json", strings.Replace(ev("p"), `"source"`, `"action":"DELETE","source"`, 1), "action"},
		{"duplicate in a batch", "application/json", "[" + ev("a") + "," + strings.Replace(ev("b"), `"source"`, `"action":"DELETE","source"`, 1) + "]", "[1].action"},
		{"duplicate user.id", "application/json", strings.Replace(ev("p"), `"id":"dr.grey"`, `"id":"dr.grey","id":"dr.evil"`, 1), "user.id"},
		{"ACTION", "application/json", strings.Replace(ev("p"), `"action"`, `"ACTION"`, 1), "ACTION"},
		{"Patient_ID", "application/json", strings.Replace(ev("p"), `"patient_id"`, `"Patient_ID"`, 1), "Patient_ID"},
		{"User", "application/json", strings.Replace(ev("p"), `"user"`, `"User"`, 1), "User"},
		{"duplicate in changes", "application/json", strings.Replace(ev("p"), `"source"`, `"changes":{"dose":"1mg","dose":"10mg"},"source"`, 1), "changes"},
		{"invalid UTF-8 in a field", "application/json", strings.Replace(ev("p"), `ehr-web`, "ehr\xffweb", 1), "source"},
		{"invalid UTF-8 in changes", "application/json", strings.Replace(ev("p"), `"source"`, "\"changes\":{\"a\":\"\xc3\x28\"},\"source\"", 1), "changes"},
		{"lone surrogate in changes", "application/json", strings.Replace(ev("p"), `"source"`, `"changes":{"a":"\ud800"},"source"`, 1), "changes"},
		{"control character in changes", "application/json", strings.Replace(ev("p"), `"source"`, `"changes":{"a":"\u0001"},"source"`, 1), "changes"},
		{"C1 control in a field", "application/json", strings.Replace(ev("p"), `ehr-web`, `ehr\u009bweb`, 1), "source"},
		{"NDJSON duplicate", "application/x-ndjson", line + "\n" + strings.Replace(line, `"source"`, `"action":"DELETE","source"`, 1) + "\n", "[1].action"},
		{"NDJSON invalid UTF-8", "application/x-ndjson", strings.Replace(line, `ehr-web`, "\xff", 1) + "\n", "[0].source"},
		{"time not a string", "application/json", strings.Replace(ev("p"), `"source"`, `"occurred_at":5,"source"`, 1), "occurred_at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.strictRefused(t, "POST", "/v1/events", adminToken, tc.ctype, tc.body, 400, tc.field)
		})
	}
}

// TestStrictKeyBodies: POST /v1/api-keys decodes as strictly as events do,
// and only from application/json.
func TestStrictKeyBodies(t *testing.T) {
	e := newEnv(t)
	good := `{"name":"ehr","scopes":["ingest"]}`
	for _, tc := range []struct {
		name, ctype, body string
		code              int
		field             string
	}{
		{"form encoded", "application/x-www-form-urlencoded", good, 415, "-"},
		{"no content type", "", good, 415, "-"},
		{"text", "text/plain", good, 415, "-"},
		{"duplicate name", "application/json", `{"name":"ehr","scopes":["ingest"],"name":"admin"}`, 400, "name"},
		{"duplicate scopes", "application/json", `{"name":"ehr","scopes":["ingest"],"scopes":["admin"]}`, 400, "scopes"},
		{"case variant", "application/json", `{"Name":"ehr","scopes":["ingest"]}`, 400, "Name"},
		{"unknown field", "application/json", `{"name":"ehr","scopes":["ingest"],"expires":1}`, 400, "expires"},
		{"invalid UTF-8 name", "application/json", "{\"name\":\"e\xffhr\",\"scopes\":[\"ingest\"]}", 400, "name"},
		{"NUL in name", "application/json", `{"name":"ehr\u0000","scopes":["ingest"]}`, 400, "name"},
		{"control character in name", "application/json", `{"name":"ehr\u001b[31m","scopes":["ingest"]}`, 400, "name"},
		{"newline in name", "application/json", `{"name":"ehr\nadmin","scopes":["ingest"]}`, 400, "name"},
		{"C1 control in name", "application/json", `{"name":"ehr\u0085","scopes":["ingest"]}`, 400, "name"},
		{"malformed", "application/json", `{"name":`, 400, ""},
		{"trailing data", "application/json", good + `{}`, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.strictRefused(t, "POST", "/v1/api-keys", adminToken, tc.ctype, tc.body, tc.code, tc.field)
		})
	}
	if r := e.do("POST", "/v1/api-keys", adminToken, "application/json; charset=utf-8", `{"name":"Zoë's EHR","scopes":["ingest"]}`); r.code != 201 {
		t.Fatalf("a good key: %d %s", r.code, r.body)
	}
}

// TestStrictQueryStrings: a query string that does not parse, or that
// gives a filter twice, empty or not as valid text, is refused: before, a
// pair url.Query could not parse was dropped and the search widened to
// every patient.
func TestStrictQueryStrings(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"p-1", "p-2", "p-3"} {
		if r := e.do("POST", "/v1/events", adminToken, "application/json", ev(p)); r.code != 201 {
			t.Fatal(r.code, string(r.body))
		}
	}
	reader := e.newKey(custos.ScopeRead)
	long := strings.Repeat("0", 70_000)
	for _, tc := range []struct{ name, query, field string }{
		{"bad escape", "patient_id=p-1%zz", "patient_id"},
		{"bad escape after a good pair", "limit=5&patient_id=p-1%z", "patient_id"},
		{"semicolon", "patient_id=p-1;", "patient_id"},
		{"semicolon separator", "patient_id=p-1;limit=5", "patient_id"},
		{"bad escape in a name", "patient%zz=p-1", "query"},
		{"given twice", "patient_id=p-1&patient_id=p-2", "patient_id"},
		{"empty filter", "patient_id=", "patient_id"},
		{"filter without a value", "patient_id", "patient_id"},
		{"empty limit", "patient_id=p-1&limit=", "limit"},
		{"invalid UTF-8", "patient_id=p-1%ff", "patient_id"},
		{"NUL", "patient_id=p-1%00", "patient_id"},
		{"control character", "user=dr%0Agrey", "user"},
		{"case variant", "Patient_ID=p-1", "Patient_ID"},
		{"invalid UTF-8 name", "patient_id%ff=p-1", "query"},
		{"over-long time", "from=2026-01-01T00:00:00." + long + "Z", "from"},
		{"over-long limit", "limit=" + long + "5", "limit"},
		{"limit with a sign", "limit=+5", "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.strictRefused(t, "GET", "/v1/events?"+tc.query, reader, "", "", 400, tc.field)
		})
	}
	// What does parse still searches, and '+' is a space as in any form.
	r := e.do("GET", "/v1/events?patient_id=p-1&limit=10&", reader, "", "")
	var page struct{ Items []custos.Event }
	r.json(t, &page)
	if r.code != 200 || len(page.Items) != 1 || page.Items[0].PatientID != "p-1" {
		t.Fatalf("a good search: %d %s", r.code, r.body)
	}
}

// TestSearchReadRecordCarriesPatient: the READ record of a search by
// patient carries the patient in patient_id, so a search for the patient's
// trail shows who searched it; the query stays in changes.
func TestSearchReadRecordCarriesPatient(t *testing.T) {
	e := newEnv(t)
	e.do("POST", "/v1/events", adminToken, "application/json", ev("p-42"))
	reader := e.newKey(custos.ScopeRead)
	if r := e.do("GET", "/v1/events?patient_id=p-42&limit=5", reader, "", ""); r.code != 200 {
		t.Fatalf("search: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/v1/events?resource_type=Patient&from="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), reader, "", ""); r.code != 200 {
		t.Fatalf("search: %d %s", r.code, r.body)
	}
	reads, err := e.st.Events(context.Background(), store.Query{ResourceType: "AuditEvent", Limit: 10})
	if err != nil || len(reads) != 2 {
		t.Fatalf("READ records: %d %v", len(reads), err)
	}
	byPatient, other := reads[1], reads[0]
	if byPatient.PatientID != "p-42" || other.PatientID != "" {
		t.Fatalf("READ records' patient_id: %q and %q, want p-42 and none", byPatient.PatientID, other.PatientID)
	}
	var changes struct {
		Query   map[string]string
		Results int
	}
	if err := json.Unmarshal(byPatient.Changes, &changes); err != nil || changes.Query["patient_id"] != "p-42" ||
		changes.Query["limit"] != "5" || changes.Results != 1 {
		t.Fatalf("READ record's changes: %s %v", byPatient.Changes, err)
	}
	// "Who searched this patient's trail?" is a patient search.
	r := e.do("GET", "/v1/events?patient_id=p-42&resource_type=AuditEvent", adminToken, "", "")
	var page struct{ Items []custos.Event }
	r.json(t, &page)
	if r.code != 200 || len(page.Items) != 1 || page.Items[0].User.ID == "" || page.Items[0].Index != byPatient.Index {
		t.Fatalf("searching the patient's trail for searches: %d %s", r.code, r.body)
	}
}
