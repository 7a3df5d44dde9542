package fhir_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/custos-audit/custos/internal/fhir"
)

type searchset struct {
	ResourceType, Type string
	Total              *int
	Link               []struct{ Relation, URL string }
	Entry              []struct {
		FullURL  string
		Resource json.RawMessage
		Search   struct{ Mode string }
	}
}

func (s searchset) next() string {
	for _, l := range s.Link {
		if l.Relation == "next" {
			return l.URL
		}
	}
	return ""
}

func (s searchset) matches() int {
	n := 0
	for _, e := range s.Entry {
		if e.Search.Mode == "match" {
			n++
		}
	}
	return n
}

// search runs a search, checks that it answers a valid searchset Bundle
// and that it was recorded, and returns it.
func (e *env) search(t *testing.T, query string, hdr ...string) searchset {
	t.Helper()
	before := e.size()
	r := e.do("GET", "/fhir/AuditEvent?"+query, adminToken, "", "", hdr...)
	if r.code != http.StatusOK {
		t.Fatalf("search %s: %d %s", query, r.code, r.body)
	}
	fhir.Validate(t, "Bundle", r.body)
	if e.size() <= before {
		t.Errorf("search %s was not recorded", query)
	}
	var s searchset
	r.json(t, &s)
	if s.ResourceType != "Bundle" || s.Type != "searchset" {
		t.Fatalf("not a searchset: %s", r.body)
	}
	return s
}

// loadSearchData stores the BALP and R4 examples as FHIR, and events of
// /v1/events, so that searches see records however they came in.
//
// It returns a date parameter that excludes the records of the searches
// that follow (each search is recorded, by patient).
func loadSearchData(t *testing.T, e *env) string {
	t.Helper()
	for _, raw := range fhir.SampleResources(t) {
		if r := e.do("POST", "/fhir/AuditEvent", adminToken, ctFHIR, string(raw), "Prefer", "return=minimal"); r.code != 201 {
			t.Fatalf("%d %s", r.code, r.body)
		}
	}
	var evs []string
	for i := range 30 {
		action := []string{"READ", "CREATE", "UPDATE", "DELETE", "LOGIN"}[i%5]
		outcome := "success"
		if i%7 == 0 {
			outcome = "failure"
		}
		evs = append(evs, fmt.Sprintf(`{"user":{"id":"u%d","name":"User %d","roles":["nurse"]},"action":%q,"resource_type":"Observation","resource_id":"o-%d","patient_id":"v1-p%d","ip_address":"198.51.100.%d","outcome":%q,"source":"ehr-web"}`,
			i%3, i%3, action, i, i%2, i%4, outcome))
	}
	if r := e.do("POST", "/v1/events", adminToken, "application/json", "["+strings.Join(evs, ",")+"]"); r.code != 201 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	return "date=le" + timeNow().UTC().Format("2006-01-02T15:04:05.000000Z")
}

// The expected counts were worked out from the example files by hand and
// by a separate script (the mapping rules of the README, FHIR).
func TestSearchParameters(t *testing.T) {
	e := newEnv(t)
	before := loadSearchData(t, e)
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"patient=ex-patient&_count=1000", 36},
		{"patient=Patient/ex-patient&_count=1000", 36},
		{"patient=http://example.org/fhir/Patient/ex-patient&_count=1000", 36},
		{"patient=v1-p0", 15},
		{"patient=v1-p0,v1-p1", 30},
		{"patient=v1-p0&patient=v1-p1", 0},
		{"patient=v1-p0,v1-p1&patient=v1-p1", 15},
		{"patient.identifier=v1-p1", 15},
		{"patient.identifier=urn:x|v1-p1", 0},
		{"agent=u0&patient=v1-p0", 5},
		{"agent=John Smith&_count=1000", 14},
		{"agent.identifier=https://carequality.org|JoeL", 1},
		{"address=198.51.100.1", 8},
		{"address=2001:0db8:85a3:0000:0000:8a2e:0370:7334&_count=1000", 38},
		{"address=http://server.example.com&date=ge" + timeNow().AddDate(0, 0, -30).Format("2006-01-02") + "&_count=1000", 39},
		{"entity=Observation/o-3", 1},
		{"entity=List/ex-list&_count=1000", 20},
		{"entity=Patient/v1-p1", 15},
		{"entity-type=http://terminology.hl7.org/CodeSystem/audit-entity-type|1&patient=ex-patient&_count=1000", 36},
		{"entity-role=4&patient=v1-p0", 15},
		{"outcome=4&patient=v1-p0", 3},
		{"outcome=0&patient=v1-p0", 12},
		{"outcome=0,4&patient=v1-p0", 15},
		{"source=ehr-web&patient=v1-p1", 15},
		{"site=ehr&patient=v1-p1", 15},
		{"type=rest&patient=v1-p0", 12},
		{"type=http://dicom.nema.org/resources/ontology/DCM|110114&patient=v1-p0", 3},
		{"subtype=read&patient=ex-patient&_count=1000", 9},
		{"subtype=http://hl7.org/fhir/restful-interaction|create,update&patient=v1-p0", 6},
		{"action=C&patient=v1-p0", 3},
		{"action=E&agent=95", 4},
		{"agent-name=user 1&patient=v1-p1", 5},
		{"agent-role=nurse&patient=v1-p1", 15},
		{"date=2026&patient=v1-p0", 15},
		{"date=lt2000-01-01&patient=v1-p0", 0},
		{"date=ge2000-01-01&date=le2999-12-31T23:59:59Z&patient=v1-p0", 15},
		{"date=gt2999-01&patient=v1-p0", 0},
	} {
		t.Run(tc.query, func(t *testing.T) {
			q := strings.ReplaceAll(tc.query, " ", "+")
			if strings.Contains(tc.query, "date=2026") {
				q = strings.Replace(q, "2026", thisYear(), 1)
			}
			s := e.search(t, q+"&"+before)
			if s.matches() != tc.want {
				t.Errorf("%d matches, want %d", s.matches(), tc.want)
			}
		})
	}
}

func thisYear() string {
	return fmt.Sprint(timeNow().Year())
}

func TestSearchPagingAndCount(t *testing.T) {
	e := newEnv(t)
	before := loadSearchData(t, e)
	seen := map[string]bool{}
	s := e.search(t, "patient=ex-patient&_count=7&"+before)
	pages := 1
	for {
		for _, en := range s.Entry {
			if seen[en.FullURL] {
				t.Fatalf("%s twice", en.FullURL)
			}
			seen[en.FullURL] = true
		}
		next := s.next()
		if next == "" {
			break
		}
		u, err := url.Parse(next)
		if err != nil || u.Query().Get("_cursor") == "" || u.Query().Get("patient") != "ex-patient" {
			t.Fatalf("next link %q", next)
		}
		s = e.search(t, u.RawQuery)
		pages++
	}
	if len(seen) != 36 || pages != 6 {
		t.Errorf("%d records in %d pages, want 36 in 6", len(seen), pages)
	}
	// Paging through a search that matches on each candidate.
	s = e.search(t, "patient=v1-p0&action=C&_count=1&"+before)
	n := s.matches()
	for s.next() != "" {
		u, _ := url.Parse(s.next())
		s = e.search(t, u.RawQuery)
		n += s.matches()
	}
	if n != 3 {
		t.Errorf("%d matches over the pages, want 3", n)
	}
	c := e.search(t, "patient=ex-patient&_summary=count&"+before)
	if c.Total == nil || *c.Total != 36 || len(c.Entry) != 0 {
		t.Errorf("_summary=count: total %v, %d entries", *c.Total, len(c.Entry))
	}
	c = e.search(t, "patient=v1-p0&_count=0&"+before)
	if c.Total == nil || *c.Total != 15 {
		t.Errorf("_count=0: total %v", *c.Total)
	}
	c = e.search(t, "patient=v1-p0&"+before)
	if c.Total == nil || *c.Total != 15 {
		t.Errorf("one page: total %v", *c.Total)
	}
	// POST _search answers the same.
	r := e.do("POST", "/fhir/AuditEvent/_search", adminToken, "application/x-www-form-urlencoded", "patient=v1-p0&_count=100&"+before)
	var ps searchset
	r.json(t, &ps)
	if r.code != 200 || ps.matches() != 15 {
		t.Errorf("POST _search: %d, %d matches", r.code, ps.matches())
	}
}

func TestSearchIsRecordedByPatient(t *testing.T) {
	e := newEnv(t)
	e.search(t, "patient=p-77")
	// The search is itself found by a search of that patient's trail.
	s := e.search(t, "patient=p-77")
	if s.matches() != 1 {
		t.Fatalf("%d records of the first search", s.matches())
	}
	var ae struct {
		Entity []struct {
			Role  struct{ Code string }
			Query string
		}
	}
	json.Unmarshal(s.Entry[0].Resource, &ae)
	if len(ae.Entity) == 0 || ae.Entity[0].Role.Code != "24" || ae.Entity[0].Query == "" {
		t.Errorf("the record of a search is not a BALP query: %s", s.Entry[0].Resource)
	}
}

func TestSearchRefusals(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		query string
		code  int
		expr  string
	}{
		{"patient=p-1&patinet=p-2", 400, "patinet"},
		{"patient:missing=true", 400, "patient:missing"},
		{"patient=p-1&_sort=date", 400, "_sort"},
		{"patient=p-1&_summary=true", 400, "_summary"},
		{"patient=p-1&_count=1001", 400, "_count"},
		{"patient=p-1&_count=-1", 400, "_count"},
		{"patient=p-1&_cursor=forged", 400, "_cursor"},
		{"patient=", 400, "patient"},
		{"patient=Practitioner/1", 400, "patient"},
		{"patient=" + strings.Repeat("p", 65), 400, "patient"},
		{"date=2026-13", 400, "date"},
		{"date=ne2026", 400, "date"},
		{"date=2026,2027", 400, "date"},
		{"outcome=3&patient=p-1", 400, "outcome"},
		{"action=C", 400, "query"},
		{"outcome=0", 400, "outcome"},
		{"type=rest&date=ge2000-01-01", 400, "query"},
		{"address=server.example&date=ge2020-01-01&date=le2025-01-01", 400, "query"},
		{"patient=p-1%ZZ", 400, "query"},
		{"patient=p-1&_format=xml", 406, ""},
		{"patient=p-1&_format=text/csv", 400, "_format"},
		{"patient=p-1&_pretty=yes", 400, "_pretty"},
		{"q=" + strings.Repeat("x", 3000), 400, "query"},
	} {
		t.Run(tc.query[:min(len(tc.query), 40)], func(t *testing.T) {
			before := e.size()
			wantOutcome(t, e.do("GET", "/fhir/AuditEvent?"+tc.query, adminToken, "", ""), tc.code, tc.expr)
			if e.size() != before {
				t.Errorf("a refused search was recorded")
			}
		})
	}
	wantOutcome(t, e.do("GET", "/fhir/AuditEvent?patient=p-1", adminToken, "", "", "Accept", "application/fhir+xml"), 406, "")
}

func TestSearchLenientAndFormats(t *testing.T) {
	e := newEnv(t)
	before := loadSearchData(t, e)
	s := e.search(t, "patient=v1-p0&colour=blue&"+before, "Prefer", "handling=lenient")
	if s.matches() != 15 || len(s.Entry) != 16 || s.Entry[15].Search.Mode != "outcome" {
		t.Errorf("lenient: %d matches, %d entries", s.matches(), len(s.Entry))
	}
	r := e.do("GET", "/fhir/AuditEvent?patient=v1-p0&_format=json&_pretty=true", adminToken, "", "")
	if r.code != 200 || !strings.Contains(string(r.body), "\n  \"resourceType\"") || !strings.HasPrefix(r.hdr.Get("Content-Type"), "application/fhir+json") {
		t.Errorf("_pretty: %d %q %.80s", r.code, r.hdr.Get("Content-Type"), r.body)
	}
	r = e.do("GET", "/fhir/AuditEvent?patient=v1-p0&_format=application/json", adminToken, "", "")
	if !strings.HasPrefix(r.hdr.Get("Content-Type"), "application/json") {
		t.Errorf("_format=application/json: %q", r.hdr.Get("Content-Type"))
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/fhir/metadata", "", "", "")
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	fhir.Validate(t, "CapabilityStatement", r.body)
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type        string
				SearchParam []struct{ Name string }
				Interaction []struct{ Code string }
			}
		}
	}
	r.json(t, &cs)
	var names []string
	for _, p := range cs.Rest[0].Resource[0].SearchParam {
		names = append(names, p.Name)
	}
	want := "date patient patient.identifier agent agent.identifier agent-name agent-role address entity entity-type entity-role outcome source site type subtype action"
	if strings.Join(names, " ") != want {
		t.Errorf("search parameters %v", names)
	}
	// Every listed parameter is accepted.
	for _, n := range names {
		v := "x"
		switch n {
		case "date":
			v = "2026"
		case "outcome":
			v = "0"
		}
		if r := e.do("GET", "/fhir/AuditEvent?patient=p-1&"+n+"="+v, adminToken, "", ""); r.code != 200 {
			t.Errorf("listed parameter %s: %d %s", n, r.code, r.body)
		}
	}
}
