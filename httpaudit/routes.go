package httpaudit

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// routeTable matches requests against Config.Routes with a ServeMux of its
// own, so patterns mean exactly what they mean to the application's mux.
type routeTable struct {
	mux     *http.ServeMux
	routes  []Route
	shapes  []shape
	derived sync.Map // application pattern → shape
}

// match is the route a request matched: the route and the request copy
// the mux filled in (for PathValue).
type match struct {
	route *Route
	shape shape
	req   *http.Request
}

// matchWriter is the ResponseWriter the table's mux writes to: it carries
// the match out and discards everything else.
type matchWriter struct {
	idx int
	req *http.Request
	h   http.Header
}

func (m *matchWriter) Header() http.Header {
	if m.h == nil {
		m.h = http.Header{}
	}
	return m.h
}
func (m *matchWriter) Write(b []byte) (int, error) { return len(b), nil }
func (m *matchWriter) WriteHeader(int)             {}

func newRouteTable(routes []Route) (t *routeTable, err error) {
	t = &routeTable{routes: routes}
	if len(routes) == 0 {
		return t, nil
	}
	t.mux = http.NewServeMux()
	defer func() {
		if p := recover(); p != nil { // ServeMux panics on a bad or conflicting pattern
			t, err = nil, fmt.Errorf("httpaudit: Routes: %v", p)
		}
	}()
	for i, r := range routes {
		if r.Action != "" && !r.Action.Valid() {
			return nil, fmt.Errorf("httpaudit: Routes[%d] %q: action %q is not a Custos action", i, r.Pattern, r.Action)
		}
		t.mux.HandleFunc(r.Pattern, func(w http.ResponseWriter, req *http.Request) {
			m := w.(*matchWriter)
			m.idx, m.req = i, req
		})
		sh := deriveShape(r.Pattern)
		if r.ResourceType != "" {
			sh.typ = r.ResourceType
		}
		if r.IDParam != "" {
			sh.idParam = r.IDParam
		}
		if r.PatientParam != "" {
			sh.patientParam = r.PatientParam
		}
		t.shapes = append(t.shapes, sh)
	}
	return t, nil
}

// match finds the request's route, if any.
func (t *routeTable) match(r *http.Request) match {
	if t.mux == nil {
		return match{}
	}
	cp := *r // the mux records the pattern and wildcards in the request it serves
	mw := matchWriter{idx: -1}
	t.mux.ServeHTTP(&mw, &cp)
	if mw.idx < 0 {
		return match{}
	}
	return match{route: &t.routes[mw.idx], shape: t.shapes[mw.idx], req: mw.req}
}

// appShape is the shape of a pattern the application's own ServeMux
// matched.
func (t *routeTable) appShape(pattern string) shape {
	if v, ok := t.derived.Load(pattern); ok {
		return v.(shape)
	}
	sh := deriveShape(pattern)
	t.derived.Store(pattern, sh)
	return sh
}

// shape is what a pattern says about the resource: its type, and which
// wildcards hold the resource and the patient.
type shape struct {
	typ, idParam, patientParam string
}

// deriveShape reads a ServeMux pattern: the resource type is the last
// literal segment that is not an operation ($export, _history); the id is
// the wildcard right after it; the patient is a wildcard named patient,
// patient_id, patientId or pid, or the one after a "patient(s)" segment.
func deriveShape(pattern string) shape {
	path := pattern
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		path = pattern[i:]
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	var sh shape
	var prevLit string
	for i, s := range segs {
		name, wild := wildcard(s)
		switch {
		case wild && name == "$":
		case wild:
			if isPatientWord(prevLit) || isPatientParam(name) {
				sh.patientParam = name
			}
			if prevLit != "" && i > 0 && segs[i-1] == prevLit {
				sh.typ, sh.idParam = prevLit, name
			}
		case s == "" || strings.HasPrefix(s, "$") || strings.HasPrefix(s, "_"):
		default:
			prevLit = s
			if i == len(segs)-1 {
				sh.typ, sh.idParam = s, ""
			}
		}
	}
	return sh
}

func wildcard(seg string) (string, bool) {
	if len(seg) < 2 || seg[0] != '{' || seg[len(seg)-1] != '}' {
		return "", false
	}
	return strings.TrimSuffix(seg[1:len(seg)-1], "..."), true
}

func isPatientWord(s string) bool {
	s = strings.ToLower(s)
	return s == "patient" || s == "patients"
}

func isPatientParam(s string) bool {
	switch strings.ToLower(s) {
	case "patient", "patient_id", "patientid", "pid":
		return true
	}
	return false
}
