package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/custos-audit/custos"
)

// operationOutcome is an R4 OperationOutcome.
type operationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []issue `json:"issue"`
}

// issueCode is the IssueType (https://hl7.org/fhir/R4/valueset-issue-type.html)
// of an error kind.
func issueCode(k custos.Kind) fCode {
	switch k {
	case custos.Invalid:
		return "invalid"
	case custos.NotFound:
		return "not-found"
	case custos.Unauthenticated:
		return "login"
	case custos.PermissionDenied:
		return "forbidden"
	case custos.TooLarge:
		return "too-costly"
	case custos.UnsupportedMedia:
		return "not-supported"
	case custos.Unavailable:
		return "transient"
	case custos.Conflict:
		return "conflict"
	}
	return "exception"
}

// outcomeOf turns err into an OperationOutcome and its HTTP status. As with
// problem+json, only an *custos.Error's Detail and Fields reach the client.
func (h *Handler) outcomeOf(err error) (int, *operationOutcome) {
	kind := custos.KindOf(err)
	code := h.host.Status(kind)
	var u *Unprocessable
	if errors.As(err, &u) {
		code = http.StatusUnprocessableEntity
	}
	var na *notAcceptable
	if errors.As(err, &na) {
		code = http.StatusNotAcceptable
	}
	oo := &operationOutcome{ResourceType: "OperationOutcome"}
	var e *custos.Error
	if !errors.As(err, &e) || kind == custos.Internal {
		oo.Issue = []issue{{Severity: "error", Code: "exception", Diagnostics: "an internal error occurred; it has been logged"}}
		return code, oo
	}
	if len(e.Fields) == 0 {
		oo.Issue = []issue{{Severity: "error", Code: issueCode(kind), Diagnostics: fString(e.Detail)}}
		return code, oo
	}
	for _, f := range e.Fields {
		is := issue{Severity: "error", Code: issueCode(kind), Diagnostics: fString(f.Message)}
		if f.Field != "" {
			is.Diagnostics = fString(f.Field + ": " + f.Message)
			is.Expression = []fString{fString(f.Field)}
		}
		oo.Issue = append(oo.Issue, is)
	}
	return code, oo
}

// notAcceptable is a request for a format Custos does not write (XML).
type notAcceptable struct{ Err *custos.Error }

func (n *notAcceptable) Error() string { return n.Err.Error() }
func (n *notAcceptable) Unwrap() error { return n.Err }

// Problem answers err as an OperationOutcome; the API calls it for every
// error on a /fhir path, so that FHIR clients get FHIR errors from the
// authentication in front of these handlers too.
func (h *Handler) Problem(w http.ResponseWriter, r *http.Request, err error) {
	code, oo := h.outcomeOf(err)
	switch custos.KindOf(err) {
	case custos.Internal:
		h.log.Error("request failed", "route", r.Pattern, "err", err)
	case custos.Unavailable:
		h.log.Warn("request pushed back", "route", r.Pattern, "err", err)
		w.Header().Set("Retry-After", "1")
	case custos.Unauthenticated:
		w.Header().Set("WWW-Authenticate", `Bearer realm="custos"`)
	}
	h.write(w, r, code, oo)
}

// write answers v as FHIR JSON: application/fhir+json unless the client
// asked for application/json; indented with _pretty=true.
func (h *Handler) write(w http.ResponseWriter, r *http.Request, code int, v any) {
	var b []byte
	var err error
	if raw, ok := v.([]byte); ok {
		b = raw
	} else if b, err = marshal(v); err != nil {
		h.log.Error("encoding a FHIR answer", "route", r.Pattern, "err", err)
		code, b = http.StatusInternalServerError, []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"an internal error occurred; it has been logged"}]}`)
	}
	if r.URL.Query().Get("_pretty") == "true" {
		var buf bytes.Buffer
		if json.Indent(&buf, b, "", "  ") == nil {
			b = buf.Bytes()
		}
	}
	hd := w.Header()
	hd.Set("Content-Type", mediaType(r)+"; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b)
	w.Write([]byte("\n"))
}
