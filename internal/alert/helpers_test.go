package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/alert"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// ledger is the source: alerts appended in index order, as Custos's
// ledger holds them.
type ledger struct {
	mu     sync.Mutex
	alerts []alert.Alert
	fail   error // returned by Source while set
}

// add appends n alerts, numbered on from the last index.
func (l *ledger) add(n int) []alert.Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	var added []alert.Alert
	for range n {
		idx := uint64(len(l.alerts) + 1)
		a := newAlert(idx)
		l.alerts = append(l.alerts, a)
		added = append(added, a)
	}
	return added
}

func (l *ledger) Source(ctx context.Context, after uint64) ([]alert.Alert, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return nil, l.fail
	}
	var out []alert.Alert
	for _, a := range l.alerts {
		if a.Index > after {
			out = append(out, a)
		}
	}
	return out, nil
}

// newAlert returns the alert raised by the record at idx.
func newAlert(idx uint64) alert.Alert {
	at := t0.Add(time.Duration(idx) * time.Second)
	return alert.Alert{
		ID: fmt.Sprintf("se-%04d", idx), Index: idx, Kind: alert.Raised, At: at,
		SecurityEvent: custos.SecurityEvent{
			ID: fmt.Sprintf("se-%04d", idx), Index: idx, Timestamp: at, EventType: custos.BruteForce,
			Severity: custos.SeverityHigh, Description: "5 failed logins from one address",
			User: "u-17", IPAddress: "203.0.113.7", Rule: "brute_force", Status: custos.StatusOpen,
			AdditionalData: json.RawMessage(`{"count":5,"key":"203.0.113.7"}`),
		},
	}
}

// memProgress is a Progress in memory; saveErr fails every Save while set.
type memProgress struct {
	mu      sync.Mutex
	m       map[string]uint64
	saves   []uint64
	saveErr error
}

func newMemProgress() *memProgress { return &memProgress{m: map[string]uint64{}} }

func (p *memProgress) Load(ctx context.Context, sink string) (uint64, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.m[sink]
	return i, ok, nil
}

func (p *memProgress) Save(ctx context.Context, sink string, index uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.saveErr != nil {
		return p.saveErr
	}
	p.m[sink] = index
	p.saves = append(p.saves, index)
	return nil
}

func (p *memProgress) setSaveErr(err error) {
	p.mu.Lock()
	p.saveErr = err
	p.mu.Unlock()
}

func (p *memProgress) savedIndexes() []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uint64(nil), p.saves...)
}

// fakeClock moves only when told, and reports each wait the outbox starts,
// so that a test knows what the outbox is doing without sleeping.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	waits  chan time.Duration
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0, waits: make(chan time.Duration, 1000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	t := fakeTimer{at: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	c.fire()
	c.mu.Unlock()
	c.waits <- d
	return t.ch
}

// Advance moves the clock by d, firing the timers due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fire()
}

func (c *fakeClock) fire() {
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
		} else {
			t.ch <- c.now
		}
	}
	c.timers = kept
}

// wantWait waits (in real time, for a real network round) until the
// outbox starts its next wait, and checks that it is for want.
func (c *fakeClock) wantWait(t *testing.T, want time.Duration) {
	t.Helper()
	select {
	case d := <-c.waits:
		if d != want {
			t.Fatalf("the outbox waits %v, want %v", d, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the outbox did not start waiting %v", want)
	}
}

// run runs ob until the returned function is called; that function
// checks Run's result.
func run(t *testing.T, ob *alert.Outbox) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ob.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != context.Canceled {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func noJitter() float64 { return 0 }

func indexes(alerts []alert.Alert) []uint64 {
	out := make([]uint64, len(alerts))
	for i, a := range alerts {
		out[i] = a.Index
	}
	return out
}

func seq(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}
