package httpapi

import (
	"context"
	"encoding/json"
	"github.com/custos-audit/custos/internal/authn"
	"net/http"
	"net/netip"
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
			// A denied request is evidence (UNAUTHORIZED_ACCESS): recorded
			// before the answer, like every denial.
			if err := a.recordDenial(r, p, perm); err != nil {
				a.problem(w, r, err)
				return
			}
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

// recordDenial appends the trail's record of a request refused for want of
// a permission: who, which route, from where.
func (a *API) recordDenial(r *http.Request, p *custos.Principal, perm custos.Permission) error {
	ev := custos.Event{Kind: custos.KindServer, User: authn.Actor(p), Action: custos.ActionRead, ResourceType: "Route",
		ResourceID: r.Pattern, Outcome: custos.OutcomeFailure, StatusCode: http.StatusForbidden, Source: "custos",
		RequestMethod: r.Method, UserAgent: strings.ToValidUTF8(r.UserAgent(), "")}
	if len(ev.UserAgent) > 512 {
		ev.UserAgent = strings.ToValidUTF8(ev.UserAgent[:512], "")
	}
	if ip, err := netip.ParseAddr(clientAddr(r)); err == nil {
		ev.IPAddress = ip.Unmap().String()
	}
	ev.Changes, _ = json.Marshal(map[string]string{"missing_permission": string(perm)})
	if p.UserID != "" {
		ev.User.ID = p.UserID // the person, as the rules count denials by user
	}
	_, err := a.ledger.Append(r.Context(), authn.Submitter(p), []custos.Event{ev})
	a.wakeMonitor()
	return err
}
