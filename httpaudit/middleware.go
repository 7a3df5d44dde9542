package httpaudit

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/custos-audit/custos"
)

// Handler returns the middleware: next serves the request; one event (or
// what Expand makes of it) is queued when it returns. Requests from
// blocked addresses are refused with 403; while the spool is full under
// RefuseRequests, with 503; a fail-closed route's response is held until
// Custos acknowledged its event, and replaced by 503 if it did not.
func (a *Auditor) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.serve(w, r, next) })
}

// refuseMargin: under RefuseRequests, requests are refused while the
// queue to the writer has fewer free places than this, so that the events
// of the requests already running still fit.
const refuseMargin = 256

// request is what the middleware knows of a request before the handler.
type request struct {
	start time.Time
	ip    netip.Addr
	m     match
	ann   *Annotations
	body  *body
}

func (a *Auditor) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	m := a.routes.match(r)
	if (m.route != nil && m.route.Skip) || r.Method == http.MethodOptions {
		next.ServeHTTP(w, r)
		return
	}
	rq := &request{start: a.cfg.Now(), ip: a.clientAddr(r), m: m, ann: &Annotations{}}
	if a.blocked(rq.ip) {
		a.refused.Add(1)
		problem(w, http.StatusForbidden, "requests from this address are blocked")
		a.enqueue(a.build(r, rq, http.StatusForbidden))
		return
	}
	if a.cfg.WhenFull == RefuseRequests && (a.full.Load() || len(a.in) >= cap(a.in)-refuseMargin) {
		a.refused.Add(1)
		w.Header().Set("Retry-After", "5")
		problem(w, http.StatusServiceUnavailable, "the audit spool is full; the request was not served")
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, rq.ann)) // a copy: the caller's request stays as it was
	if hasBody(r) && a.mayWrite(r, m) {
		rq.body = a.capture(r)
	}
	if m.route != nil && m.route.FailClosed {
		a.serveFailClosed(w, r, next, rq)
		return
	}
	rec := &recorder{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			if rec.code == 0 {
				rec.code = http.StatusInternalServerError
			}
			a.enqueue(a.build(r, rq, rec.status()))
			panic(p)
		}
	}()
	next.ServeHTTP(rec, r)
	a.enqueue(a.build(r, rq, rec.status()))
}

// serveFailClosed holds the response back until Custos acknowledged the
// event; without the acknowledgement the client gets 503 and the trail a
// record of the refusal (through the spool). A response larger than
// FailClosedHold has its event delivered once that much is held, and then
// streams.
func (a *Auditor) serveFailClosed(w http.ResponseWriter, r *http.Request, next http.Handler, rq *request) {
	h := &holder{header: w.Header().Clone(), limit: a.cfg.FailClosedHold, w: w}
	h.confirm = func() bool { return a.confirm(w, r, rq, h.status()) }
	next.ServeHTTP(h, r)
	if h.state == held && h.confirm() {
		h.release()
	}
}

// confirm delivers a fail-closed request's event now, the response held
// back; without the acknowledgement it answers 503 and spools the refusal.
func (a *Auditor) confirm(w http.ResponseWriter, r *http.Request, rq *request, status int) bool {
	items := a.build(r, rq, status)
	evs := make([]custos.EventInput, len(items))
	for i := range items {
		a.resolve(&items[i])
		evs[i] = items[i].ev
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.cfg.FailClosedTimeout)
	defer cancel()
	if err := a.deliverNow(ctx, evs); err != nil {
		a.refused.Add(1)
		a.log.Warn("httpaudit: a fail-closed request was refused: its event was not acknowledged", "err", err)
		for i := range items {
			items[i].ev.StatusCode, items[i].ev.Outcome = http.StatusServiceUnavailable, custos.OutcomeFailure
		}
		a.enqueue(items)
		w.Header().Set("Retry-After", "5")
		problem(w, http.StatusServiceUnavailable, "the audit trail could not record this request; it was not served")
		return false
	}
	return true
}

func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// mayWrite says whether a request may be a write whose body becomes
// changes: not a read, a login or a search.
func (a *Auditor) mayWrite(r *http.Request, m match) bool {
	if m.route != nil && m.route.Action != "" {
		return m.route.Action == custos.ActionCreate || m.route.Action == custos.ActionUpdate ||
			m.route.Action == custos.ActionDelete || m.route.Action == custos.ActionImport
	}
	switch r.Method {
	case http.MethodPost:
		return !strings.HasSuffix(r.URL.Path, "/_search")
	case http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// methodAction is the action a method implies.
func methodAction(method string) custos.Action {
	switch method {
	case http.MethodPost:
		return custos.ActionCreate
	case http.MethodPut, http.MethodPatch:
		return custos.ActionUpdate
	case http.MethodDelete:
		return custos.ActionDelete
	}
	return custos.ActionRead // GET, HEAD and any other method
}

// enqueue hands events to the writer without waiting: a full queue drops
// them, counted.
func (a *Auditor) enqueue(items []item) {
	for _, it := range items {
		select {
		case a.in <- it:
			a.queued.Add(1)
		default:
			a.dropped.Add(1)
			if it.src != nil && it.src.body != nil {
				a.held.Add(-int64(len(it.src.body.data)))
			}
		}
	}
}
