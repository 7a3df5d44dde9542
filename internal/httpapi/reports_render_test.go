package httpapi_test

import (
	"archive/zip"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/httpapi"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/report"
	"github.com/prometheus/client_golang/prometheus"
)

// TestReportRenderingsOverHTTP: the HTML and CSV renderings are answered
// with their media types, each recorded as an EXPORT; a PDF asked of a
// server whose Chromium is missing is a 503 problem naming the browser,
// and records nothing.
func TestReportRenderingsOverHTTP(t *testing.T) {
	ctx := context.Background()
	l := ledgertest.Open(t, t.TempDir(), "custos.test/api", ledger.Config{CheckpointEvery: 1})
	keys, err := authn.NewDirectory(ctx, l.Seq, ledger.NewStateFeed(l.Store, l.Signer.VerifierKey()), authn.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Bootstrap(ctx, adminToken); err != nil {
		t.Fatal(err)
	}
	bogus := filepath.Join(t.TempDir(), "no-chromium-here")
	printer := report.NewPrinter(t.Context(), report.PrinterConfig{Path: bogus})
	api := httpapi.New(l.Seq, l.Store, keys, httpapi.Config{CursorKey: []byte("k"), Registry: prometheus.NewRegistry(),
		Reports:       report.NewBuilder(l.Store, report.Config{VerifierKey: l.Signer.VerifierKey(), Version: "test"}),
		ReportFormats: report.Formats{report.JSON(), report.CSV(), report.HTML(), report.PDF(printer)}})
	e := &env{t: t, srv: httptest.NewServer(api.Handler()), st: l.Store, seq: l.Seq, signer: l.Signer, keys: keys}
	t.Cleanup(func() {
		e.srv.Close()
		api.Close()
		l.Close()
	})
	ingest := e.newKey(custos.ScopeIngest)
	if r := e.do("POST", "/v1/events", ingest, "application/json", "["+ev("p-1")+"]"); r.code != http.StatusCreated {
		t.Fatalf("ingest: %d %s", r.code, r.body)
	}
	from, to := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	hipaa := "/v1/reports/hipaa?from=" + from + "&to=" + to

	r := e.do("GET", hipaa+"&format=html", adminToken, "", "")
	if r.code != http.StatusOK || r.hdr.Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(string(r.body), "<h1>HIPAA compliance report</h1>") || !strings.Contains(r.hdr.Get("Content-Disposition"), ".html") {
		t.Fatalf("html: %d %v %.200s", r.code, r.hdr, r.body)
	}
	r = e.do("GET", "/v1/patients/p-1/access-report?format=csv", adminToken, "", "")
	if r.code != http.StatusOK || r.hdr.Get("Content-Type") != "application/zip" {
		t.Fatalf("csv: %d %v %.200s", r.code, r.hdr, r.body)
	}
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil || len(zr.File) < 3 || zr.File[0].Name != "README.txt" {
		t.Fatalf("csv archive: %v", err)
	}
	before := len(e.exports())
	r = e.do("GET", hipaa+"&format=pdf", adminToken, "", "")
	if r.code != http.StatusServiceUnavailable || r.hdr.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(string(r.body), "Chromium") || !strings.Contains(string(r.body), "no-chromium-here") {
		t.Fatalf("pdf without a browser: %d %v %s", r.code, r.hdr, r.body)
	}
	if after := len(e.exports()); after != before {
		t.Errorf("a report that was not answered was recorded: %d EXPORTs, then %d", before, after)
	}
}
