package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/report"
	"github.com/custos-audit/custos/internal/rules"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/sqlite"
	"github.com/jackc/pgx/v5"
)

// The report benchmark: --preload events in one month (March 2026) plus a
// twentieth as many spread over the six years before it, appended through
// the ledger's sequencer straight to the store (no HTTP: loading ten
// million events over HTTP takes the better part of an hour), then the
// one-month HIPAA report timed, and patient access reports over the six
// years. The store in --data (or --db) is kept: --preload 0 times the
// reports again on what an earlier run loaded.

var (
	benchMonth     = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	benchMonthEnd  = benchMonth.AddDate(0, 1, 0)
	benchHistStart = benchMonth.AddDate(-6, 0, 0)
)

func (c *benchConfig) reportBench(ctx context.Context, out, progress io.Writer) error {
	if c.data == "" {
		dir, err := os.MkdirTemp("", "custos-bench-report-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.data = dir
	}
	log := slog.New(slog.DiscardHandler)
	var st store.Store
	var err error
	where := "sqlite " + c.data
	if c.db != "" {
		var pg *postgres.Store
		pg, err = postgres.Open(ctx, c.db, postgres.Options{Logger: log})
		if err == nil {
			pg.SetLockTenure(time.Minute) // bulk batches of 10,000 on a loaded machine, one writer
		}
		st, where = pg, "postgres"
	} else {
		st, err = sqlite.Open(ctx, c.data, sqlite.Options{Logger: log})
	}
	if err != nil {
		return err
	}
	defer st.Close()
	signer, _, err := ledger.LoadOrCreateKey(filepath.Join(c.data, ledger.KeyFileName), "custos/bench-report")
	if err != nil {
		return err
	}
	if c.preload > 0 {
		if err := c.preloadReport(ctx, st, signer, out, progress); err != nil {
			return err
		}
	}
	if c.db != "" && c.preload > 0 {
		// Fresh statistics, as autovacuum would gather them after a bulk
		// load: without them the planner takes the month for a few rows.
		conn, err := pgx.Connect(ctx, c.db)
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "ANALYZE events")
		conn.Close(ctx)
		if err != nil {
			return err
		}
	}
	cp, err := st.LatestCheckpoint(ctx)
	if err != nil {
		return fmt.Errorf("no checkpoint in the store (preload first): %w", err)
	}
	b := report.NewBuilder(st, report.Config{VerifierKey: signer.VerifierKey(), Version: versionString(),
		Baseline: rules.DefaultConfig().UnusualPHIAccess, RecomputeBaselines: c.baselines})
	fmt.Fprintf(out, "report bench on %s: ledger of %d records\n", where, cp.Size)
	for run := 1; run <= 3; run++ {
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		peak := watchHeap()
		start := time.Now()
		last, lastName, steps := start, "", ""
		prog := func(_, _ int, name string) {
			if lastName != "" {
				steps += fmt.Sprintf(" %s %.2fs;", lastName, time.Since(last).Seconds())
			}
			last, lastName = time.Now(), name
		}
		h, err := b.HIPAA(ctx, report.Request{From: benchMonth, To: benchMonthEnd, GeneratedBy: "bench", Progress: prog})
		d := time.Since(start)
		prog(0, 0, "")
		heap := peak()
		if err != nil {
			return err
		}
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		fmt.Fprintf(out, "hipaa one month run %d: %d events in the month, %.2f s, integrity ok %v, allocated %.1f MiB, peak Go heap %.1f MiB\n",
			run, h.AccessSummary.TotalEvents, d.Seconds(), h.Integrity.OK, float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), float64(heap)/(1<<20))
		fmt.Fprintf(progress, "  steps:%s\n", steps)
	}
	return c.patientBench(ctx, b, out)
}

// watchHeap samples the Go heap until the returned function is called,
// which returns the largest sample.
func watchHeap() func() uint64 {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// patientBench times the access reports of patients over six years.
func (c *benchConfig) patientBench(ctx context.Context, b *report.Builder, out io.Writer) error {
	rng := rand.New(rand.NewPCG(7, 7))
	var ds []time.Duration
	var total int64
	to := benchMonthEnd
	for range 200 {
		p := fmt.Sprintf("p-%d", rng.IntN(c.patients))
		start := time.Now()
		r, err := b.PatientAccess(ctx, report.PatientRequest{PatientID: p, From: to.Add(-report.DefaultRetention), To: to})
		if err != nil {
			return err
		}
		ds = append(ds, time.Since(start))
		total += r.Total
	}
	slices.Sort(ds)
	start := time.Now()
	heavy, err := b.PatientAccess(ctx, report.PatientRequest{PatientID: "p-heavy", From: to.Add(-report.DefaultRetention), To: to})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "patient access report of p-heavy, six years: %d events (%d listed), %.1f ms\n", heavy.Total, len(heavy.Accesses), ms(time.Since(start)))
	fmt.Fprintf(out, "patient access report, six years, 200 patients (%.1f events each on average): p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		float64(total)/200, ms(ds[len(ds)/2]), ms(ds[len(ds)*99/100]), ms(ds[len(ds)-1]))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// preloadReport appends the benchmark's events through a sequencer whose
// clock walks through the six years of history and then the month.
func (c *benchConfig) preloadReport(ctx context.Context, st store.Store, signer *ledger.Signer, out, progress io.Writer) error {
	var now atomic.Int64
	now.Store(benchHistStart.UnixMicro())
	clock := func() time.Time { return time.UnixMicro(now.Load()).UTC() }
	seq, err := ledger.Open(ctx, st, st, st, signer, ledger.Config{Now: clock, LocalClock: true, CheckpointEvery: 100_000,
		CheckpointInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer seq.Close()
	h, err := st.Head(ctx)
	if err != nil {
		return err
	}
	if h.Size == 0 {
		if _, err := seq.Append(ctx, "custos", nil, ledger.LogKeyRecord(signer.VerifierKey())); err != nil {
			return err
		}
	} else if h.LastTimestamp.After(benchHistStart) {
		return fmt.Errorf("the store already holds events up to %s: preload into an empty store (or --preload 0 to time the reports)", h.LastTimestamp.Format(time.RFC3339))
	}
	history := c.preload / 20
	const batch = 10_000
	start := time.Now()
	phases := []struct {
		n        int
		from, to time.Time
	}{{history, benchHistStart, benchMonth}, {c.preload, benchMonth, benchMonthEnd}}
	done := 0
	for _, ph := range phases {
		step := ph.to.Sub(ph.from) / time.Duration(max(ph.n, 1))
		// Four appenders: the sequencer commits what they send together.
		type job struct{ at, n int }
		jobs := make(chan job)
		var wg sync.WaitGroup
		var failed atomic.Pointer[error]
		var mu sync.Mutex
		for w := range 4 {
			wg.Add(1)
			g := newReportGen(c.patients, uint64(w))
			go func() {
				defer wg.Done()
				for j := range jobs {
					evs := g.events(j.n)
					mu.Lock() // the clock only moves forward
					if t := ph.from.Add(step * time.Duration(j.at)).UnixMicro(); t > now.Load() {
						now.Store(t)
					}
					mu.Unlock()
					if _, err := seq.Append(ctx, "apikey:bench", evs); err != nil {
						failed.Store(&err)
					}
				}
			}()
		}
		for i := 0; i < ph.n && failed.Load() == nil; i += batch {
			n := min(batch, ph.n-i)
			jobs <- job{i, n}
			done += n
			if done%(20*batch) < batch {
				fmt.Fprintf(progress, "preload: %d/%d events (%.0f/s)\n", done, c.preload+history, float64(done)/time.Since(start).Seconds())
			}
		}
		close(jobs)
		wg.Wait()
		if err := failed.Load(); err != nil {
			return *err
		}
	}
	now.Store(benchMonthEnd.Add(time.Hour).UnixMicro())
	seq.Close() // signs the tail
	fmt.Fprintf(out, "preload: %d events (%d in the month, %d over the six years before) in %.1f s (%.0f events/s)\n",
		done, c.preload, history, time.Since(start).Seconds(), float64(done)/time.Since(start).Seconds())
	return nil
}

// reportGen makes varied events: 2,000 users in 8 roles, 20 sources, 5,000
// addresses, the actions in realistic shares, a few exports that disclose
// and a few emergency accesses.
type reportGen struct {
	rng      *rand.Rand
	patients int
}

func newReportGen(patients int, seed uint64) *reportGen {
	return &reportGen{rng: rand.New(rand.NewPCG(1, seed)), patients: patients}
}

var benchRoles = []string{"physician", "nurse", "resident", "pharmacist", "billing", "registrar", "therapist", "auditor"}

func (g *reportGen) events(n int) []custos.Event {
	out := make([]custos.Event, n)
	for i := range out {
		u := g.rng.IntN(2000)
		p := fmt.Sprintf("p-%d", g.rng.IntN(g.patients))
		if g.rng.IntN(200) == 0 {
			p = "p-heavy" // one patient in every two hundred events: a long history to report
		}
		e := custos.Event{User: custos.User{ID: fmt.Sprintf("user-%d", u), Name: "User", Roles: []string{benchRoles[u%len(benchRoles)]}},
			ResourceType: "Patient", ResourceID: p, PatientID: p,
			IPAddress: fmt.Sprintf("10.%d.%d.%d", u%8, g.rng.IntN(25), g.rng.IntN(25)),
			Outcome:   custos.OutcomeSuccess, StatusCode: 200, Source: fmt.Sprintf("ehr-%d", u%20),
			RequestMethod: "GET", RequestPath: "/Patient/" + p}
		switch x := g.rng.IntN(1000); {
		case x < 700:
			e.Action = custos.ActionRead
		case x < 800:
			e.Action, e.RequestMethod = custos.ActionUpdate, "PUT"
		case x < 850:
			e.Action, e.RequestMethod = custos.ActionCreate, "POST"
		case x < 930:
			e.Action, e.ResourceType, e.ResourceID, e.PatientID, e.RequestPath = custos.ActionLogin, "Session", "", "", "/login"
			if x < 840+16 {
				e.Outcome, e.StatusCode = custos.OutcomeFailure, 401
			}
		case x < 970:
			e.Action, e.ResourceType, e.ResourceID, e.PatientID, e.RequestPath = custos.ActionLogout, "Session", "", "", "/logout"
		case x < 990:
			e.Action, e.ResourceType = custos.ActionExport, "DocumentReference"
			if x < 980 {
				e.Disclosure = &custos.Disclosure{Recipient: "Insurer " + fmt.Sprint(x%7), Purpose: "payment"}
			}
		case x < 999:
			e.Action, e.RequestMethod = custos.ActionDelete, "DELETE"
		default:
			e.Action, e.BreakGlass, e.BreakGlassReason = custos.ActionRead, true, "emergency"
		}
		out[i] = e
	}
	return out
}
