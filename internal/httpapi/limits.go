package httpapi

// Bounded resources: the bytes of request bodies held at once, the searches
// running at once, and how long one read of the store may take. Past a
// bound the API answers 503 with Retry-After at once (pushback), and never
// queues without a deadline.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the bounds (Config).
const (
	DefaultBodyBudget   = 128 << 20
	DefaultQueryTimeout = 10 * time.Second
	DefaultSearchShare  = 0.25
)

// DefaultMaxSearches is the default of Config.MaxSearches: a quarter of the
// CPUs, at least one. A search that no index narrows keeps a CPU busy (in
// the process with SQLite, in the database with PostgreSQL) for as long as
// it runs; ingest keeps the others.
func DefaultMaxSearches() int { return max(1, runtime.GOMAXPROCS(0)/4) }

// keyBodyLimit is the body limit of POST /v1/api-keys (createKey).
const keyBodyLimit = 64 << 10

// bodyLimit returns the body limit of the route, or 0 when its handler
// reads no body.
func (a *API) bodyLimit(pattern string) int64 {
	switch pattern {
	case "POST /v1/events", "POST /fhir/AuditEvent", "POST /fhir":
		return a.cfg.MaxBodyBytes
	case "POST /v1/api-keys", "POST /v1/roles", "PUT /v1/roles/{name}", "POST /v1/users", "PUT /v1/users/{id}",
		"POST /v1/authorize", "POST /v1/grants", "POST /v1/grants/{id}/review", "POST /v1/login",
		"POST /v1/me/totp/confirm", "POST /v1/security-events", "POST /v1/security-events/{id}/status", "POST /v1/blocks", "POST /fhir/AuditEvent/_search":
		return keyBodyLimit
	}
	return 0
}

// budget counts bytes held against a fixed total.
type budget struct {
	max  int64
	used atomic.Int64
}

// reserve takes n bytes if they fit, and reports whether they did.
func (b *budget) reserve(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *budget) release(n int64) { b.used.Add(-n) }

// limits are the API's shared bounds and what they refused.
type limits struct {
	bodies  *budget
	refused *prometheus.CounterVec // by limit: bodies, searches, query_time
}

func newLimits(cfg Config) *limits {
	l := &limits{
		bodies: &budget{max: cfg.BodyBudget},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_http_limited_total",
			Help: "Requests answered 503 because a bound was reached: bodies (bytes of request bodies in flight), searches (searches running at once), query_time (a read of the store ran out of time).",
		}, []string{"limit"}),
	}
	if cfg.Registry != nil {
		inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "custos_http_body_bytes_in_flight", Help: "Bytes of request bodies held by requests in progress (bounded by --body-budget).",
		}, func() float64 { return float64(l.bodies.used.Load()) })
		cfg.Registry.MustRegister(l.refused, inFlight)
	}
	return l
}

// limitBody holds the bytes of the request's body against the server-wide
// budget while the handler runs, and answers 503 with Retry-After at once
// when they do not fit: by Content-Length before anything is read when the
// client declares it, by the bytes actually read otherwise (a chunked body
// is refused at the read that exceeds the budget). Never more than limit,
// the route's own body limit, is held for one request: the handler reads no
// further.
func (a *API) limitBody(limit int64, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next(w, r)
			return
		}
		if r.ContentLength >= 0 {
			n := min(r.ContentLength, limit)
			if !a.lim.bodies.reserve(n) {
				a.refuseBody(w, r, r.Body, limit)
				return
			}
			defer a.lim.bodies.release(n)
			next(w, r)
			return
		}
		raw := r.Body
		body := &budgetedBody{ReadCloser: raw, b: a.lim.bodies, limit: limit}
		defer func() { a.lim.bodies.release(body.held) }()
		r.Body = body
		next(&budgetWriter{ResponseWriter: w, body: body, refuse: func(w http.ResponseWriter) {
			a.refuseBody(w, r, raw, limit-body.held)
		}}, r)
	}
}

// refuseBody answers 503 with Retry-After, then reads and discards what the
// client still sends of the body, up to left bytes, through a small buffer:
// a client that writes its body before it reads the answer (Go's among
// them) would otherwise see the connection reset, not the 503. A client
// that asked for 100-continue was told nothing yet and sends nothing.
func (a *API) refuseBody(w http.ResponseWriter, r *http.Request, body io.Reader, left int64) {
	a.lim.refused.WithLabelValues("bodies").Inc()
	rc := http.NewResponseController(w)
	drain := !strings.EqualFold(r.Header.Get("Expect"), "100-continue") && rc.EnableFullDuplex() == nil
	a.problem(w, r, &custos.Error{Op: "httpapi.bodies", Kind: custos.Unavailable,
		Detail: "the server holds as many request bodies as it may at once; nothing was stored; retry later"})
	if drain {
		rc.Flush()
		io.CopyBuffer(io.Discard, io.LimitReader(body, left+1), make([]byte, 32<<10))
	}
}

// errBodyBudget ends the read of a body that does not fit in the budget.
var errBodyBudget = errors.New("httpapi: the request bodies in flight exceed the budget")

// budgetedBody reserves the bytes of a body of unknown length as they are
// read.
type budgetedBody struct {
	io.ReadCloser
	b       *budget
	limit   int64 // hold no more than this
	held    int64
	refused bool
}

func (c *budgetedBody) Read(p []byte) (int, error) {
	if c.refused {
		return 0, errBodyBudget
	}
	n, err := c.ReadCloser.Read(p)
	if k := min(int64(n), c.limit-c.held); k > 0 {
		if !c.b.reserve(k) {
			c.refused = true
			return 0, errBodyBudget
		}
		c.held += k
	}
	return n, err
}

// budgetWriter answers the budget's 503 in place of what the handler
// answers when the body's read was refused (the handler sees only a failed
// read, which it would report as the client's fault).
type budgetWriter struct {
	http.ResponseWriter
	body            *budgetedBody
	refuse          func(http.ResponseWriter)
	wrote, replaced bool
}

func (w *budgetWriter) WriteHeader(code int) {
	if w.wrote {
		if !w.replaced {
			w.ResponseWriter.WriteHeader(code) // superfluous: net/http logs it
		}
		return
	}
	w.wrote = true
	if w.body.refused {
		w.replaced = true
		h := w.ResponseWriter.Header()
		for k := range h {
			delete(h, k)
		}
		w.refuse(w.ResponseWriter)
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *budgetWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *budgetWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// boundedStore is the store as the API reads it: every read runs within
// the query timeout, and searches (Events) take one of a fixed number of
// slots, waiting for one no longer than that timeout. Appends do not pass
// here (they go through the ledger), nor does Ping (readiness): neither
// ever waits behind a search.
type boundedStore struct {
	store.Store
	timeout time.Duration
	slots   chan struct{}
	rest    float64 // a slot rests rest × the duration of its last search
	refused *prometheus.CounterVec
}

func newBoundedStore(st store.Store, cfg Config, l *limits) *boundedStore {
	return &boundedStore{Store: st, timeout: cfg.QueryTimeout, slots: make(chan struct{}, cfg.MaxSearches),
		rest: max(0, 1/cfg.SearchShare-1), refused: l.refused}
}

// Events runs a search within the query timeout; one that scans (store.
// Query.Scans) first takes a slot. The slot then
// rests in proportion to the time the search took (SearchShare) before the
// next search may take it: the answer is not delayed, but searches together
// never keep more than MaxSearches × SearchShare CPUs busy, and ingest keeps
// the rest.
func (b *boundedStore) Events(ctx context.Context, q store.Query) ([]custos.Event, error) {
	rctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if !q.Scans() {
		// Read from an index, at most the page it returns (a patient's
		// history): milliseconds, never held back behind the scans.
		out, err := b.Store.Events(rctx, q)
		return out, b.late(ctx, rctx, "search", err)
	}
	select {
	case b.slots <- struct{}{}:
	case <-rctx.Done():
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		b.refused.WithLabelValues("searches").Inc()
		return nil, &custos.Error{Op: "httpapi.search", Kind: custos.Unavailable,
			Detail: fmt.Sprintf("as many searches as the server runs at once kept running for %s; retry later", b.timeout)}
	}
	start := time.Now()
	defer func() {
		if rest := time.Duration(float64(time.Since(start)) * b.rest); rest > 0 {
			time.AfterFunc(rest, func() { <-b.slots })
			return
		}
		<-b.slots
	}()
	out, err := b.Store.Events(rctx, q)
	return out, b.late(ctx, rctx, "search", err)
}

// Event reads one event within the query timeout.
func (b *boundedStore) Event(ctx context.Context, index uint64) (custos.Event, error) {
	rctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	e, err := b.Store.Event(rctx, index)
	return e, b.late(ctx, rctx, "read", err)
}

// Nodes reads tree nodes (proofs) within the query timeout.
func (b *boundedStore) Nodes(ctx context.Context, pos []uint64) ([][]byte, error) {
	rctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	n, err := b.Store.Nodes(rctx, pos)
	return n, b.late(ctx, rctx, "proof", err)
}

// LatestCheckpoint reads the newest checkpoint within the query timeout.
func (b *boundedStore) LatestCheckpoint(ctx context.Context) (*store.Checkpoint, error) {
	rctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	cp, err := b.Store.LatestCheckpoint(rctx)
	return cp, b.late(ctx, rctx, "read", err)
}

// late turns the failure of a read that ran out of its time into a 503
// that says so (the client's own cancellation passes through): its detail
// names no filter value, only what to do.
func (b *boundedStore) late(ctx, rctx context.Context, what string, err error) error {
	if err == nil || ctx.Err() != nil || !errors.Is(rctx.Err(), context.DeadlineExceeded) {
		return err
	}
	b.refused.WithLabelValues("query_time").Inc()
	detail := fmt.Sprintf("the %s did not finish within %s; retry later", what, b.timeout)
	if what == "search" {
		detail = fmt.Sprintf("the search did not finish within %s: narrow it with patient_id, user, ip_address, "+
			"or resource_type with resource_id, or a shorter time range (from, to), or retry later", b.timeout)
	}
	return &custos.Error{Op: "httpapi." + what, Kind: custos.Unavailable, Detail: detail, Err: err}
}
