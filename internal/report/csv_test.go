package report

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"testing"
)

// unzip returns the archive's files in order, name and content.
func unzip(t testing.TB, data []byte) (names []string, files map[string]string) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	files = map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		names = append(names, f.Name)
		files[f.Name] = string(b)
	}
	return names, files
}

// TestCSVGolden: the archive's files, in order, against a text golden file
// (the zip's bytes depend on the compressor; its content must not).
func TestCSVGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			names, files := unzip(t, []byte(renderString(t, CSV(), c.report())))
			var b strings.Builder
			for _, n := range names {
				fmt.Fprintf(&b, "=== %s\n%s", n, files[n])
			}
			golden(t, c.name+".csv.txt", []byte(b.String()))
		})
	}
}

// TestCSVTables: one file per table of the HTML rendering, each a valid
// CSV whose rows are as wide as its header, after README.txt and
// summary.csv; the README says what the report is.
func TestCSVTables(t *testing.T) {
	r := fixedHIPAA()
	names, files := unzip(t, []byte(renderString(t, CSV(), r)))
	d := hipaaDocument(r)
	want := []string{"README.txt", "summary.csv"}
	for _, s := range d.Sections {
		for _, tb := range s.Tables {
			want = append(want, tb.Name+".csv")
		}
	}
	if len(names) != len(want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Errorf("file %d is %s, want %s", i, names[i], want[i])
		}
	}
	for _, n := range names[1:] {
		rows, err := csv.NewReader(strings.NewReader(files[n])).ReadAll()
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if len(rows) == 0 {
			t.Errorf("%s has no header", n)
		}
	}
	readme := files["README.txt"]
	for _, s := range []string{"Period:       2026-11-02T00:00:00Z to 2026-11-09T00:00:00Z (exclusive)",
		"Generated at: 2026-11-09T08:30:00Z", "Generator:    custos v0.9.0-test",
		"Checkpoint:   custos.example/ledger, tree size 1042, root ", "Integrity:    verified", "login_blocks.csv: "} {
		if !strings.Contains(readme, s) {
			t.Errorf("README.txt lacks %q:\n%s", s, readme)
		}
	}
	if got := strings.Count(files["security_events.csv"], "\r\n"); got != 1+len(r.SecurityEvents.Events) {
		t.Errorf("security_events.csv has %d lines, want the header and %d events", got, len(r.SecurityEvents.Events))
	}
	_, failed := unzip(t, []byte(renderString(t, CSV(), failedHIPAA())))
	if !strings.Contains(failed["README.txt"], "Integrity:    FAILED. The ledger did NOT verify") {
		t.Errorf("the failed report's README does not say so:\n%s", failed["README.txt"])
	}
}

// TestCSVInjection: no cell of any file starts with a character that makes
// a spreadsheet run it as a formula, and the payloads are still there,
// behind an apostrophe.
func TestCSVInjection(t *testing.T) {
	for _, r := range []Report{hostileHIPAA(), hostileAccess()} {
		_, files := unzip(t, []byte(renderString(t, CSV(), r)))
		found := 0
		for name, content := range files {
			if !strings.HasSuffix(name, ".csv") {
				continue
			}
			rows, err := csv.NewReader(strings.NewReader(content)).ReadAll()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, row := range rows {
				for _, cell := range row {
					if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
						t.Errorf("%s: the cell %q would run as a formula", name, cell)
					}
					if strings.HasPrefix(cell, `'=HYPERLINK(`) || strings.HasPrefix(cell, `'@SUM(`) {
						found++
					}
				}
			}
		}
		if found == 0 {
			t.Errorf("%T: the neutralised payloads are missing", r)
		}
	}
}

func TestNeutralise(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "dr.grey": "dr.grey", "=1+1": "'=1+1", "+1": "'+1", "-1": "'-1", "@A1": "'@A1",
		"\t=1": "'\t=1", "\r=1": "'\r=1", "2026-11-02T00:00:00Z": "2026-11-02T00:00:00Z", "a=b": "a=b", "'=x": "'=x",
	} {
		if got := neutralise(in); got != want {
			t.Errorf("neutralise(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkCSV(b *testing.B) {
	r := largeHIPAA()
	for b.Loop() {
		if err := CSV().Render(b.Context(), io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}
