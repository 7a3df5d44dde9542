package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/client"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/bench"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/sqlite"
	"github.com/jackc/pgx/v5"
)

type benchConfig struct {
	url, token, data, db, mode string
	concurrency, batch         int
	rate                       float64
	duration                   time.Duration
	baseline                   bool
	baselines                  bool // report mode: --report-baselines
	preload, patients, limit   int
	denyShare                  float64
	rounds                     int
	monitor                    bool
	inProc                     bool   // the server runs in this process
	upstream                   string // proxy mode: the application behind the proxy ("" starts a trivial one)
	hc                         *http.Client
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var c benchConfig
	fs.StringVar(&c.url, "url", "", "server to load (default: start one in this process on a fresh store)")
	fs.StringVar(&c.token, "token", "", "bearer token for --url (an admin key: ingest and read)")
	fs.StringVar(&c.data, "data", "", "data folder of the in-process server (default: a temporary folder)")
	fs.StringVar(&c.db, "db", "", "PostgreSQL URL for the in-process server's store (and, in a temporary schema, the raw baseline)")
	fs.StringVar(&c.mode, "mode", "ingest", "ingest: POST batches (plus the raw baseline); query: patient-history searches; fhir: the same batches as Custos JSON and as FHIR Bundles; fhir-query: query through GET /fhir/AuditEvent?patient=; authorize: POST /v1/authorize decisions; proxy: requests/s through custos proxy vs its upstream alone, every event counted; block: time from a fifth failed login to the 403; report: the one-month HIPAA report and six-year patient access reports over --preload events, loaded straight through the ledger into --data or --db")
	fs.IntVar(&c.concurrency, "concurrency", 8, "requests in flight at most")
	fs.IntVar(&c.batch, "batch", 500, "events per POST")
	fs.Float64Var(&c.rate, "rate", 0, "open loop: events per second to offer (0: closed loop, as fast as answers come)")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "how long each phase runs")
	fs.BoolVar(&c.baseline, "baseline", true, "ingest mode: also write the same rows straight into a fresh SQLite store (no HTTP, JSON or ledger)")
	fs.IntVar(&c.preload, "preload", 0, "query mode: events to load first; report mode: events in the report's month (and a twentieth as many over the six years before)")
	fs.IntVar(&c.patients, "patients", 100_000, "distinct patients in generated events")
	fs.IntVar(&c.limit, "limit", 100, "query mode: page size")
	fs.Float64Var(&c.denyShare, "deny-share", 0, "authorize mode: share of questions that are denied (each denial is committed before its answer)")
	fs.BoolVar(&c.baselines, "report-baselines", false, "report mode: also recompute the PHI-access baselines over the period")
	fs.IntVar(&c.rounds, "rounds", 50, "block mode: attackers, each from its own loopback address")
	fs.BoolVar(&c.monitor, "monitor", true, "in-process server: run security monitoring (compare ingest with it off)")
	fs.StringVar(&c.upstream, "upstream", "", "proxy mode: the application to put the proxy in front of; it must answer GET /fhir/Patient/{id} with 200 (default: a trivial one in this process)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (server included when in-process) to this file")
	if ok, code := parse(fs, args, stderr); !ok {
		return code
	}
	if c.concurrency < 1 || c.batch < 1 || c.duration <= 0 || c.patients < 1 {
		fmt.Fprintln(stderr, "custos bench: --concurrency, --batch, --duration and --patients must be positive")
		return exitUsageErr
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "custos bench:", err)
			return exitError
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if c.mode == "report" {
		if err := c.reportBench(ctx, stdout, stderr); err != nil {
			fmt.Fprintln(stderr, "custos bench:", err)
			return exitError
		}
		return exitOK
	}
	stop, err := c.target(ctx, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "custos bench:", err)
		return exitError
	}
	defer stop()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.concurrency * 2, MaxConnsPerHost: c.concurrency * 2}}
	cl := client.New(c.url, c.token, hc)
	c.hc = hc
	switch c.mode {
	case "ingest":
		err = c.ingest(ctx, cl, stdout)
	case "query", "fhir-query":
		err = c.queries(ctx, cl, stdout, stderr)
	case "authorize":
		err = c.decisions(ctx, hc, stdout)
	case "block":
		err = c.blockLatency(ctx, stdout)
	case "fhir":
		err = c.fhirIngest(ctx, cl, hc, stdout)
	case "proxy":
		err = c.proxyOverhead(ctx, stdout, stderr)
	default:
		err = fmt.Errorf("--mode %q: want ingest, query, fhir, fhir-query, authorize, proxy or block", c.mode)
	}
	if err != nil {
		fmt.Fprintln(stderr, "custos bench:", err)
		return exitError
	}
	return exitOK
}

// target starts an in-process server unless --url names one.
func (c *benchConfig) target(ctx context.Context, stderr io.Writer) (func(), error) {
	if c.url != "" {
		if c.token == "" {
			return nil, errors.New("--token is required with --url")
		}
		return func() {}, nil
	}
	cleanup := func() {}
	if c.data == "" {
		dir, err := os.MkdirTemp("", "custos-bench-")
		if err != nil {
			return nil, err
		}
		c.data, cleanup = dir, func() { os.RemoveAll(dir) }
	}
	var sc serverConfig
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	sc.flags(fs)
	sc.data, sc.addr, sc.db, sc.monitor = c.data, "127.0.0.1:0", c.db, c.monitor
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := startServer(ctx, sc, log, io.Discard)
	if err != nil {
		cleanup()
		return nil, err
	}
	// An admin key of its own: created through the ledger like any other.
	if _, c.token, err = srv.dir.Create(ctx, nil, authn.KeySpec{Name: "custos bench", Roles: []string{custos.RoleAdministrator}}, ""); err != nil {
		srv.shutdown()
		cleanup()
		return nil, err
	}
	c.url, c.inProc = srv.url, true
	fmt.Fprintf(stderr, "bench: in-process server at %s on %s\n", c.url, c.data)
	return func() { srv.shutdown(); cleanup() }, nil
}

func (c *benchConfig) describe(w io.Writer) {
	loop := "closed loop"
	if c.rate > 0 {
		loop = fmt.Sprintf("open loop at %.0f events/s", c.rate)
	}
	fmt.Fprintf(w, "custos bench --mode %s: %s, concurrency %d, batch %d, %s per phase, %d patients\n",
		c.mode, loop, c.concurrency, c.batch, c.duration, c.patients)
}

func (c *benchConfig) ingest(ctx context.Context, cl *client.Client, out io.Writer) error {
	bodies, err := bench.Bodies(1, 64, c.batch, c.patients)
	if err != nil {
		return err
	}
	c.describe(out)
	var base *bench.Result
	if c.baseline {
		if base, err = rawBaseline(ctx, c); err != nil {
			return err
		}
		fmt.Fprintln(out, base)
	}
	res := bench.Run(ctx, "http", bench.Load{Concurrency: c.concurrency, Rate: c.rate / float64(c.batch), Duration: c.duration,
		Do: func(ctx context.Context, i int) (int, error) {
			r, err := cl.AppendRaw(ctx, "application/json", bodies[i%len(bodies)])
			return len(r), err
		}})
	fmt.Fprintln(out, res)
	if base != nil && base.Rate() > 0 {
		fmt.Fprintf(out, "ratio     http / raw baseline = %.2f\n", res.Rate()/base.Rate())
	}
	return nil
}

// rawBaseline writes the same rows, in batches of the same size, straight
// into a fresh store of the same kind with the same durability (one
// synchronous transaction per batch): no HTTP, no JSON, no ledger, no tree.
func rawBaseline(ctx context.Context, c *benchConfig) (*bench.Result, error) {
	st, cleanup, err := baselineStore(ctx, c.db)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	r := rand.New(rand.NewPCG(1, 2))
	batches := make([][]custos.Event, 64)
	for i := range batches {
		for _, in := range bench.Events(r, c.batch, c.patients) {
			e := in.Event()
			if err := e.Normalize(custos.DefaultLimits, ""); err != nil {
				return nil, err
			}
			batches[i] = append(batches[i], e)
		}
	}
	var next uint64
	return bench.Run(ctx, "raw", bench.Load{Concurrency: 1, Duration: c.duration, Do: func(ctx context.Context, i int) (int, error) {
		evs := batches[i%len(batches)]
		now := time.Now().UTC().Truncate(time.Microsecond)
		for j := range evs {
			evs[j].Index, evs[j].Timestamp = next+uint64(j), now
		}
		if err := st.Append(ctx, &store.Batch{Events: evs}); err != nil {
			return 0, err
		}
		next += uint64(len(evs))
		return len(evs), nil
	}}), nil
}

// baselineStore opens an empty store for the raw baseline: a temporary SQLite
// folder, or a temporary schema in the PostgreSQL database db.
func baselineStore(ctx context.Context, db string) (store.Store, func(), error) {
	if db == "" {
		dir, err := os.MkdirTemp("", "custos-baseline-")
		if err != nil {
			return nil, nil, err
		}
		st, err := sqlite.Open(ctx, dir, sqlite.Options{})
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		return st, func() { st.Close(); os.RemoveAll(dir) }, nil
	}
	schema := fmt.Sprintf("custos_bench_raw_%d", time.Now().UnixNano())
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		return nil, nil, fmt.Errorf("baseline: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return nil, nil, fmt.Errorf("baseline: %w", err)
	}
	drop := func() {
		if c, err := pgx.Connect(context.Background(), db); err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	}
	u, err := url.Parse(db)
	if err != nil {
		drop()
		return nil, nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	st, err := postgres.Open(ctx, u.String(), postgres.Options{})
	if err != nil {
		drop()
		return nil, nil, err
	}
	return st, func() { st.Close(); drop() }, nil
}

func (c *benchConfig) queries(ctx context.Context, cl *client.Client, out, progress io.Writer) error {
	c.describe(out)
	if c.preload > 0 {
		bodies, err := bench.Bodies(2, 64, 1000, c.patients)
		if err != nil {
			return err
		}
		n := (c.preload + 999) / 1000
		var sent atomic.Int64
		start := time.Now()
		res := bench.Run(ctx, "preload", bench.Load{Concurrency: 4, Duration: 24 * time.Hour, Do: func(ctx context.Context, i int) (int, error) {
			if i > n {
				return 0, bench.ErrDone
			}
			r, err := cl.AppendRaw(ctx, "application/json", bodies[i%len(bodies)])
			if total := sent.Add(int64(len(r))); len(r) > 0 && total/100_000 > (total-int64(len(r)))/100_000 {
				fmt.Fprintf(progress, "preloaded %d events (%.0f/s)\n", total, float64(total)/time.Since(start).Seconds())
			}
			return len(r), err
		}})
		fmt.Fprintln(out, res)
	}
	res := bench.Run(ctx, "query", bench.Load{Concurrency: c.concurrency, Rate: c.rate, Duration: c.duration,
		Do: func(ctx context.Context, i int) (int, error) {
			// Request i asks for a patient drawn from its own seed: the same
			// sequence every run, and no state shared between workers.
			p := fmt.Sprintf("p-%06d", rand.New(rand.NewPCG(uint64(i), 3)).IntN(c.patients))
			if c.mode == "fhir-query" {
				return c.fhirSearch(ctx, c.hc, p)
			}
			page, err := cl.Events(ctx, url.Values{"patient_id": {p}, "limit": {fmt.Sprint(c.limit)}})
			if err != nil {
				return 0, err
			}
			return len(page.Items), nil
		}})
	res.Queries = true
	fmt.Fprintln(out, res)
	fmt.Fprintln(out, "(query 'events' are events returned; every query also appends its own READ record to the ledger)")
	return nil
}
