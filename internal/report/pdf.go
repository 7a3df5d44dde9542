package report

// PDF: the HTML rendering printed by a headless Chromium (Debian's
// "chromium"), driven over the DevTools protocol by chromedp. The browser
// is started on the first print and reused by every later one, each print in
// a tab of its own (see BenchmarkPDF: a fresh browser per report costs a
// browser start-up each time); it is killed when the context the Printer
// was made with ends, or by Close. The page is given its HTML directly
// (Page.setDocumentContent on about:blank), never a URL, and the browser
// resolves no host name, so a report cannot make it fetch anything.

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/custos-audit/custos"
)

// ErrNoBrowser is the cause of every error a Printer returns when it has no
// Chromium to run: none was found, or the one named is not an executable.
var ErrNoBrowser = errors.New("no Chromium browser")

// BrowserNames are the executables a Printer looks for on PATH, in order,
// when it is not given a path.
var BrowserNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// DefaultPrintTimeout bounds one print, start-up of the browser included: a
// HIPAA report with its lists full (1,000 rows each, about 110 pages) took
// 35 to 90 s on a loaded two-core machine.
const DefaultPrintTimeout = 5 * time.Minute

// maxParallelPrints is how many tabs print at once; more wait their turn.
const maxParallelPrints = 2

// PrinterConfig configures a Printer.
type PrinterConfig struct {
	// Path is the browser's executable: a path, or a name looked up on
	// PATH. Empty looks up BrowserNames.
	Path string
	// Timeout bounds each print; zero means DefaultPrintTimeout.
	Timeout time.Duration
	// Log receives the browser driver's errors at debug level (they are
	// about the protocol, never about report data); nil discards them.
	Log *slog.Logger
}

// Printer prints HTML documents to PDF with one headless Chromium, started
// when first needed and shared by every print. It is safe for concurrent
// use.
type Printer struct {
	path    string // the resolved executable, "" when lookErr is set
	lookErr error  // why there is no browser
	timeout time.Duration
	log     *slog.Logger
	parent  context.Context
	sem     chan struct{}

	mu      sync.Mutex
	browser context.Context // the chromedp context of the running browser; nil before the first print
	stop    func()          // kills the browser and waits for it
}

// NewPrinter returns a Printer whose browser lives at most as long as ctx.
// It never fails: when no browser is found, Available and every Print say
// so, so that a server still offers the other formats.
func NewPrinter(ctx context.Context, cfg PrinterConfig) *Printer {
	p := &Printer{timeout: cfg.Timeout, log: cfg.Log, parent: ctx, sem: make(chan struct{}, maxParallelPrints)}
	if p.timeout <= 0 {
		p.timeout = DefaultPrintTimeout
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.path, p.lookErr = FindBrowser(cfg.Path)
	return p
}

// FindBrowser resolves the browser's executable: path when given (a path,
// or a name on PATH), else the first of BrowserNames found on PATH. Its
// error wraps ErrNoBrowser and says what was looked for.
func FindBrowser(path string) (string, error) {
	if path != "" {
		p, err := exec.LookPath(path)
		if err != nil {
			return "", fmt.Errorf("%w: %q is not an executable file (--chromium, CUSTOS_CHROMIUM)", ErrNoBrowser, path)
		}
		return p, nil
	}
	for _, name := range BrowserNames {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: none of %v is on PATH; install Debian's chromium or give its path with --chromium (CUSTOS_CHROMIUM)",
		ErrNoBrowser, BrowserNames)
}

// Available returns nil when the Printer has a browser to run, else an
// *custos.Error of kind Unavailable that names what is missing.
func (p *Printer) Available() error {
	if p.lookErr != nil {
		return &custos.Error{Op: "report.pdf", Kind: custos.Unavailable,
			Detail: "the PDF format needs a Chromium browser: " + p.lookErr.Error(), Err: p.lookErr}
	}
	return nil
}

// Path returns the browser's executable, "" when there is none.
func (p *Printer) Path() string { return p.path }

// Print prints the HTML document doc on A4 paper, backgrounds included,
// with footer (plain text) and the page number at the foot of every page,
// and writes the PDF to w. It is bounded by ctx and by the Printer's
// timeout.
func (p *Printer) Print(ctx context.Context, w io.Writer, doc []byte, footer string) error {
	if err := p.Available(); err != nil {
		return err
	}
	select {
	case p.sem <- struct{}{}:
		defer func() { <-p.sem }()
	case <-ctx.Done():
		return fmt.Errorf("report.pdf: waiting for the browser: %w", ctx.Err())
	}
	browser, err := p.start(ctx)
	if err != nil {
		return err
	}
	tab, closeTab := chromedp.NewContext(browser) // a new tab of the shared browser
	defer closeTab()
	tab, cancel := context.WithTimeout(tab, p.timeout)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)() // the caller's end ends the print
	pdf, err := chromedp.Run(tab, printDocument(doc, footer))
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("report.pdf: %w", ctx.Err())
		}
		return fmt.Errorf("report.pdf: printing with %s: %w", p.path, err)
	}
	_, err = w.Write(pdf)
	return err
}

// start returns the running browser, starting one if there is none or the
// last one died.
func (p *Printer) start(ctx context.Context) (context.Context, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.browser != nil && p.browser.Err() == nil {
		return p.browser, nil
	}
	if p.stop != nil {
		p.stop()
		p.browser, p.stop = nil, nil
	}
	if err := p.parent.Err(); err != nil {
		return nil, fmt.Errorf("report.pdf: the printer is closed: %w", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(p.path),
		chromedp.NoSandbox, // the server may run as root, in a container
		chromedp.DisableGPU,
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND"), // no fetches, whatever the page says
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(p.parent, opts...)
	logf := func(format string, args ...any) { p.log.Debug("chromium", "msg", fmt.Sprintf(format, args...)) }
	browser, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	stop := func() { cancelBrowser(); cancelAlloc() }
	// The browser process lives as long as the context its first action
	// runs with, so start it with browser itself and bound the wait here.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(browser) }()
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	var err error
	select {
	case err = <-started:
	case <-timer.C:
		err = fmt.Errorf("no answer within %v", p.timeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		stop()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("report.pdf: starting the browser: %w", ctx.Err())
		}
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return nil, &custos.Error{Op: "report.pdf", Kind: custos.Unavailable,
				Detail: fmt.Sprintf("the PDF format needs a Chromium browser: %s could not be run", filepath.Base(p.path)),
				Err:    fmt.Errorf("%w: %w", ErrNoBrowser, err)}
		}
		return nil, &custos.Error{Op: "report.pdf", Kind: custos.Unavailable,
			Detail: fmt.Sprintf("the PDF format needs a Chromium browser: %s did not start", filepath.Base(p.path)),
			Err:    err}
	}
	p.browser, p.stop = browser, stop
	return browser, nil
}

// process returns the running browser's process, nil when none runs.
func (p *Printer) process() *os.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.browser == nil {
		return nil
	}
	if c := chromedp.FromContext(p.browser); c != nil && c.Browser != nil {
		return c.Browser.Process()
	}
	return nil
}

// Close kills the browser, if one runs, and waits for it to exit. Prints
// after Close start a new one while the Printer's context lives.
func (p *Printer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		p.stop()
		p.browser, p.stop = nil, nil
	}
	return nil
}

// printDocument loads doc into the tab's blank page and prints it.
func printDocument(doc []byte, footer string) chromedp.Action[[]byte] {
	return func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		tree, err := cdp.Call(ctx, t, page.GetFrameTree, cdp.Empty{})
		if err != nil {
			return nil, fmt.Errorf("reading the frame tree: %w", err)
		}
		if _, err := cdp.Call(ctx, t, page.SetDocumentContent,
			page.SetDocumentContentParams{FrameID: tree.FrameTree.Frame.ID, HTML: string(doc)}); err != nil {
			return nil, fmt.Errorf("loading the document: %w", err)
		}
		return chromedp.PrintToPDF(
			chromedp.PDFPaper(chromedp.PaperA4),
			chromedp.PDFMargins(0.7, 0.55, 0.75, 0.55), // inches; the CSS @page rule agrees
			chromedp.PDFPrintBackground(),
			chromedp.PDFHeaderTemplate(`<span></span>`),
			chromedp.PDFFooterTemplate(footerTemplate(footer)),
			// Untagged: Chromium 156 tags by default, which made a full HIPAA
			// report (108 pages) a 10 MB file with 60,000 structure elements
			// and roughly doubled the print time; untagged it is 0.6 MB. (The
			// document outline needs the tags, so there is none.)
			func(p *page.PrintToPDFParams) { p.GenerateTaggedPDF = new(false) },
			chromedp.PDFStream(),
		)(ctx, t)
	}
}

// footerTemplate is the HTML Chromium prints at the foot of every page:
// the footer text (escaped: it holds report data) and "page N of M".
func footerTemplate(text string) string {
	return `<div style="font-family:sans-serif;font-size:7pt;color:#57606a;width:100%;margin:0 0.55in;display:flex;justify-content:space-between">` +
		`<span>` + html.EscapeString(text) + `</span>` +
		`<span>page <span class="pageNumber"></span> of <span class="totalPages"></span></span></div>`
}
