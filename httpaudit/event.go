package httpaudit

import (
	"net/http"
	"strings"

	"github.com/custos-audit/custos"
)

// item is an event on its way to the spool. When src is set, the writer
// computes the event's changes from it, off the request path.
type item struct {
	ev  custos.EventInput
	src *changeSrc
}

// changeSrc is what a write's changes are made of.
type changeSrc struct {
	n      notes
	body   *body
	method string
}

// maxHeldBodies bounds the request bytes held for the writer at once;
// past it, a write's changes are computed on the request path instead.
const maxHeldBodies = 16 << 20

// resolve computes deferred changes.
func (a *Auditor) resolve(it *item) {
	if it.src != nil {
		it.ev.Changes = a.changesFor(&it.src.n, it.src.body, it.src.method)
		if it.src.body != nil {
			a.held.Add(-int64(len(it.src.body.data)))
		}
		it.src = nil
	}
}

// build makes the request's event once the handler returned (or the
// middleware answered for it), and hands it to Expand. A write's changes
// are left to the writer unless Expand must see them.
func (a *Auditor) build(r *http.Request, rq *request, status int) []item {
	ann := rq.ann.snapshot()
	start := rq.start
	ev := custos.EventInput{OccurredAt: &start, Source: a.cfg.Source, UserAgent: r.UserAgent(),
		RequestMethod: r.Method, StatusCode: status, RequestID: requestID(r)}
	if rq.ip.IsValid() {
		ev.IPAddress = rq.ip.String()
	}
	if a.cfg.SessionID != nil {
		ev.SessionID = a.cfg.SessionID(r)
	}
	ev.User = a.user(r, &ann)

	res, action := a.resource(r, rq.m)
	if ann.resType != "" {
		res.Type = ann.resType
	}
	if ann.resID != nil {
		res.ID = *ann.resID
	}
	if ann.patient != nil {
		res.PatientID = *ann.patient
	}
	if res.Type == "" {
		res.Type = firstSegment(r.URL.Path)
	}
	ev.ResourceType, ev.ResourceID, ev.PatientID = res.Type, res.ID, res.PatientID
	if ann.action != "" && !ann.action.Valid() {
		a.log.Warn("httpaudit: the handler set an action Custos does not know; recording the route's", "action", ann.action)
		ann.action = ""
	}
	switch {
	case ann.action != "":
		action = ann.action
	case rq.m.route != nil && rq.m.route.Action != "":
		action = rq.m.route.Action
	case action == "":
		action = methodAction(r.Method)
	}
	ev.Action = action
	ev.Outcome = custos.OutcomeSuccess
	if status >= 400 {
		ev.Outcome = custos.OutcomeFailure
	}
	ev.RequestPath = r.URL.EscapedPath() // %00 and %0A stay escaped
	if r.URL.RawQuery != "" {
		ev.RequestPath += "?" + a.redactQuery(r.URL.RawQuery)
	}
	var src *changeSrc
	switch action {
	case custos.ActionCreate, custos.ActionUpdate, custos.ActionDelete, custos.ActionImport:
		src = &changeSrc{n: ann, body: rq.body, method: r.Method}
	default:
		if ann.changes != nil {
			src = &changeSrc{n: ann, method: r.Method}
		}
	}
	ev.PurposeOfUse = ann.purpose
	if ann.breakGlass != "" {
		ev.BreakGlass, ev.BreakGlassReason = true, ann.breakGlass
	}
	if a.cfg.Expand == nil {
		it := item{ev: ev, src: src}
		if src != nil && src.body != nil && a.held.Add(int64(len(src.body.data))) > maxHeldBodies {
			a.resolve(&it) // the writer is behind: do not hold more
		}
		return []item{it}
	}
	first := item{ev: ev}
	if src != nil {
		first.ev.Changes = a.changesFor(&src.n, src.body, src.method)
	}
	evs := a.cfg.Expand(r, first.ev)
	items := make([]item, len(evs))
	for i, e := range evs {
		items[i].ev = e
	}
	return items
}

func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" {
		return id
	}
	return r.Header.Get("X-Correlation-Id")
}

func (a *Auditor) user(r *http.Request, ann *notes) *custos.User {
	if ann.user != nil && ann.user.ID != "" {
		return ann.user
	}
	if a.cfg.User != nil {
		if u, ok := a.cfg.User(r); ok && u.ID != "" {
			return &u
		}
	}
	return &custos.User{ID: Unauthenticated, Roles: []string{}}
}

// resource names what the request touched, in order of precedence: the
// application's Resource function, a configured route, a FHIR path, the
// pattern the application's ServeMux matched, the first path segment.
func (a *Auditor) resource(r *http.Request, m match) (Resource, custos.Action) {
	if a.cfg.Resource != nil {
		if res, ok := a.cfg.Resource(r); ok {
			return res, ""
		}
	}
	if m.route != nil && m.shape.typ != "" {
		return shapeResource(m.shape, m.req), ""
	}
	if base := a.cfg.FHIRBase; base != "" {
		if rest, ok := underBase(r.URL.Path, base); ok {
			if fr, ok := parseFHIR(rest, r.URL.Query()); ok {
				if r.Method == http.MethodPost && (fr.Search || strings.HasSuffix(rest, "/_search")) {
					if strings.HasSuffix(rest, "/_search") {
						return fr.Resource, custos.ActionRead
					}
					fr.Search = false // POST Type is a create
				}
				return fr.Resource, fr.action
			}
		}
	}
	if r.Pattern != "" {
		if sh := a.routes.appShape(r.Pattern); sh.typ != "" {
			return shapeResource(sh, r), ""
		}
	}
	return Resource{Type: firstSegment(r.URL.Path)}, ""
}

func firstSegment(path string) string {
	seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if seg == "" {
		return "/"
	}
	return seg
}

func shapeResource(sh shape, r *http.Request) Resource {
	res := Resource{Type: sh.typ}
	if sh.idParam != "" {
		res.ID = r.PathValue(sh.idParam)
	}
	if sh.patientParam != "" {
		res.PatientID = r.PathValue(sh.patientParam)
	}
	if res.PatientID == "" && isPatientWord(sh.typ) {
		res.PatientID = res.ID
	}
	return res
}

func underBase(path, base string) (string, bool) {
	if base == "/" {
		return path, true
	}
	base = strings.TrimSuffix(base, "/")
	rest, ok := strings.CutPrefix(path, base)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	return rest, true
}
