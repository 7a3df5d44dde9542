package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// load reads the saved position; with none, it saves Start first, so
// that a restart begins where this run did.
func (o *Outbox) load(ctx context.Context) error {
	idx, ok, err := o.progress.Load(ctx, o.sink.Name())
	if err != nil {
		return fmt.Errorf("alert.outbox: load progress: %w", err)
	}
	if !ok {
		idx = o.cfg.Start
		if err := o.saveAt(ctx, idx); err != nil {
			return err
		}
	}
	o.pos, o.saved, o.hasPos = idx, idx, true
	o.mu.Lock()
	o.stats.Position, o.stats.Saved = idx, idx
	o.mu.Unlock()
	return nil
}

// save records the position if it moved since the last save.
func (o *Outbox) save(ctx context.Context) error {
	if o.pos == o.saved {
		return nil
	}
	if err := o.saveAt(ctx, o.pos); err != nil {
		return err
	}
	o.saved = o.pos
	o.mu.Lock()
	o.stats.Saved = o.pos
	o.mu.Unlock()
	return nil
}

// saveAt saves idx; the save outlives the cancelling of ctx, so that what
// was delivered before a shutdown is not delivered again.
func (o *Outbox) saveAt(ctx context.Context, idx uint64) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.cfg.SaveTimeout)
	defer cancel()
	if err := o.progress.Save(ctx, o.sink.Name(), idx); err != nil {
		return fmt.Errorf("alert.outbox: save progress %d: %w", idx, err)
	}
	return nil
}

// advance moves the position to idx, counting delivered and skipped
// alerts.
func (o *Outbox) advance(idx, delivered, skipped uint64) {
	o.pos = idx
	o.mu.Lock()
	o.stats.Position = idx
	o.stats.Delivered += delivered
	o.stats.FailedPermanent += skipped
	o.mu.Unlock()
}

func (o *Outbox) setBacklog(n int) {
	o.mu.Lock()
	o.stats.Backlog = n
	o.mu.Unlock()
}

// note records err as the last error.
func (o *Outbox) note(err error) {
	o.mu.Lock()
	o.stats.LastError, o.stats.LastErrorAt = err.Error(), o.cfg.Clock.Now()
	o.mu.Unlock()
}

// fail logs and records a failed round; retry counts it as retried.
func (o *Outbox) fail(err error, retry bool) {
	o.log.Warn("alert delivery failed", slog.Uint64("position", o.pos), slog.Bool("retry", retry), slog.Any("err", err))
	o.note(err)
	if retry {
		o.mu.Lock()
		o.stats.Retried++
		o.mu.Unlock()
	}
}

// delay is the wait after the attempt-th consecutive failure: the backoff,
// or the receiver's Retry-After if longer, capped at Backoff.Max.
func (o *Outbox) delay(attempt int, err error) time.Duration {
	d := o.cfg.Backoff.Delay(attempt)
	var ra retryAfter
	if errors.As(err, &ra) && ra.RetryAfter() > d {
		_, hi := o.cfg.Backoff.bounds()
		d = min(ra.RetryAfter(), hi)
	}
	return d
}

// sleep waits d, or until ctx is done. A Wake does not cut it short.
func (o *Outbox) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-o.cfg.Clock.After(d):
	}
}

// idle waits for a Wake, the next poll, or ctx.
func (o *Outbox) idle(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-o.wake:
	case <-o.cfg.Clock.After(o.cfg.Poll):
	}
}
