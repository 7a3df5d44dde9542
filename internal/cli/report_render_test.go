package cli

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/report"
	"github.com/custos-audit/custos/internal/store"
)

// TestReportRenderings: `custos report --format html|csv|pdf` writes each
// rendering; PDF with a --chromium that does not exist exits 2 with a
// message naming the browser, before computing or recording anything.
func TestReportRenderings(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l := ledgertest.Open(t, dir, "custos.test/report", ledger.Config{})
	if _, err := l.Seq.Append(ctx, "custos", nil, ledger.LogKeyRecord(l.Signer.VerifierKey())); err != nil {
		t.Fatal(err)
	}
	read := custos.Event{User: custos.User{ID: "dr.grey", Roles: []string{"physician"}}, Action: custos.ActionRead,
		ResourceType: "Patient", PatientID: "p-1", Outcome: custos.OutcomeSuccess, Source: "ehr"}
	if _, err := l.Seq.Append(ctx, "apikey:ehr", []custos.Event{read}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	from, to := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	run := func(args ...string) (int, []byte, string) {
		var out, errb bytes.Buffer
		code := Main(ctx, append([]string{"report", "hipaa", "--data", dir, "--from", from, "--to", to, "--quiet"}, args...), &out, &errb)
		return code, out.Bytes(), errb.String()
	}
	if code, out, errs := run("--format", "html"); code != exitOK || !bytes.Contains(out, []byte("<h1>HIPAA compliance report</h1>")) {
		t.Fatalf("html: exit %d, %s %.100s", code, errs, out)
	}
	code, out, errs := run("--format", "csv")
	if code != exitOK {
		t.Fatalf("csv: exit %d, %s", code, errs)
	}
	if zr, err := zip.NewReader(bytes.NewReader(out), int64(len(out))); err != nil || zr.File[0].Name != "README.txt" {
		t.Fatalf("csv: not the archive: %v", err)
	}
	bogus := filepath.Join(t.TempDir(), "no-chromium-here")
	code, out, errs = run("--format", "pdf", "--chromium", bogus)
	if code != exitError || len(out) != 0 || !strings.Contains(errs, "Chromium") || !strings.Contains(errs, bogus) {
		t.Fatalf("pdf with a bogus browser: exit %d, stderr %q, %d bytes out", code, errs, len(out))
	}
	if p := report.NewPrinter(ctx, report.PrinterConfig{}); p.Available() == nil || os.Getenv("CUSTOS_TEST_CHROMIUM") != "" {
		file := filepath.Join(t.TempDir(), "r.pdf")
		code, _, errs = run("--format", "pdf", "--out", file)
		if pdf, err := os.ReadFile(file); code != exitOK || err != nil || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
			t.Fatalf("pdf: exit %d, %s, %v", code, errs, err)
		}
	}
	// Every rendering answered was recorded, the refused PDF was not.
	st := openStoreT(t, dir)
	evs, err := st.Events(ctx, store.Query{ResourceType: "Report", Action: string(custos.ActionExport), From: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	formats := map[string]int{}
	for _, e := range evs {
		for _, f := range []string{"html", "csv", "pdf"} {
			if strings.Contains(string(e.Changes), `"format":"`+f+`"`) {
				formats[f]++
			}
		}
	}
	if formats["html"] != 1 || formats["csv"] != 1 || formats["pdf"] > 1 {
		t.Errorf("recorded generations by format: %v", formats)
	}
}
