package httpaudit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/client"
)

// Config configures an Auditor. Zero values mean the documented defaults.
type Config struct {
	// Client talks to Custos: its key needs events:write, and blocks:check
	// when BlockRefresh is set (the built-in ingest_service role holds both).
	Client *client.Client
	// Source is every event's source ("ehr-web").
	Source string
	// SpoolDir is the durable spool's directory; "" keeps the queue in
	// memory only, which loses undelivered events when the process dies.
	SpoolDir string
	// SpoolMaxBytes bounds the spool (default 256 MiB).
	SpoolMaxBytes int64
	// OnSpoolFull is called, on its own goroutine, each time the spool
	// fills (once per episode: again only after it drained below the bound).
	OnSpoolFull func(SpoolStats)
	// WhenFull says what happens to requests while the spool is full.
	WhenFull FullPolicy
	// User says who made the request; false means unauthenticated, which is
	// recorded as the user "unauthenticated". When the application's
	// authentication runs inside the middleware, wrap the handlers it
	// protects with Attribute so User sees the authenticated request.
	User func(*http.Request) (custos.User, bool)
	// SessionID returns the request's session, if any.
	SessionID func(*http.Request) string
	// Resource, when it returns true, names the resource instead of the
	// routes and FHIR parsing.
	Resource func(*http.Request) (Resource, bool)
	// Routes are per-route options, matched like a Go 1.22 ServeMux.
	Routes []Route
	// FHIRBase is the path prefix under which FHIR-style paths are parsed
	// ("/fhir"); "" parses none, "/" the whole site.
	FHIRBase string
	// TrustedProxies are the peers whose Forwarded or X-Forwarded-For
	// headers are believed. From any other peer those headers are ignored.
	TrustedProxies []netip.Prefix
	// Redact names JSON fields whose values are replaced by "[REDACTED]",
	// at any depth, case-insensitively, in changes and in the query
	// recorded with the path. DefaultRedact is always included.
	Redact []string
	// MaxBody is the request bytes captured for changes (default 64 KiB).
	// A larger body is recorded as truncated; the request is still served.
	MaxBody int64
	// BatchSize (default 500) and FlushInterval (default 100 ms) bound how
	// many events, and how long, a batch gathers before it is sent.
	BatchSize     int
	FlushInterval time.Duration
	// RetryMin and RetryMax bound the wait between delivery attempts while
	// Custos is unreachable (defaults 100 ms and 10 s; doubling).
	RetryMin, RetryMax time.Duration
	// FailClosedTimeout bounds how long a fail-closed request waits for
	// Custos's acknowledgement (default 5 s).
	FailClosedTimeout time.Duration
	// FailClosedHold bounds the bytes of a fail-closed response held back
	// while its event is delivered (default 8 MiB). A larger response (a
	// bulk export) has its event delivered when the bound is reached — its
	// status is known by then — and streams on once Custos acknowledged it;
	// without the acknowledgement the client gets 503 and none of the data.
	FailClosedHold int64
	// BlockRefresh is how often the list of blocked addresses is fetched
	// from Custos; 0 checks no blocks.
	BlockRefresh time.Duration
	// Expand is called after the handler returned, with the built event; it
	// returns the events to record (default: ev alone).
	Expand func(r *http.Request, ev custos.EventInput) []custos.EventInput
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives operational logs, never PHI (default: discarded).
	Logger *slog.Logger
}

// Route holds the options of the requests that match Pattern.
type Route struct {
	Pattern      string        // a ServeMux pattern: "POST /login", "GET /Patient/{id}/$export"
	Action       custos.Action // override (LOGIN, LOGOUT, EXPORT, IMPORT, …); "" = from the method
	ResourceType string        // "" = from the pattern or path
	IDParam      string        // the path wildcard holding the resource id
	PatientParam string        // the path wildcard holding the patient id
	FailClosed   bool          // 503 unless Custos acknowledged the event
	Skip         bool          // not audited (health checks)
}

// Resource is what a request touched.
type Resource struct {
	Type, ID, PatientID string
	Search              bool // a search: ID is empty, the query is recorded with the path
}

// FullPolicy says what happens while the spool is full.
type FullPolicy int

// The policies.
const (
	// DropNewest serves requests and drops their events, counted in
	// Stats.Dropped and reported through OnSpoolFull.
	DropNewest FullPolicy = iota
	// RefuseRequests answers 503 before the handler runs: nothing happens
	// that cannot be recorded.
	RefuseRequests
)

func (p FullPolicy) String() string {
	switch p {
	case DropNewest:
		return "DropNewest"
	case RefuseRequests:
		return "RefuseRequests"
	}
	return fmt.Sprintf("FullPolicy(%d)", int(p))
}

// SpoolStats describes the spool when it fills.
type SpoolStats struct {
	Bytes, MaxBytes int64
	Events          int
	Dropped         uint64
}

// Stats are the Auditor's counters, cumulative since New but SpoolBytes
// and LastError. Export them to whatever metrics system the application
// uses (see the README).
type Stats struct {
	Queued     uint64 // events accepted by the middleware
	Spooled    uint64 // events written to the spool
	Delivered  uint64 // events acknowledged by Custos
	Dropped    uint64 // events lost: spool full, queue full, invalid
	Rejected   uint64 // events of batches Custos refused as invalid, set aside in the spool
	Refused    uint64 // requests answered 503 (spool full, fail-closed) or 403 (blocked)
	SpoolBytes int64  // bytes in the spool now
	LastError  string // the last delivery error, "" after a success
}

// Unauthenticated is the user id recorded for a request without a user.
const Unauthenticated = "unauthenticated"

// DefaultRedact are the field names always redacted.
var DefaultRedact = []string{"password", "passwd", "new_password", "old_password", "ssn",
	"social_security_number", "secret", "client_secret", "token", "access_token", "refresh_token",
	"id_token", "api_key", "authorization", "card_number", "cvv"}

// Auditor records the events of the requests its Handler serves.
type Auditor struct {
	cfg    Config
	log    *slog.Logger
	routes *routeTable
	redact map[string]bool
	q      queue
	blocks atomic.Pointer[[]blockEntry]

	in       chan item
	flushReq chan chan struct{}
	quit     chan struct{}
	wake     chan struct{} // a batch was sealed
	wg       sync.WaitGroup
	run      context.Context // ends when Close stops the loops
	stopRun  context.CancelFunc

	held    atomic.Int64 // request bytes waiting for the writer
	full    atomic.Bool
	fullMu  sync.Mutex
	changed chan struct{} // closed and replaced when the spool shrinks

	after func(time.Duration) <-chan time.Time // the retry timer, injected by tests

	queued, spooled, delivered, dropped, rejected, refused atomic.Uint64
	lastErr                                                atomic.Pointer[string]
	closeOnce                                              sync.Once
}

// New starts an Auditor: it opens (and recovers) the spool and starts the
// writer, the deliverer and, with BlockRefresh, the block refresher.
func New(cfg Config) (*Auditor, error) { return newAuditor(cfg, time.After) }

// newAuditor is New with the retry timer given.
func newAuditor(cfg Config, after func(time.Duration) <-chan time.Time) (*Auditor, error) {
	if cfg.Client == nil {
		return nil, errors.New("httpaudit: Config.Client is required")
	}
	setDefaults(&cfg)
	rt, err := newRouteTable(cfg.Routes)
	if err != nil {
		return nil, err
	}
	a := &Auditor{cfg: cfg, log: cfg.Logger, routes: rt, redact: redactSet(cfg.Redact),
		in: make(chan item, 8192), flushReq: make(chan chan struct{}), quit: make(chan struct{}),
		wake: make(chan struct{}, 1), changed: make(chan struct{}), after: after}
	if cfg.SpoolDir != "" {
		a.q, err = openSpool(cfg.SpoolDir, a.log)
		if err != nil {
			return nil, err
		}
	} else {
		a.q = newMemQueue()
	}
	a.start()
	return a, nil
}

func setDefaults(cfg *Config) {
	if cfg.SpoolMaxBytes <= 0 {
		cfg.SpoolMaxBytes = 256 << 20
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 10
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 100 * time.Millisecond
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(10*time.Second, cfg.RetryMin)
	}
	if cfg.FailClosedTimeout <= 0 {
		cfg.FailClosedTimeout = 5 * time.Second
	}
	if cfg.FailClosedHold <= 0 {
		cfg.FailClosedHold = 8 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
}

func (a *Auditor) start() {
	if a.q.pending() > 0 {
		a.signal()
	}
	a.run, a.stopRun = context.WithCancel(context.Background())
	a.wg.Add(2)
	go a.writeLoop()
	go a.deliverLoop()
	if a.cfg.BlockRefresh > 0 {
		a.wg.Add(1)
		go a.blockLoop(a.run)
	}
}

// Flush seals what is queued and waits until Custos acknowledged
// everything spooled, or ctx ends.
func (a *Auditor) Flush(ctx context.Context) error {
	if err := a.sync(ctx); err != nil {
		return err
	}
	for {
		ch := a.changedCh()
		if a.q.pending() == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("httpaudit: flush: %d events undelivered: %w", a.q.pending(), ctx.Err())
		}
	}
}

// sync has the writer spool what is queued and seal it.
func (a *Auditor) sync(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case a.flushReq <- done:
	case <-a.quit:
		return errors.New("httpaudit: closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the Auditor: call it after the server stopped serving. It
// seals what is queued, delivers what it can before ctx ends, and closes
// the spool; what was not delivered waits there for the next start.
func (a *Auditor) Close(ctx context.Context) error {
	var err error
	a.closeOnce.Do(func() {
		if ferr := a.Flush(ctx); ferr != nil {
			a.log.Warn("httpaudit: closing with events undelivered", "pending", a.q.pending(), "err", ferr)
		}
		close(a.quit)
		a.stopRun()
		a.wg.Wait()
		err = a.q.close()
	})
	return err
}

// Stats returns the counters.
func (a *Auditor) Stats() Stats {
	s := Stats{Queued: a.queued.Load(), Spooled: a.spooled.Load(), Delivered: a.delivered.Load(),
		Dropped: a.dropped.Load(), Rejected: a.rejected.Load(), Refused: a.refused.Load(), SpoolBytes: a.q.bytes()}
	if p := a.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	return s
}

func (a *Auditor) spoolStats() SpoolStats {
	return SpoolStats{Bytes: a.q.bytes(), MaxBytes: a.cfg.SpoolMaxBytes, Events: a.q.pending(), Dropped: a.dropped.Load()}
}

// changedCh returns a channel closed at the next change of the spool.
func (a *Auditor) changedCh() chan struct{} {
	a.fullMu.Lock()
	defer a.fullMu.Unlock()
	return a.changed
}

func (a *Auditor) notifyChanged() {
	a.fullMu.Lock()
	close(a.changed)
	a.changed = make(chan struct{})
	a.fullMu.Unlock()
}

func (a *Auditor) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// problem writes an RFC 9457 problem answer.
func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"status": status, "title": http.StatusText(status), "detail": detail})
}
