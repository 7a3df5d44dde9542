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
	"github.com/custos-audit/custos/internal/fhir"
	"github.com/custos-audit/custos/internal/ingest"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/monitor"
	"github.com/custos-audit/custos/internal/report"
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
	// Monitor runs the detection rules and holds security events and
	// blocks; nil turns monitoring (and its routes) off.
	Monitor *monitor.Monitor
	// Reports computes the compliance reports; nil answers the report
	// routes 503.
	Reports *report.Builder
	// ReportFormats are the formats reports are offered in (default JSON
	// alone): the command line wires the renderers in.
	ReportFormats report.Formats
	// Alerts, when set, returns a CRITICAL condition that makes the node
	// unready (a witness refused the log), or "".
	Alerts func() string

	// BodyBudget bounds the bytes of request bodies held at once by all
	// requests in progress (default DefaultBodyBudget, 128 MiB; never less
	// than MaxBodyBytes). A request whose body does not fit is answered 503
	// with Retry-After at once.
	BodyBudget int64
	// QueryTimeout bounds every read of the store a request makes: a
	// search, an event, a proof (default DefaultQueryTimeout, 10 s). A
	// search past it is interrupted and answered 503.
	QueryTimeout time.Duration
	// MaxSearches bounds the searches (GET /v1/events) running at once
	// (default DefaultMaxSearches()); a search waits for a slot within its
	// QueryTimeout, then is answered 503.
	MaxSearches int
	// SearchShare is the share of its time a search slot may spend running
	// searches (default DefaultSearchShare, 0.25; 1 for no rest): after a
	// search that took d, its slot rests d × (1/SearchShare − 1) before the
	// next search takes it. Searches thus keep at most MaxSearches ×
	// SearchShare CPUs busy, however many clients send them.
	SearchShare float64
}

// API holds the handlers' dependencies.
type API struct {
	ledger Ledger
	st     store.Store
	dir    *authn.Directory
	dlog   *authn.DecisionLog
	mon    *monitor.Monitor // nil when monitoring is off
	cfg    Config
	log    *slog.Logger
	m      *metrics
	lim    *limits
	fhir   *fhir.Handler
}

// New returns the API.
func New(ledger Ledger, st store.Store, dir *authn.Directory, cfg Config) *API {
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
	if cfg.BodyBudget <= 0 {
		cfg.BodyBudget = DefaultBodyBudget
	}
	cfg.BodyBudget = max(cfg.BodyBudget, cfg.MaxBodyBytes, keyBodyLimit)
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = DefaultQueryTimeout
	}
	if cfg.MaxSearches <= 0 {
		cfg.MaxSearches = DefaultMaxSearches()
	}
	if cfg.SearchShare <= 0 {
		cfg.SearchShare = DefaultSearchShare
	}
	cfg.SearchShare = min(cfg.SearchShare, 1)
	lim := newLimits(cfg)
	a := &API{ledger: ledger, st: newBoundedStore(st, cfg, lim), dir: dir, dlog: authn.NewDecisionLog(ledger, cfg.Logger), mon: cfg.Monitor,
		cfg: cfg, log: cfg.Logger, m: newMetrics(cfg.Registry), lim: lim}
	a.fhir = a.newFHIR()
	return a
}

// Close records the decisions still queued. Call it after the server has
// stopped taking requests.
func (a *API) Close() { a.dlog.Close() }

// Handler returns the routes table wrapped in the common middleware.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range a.routes() {
		h := r.h
		if limit := a.bodyLimit(r.pattern); limit > 0 {
			h = a.limitBody(limit, h) // after authentication: only credentials hold the budget
		}
		if r.perm != permOpen {
			h = a.authorize(r.perm, h)
		}
		mux.Handle(r.pattern, h)
	}
	return a.observe(a.enforce(mux))
}

type route struct {
	pattern string
	perm    custos.Permission // what the caller must hold; permOpen or permAuthenticated
	h       http.HandlerFunc
}

// The two route guards that are not a permission: open routes (probes,
// login) need no credential; permAuthenticated needs any valid one.
const (
	permOpen          custos.Permission = ""
	permAuthenticated custos.Permission = "(any credential)"
)

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
		{"GET /v1/roles", custos.PermRolesManage, a.listRoles},
		{"POST /v1/roles", custos.PermRolesManage, a.createRole},
		{"GET /v1/roles/{name}", custos.PermRolesManage, a.getRole},
		{"PUT /v1/roles/{name}", custos.PermRolesManage, a.putRole},
		{"DELETE /v1/roles/{name}", custos.PermRolesManage, a.deleteRole},
		{"GET /v1/users", custos.PermUsersManage, a.listUsers},
		{"POST /v1/users", custos.PermUsersManage, a.createUser},
		{"GET /v1/users/{id}", custos.PermUsersManage, a.getUser},
		{"PUT /v1/users/{id}", custos.PermUsersManage, a.putUser},
		{"DELETE /v1/users/{id}/sessions", custos.PermUsersManage, a.revokeSessions},
		{"GET /v1/approvals", custos.PermUsersManage, a.listApprovals},
		{"POST /v1/approvals/{id}/approve", custos.PermUsersManage, a.approve},
		{"POST /v1/approvals/{id}/reject", custos.PermUsersManage, a.reject},
		{"POST /v1/authorize", custos.PermAuthorize, a.authorizeDecision},
		{"POST /v1/grants", custos.PermGrantsOpen, a.openGrant},
		{"GET /v1/grants", custos.PermGrantsRead, a.listGrants},
		{"POST /v1/grants/{id}/review", custos.PermGrantsReview, a.reviewGrant},
		{"GET /v1/security-events", custos.PermSecurityRead, a.listSecurityEvents},
		{"POST /v1/security-events", custos.PermSecurityReport, a.reportSecurityEvent},
		{"GET /v1/security-events/{id}", custos.PermSecurityRead, a.getSecurityEvent},
		{"POST /v1/security-events/{id}/status", custos.PermSecurityManage, a.setSecurityEventStatus},
		{"GET /v1/blocks", custos.PermSecurityRead, a.listBlocks},
		{"POST /v1/blocks", custos.PermBlocksManage, a.createBlock},
		{"DELETE /v1/blocks/{id}", custos.PermBlocksManage, a.liftBlock},
		{"GET /v1/blocks/check", custos.PermBlocksCheck, a.checkBlock},
		{"GET /v1/blocks/active", custos.PermBlocksCheck, a.activeBlocks},
		{"POST /v1/login", permOpen, a.login},
		{"POST /v1/logout", permAuthenticated, a.logout},
		{"GET /v1/me", permAuthenticated, a.me},
		{"POST /v1/me/totp", permAuthenticated, a.enrollTOTP},
		{"POST /v1/me/totp/confirm", permAuthenticated, a.confirmTOTP},
		{"POST /fhir/AuditEvent", custos.PermEventsWrite, a.fhir.Create},
		{"POST /fhir", custos.PermEventsWrite, a.fhir.Bundle},
		{"GET /fhir/AuditEvent/{id}", custos.PermEventsRead, a.fhir.Read},
		{"GET /fhir/AuditEvent/{id}/_history/{vid}", custos.PermEventsRead, a.fhir.VRead},
		{"GET /fhir/AuditEvent", custos.PermEventsRead, a.fhir.Search},
		{"POST /fhir/AuditEvent/_search", custos.PermEventsRead, a.fhir.Search},
		{"GET /fhir/metadata", permOpen, a.fhir.Metadata}, // open: no records, read by FHIR clients before they authenticate
		{"GET /v1/reports/hipaa", custos.PermReportsGenerate, a.hipaaReport},
		{"GET /v1/patients/{id}/access-report", custos.PermReportsGenerate, a.patientAccessReport},
		{"GET /v1/patients/{id}/disclosures", custos.PermReportsGenerate, a.patientDisclosures},
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
			a.problem(w, r, &custos.Error{Op: "readyz", Kind: custos.Unavailable, Detail: "not ready: " + alert})
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
