// Package proxy is `custos proxy`: a reverse proxy that puts the audit
// middleware (package httpaudit) in front of any HTTP application, a FHIR
// server say, with no change to it.
//
// It owns what the middleware cannot know from inside an application:
//
//   - who the caller is: a bearer JWT verified against the identity
//     provider's keys (OIDC discovery or a JWKS URL), or, behind a trusted
//     gateway, a user header that only peers in TrustedProxies may set;
//   - the upstream's failures: an upstream that does not answer is a 502
//     problem+json, recorded as a failure with that status;
//   - IHE BALP for searches: a FHIR search whose answer is a Bundle records
//     one READ per patient the Bundle returned, found by walking the body
//     while it streams to the client (see Scanner), so "who saw this
//     patient" includes searches.
//
// Invariants:
//
//   - A refused token (bad signature, wrong audience, expired, malformed) is
//     answered 401 before the upstream is contacted, and recorded as a
//     failed LOGIN (status 401), which the monitoring rules count as an
//     AUTH_FAILURE.
//   - Identity headers and X-Forwarded-* from a peer outside TrustedProxies
//     are never believed and never reach the upstream.
//   - Responses stream: the proxy flushes every write (FlushInterval -1) and
//     never holds a whole body; the Bundle walk holds one JSON token at most.
//   - Request bodies over MaxBody are refused with 413 before or while they
//     are read, naming the field "body".
//   - Logs carry no PHI: no paths, queries, user ids or bodies.
package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn/oidc"
)

// TokenVerifier verifies a bearer JWT; *oidc.Verifier is one. Refusals are
// custos.Unauthenticated errors whose Detail is safe to show; a provider
// that cannot be reached gives a custos.Unavailable one.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*oidc.Identity, error)
}

var _ TokenVerifier = (*oidc.Verifier)(nil)

// Config configures a Proxy.
type Config struct {
	Upstream *url.URL // the application, e.g. http://127.0.0.1:8081/fhir

	// Identity: a verified JWT (JWT non-nil), or the user named by
	// UserHeader (roles by RolesHeader, comma-separated) when the peer is in
	// TrustedProxies. Without either, requests are anonymous.
	JWT            TokenVerifier
	UserHeader     string
	RolesHeader    string
	TrustedProxies []netip.Prefix
	// AllowAnonymous passes requests without a token (or user header)
	// through, recorded without a user; otherwise they get 401.
	AllowAnonymous bool

	FHIRBase    string // the path prefix of FHIR paths ("/" for the whole site)
	MaxBody     int64  // request body limit in bytes; 10 MiB if zero
	MaxPatients int    // distinct patients recorded per search response; 1,000 if zero

	// Transport reaches the upstream; one with timeouts if nil.
	Transport http.RoundTripper
	// ResponseHeaderTimeout bounds the wait for the upstream's answer
	// (with the default transport); 60 s if zero.
	ResponseHeaderTimeout time.Duration
	Logger                *slog.Logger // nil: discard
}

// Proxy is the reverse proxy; it is safe for concurrent use.
type Proxy struct {
	cfg Config
	rp  *httputil.ReverseProxy
	log *slog.Logger
}

// New returns a Proxy for cfg.
func New(cfg Config) (*Proxy, error) {
	if cfg.Upstream == nil || cfg.Upstream.Host == "" || (cfg.Upstream.Scheme != "http" && cfg.Upstream.Scheme != "https") {
		return nil, errors.New("proxy: the upstream must be an http(s) URL")
	}
	if cfg.RolesHeader != "" && cfg.UserHeader == "" {
		return nil, errors.New("proxy: a roles header needs a user header")
	}
	if cfg.UserHeader != "" && len(cfg.TrustedProxies) == 0 {
		return nil, errors.New("proxy: a user header is believed only from trusted proxies: give at least one")
	}
	if cfg.JWT != nil && cfg.UserHeader != "" {
		return nil, errors.New("proxy: identity from a JWT or from a header, not both")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 10 << 20
	}
	if cfg.MaxPatients <= 0 {
		cfg.MaxPatients = 1000
	}
	if cfg.ResponseHeaderTimeout <= 0 {
		cfg.ResponseHeaderTimeout = 60 * time.Second
	}
	cfg.FHIRBase = "/" + strings.Trim(cfg.FHIRBase, "/")
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Transport == nil {
		cfg.Transport = newTransport(cfg.ResponseHeaderTimeout)
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      cfg.Transport,
		FlushInterval:  -1, // stream: flush after every write
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.upstreamError,
		ErrorLog:       log.New(&slogWriter{cfg.Logger}, "", 0),
	}
	return p, nil
}

// newTransport is the transport to the upstream: bounded dials, handshakes
// and waits for headers, and enough idle connections for a busy proxy.
func newTransport(headerTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // the upstream is reached directly, never through $HTTP_PROXY
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: headerTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
	}
}

// Handler returns the proxy wrapped by audit, the middleware's Handler
// (httpaudit.Auditor.Handler), which must be configured with p.User and
// p.Expand. The caller's identity is settled before the middleware runs, so
// that the middleware may ask for it whenever it likes.
func (p *Proxy) Handler(audit func(http.Handler) http.Handler) http.Handler {
	audited := audit(http.HandlerFunc(p.serve))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Request-Id") == "" && r.Header.Get("X-Correlation-Id") == "" {
			r.Header.Set("X-Request-Id", newRequestID()) // the middleware records it; the upstream gets it
		}
		st := &request{search: p.isSearch(r)}
		p.authenticate(r, st)
		audited.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestKey{}, st)))
	})
}

// serve runs inside the middleware: it refuses what must not reach the
// upstream, then proxies.
func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	st := requestOf(r)
	switch {
	case st == nil:
		writeProblem(w, http.StatusInternalServerError, "the proxy is misconfigured", nil)
	case st.refused != nil:
		p.refuse(w, st)
	case !st.hasUser && !p.cfg.AllowAnonymous && (p.cfg.JWT != nil || p.cfg.UserHeader != ""):
		w.Header().Set("WWW-Authenticate", `Bearer realm="custos-proxy"`)
		writeProblem(w, http.StatusUnauthorized, "a credential is required", nil)
	case r.ContentLength > p.cfg.MaxBody:
		st.tooLarge = true
		writeProblem(w, http.StatusRequestEntityTooLarge, "the request body is too large",
			[]custos.FieldError{{Field: "body", Message: fmt.Sprintf("must be at most %d bytes", p.cfg.MaxBody)}})
	default:
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, p.cfg.MaxBody)
		}
		p.rp.ServeHTTP(&flushWriter{ResponseWriter: w}, r)
	}
}

// flushWriter passes on every flush ReverseProxy makes but one: the flush
// of the headers alone, before any body, of a response whose length is
// known. Such a response is not a stream, and its headers then leave with
// its body in one write instead of two. Streams (no length) are flushed
// as before: headers at once, then after every write.
type flushWriter struct {
	http.ResponseWriter
	wrote bool // some body was written; ReverseProxy serializes Write and Flush
}

func (f *flushWriter) Write(b []byte) (int, error) {
	f.wrote = true
	return f.ResponseWriter.Write(b)
}

// FlushError is what http.ResponseController calls.
func (f *flushWriter) FlushError() error {
	if !f.wrote && f.Header().Get("Content-Length") != "" {
		return nil
	}
	return http.NewResponseController(f.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the writer beneath (hijacking for upgrades).
func (f *flushWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// rewrite builds the upstream request. X-Forwarded-For is the chain a
// trusted peer sent plus the peer; from any other peer it is the peer
// alone, and identity headers it sent are dropped.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.cfg.Upstream)
	trusted := p.trustedPeer(pr.In)
	if trusted {
		if xff := pr.In.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			pr.Out.Header["X-Forwarded-For"] = append([]string(nil), xff...)
		}
	}
	pr.SetXForwarded()
	if trusted {
		for _, h := range []string{"X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v := pr.In.Header.Get(h); v != "" {
				pr.Out.Header.Set(h, v)
			}
		}
	} else {
		pr.Out.Header.Del("Forwarded")
		if p.cfg.UserHeader != "" {
			pr.Out.Header.Del(p.cfg.UserHeader)
		}
		if p.cfg.RolesHeader != "" {
			pr.Out.Header.Del(p.cfg.RolesHeader)
		}
	}
}

// modifyResponse tees a search's FHIR JSON answer through the Bundle walk.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	st := requestOf(resp.Request)
	if st == nil || !st.search || resp.StatusCode != http.StatusOK || !fhirJSON(resp.Header.Get("Content-Type")) {
		return nil
	}
	switch enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		st.scan = NewScanner(p.cfg.MaxPatients)
	case "gzip", "x-gzip":
		st.scan = NewGzipScanner(p.cfg.MaxPatients)
	default:
		st.unreadable = enc // br, deflate, …: passed on, not walked; the search's event says so
		return nil
	}
	resp.Body = &teeBody{rc: resp.Body, scan: st.scan}
	return nil
}

// upstreamError answers what the upstream could not: 413 for a body that
// went over the limit while streaming, 502 otherwise.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	st := requestOf(r)
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		if st != nil {
			st.tooLarge = true
		}
		writeProblem(w, http.StatusRequestEntityTooLarge, "the request body is too large",
			[]custos.FieldError{{Field: "body", Message: fmt.Sprintf("must be at most %d bytes", p.cfg.MaxBody)}})
		return
	}
	if st != nil {
		st.upstreamFailed = true
	}
	if r.Context().Err() != nil {
		w.WriteHeader(http.StatusBadGateway) // the client left; nobody reads an answer
		return
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err // the URL may carry PHI
	}
	p.log.Warn("upstream did not answer", "method", r.Method, "error", err.Error())
	writeProblem(w, http.StatusBadGateway, "the upstream application did not answer", nil)
}

// newRequestID returns 16 random hex digits.
func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// slogWriter carries ReverseProxy's own log lines to slog.
type slogWriter struct{ log *slog.Logger }

func (s *slogWriter) Write(p []byte) (int, error) {
	s.log.Warn("reverse proxy", "message", strings.TrimSpace(string(p)))
	return len(p), nil
}
