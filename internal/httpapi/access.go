package httpapi

import (
	"cmp"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/ingest"
)

// The roles, users and approvals routes. Every change goes through the
// directory, which writes it to the ledger before it takes effect.

type roleRequest struct {
	Name        string              `json:"name"`
	Description string              `json:"description"`
	Permissions []custos.Permission `json:"permissions"`
	ParentRole  string              `json:"parent_role"`
}

func (a *API) listRoles(w http.ResponseWriter, r *http.Request) {
	roles, err := a.dir.Roles(r.Context())
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writePage(w, r, a, roles, func(x custos.Role) string { return x.Name })
}

func (a *API) getRole(w http.ResponseWriter, r *http.Request) {
	role, err := a.dir.Role(r.Context(), r.PathValue("name"))
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, role)
}

func (a *API) createRole(w http.ResponseWriter, r *http.Request) { a.saveRole(w, r, true) }
func (a *API) putRole(w http.ResponseWriter, r *http.Request)    { a.saveRole(w, r, false) }

func (a *API) saveRole(w http.ResponseWriter, r *http.Request, create bool) {
	var req roleRequest
	if !a.decodeSaved(w, r, create, &req, "name", &req.Name) {
		return
	}
	role, approval, err := a.dir.PutRole(r.Context(), principalOf(r), custos.Role{Name: req.Name, Description: req.Description,
		Permissions: req.Permissions, ParentRole: req.ParentRole}, create)
	a.answerSaved(w, r, create, role, approval, err)
}

// decodeSaved decodes the body of a create or change into req; a change
// names its subject in the path, and *key (the body's name or id) may only
// repeat it: nothing is renamed.
func (a *API) decodeSaved(w http.ResponseWriter, r *http.Request, create bool, req any, field string, key *string) bool {
	if err := ingest.DecodeObject(r.Header.Get("Content-Type"), r.Body, req); err != nil {
		a.problem(w, r, err)
		return false
	}
	if !create {
		if *key == "" {
			*key = r.PathValue(field)
		}
		if *key != r.PathValue(field) {
			a.problem(w, r, invalidField(field, "must match the path (nothing is renamed)"))
			return false
		}
	}
	return true
}

// answerSaved answers a create (201) or change (200), or the approval it
// waits for (202).
func (a *API) answerSaved(w http.ResponseWriter, r *http.Request, create bool, v any, approval *authn.Approval, err error) {
	switch {
	case err != nil:
		a.problem(w, r, err)
	case approval != nil:
		writeJSON(w, http.StatusAccepted, approval)
	case create:
		writeJSON(w, http.StatusCreated, v)
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

func (a *API) deleteRole(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "reparent_to" {
			a.problem(w, r, invalidField(k, "is not a parameter of this route; reparent_to=<role> (or empty for none) re-parents the children"))
			return
		}
	}
	_, reparent := q["reparent_to"]
	if err := a.dir.DeleteRole(r.Context(), principalOf(r), r.PathValue("name"), reparent, q.Get("reparent_to")); err != nil {
		a.problem(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type userRequest struct {
	ID           string    `json:"id"`
	Name         *string   `json:"name"`
	Roles        *[]string `json:"roles"`
	Status       *string   `json:"status"`
	StatusReason string    `json:"status_reason"`
	Password     *string   `json:"password"`
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	users, err := a.dir.Users(r.Context())
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writePage(w, r, a, users, func(u authn.User) string { return u.ID })
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	u, err := a.dir.User(r.Context(), r.PathValue("id"))
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request) { a.saveUser(w, r, true) }
func (a *API) putUser(w http.ResponseWriter, r *http.Request)    { a.saveUser(w, r, false) }

func (a *API) saveUser(w http.ResponseWriter, r *http.Request, create bool) {
	var req userRequest
	if !a.decodeSaved(w, r, create, &req, "id", &req.ID) {
		return
	}
	u, approval, err := a.dir.SaveUser(r.Context(), principalOf(r), authn.UserChange{ID: req.ID, Name: req.Name,
		Roles: req.Roles, Status: req.Status, StatusReason: req.StatusReason, Password: req.Password}, create)
	a.answerSaved(w, r, create, u, approval, err)
}

func (a *API) revokeSessions(w http.ResponseWriter, r *http.Request) {
	if _, err := a.dir.User(r.Context(), r.PathValue("id")); err != nil {
		a.problem(w, r, err)
		return
	}
	n, err := a.dir.RevokeSessions(r.Context(), principalOf(r), r.PathValue("id"))
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"revoked": n})
}

func (a *API) listApprovals(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	if status != "" && status != authn.ApprovalPending {
		a.problem(w, r, invalidField("status", `must be "pending" or absent`))
		return
	}
	pending := status == authn.ApprovalPending
	list, err := a.dir.Approvals(r.Context(), pending)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writePage(w, r, a, list, func(x authn.Approval) string { return x.RequestedAt + "\x00" + x.ID })
}

func (a *API) approve(w http.ResponseWriter, r *http.Request) { a.decide(w, r, true) }
func (a *API) reject(w http.ResponseWriter, r *http.Request)  { a.decide(w, r, false) }

func (a *API) decide(w http.ResponseWriter, r *http.Request, approve bool) {
	ap, err := a.dir.DecideApproval(r.Context(), principalOf(r), r.PathValue("id"), approve)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ap)
}

// me answers who the credential is and what it may do.
func (a *API) me(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	perms := make([]custos.Permission, 0, len(p.Permissions))
	for perm := range p.Permissions {
		perms = append(perms, perm)
	}
	slices.Sort(perms)
	writeJSON(w, http.StatusOK, map[string]any{"id": p.ID, "kind": p.Kind, "name": p.Name, "user_id": p.UserID,
		"roles": p.Roles, "permissions": perms})
}

func invalidField(field, msg string) error {
	return &custos.Error{Op: "httpapi", Kind: custos.Invalid, Detail: "the request is invalid",
		Fields: []custos.FieldError{{Field: field, Message: msg}}}
}

// writePage answers one keyset page of items, which are in the order key
// sorts them (ascending, or as the caller sorted them: the cursor is the
// position after the last key served). limit defaults to 100, at most 1,000.
func writePage[T any](w http.ResponseWriter, r *http.Request, a *API, items []T, key func(T) string) {
	q := r.URL.Query()
	for k := range q {
		if k != "limit" && k != "cursor" && k != "status" && k != "review" {
			a.problem(w, r, invalidField(k, "is not a parameter of this list; use limit and cursor"))
			return
		}
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			a.problem(w, r, invalidField("limit", "must be an integer from 1 to 1000"))
			return
		}
		limit = n
	}
	start := 0
	if c := q.Get("cursor"); c != "" {
		after, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil {
			a.problem(w, r, invalidField("cursor", "is not a cursor this list gave"))
			return
		}
		pos := slices.IndexFunc(items, func(x T) bool { return key(x) == string(after) })
		if pos < 0 { // the item was deleted: continue after where it was
			pos, _ = slices.BinarySearchFunc(items, string(after), func(x T, k string) int { return cmp.Compare(key(x), k) })
			pos--
		}
		start = pos + 1
	}
	end := min(start+limit, len(items))
	page := map[string]any{"items": items[start:end]}
	if end < len(items) {
		page["next_cursor"] = base64.RawURLEncoding.EncodeToString([]byte(key(items[end-1])))
	}
	writeJSON(w, http.StatusOK, page)
}
