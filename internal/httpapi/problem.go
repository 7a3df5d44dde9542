package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/custos-audit/custos"
)

// problemBody is an RFC 9457 problem detail.
type problemBody struct {
	Type   string              `json:"type"`
	Title  string              `json:"title"`
	Status int                 `json:"status"`
	Detail string              `json:"detail,omitempty"`
	Errors []custos.FieldError `json:"errors,omitempty"`
}

// status is the one mapping from error kind to HTTP status.
func status(k custos.Kind) int {
	switch k {
	case custos.Invalid:
		return http.StatusBadRequest
	case custos.NotFound:
		return http.StatusNotFound
	case custos.Unauthenticated:
		return http.StatusUnauthorized
	case custos.PermissionDenied:
		return http.StatusForbidden
	case custos.TooLarge:
		return http.StatusRequestEntityTooLarge
	case custos.UnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case custos.Unavailable:
		return http.StatusServiceUnavailable
	case custos.Conflict:
		return http.StatusConflict
	case custos.NotAcceptable:
		return http.StatusNotAcceptable
	}
	return http.StatusInternalServerError
}

// problem answers err as problem+json. Only an *custos.Error's Detail and
// Fields reach the client; internal errors are logged (without PHI) and
// answered with a generic message.
func (a *API) problem(w http.ResponseWriter, r *http.Request, err error) {
	if isFHIR(r) {
		a.fhir.Problem(w, r, err) // FHIR clients read OperationOutcomes
		return
	}
	kind := custos.KindOf(err)
	code := status(kind)
	body := problemBody{Type: "about:blank", Title: http.StatusText(code), Status: code}
	var e *custos.Error
	if errors.As(err, &e) && kind != custos.Internal {
		body.Detail, body.Errors = e.Detail, e.Fields
	}
	switch kind {
	case custos.Internal:
		a.log.Error("request failed", "route", r.Pattern, "kind", kind.String(), "err", err)
	case custos.Unavailable: // pushback: expected under load, and retried
		a.log.Warn("request pushed back", "route", r.Pattern, "err", err)
	}
	if kind == custos.Internal {
		body.Detail = "an internal error occurred; it has been logged"
	}
	h := w.Header()
	if kind == custos.Unavailable {
		h.Set("Retry-After", "1")
	}
	if kind == custos.Unauthenticated {
		h.Set("WWW-Authenticate", `Bearer realm="custos"`)
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(body)
}

// writeJSON answers v as JSON with the status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func invalidParam(name, msg string) *custos.Error {
	return &custos.Error{Op: "httpapi.params", Kind: custos.Invalid, Detail: "a query parameter is invalid",
		Fields: []custos.FieldError{{Field: name, Message: msg}}}
}
