package ledger

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/custos-audit/custos/internal/store"
)

// health is what the sequencer's last commit and clock reading said, for
// readiness and metrics. Its methods are safe for concurrent use.
type health struct {
	mu        sync.Mutex
	commitErr error         // the last commit's failure, not the data's; nil after a success
	skewBy    time.Duration // this clock minus the ledger's
	skewBad   bool          // skewBy beyond the bound
}

func (h *health) commit(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil || store.IsPermanent(err) { // the data's fault: the node itself is fine
		h.commitErr = nil
		return
	}
	h.commitErr = err
}

// clock records a skew measurement, logging when it crosses the bound
// either way.
func (h *health) clock(skew, bound time.Duration, log *slog.Logger) {
	h.mu.Lock()
	defer h.mu.Unlock()
	bad := skew > bound || skew < -bound
	switch {
	case bad && !h.skewBad:
		log.Warn("this node's clock is off from the ledger's (the database's); records are stamped with the ledger's clock, and this node reports itself unready until its clock is back within the bound",
			"skew", skew.Round(time.Millisecond).String(), "bound", bound.String())
	case !bad && h.skewBad:
		log.Info("this node's clock is back within the bound of the ledger's", "skew", skew.Round(time.Millisecond).String())
	}
	h.skewBy, h.skewBad = skew, bad
}

func (h *health) skew() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.skewBy
}

func (h *health) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.skewBad:
		return fmt.Errorf("this node's clock is %s off from the ledger's", h.skewBy.Round(time.Millisecond))
	case h.commitErr != nil:
		return fmt.Errorf("this node cannot append: its last commit failed: %w", h.commitErr)
	}
	return nil
}
