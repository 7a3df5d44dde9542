package cli

import (
	"context"
	"flag"
	"log/slog"
	"time"

	"github.com/custos-audit/custos/internal/report"
	"github.com/custos-audit/custos/internal/rules"
)

// reportFlags are the settings of compliance reports, shared by serve and
// report.
type reportFlags struct {
	maxPeriod, retention time.Duration
	baselines            bool
	chromium             string // the browser that prints PDF reports
	printer              *report.Printer
}

func (c *reportFlags) flags(fs *flag.FlagSet) {
	fs.DurationVar(&c.maxPeriod, "report-max-period", report.DefaultMaxPeriod, "the longest period a HIPAA report may cover")
	fs.DurationVar(&c.retention, "retention", report.DefaultRetention,
		"the retention period in force (45 CFR 164.316(b)(2)): reports state it, and a patient's reports look back this far at most")
	fs.BoolVar(&c.baselines, "report-baselines", false,
		"HIPAA reports also judge every day of the period against the stored PHI-access baselines (besides listing the rule's alerts); costs a per-user, per-day count")
	fs.StringVar(&c.chromium, "chromium", "",
		"the Chromium executable that prints PDF reports (default: the first of chromium, chromium-browser, google-chrome on PATH)")
}

// builder is a report builder on src with these settings.
func (c *reportFlags) builder(src report.Source, vkey string, rc rules.Config, now func() time.Time) *report.Builder {
	return report.NewBuilder(src, report.Config{VerifierKey: vkey, Version: versionString(), Now: now,
		MaxPeriod: c.maxPeriod, Retention: c.retention, Baseline: rc.UnusualPHIAccess, RecomputeBaselines: c.baselines})
}

// formats are the formats reports are offered in: JSON, CSV, HTML, and PDF
// printed by a headless Chromium that lives at most as long as ctx. PDF is
// offered even when no browser is found: asking for it then answers an
// Unavailable error that names the missing browser (503 over HTTP, exit 2
// on the command line), and the other formats work.
func (c *reportFlags) formats(ctx context.Context, log *slog.Logger) report.Formats {
	c.printer = report.NewPrinter(ctx, report.PrinterConfig{Path: c.chromium, Log: log})
	return report.Formats{report.JSON(), report.CSV(), report.HTML(), report.PDF(c.printer)}
}

// available reports whether format f can be rendered here: for PDF, that
// the browser was found.
func (c *reportFlags) available(f report.Format) error {
	if f.Name == "pdf" && c.printer != nil {
		return c.printer.Available()
	}
	return nil
}
