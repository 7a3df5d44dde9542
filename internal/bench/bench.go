// Package bench is the load generator behind `custos bench`: HTTP ingest in
// open loop (a fixed arrival rate, latency measured from each request's
// scheduled time so queueing counts) or closed loop, patient-history queries,
// and a raw baseline that writes the same rows straight into a store.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos-audit/custos"
)

// Result is what one run measured.
type Result struct {
	Name      string
	Requests  int64
	Events    int64
	Errors    int64
	FirstErr  error
	Elapsed   time.Duration
	Latencies []time.Duration // one per successful request
	// Queries reports the rate in requests (queries) per second instead of
	// events per second.
	Queries bool
}

// Rate is events per second, or queries per second when r.Queries.
func (r *Result) Rate() float64 {
	if r.Queries {
		return float64(r.Requests) / r.Elapsed.Seconds()
	}
	return float64(r.Events) / r.Elapsed.Seconds()
}

// Percentile returns the p-th (0–100) latency percentile.
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	slices.Sort(r.Latencies)
	i := int(p / 100 * float64(len(r.Latencies)-1))
	return r.Latencies[i]
}

// String is one report line.
func (r *Result) String() string {
	unit := "events/s"
	if r.Queries {
		unit = "queries/s"
	}
	s := fmt.Sprintf("%-9s %9.0f %-9s  %7d requests  %9d events  %4d errors  in %5.1fs",
		r.Name, r.Rate(), unit, r.Requests, r.Events, r.Errors, r.Elapsed.Seconds())
	if len(r.Latencies) > 0 {
		s += fmt.Sprintf("  latency p50 %s p90 %s p99 %s max %s", ms(r.Percentile(50)), ms(r.Percentile(90)),
			ms(r.Percentile(99)), ms(r.Percentile(100)))
	}
	if r.FirstErr != nil {
		s += fmt.Sprintf("\n          first error: %v", r.FirstErr)
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

// ErrDone, returned by Load.Do, ends the run without counting an error.
var ErrDone = errors.New("bench: done")

// Load describes one run of requests.
type Load struct {
	Concurrency int
	Rate        float64 // requests per second; 0 runs closed loop
	Duration    time.Duration
	// Do sends request number i and returns how many events it carried,
	// or ErrDone when there is nothing more to send.
	Do func(ctx context.Context, i int) (int, error)
}

// Run drives the load and measures it.
func Run(ctx context.Context, name string, l Load) *Result {
	res := &Result{Name: name}
	var mu sync.Mutex
	var seq atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	record := func(start time.Time, n int, err error) {
		if errors.Is(err, ErrDone) {
			once.Do(func() { close(done) })
			return
		}
		d := time.Since(start)
		mu.Lock()
		defer mu.Unlock()
		res.Requests++
		if err != nil {
			res.Errors++
			if res.FirstErr == nil {
				res.FirstErr = err
			}
			return
		}
		res.Events += int64(n)
		res.Latencies = append(res.Latencies, d)
	}
	begin := time.Now()
	end := begin.Add(l.Duration)
	var wg sync.WaitGroup
	if l.Rate <= 0 {
		for w := 0; w < l.Concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) && ctx.Err() == nil && !closed(done) {
					start := time.Now()
					n, err := l.Do(ctx, int(seq.Add(1)))
					record(start, n, err)
				}
			}()
		}
	} else {
		// Open loop: arrivals are scheduled at a fixed rate whatever the
		// answers; a request waiting for a free worker is already late.
		tickets := make(chan time.Time, 1<<20)
		interval := time.Duration(float64(time.Second) / l.Rate)
		go func() {
			defer close(tickets)
			for t := begin; t.Before(end) && ctx.Err() == nil && !closed(done); t = t.Add(interval) {
				if d := time.Until(t); d > 0 {
					time.Sleep(d)
				}
				tickets <- t
			}
		}()
		for w := 0; w < l.Concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for t := range tickets {
					n, err := l.Do(ctx, int(seq.Add(1)))
					record(t, n, err)
				}
			}()
		}
	}
	wg.Wait()
	res.Elapsed = time.Since(begin)
	return res
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Events returns n realistic audit events: clinicians reading and updating
// records of patients drawn uniformly from `patients`.
func Events(r *rand.Rand, n, patients int) []custos.EventInput {
	actions := []custos.Action{custos.ActionRead, custos.ActionRead, custos.ActionRead, custos.ActionUpdate, custos.ActionCreate}
	out := make([]custos.EventInput, n)
	for i := range out {
		p := fmt.Sprintf("p-%06d", r.IntN(patients))
		u := r.IntN(2000)
		out[i] = custos.EventInput{
			User:   &custos.User{ID: fmt.Sprintf("clin-%04d", u), Name: fmt.Sprintf("Clinician %d", u), Roles: []string{"physician"}},
			Action: actions[r.IntN(len(actions))], ResourceType: "Observation", ResourceID: fmt.Sprintf("obs-%d", r.IntN(1_000_000)),
			PatientID: p, IPAddress: fmt.Sprintf("10.%d.%d.%d", r.IntN(4), r.IntN(256), r.IntN(256)),
			UserAgent: "ehr-web/4.2", RequestMethod: "GET", RequestPath: "/Observation?patient=" + p,
			StatusCode: 200, Source: "ehr-web", RequestID: fmt.Sprintf("req-%d", r.Int64()), SessionID: fmt.Sprintf("s-%d", u),
			PurposeOfUse: "TREAT",
		}
	}
	return out
}

// Bodies pre-encodes `count` JSON array bodies of `batch` events each, so the
// load generator spends no CPU on encoding while it measures.
func Bodies(seed uint64, count, batch, patients int) ([][]byte, error) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([][]byte, count)
	for i := range out {
		b, err := json.Marshal(Events(r, batch, patients))
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}
