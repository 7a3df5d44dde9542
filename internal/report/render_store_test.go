package report_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/custos-audit/custos/internal/report"
)

// TestRenderStoreScenario renders the reports computed from a real ledger
// (the fixed scenario of report_test.go, on SQLite), in every format, and
// checks what a reader relies on: each section's title and regulation, the
// header, self-contained HTML, one CSV file per table whose summary figures
// equal the model's, and a PDF whose text holds the section titles. A
// tampered ledger's report says so first in every format.
func TestRenderStoreScenario(t *testing.T) {
	s := newScenario(t, "sqlite")
	b := s.builder(report.Config{})
	ctx := context.Background()
	h, err := b.HIPAA(ctx, report.Request{From: periodFrom, To: periodTo, GeneratedBy: "auditor"})
	if err != nil {
		t.Fatal(err)
	}
	pa, err := b.PatientAccess(ctx, report.PatientRequest{PatientID: "p-1", GeneratedBy: "privacy-officer"})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := b.Disclosures(ctx, report.PatientRequest{PatientID: "p-1", GeneratedBy: "privacy-officer"})
	if err != nil {
		t.Fatal(err)
	}
	titles := map[report.Report][]report.SectionInfo{
		h: {h.Scope.SectionInfo, h.Integrity.SectionInfo, h.AccessSummary.SectionInfo, h.LoginMonitoring.SectionInfo,
			h.SecurityEvents.SectionInfo, h.DataAccess.SectionInfo, h.EmergencyAccess.SectionInfo,
			h.SystemChanges.SectionInfo, h.Workforce.SectionInfo},
		pa: {{Title: "Who accessed the record of patient p-1", Regulation: pa.Regulation}},
		ds: {{Title: "Disclosures of the protected health information of patient p-1", Regulation: ds.Regulation}},
	}
	for r, infos := range titles {
		hd := r.ReportHeader()
		t.Run(string(hd.Kind), func(t *testing.T) {
			html := render(t, report.HTML(), r)
			for _, in := range infos {
				if in.Title == "" || !strings.Contains(html, "<h2>"+in.Title+"</h2>") || !strings.Contains(html, "Evidence for "+in.Regulation) {
					t.Errorf("section %+v missing from the HTML", in)
				}
			}
			for _, want := range []string{hd.Period.From.Format("2006-01-02T15:04:05Z"), hd.GeneratedAt.UTC().Format("2006-01-02T15:04:05Z"),
				"custos test", fmt.Sprintf("tree size %d", hd.Checkpoint.Size)} {
				if !strings.Contains(html, want) {
					t.Errorf("the HTML lacks %q", want)
				}
			}
			if m := regexp.MustCompile(`(?i)https?://|\bsrc\s*=|<script`).FindString(html); m != "" {
				t.Errorf("the HTML holds %q", m)
			}
			if strings.Contains(html, `class="banner"`) {
				t.Error("an intact ledger's report shows the failure banner")
			}
			files := unzipAll(t, []byte(render(t, report.CSV(), r)))
			if !strings.Contains(files["README.txt"], "Checkpoint:   ") || len(files) < 3 {
				t.Errorf("the CSV archive holds %d files; README:\n%s", len(files), files["README.txt"])
			}
		})
	}
	summary := csvRows(t, unzipAll(t, []byte(render(t, report.CSV(), h)))["summary.csv"])
	for item, want := range map[string]int64{
		"Audit events": h.AccessSummary.TotalEvents, "Failed log-ins": h.LoginMonitoring.Failures,
		"Security events": h.SecurityEvents.Total, "Accesses to PHI (events naming a patient)": h.DataAccess.TotalPHIAccess,
		"Changes": h.SystemChanges.Total,
	} {
		if got := summary[item]; got != fmt.Sprint(want) {
			t.Errorf("summary.csv: %s = %q, the model says %d", item, got, want)
		}
	}
	if h.AccessSummary.TotalEvents == 0 {
		t.Error("the scenario's report counts no event")
	}
	pdfHolds(t, h, infos(titles[h]))

	// The same ledger, tampered with: the failure comes first in every format.
	s.tamper(t, "UPDATE events SET user_id = 'someone.else' WHERE idx = "+fmt.Sprint(*h.Integrity.FirstIndex))
	bad, err := b.HIPAA(ctx, report.Request{From: periodFrom, To: periodTo})
	if err != nil {
		t.Fatal(err)
	}
	html := render(t, report.HTML(), bad)
	if i := strings.Index(html, `<div class="banner" role="alert">`); i < 0 || i > strings.Index(html, "<h1>") {
		t.Error("the tampered ledger's HTML does not open with the banner")
	}
	if !strings.Contains(html, bad.Warning[:40]) {
		t.Errorf("the banner does not say %q", bad.Warning)
	}
	if readme := unzipAll(t, []byte(render(t, report.CSV(), bad)))["README.txt"]; !strings.Contains(readme, "Integrity:    FAILED") {
		t.Errorf("the CSV README does not say the integrity failed:\n%s", readme)
	}
	pdfHolds(t, bad, append(infos(titles[h]), "Integrity check failed"))
}

func infos(in []report.SectionInfo) []string {
	var out []string
	for _, i := range in {
		out = append(out, i.Title)
	}
	return out
}

// pdfHolds prints r when a browser is there (see testPrinter in pdf_test.go
// for when its absence fails the test instead) and checks its text.
func pdfHolds(t *testing.T, r report.Report, want []string) {
	t.Helper()
	p := report.NewPrinter(t.Context(), report.PrinterConfig{Path: os.Getenv("CUSTOS_CHROMIUM")})
	defer p.Close()
	if p.Available() != nil || exec.Command("pdftotext", "-v").Run() != nil {
		if os.Getenv("CUSTOS_TEST_CHROMIUM") != "" {
			t.Fatalf("no Chromium or pdftotext: %v", p.Available())
		}
		t.Log("no Chromium: the PDF is not checked")
		return
	}
	file := filepath.Join(t.TempDir(), "r.pdf")
	if err := os.WriteFile(file, []byte(render(t, report.PDF(p), r)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", file, "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(out)), " ")
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("the PDF's text lacks %q", w)
		}
	}
}

func render(t *testing.T, f report.Format, r report.Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := f.Render(t.Context(), &b, r); err != nil {
		t.Fatalf("%s: %v", f.Name, err)
	}
	return b.String()
}

func unzipAll(t *testing.T, data []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name] = string(b)
	}
	return files
}

// csvRows maps summary.csv's items to their values.
func csvRows(t *testing.T, content string) map[string]string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(content)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, r := range rows[1:] {
		m[r[2]] = r[3]
	}
	return m
}
