package cli

import (
	"flag"
	"time"

	"github.com/custos-audit/custos/internal/report"
	"github.com/custos-audit/custos/internal/rules"
)

// reportFlags are the settings of compliance reports, shared by serve and
// report.
type reportFlags struct {
	maxPeriod, retention time.Duration
	baselines            bool
}

func (c *reportFlags) flags(fs *flag.FlagSet) {
	fs.DurationVar(&c.maxPeriod, "report-max-period", report.DefaultMaxPeriod, "the longest period a HIPAA report may cover")
	fs.DurationVar(&c.retention, "retention", report.DefaultRetention,
		"the retention period in force (45 CFR 164.316(b)(2)): reports state it, and a patient's reports look back this far at most")
	fs.BoolVar(&c.baselines, "report-baselines", false,
		"HIPAA reports also judge every day of the period against the stored PHI-access baselines (besides listing the rule's alerts); costs a per-user, per-day count")
}

// builder is a report builder on src with these settings.
func (c *reportFlags) builder(src report.Source, vkey string, rc rules.Config, now func() time.Time) *report.Builder {
	return report.NewBuilder(src, report.Config{VerifierKey: vkey, Version: versionString(), Now: now,
		MaxPeriod: c.maxPeriod, Retention: c.retention, Baseline: rc.UnusualPHIAccess, RecomputeBaselines: c.baselines})
}

// reportFormats are the formats reports are offered in: JSON, and the
// renderers that plug in here (HTML, CSV, PDF) once they land.
func reportFormats() report.Formats {
	return report.Formats{report.JSON()}
}
