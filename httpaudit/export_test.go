package httpaudit

import (
	"context"
	"time"
)

// NewWithRetryTimer is New with the timer the deliverer waits on between
// attempts, so a test can play a long outage without waiting it out.
func NewWithRetryTimer(cfg Config, after func(time.Duration) <-chan time.Time) (*Auditor, error) {
	return newAuditor(cfg, after)
}

// RefreshBlocks fetches the blocked ranges now.
func (a *Auditor) RefreshBlocks(ctx context.Context) error { return a.refreshBlocks(ctx) }

// Sync has the writer spool and seal what is queued, without waiting for
// delivery.
func (a *Auditor) Sync(ctx context.Context) error { return a.sync(ctx) }
