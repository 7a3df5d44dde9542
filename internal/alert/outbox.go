package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Source reads the alerts committed after a position: those with Index >
// after, in strictly increasing Index order. It may return only the first
// of them (a page); it returns none when there is nothing new. Custos
// reads them from its ledger, so what a Source returns for a position
// never changes.
type Source func(ctx context.Context, after uint64) ([]Alert, error)

// Progress stores, for each sink, the index of the last alert the sink is
// done with (delivered, or refused for good). Custos stores it as ledger
// records.
type Progress interface {
	// Load returns the saved index of sink; ok is false when none was
	// ever saved.
	Load(ctx context.Context, sink string) (index uint64, ok bool, err error)
	// Save records index for sink. Saves of one sink are never
	// concurrent and never go backwards.
	Save(ctx context.Context, sink string, index uint64) error
}

// Clock is the outbox's time: Now, and After as time.After. Tests inject
// a fake one, or run under testing/synctest with SystemClock.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// OutboxConfig configures an Outbox. The zero value is usable.
type OutboxConfig struct {
	// Start is where a sink with no saved progress begins: it gets the
	// alerts with Index > Start. 0 sends every alert in the ledger.
	Start uint64
	// BatchSize caps the alerts handed to one Deliver call, and so the
	// alerts a crash can re-deliver; 100 when zero.
	BatchSize int
	// Poll is how often the source is read without a Wake; 30 s when
	// zero.
	Poll time.Duration
	// Backoff spaces the retries of a failure.
	Backoff Backoff
	// SaveTimeout bounds one Progress.Save, which outlives the cancelling
	// of Run's context; 10 s when zero.
	SaveTimeout time.Duration
	// Clock is SystemClock when nil.
	Clock Clock
	// Logger receives failures and skipped alerts (never their contents:
	// a security event logs as its LogValue); nothing is logged when nil.
	Logger *slog.Logger
}

// Outbox delivers the alerts of a Source to one Sink, in order and at
// least once, resuming from a saved Progress: see the package comment for
// the exact guarantees. Create it with NewOutbox, start it with Run, and
// call Wake whenever new alerts commit.
type Outbox struct {
	sink     Sink
	src      Source
	progress Progress
	cfg      OutboxConfig
	log      *slog.Logger
	wake     chan struct{}
	running  atomic.Bool

	// Owned by Run.
	hasPos bool   // pos and saved are loaded
	pos    uint64 // the last index the sink is done with
	saved  uint64 // the last index saved

	mu    sync.Mutex
	stats Stats
}

// Stats are an outbox's counters since it was created, for the caller to
// export as metrics.
type Stats struct {
	Delivered       uint64    // alerts delivered
	Retried         uint64    // failed rounds that will be retried: sink, source or progress errors
	FailedPermanent uint64    // alerts the sink refused for good, skipped
	Backlog         int       // alerts read and not yet delivered at the last read (a lower bound when the source pages)
	Position        uint64    // index of the last alert delivered or skipped
	Saved           uint64    // index last saved to Progress
	LastError       string    // the last failure, "" when none
	LastErrorAt     time.Time // when it happened
}

// ErrRunning is returned by Run when the outbox is already running.
var ErrRunning = errors.New("alert: the outbox is already running")

// ErrSourceOrder is returned by Run when the source breaks its contract
// (an alert at or before the position asked for, or out of order): a bug
// that no retry can cure.
var ErrSourceOrder = errors.New("alert: the source returned alerts out of order")

// NewOutbox returns an outbox that delivers the alerts of src to sink,
// saving how far it got in progress under sink.Name().
func NewOutbox(sink Sink, src Source, progress Progress, cfg OutboxConfig) *Outbox {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 30 * time.Second
	}
	if cfg.SaveTimeout <= 0 {
		cfg.SaveTimeout = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("sink", sink.Name()))
	return &Outbox{sink: sink, src: src, progress: progress, cfg: cfg, log: log, wake: make(chan struct{}, 1)}
}

// Wake makes a running outbox read its source now rather than at the next
// poll. It never blocks; a Wake during a retry's backoff does not cut the
// backoff short.
func (o *Outbox) Wake() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the counters.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

// Run delivers until ctx is done, then returns ctx's error. It returns
// early only with ErrRunning, or ErrSourceOrder (wrapped). Failures of the
// sink, the source or the progress are retried with backoff, for ever.
func (o *Outbox) Run(ctx context.Context) error {
	if !o.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer o.running.Store(false)
	for attempt := 0; ctx.Err() == nil; {
		more, err := o.round(ctx)
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, ErrSourceOrder):
			o.fail(err, false)
			return err
		case err != nil:
			attempt++
			o.fail(err, true)
			o.sleep(ctx, o.delay(attempt, err))
		case more:
			attempt = 0
		default:
			attempt = 0
			o.idle(ctx)
		}
	}
	return ctx.Err()
}

// round brings the position up from Progress if need be, reads the
// source and delivers one batch. more reports that the source may hold
// more at once.
func (o *Outbox) round(ctx context.Context) (more bool, err error) {
	if !o.hasPos {
		if err := o.load(ctx); err != nil {
			return false, err
		}
	}
	if err := o.save(ctx); err != nil { // a save that failed earlier
		return false, err
	}
	select { // this read answers every Wake so far
	case <-o.wake:
	default:
	}
	all, err := o.src(ctx, o.pos)
	if err != nil {
		return false, fmt.Errorf("alert.outbox: read the source after %d: %w", o.pos, err)
	}
	if err := checkOrder(o.pos, all); err != nil {
		return false, err
	}
	o.setBacklog(len(all))
	if len(all) == 0 {
		return false, nil
	}
	batch := all[:min(len(all), o.cfg.BatchSize)]
	derr := o.deliver(ctx, batch)
	o.setBacklog(len(all) - o.doneIn(all))
	if err := o.save(ctx); err != nil {
		return false, errors.Join(derr, err)
	}
	return derr == nil, derr
}

// deliver hands batch to the sink and moves the position past what it
// delivered, and past an alert it refused for good.
func (o *Outbox) deliver(ctx context.Context, batch []Alert) error {
	n, err := o.sink.Deliver(ctx, batch)
	if n < 0 || n > len(batch) || (err == nil && n != len(batch)) {
		return fmt.Errorf("alert.outbox: sink %s delivered %d of %d alerts without an error", o.sink.Name(), n, len(batch))
	}
	if n > 0 {
		o.advance(batch[n-1].Index, uint64(n), 0)
	}
	if err == nil || n == len(batch) || !IsPermanent(err) {
		return err
	}
	a := batch[n]
	o.log.Error("alert refused for good, skipped", slog.String("delivery_id", a.DeliveryID()),
		slog.Any("security_event", a.SecurityEvent), slog.Any("err", err))
	o.advance(a.Index, 0, 1)
	o.note(err)
	return nil
}

// checkOrder checks that alerts come after pos in strictly increasing
// index order.
func checkOrder(pos uint64, alerts []Alert) error {
	for _, a := range alerts {
		if a.Index <= pos {
			return fmt.Errorf("alert.outbox: index %d after %d: %w", a.Index, pos, ErrSourceOrder)
		}
		pos = a.Index
	}
	return nil
}

// doneIn counts the alerts of all at or before the position.
func (o *Outbox) doneIn(all []Alert) int {
	n := 0
	for n < len(all) && all[n].Index <= o.pos {
		n++
	}
	return n
}
