package httpapi_test

import (
	"context"
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
	"github.com/custos-audit/custos/internal/report"
	"github.com/custos-audit/custos/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// newReportEnv is newEnv with reports wired in: JSON, and a stand-in for
// a renderer that plugs in ("html", writing the title).
func newReportEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	l := ledgertest.Open(t, t.TempDir(), "custos.test/api", ledger.Config{CheckpointEvery: 1})
	keys, err := authn.NewDirectory(ctx, l.Seq, ledger.NewStateFeed(l.Store, l.Signer.VerifierKey()), authn.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Bootstrap(ctx, adminToken); err != nil {
		t.Fatal(err)
	}
	html := report.Format{Name: "html", MediaType: "text/html; charset=utf-8", Extension: ".html",
		Render: func(_ context.Context, w io.Writer, r report.Report) error {
			_, err := io.WriteString(w, "<h1>"+r.ReportHeader().Title+"</h1>")
			return err
		}}
	api := httpapi.New(l.Seq, l.Store, keys, httpapi.Config{CursorKey: []byte("k"), Registry: prometheus.NewRegistry(),
		Reports:       report.NewBuilder(l.Store, report.Config{VerifierKey: l.Signer.VerifierKey(), Version: "test"}),
		ReportFormats: report.Formats{report.JSON(), html}})
	e := &env{t: t, srv: httptest.NewServer(api.Handler()), st: l.Store, seq: l.Seq, signer: l.Signer, keys: keys}
	t.Cleanup(func() {
		e.srv.Close()
		api.Close()
		l.Close()
	})
	return e
}

// exports lists the EXPORT events of the trail.
func (e *env) exports() []custos.Event {
	e.t.Helper()
	evs, err := e.st.Events(context.Background(), store.Query{Action: string(custos.ActionExport), From: time.Now().Add(-time.Hour)})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// TestReportsOverHTTP: a disclosure sent as an EXPORT event is in the
// patient's accounting of disclosures and in the HIPAA report; every report
// answered is recorded first (an EXPORT by the caller); the format comes
// from the parameter or the Accept header.
func TestReportsOverHTTP(t *testing.T) {
	e := newReportEnv(t)
	ingest := e.newKey(custos.ScopeIngest)
	export := `{"user":{"id":"dr.grey","roles":["physician"]},"action":"EXPORT","resource_type":"DocumentReference",
		"resource_id":"d-1","patient_id":"p-1","source":"ehr-web",
		"disclosure":{"recipient":"Acme Insurance","address":"1 Main St","purpose":"claim review"}}`
	if r := e.do("POST", "/v1/events", ingest, "application/json", "["+ev("p-1")+","+export+"]"); r.code != http.StatusCreated {
		t.Fatalf("ingest: %d %s", r.code, r.body)
	}
	var d report.Disclosures
	r := e.do("GET", "/v1/patients/p-1/disclosures", adminToken, "", "")
	if r.code != http.StatusOK || r.hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("disclosures: %d %s %s", r.code, r.hdr.Get("Content-Type"), r.body)
	}
	r.json(t, &d)
	if d.Total != 1 || d.Disclosures[0].Recipient != "Acme Insurance" || d.Disclosures[0].Address != "1 Main St" ||
		d.Disclosures[0].Purpose != "claim review" || d.Checkpoint.Size == 0 {
		t.Fatalf("accounting of disclosures: %+v", d)
	}
	if ex := e.exports(); len(ex) != 2 || ex[0].ResourceType != "Report" || ex[0].ResourceID != "disclosures" ||
		ex[0].PatientID != "p-1" || ex[0].Kind != custos.KindServer {
		t.Fatalf("the report's generation was not recorded: %+v", ex)
	}
	var pa report.PatientAccess
	e.do("GET", "/v1/patients/p-1/access-report", adminToken, "", "").json(t, &pa)
	if pa.PatientID != "p-1" || pa.Total < 2 { // the READ, the EXPORT (and the recorded report generation)
		t.Fatalf("access report: %+v", pa)
	}
	var empty report.PatientAccess
	if r := e.do("GET", "/v1/patients/nobody/access-report", adminToken, "", ""); r.code != http.StatusOK {
		t.Fatalf("an unknown patient: %d %s", r.code, r.body)
	} else if r.json(t, &empty); empty.Total != 0 || len(empty.Accesses) != 0 {
		t.Fatalf("an unknown patient's report is not empty: %+v", empty)
	}
	from, to := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	var h report.HIPAA
	r = e.do("GET", "/v1/reports/hipaa?from="+from+"&to="+to, adminToken, "", "")
	r.json(t, &h)
	if r.code != http.StatusOK || !h.Integrity.OK || len(h.DataAccess.Exports.Disclosures) != 1 || h.DataAccess.TotalPHIAccess < 2 {
		t.Fatalf("hipaa: %d %+v", r.code, h)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/reports/hipaa?from="+from+"&to="+to, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Accept", "application/pdf;q=0, text/html")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		string(body) != "<h1>HIPAA compliance report</h1>" || !strings.Contains(resp.Header.Get("Content-Disposition"), ".html") {
		t.Fatalf("html by Accept: %d %v %s", resp.StatusCode, resp.Header, body)
	}
}

// TestReportBadInput: each bad request is a problem naming the field and
// records nothing; a caller without reports:generate is refused 403 (and
// the refusal is recorded, as for every route).
func TestReportBadInput(t *testing.T) {
	e := newReportEnv(t)
	ok := "from=2026-03-01T00:00:00Z&to=2026-03-31T00:00:00Z"
	for _, tc := range []struct {
		name, path, accept string
		code               int
		field              string
	}{
		{"from after to", "/v1/reports/hipaa?from=2026-03-31T00:00:00Z&to=2026-03-01T00:00:00Z", "", 400, "from"},
		{"too long", "/v1/reports/hipaa?from=2020-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", "", 400, "to"},
		{"no period", "/v1/reports/hipaa", "", 400, "from"},
		{"bad time", "/v1/reports/hipaa?from=yesterday&to=2026-03-01T00:00:00Z", "", 400, "from"},
		{"unknown format", "/v1/reports/hipaa?" + ok + "&format=xml", "", 400, "format"},
		{"unknown parameter", "/v1/reports/hipaa?" + ok + "&patient_id=p-1", "", 400, "patient_id"},
		{"repeated parameter", "/v1/reports/hipaa?" + ok + "&from=2026-03-02T00:00:00Z", "", 400, "from"},
		{"semicolon", "/v1/reports/hipaa?from=2026-03-01T00:00:00Z;to=2026-03-31T00:00:00Z", "", 400, "from"},
		{"patient report, unknown parameter", "/v1/patients/p-1/access-report?user=x", "", 400, "user"},
		{"format not in this build", "/v1/reports/hipaa?" + ok + "&format=pdf", "", 406, "format"},
		{"nothing acceptable", "/v1/reports/hipaa?" + ok, "image/png", 406, "format"},
		{"patient period too long", "/v1/patients/p-1/disclosures?from=2010-01-01T00:00:00Z", "", 400, "from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.size()
			req, _ := http.NewRequest("GET", e.srv.URL+tc.path, nil)
			req.Header.Set("Authorization", "Bearer "+adminToken)
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || resp.Header.Get("Content-Type") != "application/problem+json" ||
				!strings.Contains(string(body), `"field":"`+tc.field+`"`) {
				t.Fatalf("%d %s %s, want %d naming %s", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.code, tc.field)
			}
			if after := e.size(); after != before {
				t.Fatalf("a refused report wrote %d records", after-before)
			}
		})
	}
	ingest := e.newKey(custos.ScopeIngest)
	before := e.size()
	if r := e.do("GET", "/v1/reports/hipaa?"+ok, ingest, "", ""); r.code != http.StatusForbidden {
		t.Fatalf("without reports:generate: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/v1/patients/p-1/access-report", ingest, "", ""); r.code != http.StatusForbidden {
		t.Fatalf("without reports:generate: %d %s", r.code, r.body)
	}
	if after := e.size(); after != before+2 {
		t.Fatalf("the refusals were not recorded: %d records", after-before)
	}
}

// TestDisclosureValidation: a disclosure is only on an EXPORT, with a
// recipient and a purpose.
func TestDisclosureValidation(t *testing.T) {
	e := newReportEnv(t)
	ingest := e.newKey(custos.ScopeIngest)
	for _, tc := range []struct{ action, disclosure, field string }{
		{"READ", `{"recipient":"Acme","purpose":"x"}`, "disclosure"},
		{"EXPORT", `{"purpose":"x"}`, "disclosure.recipient"},
		{"EXPORT", `{"recipient":"Acme"}`, "disclosure.purpose"},
		{"EXPORT", `{"recipient":"A\u0007cme","purpose":"x"}`, "disclosure.recipient"},
	} {
		body := `{"user":{"id":"u"},"action":"` + tc.action + `","resource_type":"Patient","patient_id":"p-1","disclosure":` + tc.disclosure + `}`
		before := e.size()
		r := e.do("POST", "/v1/events", ingest, "application/json", body)
		if r.code != http.StatusBadRequest || !strings.Contains(string(r.body), `"field":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", body, r.code, r.body, tc.field)
		}
		if e.size() != before {
			t.Errorf("%s was stored", body)
		}
	}
}
