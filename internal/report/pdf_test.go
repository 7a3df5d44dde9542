package report

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/custos-audit/custos"
)

// testPrinter returns a Printer over the machine's Chromium, or skips when
// there is none and CUSTOS_TEST_CHROMIUM is unset (CI sets it, so there a
// missing browser fails the test).
func testPrinter(t testing.TB) *Printer {
	t.Helper()
	p := NewPrinter(t.Context(), PrinterConfig{Path: os.Getenv("CUSTOS_CHROMIUM")})
	if err := p.Available(); err != nil {
		if os.Getenv("CUSTOS_TEST_CHROMIUM") == "" {
			t.Skipf("no Chromium (set CUSTOS_TEST_CHROMIUM=1 to fail instead): %v", err)
		}
		t.Fatal(err)
	}
	for _, tool := range []string{"pdftotext", "pdftoppm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CUSTOS_TEST_CHROMIUM") == "" {
				t.Skipf("no %s (poppler-utils)", tool)
			}
			t.Fatalf("%s (poppler-utils) is needed: %v", tool, err)
		}
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// pdfText writes pdf to a file, renders every page with pdftoppm -png and
// returns pdftotext's text and the number of page images.
func pdfText(t *testing.T, pdf []byte) (text string, pages int) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "report.pdf")
	if err := os.WriteFile(file, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("pdftoppm", "-png", "-r", "40", file, filepath.Join(dir, "page")).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v\n%s", err, out)
	}
	pngs, _ := filepath.Glob(filepath.Join(dir, "page*.png"))
	for _, p := range pngs {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("page image %s is empty", p)
		}
	}
	out, err := exec.Command("pdftotext", "-layout", file, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return string(out), len(pngs)
}

// TestPDF prints the fixed scenario's reports with the real browser and
// reads them back with poppler: every section title, the regulation it
// evidences and the period are in the text, each section starts a page,
// and a failed verification is said first.
func TestPDF(t *testing.T) {
	p := testPrinter(t)
	f := PDF(p)
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			r := c.report()
			var b bytes.Buffer
			if err := f.Render(t.Context(), &b, r); err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b.Bytes(), []byte("%PDF-")) {
				t.Fatalf("not a PDF: %.20q", b.Bytes())
			}
			text, pages := pdfText(t, b.Bytes())
			flat := strings.Join(strings.Fields(text), " ") // pdftotext wraps lines
			d, _ := documentOf(r)
			want := []string{d.From, d.To, d.GeneratedAt, d.Generator}
			for _, s := range d.Sections {
				want = append(want, s.Title, s.Regulation)
			}
			for _, w := range want {
				if !strings.Contains(flat, w) {
					t.Errorf("the PDF's text lacks %q", w)
				}
			}
			if pages < len(d.Sections) {
				t.Errorf("%d pages for %d sections, each of which starts a page", pages, len(d.Sections))
			}
			failed := strings.Index(flat, "Integrity check failed")
			if d.IntegrityFailed != (failed >= 0) {
				t.Errorf("integrity failed %v, but the banner's index is %d", d.IntegrityFailed, failed)
			}
			if failed > 0 && failed > strings.Index(flat, d.Title) {
				t.Error("the failure is not said before the title")
			}
		})
	}
}

// TestPDFEscapes: hostile fields print as text; the page runs no script
// (a script that ran would have replaced the document).
func TestPDFEscapes(t *testing.T) {
	p := testPrinter(t)
	var b bytes.Buffer
	if err := PDF(p).Render(t.Context(), &b, hostileAccess()); err != nil {
		t.Fatal(err)
	}
	text, _ := pdfText(t, b.Bytes())
	if !strings.Contains(text, "<script>alert(1)</script>") {
		t.Errorf("the payload is not printed as text:\n%s", text)
	}
}

// TestPDFNoBrowser: with a browser path that does not exist, the format
// answers an Unavailable error that names the missing browser, before any
// work, and a Printer never starts one.
func TestPDFNoBrowser(t *testing.T) {
	bogus := filepath.Join(t.TempDir(), "no-such-chromium")
	p := NewPrinter(t.Context(), PrinterConfig{Path: bogus})
	for _, err := range []error{p.Available(), PDF(p).Render(t.Context(), &bytes.Buffer{}, fixedHIPAA()),
		p.Print(t.Context(), &bytes.Buffer{}, []byte("<p>x"), "")} {
		if !errors.Is(err, ErrNoBrowser) {
			t.Errorf("%v: not ErrNoBrowser", err)
		}
		if k := custos.KindOf(err); k != custos.Unavailable {
			t.Errorf("kind %v, want unavailable", k)
		}
		var e *custos.Error
		if !errors.As(err, &e) || !strings.Contains(e.Detail, "Chromium") || !strings.Contains(e.Detail, bogus) {
			t.Errorf("the client-safe detail does not name the browser: %v", err)
		}
	}
	if _, err := FindBrowser(""); err == nil {
		t.Setenv("PATH", t.TempDir())
		if _, err := FindBrowser(""); !errors.Is(err, ErrNoBrowser) || !strings.Contains(err.Error(), "chromium") {
			t.Errorf("with an empty PATH: %v", err)
		}
	}
}

// TestPDFNotABrowser: an executable that is not a browser fails to start,
// as Unavailable, within the timeout.
func TestPDFNotABrowser(t *testing.T) {
	p := NewPrinter(t.Context(), PrinterConfig{Path: "/bin/false"})
	err := p.Print(t.Context(), &bytes.Buffer{}, []byte("<p>x"), "")
	if custos.KindOf(err) != custos.Unavailable {
		t.Errorf("printing with /bin/false: %v, want an unavailable error", err)
	}
}

// TestPDFCancelled: a print whose context has ended fails, and the shared
// browser keeps serving the next one.
func TestPDFCancelled(t *testing.T) {
	p := testPrinter(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.Print(ctx, &bytes.Buffer{}, []byte("<p>x"), ""); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled print: %v", err)
	}
	var b bytes.Buffer
	if err := p.Print(t.Context(), &b, []byte("<p>after</p>"), ""); err != nil || !bytes.HasPrefix(b.Bytes(), []byte("%PDF-")) {
		t.Errorf("the next print: %v", err)
	}
}

// BenchmarkPDF measures printing the large scenario (a month; 1,000
// security events, changes and disclosures): with the browser reused, as
// the server does, and with a fresh browser per report.
func BenchmarkPDF(b *testing.B) {
	r := largeHIPAA()
	b.Run("reused", func(b *testing.B) {
		p := testPrinter(b)
		f := PDF(p)
		if err := f.Render(b.Context(), &bytes.Buffer{}, r); err != nil { // start the browser
			b.Fatal(err)
		}
		var n int
		for b.Loop() {
			var out bytes.Buffer
			if err := f.Render(b.Context(), &out, r); err != nil {
				b.Fatal(err)
			}
			n = out.Len()
		}
		b.ReportMetric(float64(n), "pdf-bytes")
	})
	b.Run("fresh", func(b *testing.B) {
		testPrinter(b)
		for b.Loop() {
			p := NewPrinter(b.Context(), PrinterConfig{Path: os.Getenv("CUSTOS_CHROMIUM")})
			if err := PDF(p).Render(b.Context(), &bytes.Buffer{}, r); err != nil {
				b.Fatal(err)
			}
			p.Close()
		}
	})
	b.Run("small-reused", func(b *testing.B) {
		p := testPrinter(b)
		f := PDF(p)
		r := fixedHIPAA()
		if err := f.Render(b.Context(), &bytes.Buffer{}, r); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := f.Render(b.Context(), &bytes.Buffer{}, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPDFBrowserEndsWithContext: the shared browser is one process for
// every print, and it is killed when the Printer's context ends.
func TestPDFBrowserEndsWithContext(t *testing.T) {
	testPrinter(t) // skips without a browser
	ctx, cancel := context.WithCancel(t.Context())
	p := NewPrinter(ctx, PrinterConfig{Path: os.Getenv("CUSTOS_CHROMIUM")})
	defer p.Close()
	var pids []int
	for range 2 {
		if err := p.Print(t.Context(), &bytes.Buffer{}, []byte("<p>x</p>"), ""); err != nil {
			t.Fatal(err)
		}
		proc := p.process()
		if proc == nil {
			t.Fatal("no browser process after a print")
		}
		pids = append(pids, proc.Pid)
	}
	if pids[0] != pids[1] {
		t.Errorf("two prints, two browsers (%v): the browser is not reused", pids)
	}
	cancel()
	p.Close() // waits for the killed process to be reaped
	if err := syscall.Kill(pids[0], 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the browser (pid %d) outlived its context: %v", pids[0], err)
	}
	if err := p.Print(t.Context(), &bytes.Buffer{}, []byte("<p>x</p>"), ""); err == nil {
		t.Error("a printer whose context ended still printed")
	}
}
