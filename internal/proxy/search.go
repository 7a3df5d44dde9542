package proxy

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/custos-audit/custos"
)

// User is the middleware's User hook: the caller settled before the
// middleware ran; false for an anonymous request.
func (p *Proxy) User(r *http.Request) (custos.User, bool) {
	st := requestOf(r)
	if st == nil || !st.hasUser {
		return custos.User{}, false
	}
	return st.user, true
}

// Expand is the middleware's Expand hook, called with the event it built
// once the handler returned. A refused token becomes a failed LOGIN; an
// upstream that did not answer, a failure with status 502; a search whose
// answer was a Bundle, the search's event plus one READ per patient the
// Bundle returned (IHE BALP), the whole set sharing the request id.
func (p *Proxy) Expand(r *http.Request, ev custos.EventInput) []custos.EventInput {
	st := requestOf(r)
	if st == nil {
		return []custos.EventInput{ev}
	}
	switch {
	case st.refused != nil && st.refused.Kind == custos.Unauthenticated:
		ev.Action, ev.ResourceType, ev.ResourceID, ev.PatientID = custos.ActionLogin, "Session", "", ""
		ev.Outcome, ev.StatusCode = custos.OutcomeFailure, http.StatusUnauthorized
		ev.Changes, _ = json.Marshal(map[string]string{"reason": st.refused.Detail})
		return []custos.EventInput{ev}
	case st.upstreamFailed:
		ev.Outcome, ev.StatusCode = custos.OutcomeFailure, http.StatusBadGateway
		ev.Changes = json.RawMessage(`{"reason":"the upstream application did not answer"}`)
		return []custos.EventInput{ev}
	case st.tooLarge:
		ev.Outcome, ev.StatusCode = custos.OutcomeFailure, http.StatusRequestEntityTooLarge
		return []custos.EventInput{ev}
	case !st.search:
		return []custos.EventInput{ev}
	}
	ev.Action = custos.ActionRead // a search, also by POST …/_search
	if st.unreadable != "" && len(ev.Changes) == 0 {
		ev.Changes, _ = json.Marshal(map[string]any{"search": map[string]string{
			"incomplete": "the answer's content encoding (" + custos.Clip(st.unreadable, 32) + ") was not read: its patients are not recorded"}})
	}
	if st.scan == nil {
		return []custos.EventInput{ev}
	}
	res := st.scan.Result()
	if !res.Bundle {
		return []custos.EventInput{ev}
	}
	summary := map[string]any{"patients_returned": len(res.IDs)}
	if res.Truncated {
		summary["truncated"], summary["max_patients"] = true, p.cfg.MaxPatients
	}
	if res.Err != nil {
		summary["incomplete"] = "the Bundle could not be read to its end"
	}
	if len(ev.Changes) == 0 {
		ev.Changes, _ = json.Marshal(map[string]any{"search": summary})
	}
	out := make([]custos.EventInput, 0, 1+len(res.IDs))
	out = append(out, ev)
	for _, id := range res.IDs {
		if id == ev.PatientID {
			continue // the search's own event names this patient already (a compartment search)
		}
		e := ev
		e.Changes, e.PatientID = nil, id
		switch ev.ResourceType {
		case "Patient", "":
			e.ResourceType, e.ResourceID = "Patient", id
		default:
			e.ResourceID = "" // an Observation search: the patient is known, not each Observation
		}
		out = append(out, e)
	}
	return out
}

// isSearch reports whether r is a FHIR search under the FHIR base: GET
// [base]/Type, GET [base]/Type/id/Type (a compartment), GET [base]?_type=…,
// POST [base]/Type/_search.
func (p *Proxy) isSearch(r *http.Request) bool {
	path := r.URL.Path
	if p.cfg.FHIRBase != "/" {
		rest, ok := strings.CutPrefix(path, p.cfg.FHIRBase)
		if !ok || (rest != "" && rest[0] != '/') {
			return false
		}
		path = rest
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch len(segs) {
		case 1:
			return resourceType(segs[0]) || (segs[0] == "" && r.URL.RawQuery != "")
		case 3:
			return resourceType(segs[0]) && resourceType(segs[2])
		}
	case http.MethodPost:
		return len(segs) == 2 && resourceType(segs[0]) && segs[1] == "_search"
	}
	return false
}

// resourceType reports whether s looks like a FHIR resource type name.
func resourceType(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// fhirJSON reports whether a Content-Type is FHIR's JSON (or plain JSON,
// which FHIR servers also answer).
func fhirJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "application/fhir+json", "application/json+fhir", "application/json":
		return true
	}
	return false
}

// teeBody passes the upstream's body to the client and a copy to the walk.
type teeBody struct {
	rc   io.ReadCloser
	scan *Scanner
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if n > 0 {
		t.scan.Write(p[:n])
	}
	switch {
	case err == io.EOF:
		t.scan.Close()
	case err != nil:
		t.scan.Abort(err)
	}
	return n, err
}

func (t *teeBody) Close() error {
	err := t.rc.Close()
	t.scan.Abort(io.ErrUnexpectedEOF) // a no-op after the end was seen
	return err
}
