// Package httpapi serves the /v1 JSON API, health probes and metrics. Every
// /v1 route needs a bearer credential holding the route's permission; reading
// the trail is itself recorded in the trail; errors are problem+json and never
// carry internals.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/ingest"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Ledger is what the API needs of the ledger's sequencer.
type Ledger interface {
	Append(ctx context.Context, by string, events []custos.Event, states ...leaf.StateRecord) ([]custos.Receipt, error)
}

// Config tunes the API. Zero fields take the defaults.
type Config struct {
	MaxBodyBytes int64 // request body limit (default 16 MiB)
	MaxBatch     int   // events per POST (default 10,000)
	Limits       custos.Limits
	CursorKey    []byte // HMAC key that signs paging cursors
	Logger       *slog.Logger
	Registry     *prometheus.Registry // where metrics register; nil for none
	// Alerts, when set, returns a CRITICAL condition that makes the node
	// unready (a witness refused the log), or "".
	Alerts func() string
}

// API holds the handlers' dependencies.
type API struct {
	ledger Ledger
	st     store.Store
	keys   *authn.Keys
	cfg    Config
	log    *slog.Logger
	m      *metrics
}

// New returns the API.
func New(ledger Ledger, st store.Store, keys *authn.Keys, cfg Config) *API {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 16 << 20
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 10_000
	}
	if cfg.Limits.MaxChanges <= 0 {
		cfg.Limits = custos.DefaultLimits
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &API{ledger: ledger, st: st, keys: keys, cfg: cfg, log: cfg.Logger, m: newMetrics(cfg.Registry)}
}

// Handler returns the routes table wrapped in the common middleware.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range a.routes() {
		h := r.h
		if r.perm != "" {
			h = a.authorize(r.perm, h)
		}
		mux.Handle(r.pattern, h)
	}
	return a.observe(mux)
}

type route struct {
	pattern string
	perm    custos.Permission // "" for the open probes
	h       http.HandlerFunc
}

// routes is the whole API surface.
func (a *API) routes() []route {
	return []route{
		{"POST /v1/events", custos.PermEventsWrite, a.postEvents},
		{"GET /v1/events", custos.PermEventsRead, a.listEvents},
		{"GET /v1/events/{index}", custos.PermEventsRead, a.getEvent},
		{"GET /v1/events/{index}/proof", custos.PermProofsRead, a.inclusionProof},
		{"GET /v1/checkpoint", custos.PermProofsRead, a.checkpoint},
		{"GET /v1/proofs/consistency", custos.PermProofsRead, a.consistencyProof},
		{"POST /v1/api-keys", custos.PermKeysManage, a.createKey},
		{"GET /v1/api-keys", custos.PermKeysManage, a.listKeys},
		{"DELETE /v1/api-keys/{id}", custos.PermKeysManage, a.revokeKey},
		{"GET /metrics", custos.PermMetricsRead, a.metricsHandler()},
		{"GET /healthz", "", a.healthz},
		{"GET /readyz", "", a.readyz},
		{"/", "", a.notFound},
	}
}

// NewServer returns an http.Server with timeouts for the handler.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.st.Ping(ctx); err != nil {
		a.problem(w, r, &custos.Error{Op: "readyz", Kind: custos.Unavailable, Detail: "the store does not answer", Err: err})
		return
	}
	if a.cfg.Alerts != nil {
		if alert := a.cfg.Alerts(); alert != "" {
			a.problem(w, r, &custos.Error{Op: "readyz", Kind: custos.Unavailable, Detail: "CRITICAL: " + alert})
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ready\n"))
}

func (a *API) notFound(w http.ResponseWriter, r *http.Request) {
	a.problem(w, r, custos.Errorf("route", custos.NotFound, "no such endpoint; see the API reference in the README"))
}

func (a *API) decodeOptions() ingest.Options {
	return ingest.Options{MaxBatch: a.cfg.MaxBatch, Limits: a.cfg.Limits}
}
