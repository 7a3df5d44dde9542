package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/atna"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/httpapi"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/sqlite"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// serverConfig is everything `custos serve` is configured with.
type serverConfig struct {
	data, db, addr, keyFile, origin, bootstrapToken, logLevel string
	logFormat                                                 string
	witnesses                                                 listFlag
	bodyBudget                                                int64
	queryTimeout                                              time.Duration
	maxSearches                                               int
	searchShare                                               float64
	now                                                       func() time.Time // the process's clock (tests shift it)
	checkpointEvery                                           uint64
	checkpointInterval, lockTenure, maxClockSkew              time.Duration
	maxBody                                                   int64
	maxBatch, maxChanges                                      int
	sessionIdle, sessionAbsolute, maxGrant                    time.Duration
	oidc                                                      oidcFlags
	rulesFile                                                 string
	monitor                                                   bool
	alerts                                                    alertFlags
	atna                                                      atnaConfig
	reports                                                   reportFlags
}

func (c *serverConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.data, "data", "./custos-data", "data folder of the embedded SQLite store")
	fs.StringVar(&c.db, "db", "", "PostgreSQL URL (postgres://…) instead of the embedded store")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&c.keyFile, "key-file", "", "checkpoint signing key (default <data>/"+ledger.KeyFileName+", created on first start)")
	fs.StringVar(&c.origin, "origin", "", "log origin for a newly created signing key (default custos/<hostname>)")
	fs.StringVar(&c.bootstrapToken, "bootstrap-token", "", "administrator token to create on the first start of an empty store (CUSTOS_BOOTSTRAP_TOKEN)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text, or json for log shippers")
	fs.Uint64Var(&c.checkpointEvery, "checkpoint-every", 1000, "sign a checkpoint every this many events")
	fs.DurationVar(&c.checkpointInterval, "checkpoint-interval", time.Second, "and at least this often while the log grows")
	fs.Int64Var(&c.maxBody, "max-body", 16<<20, "request body limit in bytes")
	fs.IntVar(&c.maxBatch, "max-batch", 10_000, "events per POST at most")
	fs.IntVar(&c.maxChanges, "max-changes", 64<<10, "bytes of an event's changes JSON at most")
	fs.DurationVar(&c.lockTenure, "lock-tenure", 2500*time.Millisecond, "PostgreSQL: how long a node may hold or wait for the append lock, or run one append statement, before it loses the lock")
	fs.DurationVar(&c.maxClockSkew, "max-clock-skew", 2*time.Second, "PostgreSQL: how far this node's clock may be from the database's (the ledger's clock) before it reports itself unready")
	fs.Int64Var(&c.bodyBudget, "body-budget", httpapi.DefaultBodyBudget, "bytes of request bodies held at once by all requests; past it, 503 with Retry-After (at least --max-body)")
	fs.DurationVar(&c.queryTimeout, "query-timeout", httpapi.DefaultQueryTimeout, "time limit of one search or read of the store; past it, 503")
	fs.IntVar(&c.maxSearches, "max-searches", 0, "scanning searches running at once (0: a quarter of the CPUs, at least 1); indexed searches take no slot")
	fs.Float64Var(&c.searchShare, "search-share", httpapi.DefaultSearchShare, "share of its time a search slot may spend scanning, in (0, 1]")
	fs.DurationVar(&c.sessionIdle, "session-idle", 15*time.Minute, "a login session not used for this long ends")
	fs.DurationVar(&c.sessionAbsolute, "session-absolute", 12*time.Hour, "every login session ends this long after the login")
	fs.DurationVar(&c.maxGrant, "max-grant", 4*time.Hour, "the longest an emergency (break-the-glass) grant may last")
	c.oidc.flags(fs)
	fs.StringVar(&c.rulesFile, "rules", "", "YAML file of the detection rules' settings (default: the built-in defaults; see internal/rules/default.yaml)")
	c.alerts.flags(fs)
	fs.BoolVar(&c.monitor, "monitor", true, "run security monitoring (the detection rules, blocks); false turns it and its routes off")
	fs.Var(&c.witnesses, "witness", "URL,KEY of a C2SP tlog-witness that cosigns each checkpoint (repeatable; KEY is its cosignature/v1 verifier key)")
	c.atna.flags(fs)
	c.reports.flags(fs)
}

func (c *serverConfig) keyPath() string {
	if c.keyFile != "" {
		return c.keyFile
	}
	return filepath.Join(c.data, ledger.KeyFileName)
}

func (c *serverConfig) defaultOrigin() string {
	if c.origin != "" {
		return c.origin
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return "custos/" + strings.ReplaceAll(host, " ", "-")
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cfg serverConfig
	cfg.flags(fs)
	if ok, code := parse(fs, args, stderr); !ok {
		return code
	}
	log, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if v := os.Getenv("CUSTOS_TEST_CLOCK_OFFSET"); v != "" && err == nil {
		// A fault-injection hook for the clock-skew tests (faketime does
		// not reach Go binaries): this process's clock, shifted.
		var off time.Duration
		if off, err = time.ParseDuration(v); err == nil {
			cfg.now = func() time.Time { return time.Now().Add(off) }
			log.Warn("this process's clock is shifted for a test", "offset", off.String())
		}
	}
	if err == nil && cfg.maxChanges < custos.MinMaxChanges {
		err = fmt.Errorf("--max-changes %d: must be at least %d bytes", cfg.maxChanges, custos.MinMaxChanges)
	}
	if err == nil && cfg.bodyBudget < cfg.maxBody {
		err = fmt.Errorf("--body-budget %d: must be at least --max-body (%d)", cfg.bodyBudget, cfg.maxBody)
	}
	if err == nil && (cfg.queryTimeout <= 0 || cfg.maxSearches < 0 || cfg.searchShare <= 0 || cfg.searchShare > 1) {
		err = errors.New("--query-timeout must be positive, --max-searches 0 or more, --search-share in (0, 1]")
	}
	if err == nil {
		err = cfg.atna.check()
	}
	if err != nil {
		fmt.Fprintln(stderr, "custos serve:", err)
		return exitUsageErr
	}
	srv, err := startServer(ctx, cfg, log, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "custos serve:", err)
		return exitError
	}
	select {
	case <-ctx.Done():
	case err := <-srv.done: // the listener failed: nothing would be served
		srv.done <- err // for shutdown
		log.Error("the listener stopped", "err", err)
		srv.shutdown()
		fmt.Fprintln(stderr, "custos serve: the listener stopped:", err)
		return exitError
	}
	log.Info("shutting down")
	if err := srv.shutdown(); err != nil {
		fmt.Fprintln(stderr, "custos serve: shutdown:", err)
		return exitError
	}
	return exitOK
}

// server is a running Custos: store, ledger, API and listener.
type server struct {
	log  *slog.Logger
	st   store.Store
	seq  *ledger.Sequencer
	wit  *ledger.Witnesser
	stop context.CancelFunc // stops the witnesser
	dir  *authn.Directory
	api  *httpapi.API
	// stopMonitor stops the monitor (after recording what it holds) and
	// the alert outboxes.
	stopMonitor func()
	atna        *atna.Receiver // nil unless --atna-tls or --atna-udp
	http        *http.Server
	url         string
	done        chan error
}

// startServer opens everything and starts listening; it returns once the
// listener is bound.
func startServer(ctx context.Context, cfg serverConfig, log *slog.Logger, out io.Writer) (*server, error) {
	signer, created, err := ledger.LoadOrCreateKey(cfg.keyPath(), cfg.defaultOrigin())
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("created checkpoint signing key", "file", cfg.keyPath(), "origin", signer.Origin())
	}
	witnesses, err := parseWitnesses(cfg.witnesses)
	if err != nil {
		return nil, err
	}
	sinks, err := cfg.alerts.sinks()
	if err != nil {
		return nil, err
	}
	rulesCfg, err := loadRules(cfg.rulesFile) // a bad file stops the start before the store is opened
	if err != nil {
		return nil, err
	}
	if len(sinks) > 0 && !cfg.monitor {
		return nil, fmt.Errorf("--alert-webhook and --alert-syslog need --monitor")
	}
	st, where, err := openStore(ctx, cfg, log, false)
	if err != nil {
		return nil, err
	}
	if pg, ok := st.(*postgres.Store); ok {
		pg.SetLockTenure(cfg.lockTenure)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	lcfg := ledger.Config{
		CheckpointEvery: cfg.checkpointEvery, CheckpointInterval: cfg.checkpointInterval,
		Logger: log, Observe: ledgerMetrics(reg), Limits: custos.Limits{MaxChanges: cfg.maxChanges},
		MaxClockSkew: cfg.maxClockSkew, Now: cfg.now,
	}
	if err := checkBeforeStart(ctx, st, lcfg); err != nil {
		st.Close()
		return nil, err
	}
	var wit *ledger.Witnesser
	if len(witnesses) > 0 {
		// Before anything is signed: a witness that has seen a larger tree,
		// or another one, proves a rollback or a fork of the stored ledger.
		wit = ledger.NewWitnesser(st, witnesses, cfg.checkpointInterval, log)
		if err := witnessBeforeStart(ctx, wit); err != nil {
			st.Close()
			return nil, err
		}
	}
	seq, err := ledger.Open(ctx, st, st, st, signer, lcfg)
	if err == nil {
		if err = recordLogKey(ctx, st, seq, signer); err != nil {
			seq.Close()
		}
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	s := &server{log: log, st: st, seq: seq, wit: wit, done: make(chan error, 1)}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "custos_clock_skew_seconds", Help: "This node's clock minus the ledger's (the database's), as last measured.",
	}, func() float64 { return seq.ClockSkew().Seconds() }))
	if wit != nil {
		s.startWitnessing(reg)
	}
	sso, err := cfg.oidc.verifier(log)
	var keys *authn.Directory
	if err == nil {
		keys, err = authn.NewDirectory(ctx, seq, ledger.NewStateFeed(st, signer.VerifierKey()), authn.Config{
			Now: cfg.now, Logger: log, SessionIdle: cfg.sessionIdle, SessionAbsolute: cfg.sessionAbsolute,
			MaxGrant: cfg.maxGrant, Secret: signer.DeriveSecret("second factor"), SSO: sso})
	}
	s.dir = keys
	if err == nil {
		seq.SetEnrich(keys.FlagEmergency) // every ingest path: HTTP, FHIR, ATNA
		err = adoptLegacyKeys(ctx, st, keys, log)
	}
	if err == nil {
		err = s.bootstrap(ctx, keys, cfg.bootstrapToken, out)
	}
	if err != nil {
		s.closeLedger()
		return nil, err
	}
	var wakeAlerts atomic.Pointer[func()]
	mon, err := startMonitor(ctx, cfg, rulesCfg, st, seq, signer, log, reg, func() {
		if wake := wakeAlerts.Load(); wake != nil {
			(*wake)()
		}
	})
	if err != nil {
		s.closeLedger()
		return nil, err
	}
	if mon != nil {
		monCtx, stopMon := context.WithCancel(context.Background())
		monDone, alertsDone := make(chan struct{}), make(chan struct{})
		s.stopMonitor = func() { stopMon(); <-monDone; <-alertsDone }
		go func() { defer close(monDone); mon.Run(monCtx) }()
		wake, err := startOutboxes(monCtx, sinks, mon, st, log, reg, func() { close(alertsDone) })
		if err != nil {
			s.stopMonitor()
			s.closeLedger()
			return nil, err
		}
		wakeAlerts.Store(&wake)
	}
	api := httpapi.New(seq, st, keys, httpapi.Config{Monitor: mon,
		MaxBodyBytes: cfg.maxBody, MaxBatch: cfg.maxBatch, Limits: custos.Limits{MaxChanges: cfg.maxChanges},
		CursorKey: cursorKey(signer), Logger: log, Registry: reg, Alerts: s.critical,
		BodyBudget: cfg.bodyBudget, QueryTimeout: cfg.queryTimeout, MaxSearches: cfg.maxSearches, SearchShare: cfg.searchShare,
		Reports:       cfg.reports.builder(st, signer.VerifierKey(), rulesCfg, cfg.now),
		ReportFormats: cfg.reports.formats(ctx, log),
	})
	if cfg.atna.enabled() {
		if err := s.startATNA(cfg.atna, reg); err != nil {
			s.closeLedger()
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		s.closeLedger()
		return nil, fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	s.api = api
	s.url = "http://" + ln.Addr().String()
	s.http = httpapi.NewServer(cfg.addr, api.Handler())
	go func() { s.done <- s.http.Serve(ln) }()
	log.Info("custos is serving", "url", s.url, "store", where, "origin", signer.Origin(), "public_key", signer.VerifierKey())
	return s, nil
}

// openStore opens the PostgreSQL store when --db is set, the embedded SQLite
// store under --data otherwise, and says which (without credentials).
func openStore(ctx context.Context, cfg serverConfig, log *slog.Logger, readOnly bool) (store.Store, string, error) {
	if cfg.db != "" {
		st, err := postgres.Open(ctx, cfg.db, postgres.Options{Logger: log, ReadOnly: readOnly})
		if err != nil {
			return nil, "", err
		}
		return st, "postgres " + redactURL(cfg.db), nil
	}
	st, err := sqlite.Open(ctx, cfg.data, sqlite.Options{Logger: log, ReadOnly: readOnly})
	if err != nil {
		return nil, "", err
	}
	return st, st.Path(), nil
}

// adoptLegacyKeys records in the ledger, once, the keys a store written by
// the first release kept in its api_keys table.
func adoptLegacyKeys(ctx context.Context, st store.Store, keys *authn.Directory, log *slog.Logger) error {
	legacy, err := st.LegacyKeys(ctx)
	if err != nil {
		return err
	}
	n, err := keys.AdoptLegacy(ctx, legacy)
	if n > 0 {
		log.Info("recorded the API keys of the previous release in the ledger", "keys", n)
	}
	return err
}

// redactURL drops the password from a database URL for logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// bootstrap creates the administrator credential of an empty store and shows
// a generated token once.
func (s *server) bootstrap(ctx context.Context, keys *authn.Directory, token string, out io.Writer) error {
	tok, err := keys.Bootstrap(ctx, token)
	if err != nil {
		return err
	}
	switch {
	case tok != "" && token == "":
		// On standard output, apart from the logs (standard error), so a
		// script can capture it and log shippers never see it.
		fmt.Fprintf(out, "Administrator token (shown once; keep it safe): %s\n", tok)
	case tok == "" && token != "":
		s.log.Warn("CUSTOS_BOOTSTRAP_TOKEN is ignored: the store already has keys (it only creates the first administrator of an empty store)")
	}
	return nil
}

// cursorKey derives the paging-cursor HMAC key from the private signing key,
// so cursors survive restarts and are valid on every node sharing the key,
// and nobody without the key can forge one.
func cursorKey(s *ledger.Signer) []byte { return s.DeriveSecret("paging cursor") }

func (s *server) closeLedger() {
	s.closeATNA() // commits what it read, while the ledger is open
	if s.stopMonitor != nil {
		s.stopMonitor() // records what it holds, while the ledger is open
	}
	if s.stop != nil {
		s.stop()
	}
	s.seq.Close()
	if s.wit != nil { // offer the checkpoint of the tail, signed at close
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.wit.Round(ctx)
		cancel()
	}
	s.st.Close()
}

// shutdown stops accepting requests, lets running ones finish, commits what
// the ledger has queued, signs its tail and closes the store.
func (s *server) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	s.api.Close()
	s.closeLedger()
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

func ledgerMetrics(reg *prometheus.Registry) func(int, time.Duration, error) {
	commits := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "custos_ledger_commit_duration_seconds", Help: "Time to sequence and durably commit one group of events.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1},
	})
	sizes := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "custos_ledger_commit_events", Help: "Events per group commit.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 8),
	})
	failures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "custos_ledger_commit_failures_total", Help: "Group commits that failed; none of their events was acknowledged.",
	})
	appended := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "custos_ledger_events_total", Help: "Events durably appended to the ledger (all sources).",
	})
	reg.MustRegister(commits, sizes, failures, appended)
	return func(n int, d time.Duration, err error) {
		if err != nil {
			failures.Inc()
			return
		}
		commits.Observe(d.Seconds())
		sizes.Observe(float64(n))
		appended.Add(float64(n))
	}
}
