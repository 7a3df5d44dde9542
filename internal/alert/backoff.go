package alert

import (
	"math/rand/v2"
	"time"
)

// Backoff spaces the retries of a failing delivery: the nth consecutive
// failure waits Min·2ⁿ⁻¹, capped at Max, less a random part of up to half
// of it (so that many outboxes failing together do not retry together).
type Backoff struct {
	Min time.Duration // 1 s when zero
	Max time.Duration // 5 min when zero
	// Rand returns a number in [0, 1) that picks the jitter; math/rand/v2
	// when nil. Tests return 0 for no jitter.
	Rand func() float64
}

// Delay returns the wait after the attempt-th consecutive failure
// (attempt ≥ 1): within [d/2, d] where d = min(Max, Min·2^(attempt-1)).
func (b Backoff) Delay(attempt int) time.Duration {
	lo, hi := b.bounds()
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	return d - time.Duration(float64(d/2)*r())
}

func (b Backoff) bounds() (lo, hi time.Duration) {
	lo, hi = b.Min, b.Max
	if lo <= 0 {
		lo = time.Second
	}
	if hi <= 0 {
		hi = 5 * time.Minute
	}
	return lo, max(lo, hi)
}
