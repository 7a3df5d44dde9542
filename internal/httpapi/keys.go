package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/custos-audit/custos"
)

type createKeyRequest struct {
	Name   string         `json:"name"`
	Scopes []custos.Scope `json:"scopes"`
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	var req createKeyRequest
	if err := dec.Decode(&req); err != nil {
		a.problem(w, r, &custos.Error{Op: "httpapi.key", Kind: custos.Invalid, Detail: "the body must be {\"name\": …, \"scopes\": […]}",
			Fields: []custos.FieldError{{Field: "", Message: err.Error()}}})
		return
	}
	key, token, err := a.keys.Create(r.Context(), principalOf(r), req.Name, req.Scopes, "")
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		custos.APIKey
		Token string `json:"token"`
	}{key, token})
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := a.keys.List(r.Context())
	if err != nil {
		a.problem(w, r, err)
		return
	}
	if keys == nil {
		keys = []custos.APIKey{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": keys})
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) {
	if err := a.keys.Revoke(r.Context(), principalOf(r), r.PathValue("id")); err != nil {
		a.problem(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
