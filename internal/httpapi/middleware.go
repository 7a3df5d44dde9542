package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/custos-audit/custos"
)

type principalKey struct{}

// principalOf returns the authenticated caller of the request.
func principalOf(r *http.Request) *custos.Principal {
	p, _ := r.Context().Value(principalKey{}).(*custos.Principal)
	return p
}

// sessionCookie carries a browser's session token.
const sessionCookie = "custos_session"

// credential returns the request's bearer token, or its session cookie.
func credential(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		token, ok := strings.CutPrefix(h, "Bearer ")
		return strings.TrimSpace(token), ok
	}
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		return c.Value, true
	}
	return "", false
}

// authorize authenticates the bearer token (or session cookie) and requires
// perm.
func (a *API) authorize(perm custos.Permission, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := credential(r)
		if !ok {
			a.problem(w, r, custos.Errorf("authn", custos.Unauthenticated, "send Authorization: Bearer <token>"))
			return
		}
		p, err := a.dir.Authenticate(r.Context(), token)
		if err != nil {
			a.problem(w, r, err)
			return
		}
		if perm != permAuthenticated && !p.Can(perm) {
			a.problem(w, r, custos.Errorf("authz", custos.PermissionDenied, "this credential lacks the %s permission", perm))
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}

// statusWriter remembers the status code for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// observe logs and measures each request by its route pattern, never its
// path or query (they may hold PHI), and recovers from panics.
func (a *API) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.log.Error("panic in handler", "route", r.Pattern, "panic", v)
				if sw.code == 0 {
					a.problem(sw, r, &custos.Error{Op: "handler", Kind: custos.Internal})
				}
			}
			route := r.Pattern
			if route == "" || route == "/" {
				route = "unmatched"
			}
			d := time.Since(start)
			a.m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
			a.m.latency.WithLabelValues(route).Observe(d.Seconds())
			a.log.Debug("request", "route", route, "status", sw.code, "duration", d)
		}()
		next.ServeHTTP(sw, r)
	})
}
