package report

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/rules"
	"github.com/custos-audit/custos/internal/store"
)

// Source is what reports read: the store's aggregates, searches by key,
// the newest checkpoint and the tree nodes it commits to.
type Source interface {
	store.Aggregator
	Event(ctx context.Context, index uint64) (custos.Event, error)
	Events(ctx context.Context, q store.Query) ([]custos.Event, error)
	Nodes(ctx context.Context, pos []uint64) ([][]byte, error)
	LatestCheckpoint(ctx context.Context) (*store.Checkpoint, error)
	RecordCount(ctx context.Context) (count, size uint64, err error)
	PatientDays(ctx context.Context, from, to time.Time) ([]store.PatientDay, error)
}

// Config configures a Builder. Zero fields take the defaults.
type Config struct {
	// VerifierKey is the log's note verifier key: the checkpoint a report
	// rests on is checked against it.
	VerifierKey string
	// Version is the generator's version, as the binary reports it.
	Version string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxPeriod is the longest period a HIPAA report may cover (default
	// DefaultMaxPeriod).
	MaxPeriod time.Duration
	// Retention is the retention setting in force (default six years,
	// 45 CFR 164.316(b)(2)); the accounting of disclosures looks this far
	// back at most.
	Retention time.Duration
	// TopN bounds every "top" breakdown (default 20).
	TopN int
	// MaxListed bounds every list of records in a report (default 1000);
	// a list cut there says so (Truncated).
	MaxListed int
	// Samples is how many of the period's records the integrity check
	// re-hashes and proves against the checkpoint (default 16), besides
	// its first and last.
	Samples int
	// Baseline is the unusual PHI access rule's configuration (default
	// the rule's default).
	Baseline rules.Baseline
	// RecomputeBaselines adds to the unusual patterns the rule's security
	// events already list the user-days found by judging every day of the
	// period against the stored history again (store.PatientDays over the
	// period and the baseline's days before it): an independent check,
	// for periods when monitoring was off, at the cost of a per-user,
	// per-day distinct count over the period.
	RecomputeBaselines bool
}

// Defaults of Config.
const (
	DefaultMaxPeriod = 366 * 24 * time.Hour
	DefaultRetention = 6 * 365 * 24 * time.Hour
)

func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxPeriod <= 0 {
		c.MaxPeriod = DefaultMaxPeriod
	}
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	if c.TopN <= 0 {
		c.TopN = 20
	}
	if c.MaxListed <= 0 {
		c.MaxListed = 1000
	}
	if c.Samples <= 0 {
		c.Samples = 16
	}
	if c.Baseline.HistoryDays == 0 {
		c.Baseline = rules.DefaultConfig().UnusualPHIAccess
	}
	if c.Version == "" {
		c.Version = "(devel)"
	}
	return c
}

// Builder computes reports from a store. It holds no state between
// reports; it is safe for concurrent use.
type Builder struct {
	src Source
	cfg Config
}

// NewBuilder returns a Builder reading src.
func NewBuilder(src Source, cfg Config) *Builder {
	return &Builder{src: src, cfg: cfg.withDefaults()}
}

// Config returns the builder's configuration, with the defaults filled in.
func (b *Builder) Config() Config { return b.cfg }

// Progress is told, as a report is computed, which step it is on (1-based)
// of how many, and the step's name.
type Progress func(step, steps int, name string)

// Request asks for a report.
type Request struct {
	From, To    time.Time // the period: [From, To)
	GeneratedBy string    // who asked (a user id or key id)
	Progress    Progress  // nil for none
}

// CheckPeriod validates a HIPAA report's period: both ends present, from
// before to, at most MaxPeriod long. It returns a custos.Invalid error
// naming the fields.
func (b *Builder) CheckPeriod(from, to time.Time) error {
	var fields []custos.FieldError
	if from.IsZero() {
		fields = append(fields, custos.FieldError{Field: "from", Message: "is required (RFC 3339)"})
	}
	if to.IsZero() {
		fields = append(fields, custos.FieldError{Field: "to", Message: "is required (RFC 3339)"})
	}
	switch {
	case len(fields) > 0:
	case !from.Before(to):
		fields = append(fields, custos.FieldError{Field: "from", Message: "must be before to"})
	case to.Sub(from) > b.cfg.MaxPeriod:
		fields = append(fields, custos.FieldError{Field: "to", Message: fmt.Sprintf("the period may be at most %d days long", int(b.cfg.MaxPeriod/(24*time.Hour)))})
	}
	if len(fields) == 0 {
		return nil
	}
	return &custos.Error{Op: "report.period", Kind: custos.Invalid, Detail: "invalid report period", Fields: fields}
}

// header fills the header every report carries, and reads the checkpoint
// the report rests on (a zero Checkpoint, with Size 0, when the ledger has
// none yet).
func (b *Builder) header(ctx context.Context, kind Kind, title string, from, to time.Time, by string) (Header, error) {
	h := Header{Kind: kind, Title: title, Period: Period{From: from.UTC(), To: to.UTC()},
		GeneratedAt: b.cfg.Now().UTC(), GeneratedBy: by, Generator: Generator{Name: "custos", Version: b.cfg.Version},
		Checkpoint: Checkpoint{Witnesses: []string{}}}
	cp, err := b.src.LatestCheckpoint(ctx)
	switch {
	case errors.Is(err, custos.ErrNotFound):
		return h, nil
	case err != nil:
		return h, fmt.Errorf("report: read the checkpoint: %w", err)
	}
	h.Checkpoint = checkpointOf(cp, b.cfg.VerifierKey)
	return h, nil
}
