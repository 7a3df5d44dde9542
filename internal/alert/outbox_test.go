package alert_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/custos-audit/custos/internal/alert"
)

// scriptSink is a sink at the process boundary: it records what it is
// given and answers from a script, one entry per Deliver call, then
// delivers everything.
type scriptSink struct {
	mu     sync.Mutex
	script []answer
	calls  []time.Time // when Deliver was called (bubble time)
	got    []alert.Alert
}

// answer: deliver n of the batch, then fail with err (nil: deliver all).
type answer struct {
	n   int
	err error
}

func (s *scriptSink) Name() string { return "script" }

func (s *scriptSink) Deliver(ctx context.Context, alerts []alert.Alert) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, time.Now())
	n, err := len(alerts), error(nil)
	if len(s.script) > 0 {
		a := s.script[0]
		s.script = s.script[1:]
		if a.err != nil {
			n, err = min(a.n, len(alerts)), a.err
		}
	}
	s.got = append(s.got, alerts[:n]...)
	return n, err
}

func (s *scriptSink) delivered() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return indexes(s.got)
}

func (s *scriptSink) gaps() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(s.calls); i++ {
		out = append(out, s.calls[i].Sub(s.calls[i-1]))
	}
	return out
}

var errDown = errors.New("receiver down")

type retryLater time.Duration

func (r retryLater) Error() string             { return "busy" }
func (r retryLater) RetryAfter() time.Duration { return time.Duration(r) }

func unitConfig() alert.OutboxConfig {
	return alert.OutboxConfig{Poll: time.Minute, Backoff: alert.Backoff{Min: time.Second, Max: time.Minute, Rand: noJitter}}
}

func TestBackoffDelay(t *testing.T) {
	b := alert.Backoff{Rand: noJitter}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		if got := b.Delay(i + 1); got != w {
			t.Errorf("Delay(%d) = %v, want %v", i+1, got, w)
		}
	}
	for _, attempt := range []int{10, 11, 64, 1000} {
		if got := b.Delay(attempt); got != 5*time.Minute {
			t.Errorf("Delay(%d) = %v, want the 5 min cap", attempt, got)
		}
	}
	b.Rand = func() float64 { return 0.999999 }
	for attempt := 1; attempt < 12; attempt++ {
		hi := (alert.Backoff{Rand: noJitter}).Delay(attempt)
		if got := b.Delay(attempt); got < hi/2 || got > hi {
			t.Errorf("jittered Delay(%d) = %v, want within [%v, %v]", attempt, got, hi/2, hi)
		}
	}
}

// TestOutboxBacksOff: consecutive failures wait 1 s, 2 s, 4 s… capped;
// the first success delivers the whole backlog in order and resets it.
func TestOutboxBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		led, prog := &ledger{}, newMemProgress()
		sink := &scriptSink{}
		for range 8 {
			sink.script = append(sink.script, answer{err: errDown})
		}
		led.add(3)
		ob := alert.NewOutbox(sink, led.Source, prog, unitConfig())
		run(t, ob)
		synctest.Wait()
		s := time.Second
		want := []time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 60 * s, 60 * s}
		time.Sleep(4 * time.Minute) // bubble time
		synctest.Wait()
		if diff := cmp.Diff(want, sink.gaps()); diff != "" {
			t.Errorf("waits between attempts (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(seq(1, 3), sink.delivered()); diff != "" {
			t.Errorf("delivered (-want +got):\n%s", diff)
		}
		if st := ob.Stats(); st.Retried != 8 || st.Delivered != 3 || st.LastError == "" {
			t.Errorf("stats = %+v", st)
		}
		// The backoff starts again at 1 s after a success.
		sink.script = []answer{{err: errDown}}
		led.add(1)
		ob.Wake()
		synctest.Wait()
		start := time.Now()
		time.Sleep(time.Second)
		synctest.Wait()
		if got := sink.delivered(); len(got) != 4 || sink.calls[len(sink.calls)-1].Sub(start) != time.Second {
			t.Errorf("after a success, delivered %v, last call %v after the failure", got, sink.calls[len(sink.calls)-1].Sub(start))
		}
	})
}

// TestOutboxOrderAndProgress: batches in order; the progress is saved
// after each; a partial delivery resumes at the first undelivered alert,
// never re-sending what was delivered.
func TestOutboxOrderAndProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		led, prog := &ledger{}, newMemProgress()
		sink := &scriptSink{script: []answer{{}, {n: 1, err: errDown}}}
		led.add(7)
		cfg := unitConfig()
		cfg.BatchSize = 3
		ob := alert.NewOutbox(sink, led.Source, prog, cfg)
		run(t, ob)
		time.Sleep(time.Second)
		synctest.Wait()
		if diff := cmp.Diff(seq(1, 7), sink.delivered()); diff != "" {
			t.Errorf("delivered (-want +got):\n%s", diff)
		}
		// 0 is the start, saved before anything; 3 after the first batch;
		// 4 after the partial one; 7 after the retry's two batches.
		if diff := cmp.Diff([]uint64{0, 3, 4, 7}, prog.savedIndexes()); diff != "" {
			t.Errorf("saved (-want +got):\n%s", diff)
		}
	})
}

// TestOutboxPermanentSkip: an alert refused for good is counted and
// skipped at once (no backoff); the next ones go out.
func TestOutboxPermanentSkip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		led, prog := &ledger{}, newMemProgress()
		added := led.add(4)
		refusal := &alert.PermanentError{DeliveryID: added[1].DeliveryID(), Err: errors.New("400 Bad Request")}
		sink := &scriptSink{script: []answer{{n: 1, err: refusal}}}
		ob := alert.NewOutbox(sink, led.Source, prog, unitConfig())
		start := time.Now()
		run(t, ob)
		synctest.Wait()
		if diff := cmp.Diff([]uint64{1, 3, 4}, sink.delivered()); diff != "" {
			t.Errorf("delivered (-want +got):\n%s", diff)
		}
		st := ob.Stats()
		if st.FailedPermanent != 1 || st.Delivered != 3 || st.Retried != 0 || st.Saved != 4 || st.LastError != refusal.Error() {
			t.Errorf("stats = %+v", st)
		}
		if d := sink.calls[len(sink.calls)-1].Sub(start); d != 0 {
			t.Errorf("the next alert went out after %v, want at once", d)
		}
	})
}

// TestOutboxRetryAfter: a receiver's Retry-After longer than the backoff
// is honoured, up to Backoff.Max.
func TestOutboxRetryAfter(t *testing.T) {
	for _, tt := range []struct{ ask, want time.Duration }{
		{42 * time.Second, 42 * time.Second},
		{10 * time.Millisecond, time.Second},
		{time.Hour, time.Minute},
	} {
		t.Run(tt.ask.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				led := &ledger{}
				led.add(1)
				sink := &scriptSink{script: []answer{{err: retryLater(tt.ask)}}}
				run(t, alert.NewOutbox(sink, led.Source, newMemProgress(), unitConfig()))
				time.Sleep(2 * time.Minute)
				if diff := cmp.Diff([]time.Duration{tt.want}, sink.gaps()); diff != "" {
					t.Errorf("wait (-want +got):\n%s", diff)
				}
			})
		})
	}
}

// TestOutboxWakeAndPoll: a Wake delivers at once; without one, the next
// poll does.
func TestOutboxWakeAndPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		led := &ledger{}
		sink := &scriptSink{}
		ob := alert.NewOutbox(sink, led.Source, newMemProgress(), unitConfig())
		run(t, ob)
		synctest.Wait()
		time.Sleep(10 * time.Second)
		led.add(1)
		ob.Wake()
		woken := time.Now()
		synctest.Wait()
		if len(sink.calls) != 1 || !sink.calls[0].Equal(woken) {
			t.Errorf("woken at %v, delivered at %v", woken, sink.calls)
		}
		led.add(1) // no Wake: the poll, a minute after the last read, finds it
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if len(sink.delivered()) != 1 {
			t.Fatalf("delivered before the poll: %v", sink.delivered())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if diff := cmp.Diff(seq(1, 2), sink.delivered()); diff != "" {
			t.Errorf("after the poll (-want +got):\n%s", diff)
		}
	})
}

// TestOutboxCrashDuplicates: what a crash re-delivers is what was
// delivered after the last save, with the same delivery ids; a clean
// shutdown re-delivers nothing.
func TestOutboxCrashDuplicates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		led, prog := &ledger{}, newMemProgress()
		led.add(2)
		sink := &scriptSink{}
		stop := run(t, alert.NewOutbox(sink, led.Source, prog, unitConfig()))
		synctest.Wait()
		stop() // a clean shutdown after a save
		prog.setSaveErr(errors.New("disk full"))
		led.add(2)
		ob := alert.NewOutbox(sink, led.Source, prog, unitConfig())
		stop = run(t, ob)
		synctest.Wait()
		if st := ob.Stats(); st.Position != 4 || st.Saved != 2 || st.Retried != 1 {
			t.Fatalf("stats = %+v, want position 4, saved 2, one failed round", st)
		}
		stop() // the crash: nothing saved since 2
		prog.setSaveErr(nil)
		run(t, alert.NewOutbox(sink, led.Source, prog, unitConfig()))
		synctest.Wait()
		if diff := cmp.Diff([]uint64{1, 2, 3, 4, 3, 4}, sink.delivered()); diff != "" {
			t.Errorf("delivered (-want +got):\n%s", diff)
		}
		sink.mu.Lock()
		defer sink.mu.Unlock()
		if a, b := sink.got[2].DeliveryID(), sink.got[4].DeliveryID(); a != b {
			t.Errorf("a re-delivery changed its delivery id: %q then %q", a, b)
		}
	})
}

// TestOutboxStart: with no saved progress, a sink begins after Start, and
// that start is saved at once.
func TestOutboxStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		led, prog := &ledger{}, newMemProgress()
		led.add(5)
		sink := &scriptSink{}
		cfg := unitConfig()
		cfg.Start = 3
		run(t, alert.NewOutbox(sink, led.Source, prog, cfg))
		synctest.Wait()
		if diff := cmp.Diff([]uint64{4, 5}, sink.delivered()); diff != "" {
			t.Errorf("delivered (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]uint64{3, 5}, prog.savedIndexes()); diff != "" {
			t.Errorf("saved (-want +got):\n%s", diff)
		}
	})
}

// TestOutboxSourceFailure: a failing source is retried with backoff.
func TestOutboxSourceFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		led := &ledger{fail: errors.New("database is locked")}
		led.add(1)
		sink := &scriptSink{}
		ob := alert.NewOutbox(sink, led.Source, newMemProgress(), unitConfig())
		run(t, ob)
		time.Sleep(3 * time.Second) // attempts at 0, 1 s, 3 s
		synctest.Wait()
		if st := ob.Stats(); st.Retried != 3 || st.Delivered != 0 {
			t.Errorf("stats = %+v, want 3 retried", st)
		}
		led.mu.Lock()
		led.fail = nil
		led.mu.Unlock()
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if diff := cmp.Diff(seq(1, 1), sink.delivered()); diff != "" {
			t.Errorf("delivered (-want +got):\n%s", diff)
		}
	})
}

// TestOutboxRefusesDisorder: a source that breaks its contract stops Run.
func TestOutboxRefusesDisorder(t *testing.T) {
	for name, alerts := range map[string][]alert.Alert{
		"not after the position": {newAlert(0)},
		"out of order":           {newAlert(2), newAlert(1)},
		"twice the same index":   {newAlert(1), newAlert(1)},
	} {
		t.Run(name, func(t *testing.T) {
			src := func(context.Context, uint64) ([]alert.Alert, error) { return alerts, nil }
			ob := alert.NewOutbox(&scriptSink{}, src, newMemProgress(), unitConfig())
			if err := ob.Run(t.Context()); !errors.Is(err, alert.ErrSourceOrder) {
				t.Errorf("Run = %v, want ErrSourceOrder", err)
			}
		})
	}
}

// blockingSink delivers the first alert of a batch, then waits for ctx.
type blockingSink struct{ scriptSink }

func (s *blockingSink) Deliver(ctx context.Context, alerts []alert.Alert) (int, error) {
	s.scriptSink.Deliver(ctx, alerts[:1])
	<-ctx.Done()
	return 1, ctx.Err()
}

// TestOutboxShutdownSaves: cancelling Run in the middle of a batch saves
// what was delivered, and Run cannot run twice at once.
func TestOutboxShutdownSaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		led, prog := &ledger{}, newMemProgress()
		led.add(3)
		ob := alert.NewOutbox(&blockingSink{}, led.Source, prog, unitConfig())
		stop := run(t, ob)
		synctest.Wait()
		if err := ob.Run(t.Context()); !errors.Is(err, alert.ErrRunning) {
			t.Errorf("a second Run = %v, want ErrRunning", err)
		}
		stop()
		if diff := cmp.Diff([]uint64{0, 1}, prog.savedIndexes()); diff != "" {
			t.Errorf("saved (-want +got):\n%s", diff)
		}
	})
}

func ExampleAlert_DeliveryID() {
	a := alert.Alert{ID: "se-8f3a", Index: 1042, Kind: alert.Updated}
	fmt.Println(a.DeliveryID())
	// Output: se-8f3a:updated:1042
}
