package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// updating reports whether -update was given. The flag is defined once for
// the package's test binary, by the external tests (report_test.go); with
// -update, go test rewrites every golden file, theirs and these.
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// goldenCases are the reports of the fixed scenario every format is tested on.
var goldenCases = []struct {
	name   string
	report func() Report
}{
	{"hipaa", func() Report { return fixedHIPAA() }},
	{"hipaa_integrity_failed", func() Report { return failedHIPAA() }},
	{"patient_access", func() Report { return fixedAccess() }},
	{"disclosures", func() Report { return fixedDisclosures() }},
}

// golden compares got with testdata/report/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "report", name)
	if updating() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to write it)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got):\n%s", path, diff)
	}
}

func renderString(t testing.TB, f Format, r Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := f.Render(t.Context(), &b, r); err != nil {
		t.Fatalf("%s: %v", f.Name, err)
	}
	return b.String()
}

func TestHTMLGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			golden(t, c.name+".html", []byte(renderString(t, HTML(), c.report())))
		})
	}
}

// TestHTMLSections: every section is printed with its title and the
// regulation it evidences, in the order, after a header that holds
// the period, the generation time, the generator's version and the
// checkpoint.
func TestHTMLSections(t *testing.T) {
	r := fixedHIPAA()
	out := renderString(t, HTML(), r)
	head := out[:strings.Index(out, "<main>")]
	for _, want := range []string{"2026-11-02T00:00:00Z", "2026-11-09T00:00:00Z", "2026-11-09T08:30:00Z",
		"custos v0.9.0-test", "custos.example/ledger, tree size 1042, root "} {
		if !strings.Contains(head, want) {
			t.Errorf("the header lacks %q", want)
		}
	}
	infos := []SectionInfo{r.Scope.SectionInfo, r.Integrity.SectionInfo, r.AccessSummary.SectionInfo,
		r.LoginMonitoring.SectionInfo, r.SecurityEvents.SectionInfo, r.DataAccess.SectionInfo,
		r.EmergencyAccess.SectionInfo, r.SystemChanges.SectionInfo, r.Workforce.SectionInfo}
	last := 0
	body := out[len(head):]
	for _, in := range infos {
		i := strings.Index(body, "<h2>"+in.Title+"</h2>\n<p class=\"reg\">Evidence for "+in.Regulation+"</p>")
		if i < 0 {
			t.Errorf("section %q (%s) is missing", in.Title, in.Regulation)
			continue
		}
		if i < last {
			t.Errorf("section %q is out of order", in.Title)
		}
		last = i
	}
	if n := strings.Count(body, "<section "); n != len(infos) {
		t.Errorf("%d sections, want %d", n, len(infos))
	}
}

// TestHTMLIntegrityBanner: a report over a ledger that failed verification
// still renders, whole, with the failure in a red banner before anything
// else; a verified one has no banner.
func TestHTMLIntegrityBanner(t *testing.T) {
	ok := renderString(t, HTML(), fixedHIPAA())
	if strings.Contains(ok, `class="banner"`) || strings.Contains(ok, "Integrity check failed") {
		t.Error("a verified report shows the failure banner")
	}
	failed := renderString(t, HTML(), failedHIPAA())
	body := failed[strings.Index(failed, "<body>"):]
	if !strings.HasPrefix(body, "<body>\n<div class=\"banner\" role=\"alert\">\n<p><strong>Integrity check failed.</strong></p>\n<p>The ledger did NOT verify") {
		t.Errorf("the banner is not the first thing in the body:\n%.300s", body)
	}
	for _, want := range []string{"record 517: the stored bytes do not hash", `<section id="integrity" class="alert">`,
		"<td>FAILED</td>", `<section id="workforce">`} {
		if !strings.Contains(failed, want) {
			t.Errorf("the failed report lacks %q", want)
		}
	}
}

// externalRef matches what would make a browser fetch or run something.
var externalRef = regexp.MustCompile(`(?i)https?://|\bsrc\s*=|<script|<link|<iframe|<object|<embed|@import|url\(|@font-face|javascript:`)

// TestHTMLNoExternalAssets: the document is self-contained: no script, no
// web font, no remote URL, no src attribute.
func TestHTMLNoExternalAssets(t *testing.T) {
	for _, c := range goldenCases {
		out := renderString(t, HTML(), c.report())
		if m := externalRef.FindAllString(out, -1); m != nil {
			t.Errorf("%s: external references %q", c.name, m)
		}
	}
}

// TestHTMLEscapes: attacker-written fields (user names, resource types,
// descriptions, the checkpoint's origin, …) come out as text, in the tables
// and in the SVG charts alike.
func TestHTMLEscapes(t *testing.T) {
	for _, r := range []Report{hostileHIPAA(), hostileAccess()} {
		out := renderString(t, HTML(), r)
		for _, bad := range []string{"<script", "<img", "<svg onload", "</style><", "]]><!--"} {
			if strings.Contains(out, bad) {
				t.Errorf("%T: the output holds %q unescaped", r, bad)
			}
		}
		if !strings.Contains(out, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%T: the payload is not shown as text", r)
		}
		checkSVG(t, out)
	}
}

// checkSVG parses every inline chart as XML and fails on any element a chart
// does not draw, or any attribute that runs something.
func checkSVG(t *testing.T, out string) {
	t.Helper()
	allowed := map[string]bool{"svg": true, "title": true, "text": true, "g": true, "rect": true, "line": true}
	charts := regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAllString(out, -1)
	if len(charts) == 0 {
		t.Fatal("no chart")
	}
	for _, c := range charts {
		d := xml.NewDecoder(strings.NewReader(c))
		for {
			tok, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("a chart is not well-formed: %v\n%s", err, c)
			}
			if se, ok := tok.(xml.StartElement); ok {
				if !allowed[se.Name.Local] {
					t.Errorf("a chart holds a <%s> element", se.Name.Local)
				}
				for _, a := range se.Attr {
					if strings.HasPrefix(strings.ToLower(a.Name.Local), "on") || a.Name.Local == "href" {
						t.Errorf("a chart holds the attribute %s=%q", a.Name.Local, a.Value)
					}
				}
			}
		}
	}
}

func TestUnsupportedReport(t *testing.T) {
	for _, f := range []Format{HTML(), CSV()} {
		if err := f.Render(t.Context(), io.Discard, &Header{}); !errors.Is(err, ErrUnsupportedReport) {
			t.Errorf("%s of a bare header: %v, want ErrUnsupportedReport", f.Name, err)
		}
	}
}

func BenchmarkHTML(b *testing.B) {
	r := largeHIPAA()
	for b.Loop() {
		if err := HTML().Render(b.Context(), io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}
