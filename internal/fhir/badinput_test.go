package fhir_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// minimal is the smallest valid AuditEvent; each bad input below changes
// one thing in it.
const minimal = `{"resourceType":"AuditEvent","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest"},` +
	`"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"read"}],"action":"R","recorded":"2026-11-25T08:00:00Z","outcome":"0",` +
	`"agent":[{"who":{"identifier":{"value":"dr.grey"}},"requestor":true,"network":{"address":"203.0.113.7","type":"2"}}],` +
	`"source":{"observer":{"display":"ehr-web"}},"entity":[{"what":{"reference":"Patient/p-1"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1"}}]}`

func without(key string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(minimal), &m); err != nil {
		panic(err)
	}
	delete(m, key)
	b, _ := json.Marshal(m)
	return string(b)
}

func TestMinimalIsAccepted(t *testing.T) {
	e := newEnv(t)
	if r := e.do("POST", "/fhir/AuditEvent", adminToken, ctFHIR, minimal); r.code != http.StatusCreated {
		t.Fatalf("%d %s", r.code, r.body)
	}
}

// Every bad input the issue lists is refused with an OperationOutcome
// naming the element, and stores nothing.
func TestBadResources(t *testing.T) {
	e := newEnv(t)
	big := strings.Replace(minimal, `"action":"R"`, `"outcomeDesc":"`+strings.Repeat("x", 1<<20)+`","action":"R"`, 1)
	for _, tc := range []struct {
		name, ctype, body string
		code              int
		expr              string
	}{
		{"another resource type", ctFHIR, `{"resourceType":"Patient","id":"p-1","name":[{"family":"Grey"}]}`, 400, "AuditEvent.resourceType"},
		{"no resource type", ctFHIR, `{"type":{"code":"rest"}}`, 400, "AuditEvent.resourceType"},
		{"missing type", ctFHIR, without("type"), 400, "AuditEvent.type"},
		{"missing recorded", ctFHIR, without("recorded"), 400, "AuditEvent.recorded"},
		{"missing agent", ctFHIR, without("agent"), 400, "AuditEvent.agent"},
		{"missing source", ctFHIR, without("source"), 400, "AuditEvent.source"},
		{"missing observer", ctFHIR, strings.Replace(minimal, `"observer":{"display":"ehr-web"}`, `"site":"x"`, 1), 400, "AuditEvent.source.observer"},
		{"missing requestor", ctFHIR, strings.Replace(minimal, `"requestor":true,`, ``, 1), 400, "AuditEvent.agent[0].requestor"},
		{"invalid action code", ctFHIR, strings.Replace(minimal, `"action":"R"`, `"action":"X"`, 1), 400, "AuditEvent.action"},
		{"invalid outcome code", ctFHIR, strings.Replace(minimal, `"outcome":"0"`, `"outcome":"3"`, 1), 400, "AuditEvent.outcome"},
		{"invalid network type", ctFHIR, strings.Replace(minimal, `"type":"2"`, `"type":"9"`, 1), 400, "AuditEvent.agent[0].network.type"},
		{"invalid date", ctFHIR, strings.Replace(minimal, `2026-11-25T08:00:00Z`, `2026-13-25T08:00:00Z`, 1), 400, "AuditEvent.recorded"},
		{"date without zone", ctFHIR, strings.Replace(minimal, `2026-11-25T08:00:00Z`, `2026-11-25T08:00:00`, 1), 400, "AuditEvent.recorded"},
		{"not on the calendar", ctFHIR, strings.Replace(minimal, `2026-11-25T`, `2026-02-30T`, 1), 400, "AuditEvent.recorded"},
		{"unknown element", ctFHIR, strings.Replace(minimal, `"action":"R"`, `"action":"R","actor":"x"`, 1), 400, "AuditEvent.actor"},
		{"case-variant element", ctFHIR, strings.Replace(minimal, `"action":"R"`, `"Action":"R"`, 1), 400, "AuditEvent.Action"},
		{"modifier extension", ctFHIR, strings.Replace(minimal, `"action":"R"`, `"action":"R","modifierExtension":[{"url":"http://x","valueBoolean":true}]`, 1), 400, "AuditEvent.modifierExtension"},
		{"primitive extension", ctFHIR, strings.Replace(minimal, `"action":"R"`, `"action":"R","_action":{"id":"a"}`, 1), 400, "AuditEvent._action"},
		{"extension without value", ctFHIR, strings.Replace(minimal, `"action":"R"`, `"action":"R","extension":[{"url":"http://x"}]`, 1), 400, "AuditEvent.extension[0]"},
		{"duplicate key", ctFHIR, strings.Replace(minimal, `"action":"R"`, `"action":"R","action":"C"`, 1), 400, "AuditEvent.action"},
		{"null", ctFHIR, strings.Replace(minimal, `"action":"R"`, `"action":null`, 1), 400, "AuditEvent"},
		{"empty string", ctFHIR, strings.Replace(minimal, `"display":"ehr-web"`, `"display":""`, 1), 400, "AuditEvent"},
		{"empty array", ctFHIR, strings.Replace(minimal, `"action":"R"`, `"action":"R","purposeOfEvent":[]`, 1), 400, "AuditEvent.purposeOfEvent"},
		{"wrong JSON type", ctFHIR, strings.Replace(minimal, `"requestor":true`, `"requestor":"yes"`, 1), 400, "AuditEvent.agent"},
		{"invalid UTF-8", ctFHIR, strings.Replace(minimal, `ehr-web`, "ehr-\xff", 1), 400, "AuditEvent.source.observer.display"},
		{"control character", ctFHIR, strings.Replace(minimal, `ehr-web`, `ehr\u0001web`, 1), 400, "AuditEvent.source.observer.display"},
		{"trailing data", ctFHIR, minimal + `{}`, 400, ""},
		{"malformed JSON", ctFHIR, minimal[:len(minimal)-3], 400, ""},
		{"an array", ctFHIR, "[" + minimal + "]", 400, "AuditEvent"},
		{"a Bundle to the type endpoint", ctFHIR, `{"resourceType":"Bundle","type":"batch"}`, 400, "AuditEvent.resourceType"},
		{"longer than Custos holds", ctFHIR, strings.Replace(minimal, `"dr.grey"`, `"`+strings.Repeat("g", 300)+`"`, 1), 422, "AuditEvent.agent[0].who"},
		{"XML", "application/fhir+xml", `<AuditEvent xmlns="http://hl7.org/fhir"/>`, 415, ""},
		{"no content type", "", minimal, 415, ""},
		{"another charset", "application/fhir+json; charset=latin1", minimal, 415, ""},
		{"another FHIR version", "application/fhir+json; fhirVersion=5.0", minimal, 415, ""},
		{"over the body limit", ctFHIR, big, 413, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.size()
			wantOutcome(t, e.do("POST", "/fhir/AuditEvent", adminToken, tc.ctype, tc.body), tc.code, tc.expr)
			if e.size() != before {
				t.Errorf("stored something: size %d → %d", before, e.size())
			}
		})
	}
}

// bundle returns a Bundle of the given type with n copies of minimal, the
// i-th replaced by bad[i] when given.
func bundle(typ string, n int, bad map[int]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"resourceType":"Bundle","type":%q,"entry":[`, typ)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		res := strings.Replace(minimal, "p-1", fmt.Sprintf("p-%d", i), 1)
		if r, ok := bad[i]; ok {
			res = r
		}
		fmt.Fprintf(&b, `{"fullUrl":"urn:uuid:00000000-0000-0000-0000-%012d","resource":%s,"request":{"method":"POST","url":"AuditEvent"}}`, i, res)
	}
	b.WriteString("]}")
	return b.String()
}

type bundleResp struct {
	ResourceType, Type string
	Entry              []struct {
		Response struct {
			Status, Location string
			Outcome          *outcome
		}
	}
}

func TestTransactionIsAllOrNothing(t *testing.T) {
	e := newEnv(t)
	before := e.size()
	bad := strings.Replace(minimal, `"action":"R"`, `"action":"Q"`, 1)
	wantOutcome(t, e.do("POST", "/fhir", adminToken, ctFHIR, bundle("transaction", 5, map[int]string{3: bad})), 400, "Bundle.entry[3].resource.action")
	if e.size() != before {
		t.Fatalf("a transaction with a bad entry stored something")
	}
	r := e.do("POST", "/fhir", adminToken, ctFHIR, bundle("transaction", 5, nil))
	if r.code != http.StatusOK {
		t.Fatalf("%d %s", r.code, r.body)
	}
	var br bundleResp
	r.json(t, &br)
	if br.Type != "transaction-response" || len(br.Entry) != 5 || e.size() != before+5 {
		t.Fatalf("type %s, %d entries, %d stored: %s", br.Type, len(br.Entry), e.size()-before, r.body)
	}
	for _, en := range br.Entry {
		if en.Response.Status != "201 Created" || !strings.HasPrefix(en.Response.Location, "AuditEvent/") {
			t.Errorf("entry response %+v", en.Response)
		}
	}
}

func TestBatchEntriesStandAlone(t *testing.T) {
	e := newEnv(t)
	before := e.size()
	bad := strings.Replace(minimal, `"recorded":"2026-11-25T08:00:00Z",`, ``, 1)
	r := e.do("POST", "/fhir", adminToken, "application/json", bundle("batch", 4, map[int]string{1: bad, 2: `{"resourceType":"Patient"}`}))
	if r.code != http.StatusOK {
		t.Fatalf("%d %s", r.code, r.body)
	}
	var br bundleResp
	r.json(t, &br)
	if br.Type != "batch-response" || len(br.Entry) != 4 || e.size() != before+2 {
		t.Fatalf("type %s, %d entries, %d stored: %s", br.Type, len(br.Entry), e.size()-before, r.body)
	}
	want := []string{"201 Created", "400 Bad Request", "400 Bad Request", "201 Created"}
	for i, en := range br.Entry {
		if en.Response.Status != want[i] {
			t.Errorf("entry %d: %s, want %s", i, en.Response.Status, want[i])
		}
	}
	if oo := br.Entry[1].Response.Outcome; oo == nil || oo.Issue[0].Expression[0] != "Bundle.entry[1].resource.recorded" {
		t.Errorf("entry 1 outcome %+v", oo)
	}
}

func TestBadBundles(t *testing.T) {
	e := newEnv(t)
	get := strings.Replace(bundle("transaction", 2, nil), `"method":"POST"`, `"method":"GET"`, 1)
	for _, tc := range []struct {
		name, body string
		code       int
		expr       string
	}{
		{"over-sized", bundle("batch", 601, nil), 413, ""},
		{"not a Bundle", minimal, 400, "Bundle.resourceType"},
		{"a collection", bundle("collection", 1, nil), 400, "Bundle.type"},
		{"no type", `{"resourceType":"Bundle"}`, 400, "Bundle.type"},
		{"an empty entry array", `{"resourceType":"Bundle","type":"batch","entry":[]}`, 400, "Bundle.entry"},
		{"an entry that is not a POST", get, 400, "Bundle.entry[0].request"},
		{"an entry without request", strings.Replace(bundle("transaction", 1, nil), `,"request":{"method":"POST","url":"AuditEvent"}`, ``, 1), 400, "Bundle.entry[0].request"},
		{"an unknown Bundle element", strings.Replace(bundle("batch", 1, nil), `"type":"batch"`, `"type":"batch","signature":{}`, 1), 400, "Bundle.signature"},
		{"a duplicate key in a resource", bundle("transaction", 2, map[int]string{1: strings.Replace(minimal, `"action":"R"`, `"action":"R","action":"R"`, 1)}), 400, "Bundle.entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.size()
			wantOutcome(t, e.do("POST", "/fhir", adminToken, ctFHIR, tc.body), tc.code, tc.expr)
			if e.size() != before {
				t.Errorf("stored something")
			}
		})
	}
}

// The routes need the permission the routes table names; errors are
// OperationOutcomes; metadata is open.
func TestPermissions(t *testing.T) {
	e := newEnv(t)
	ingest, read := e.newKey("ingest"), e.newKey("read")
	wantOutcome(t, e.do("POST", "/fhir/AuditEvent", "", ctFHIR, minimal), 401, "")
	wantOutcome(t, e.do("POST", "/fhir/AuditEvent", read, ctFHIR, minimal), 403, "")
	wantOutcome(t, e.do("POST", "/fhir", read, ctFHIR, bundle("batch", 1, nil)), 403, "")
	wantOutcome(t, e.do("GET", "/fhir/AuditEvent?patient=p-1", ingest, "", ""), 403, "")
	wantOutcome(t, e.do("GET", "/fhir/AuditEvent/1", ingest, "", ""), 403, "")
	wantOutcome(t, e.do("POST", "/fhir/AuditEvent/_search", ingest, "application/x-www-form-urlencoded", "patient=p-1"), 403, "")
	if r := e.do("POST", "/fhir/AuditEvent", ingest, ctFHIR, minimal); r.code != 201 {
		t.Errorf("ingest key: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/fhir/AuditEvent?patient=p-1", read, "", ""); r.code != 200 {
		t.Errorf("read key: %d %s", r.code, r.body)
	}
	r := e.do("GET", "/fhir/metadata", "", "", "")
	if r.code != 200 {
		t.Fatalf("metadata: %d %s", r.code, r.body)
	}
}
