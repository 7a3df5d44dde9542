package proxy

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/custos-audit/custos"
)

// request is what the proxy learns about one request, shared between the
// code before the middleware, the handler inside it and the Expand hook
// after it.
type request struct {
	user    custos.User
	hasUser bool
	// refused is why the request's token was refused (Unauthenticated) or
	// could not be checked (Unavailable).
	refused *custos.Error
	search  bool     // a FHIR search: its Bundle answer is walked
	scan    *Scanner // the walk of the answer, if it is one
	// unreadable is the content encoding of a search answer the walk cannot read.
	unreadable string

	upstreamFailed bool // the upstream did not answer
	tooLarge       bool // the request body was over the limit
}

type requestKey struct{}

func requestOf(r *http.Request) *request {
	st, _ := r.Context().Value(requestKey{}).(*request)
	return st
}

// authenticate settles who the caller is.
func (p *Proxy) authenticate(r *http.Request, st *request) {
	switch {
	case p.cfg.JWT != nil:
		p.authenticateJWT(r, st)
	case p.cfg.UserHeader != "" && p.trustedPeer(r):
		id := r.Header.Get(p.cfg.UserHeader)
		if id == "" {
			return
		}
		if !cleanText(id, 255) {
			st.refused = &custos.Error{Op: "proxy.authenticate", Kind: custos.Invalid,
				Detail: "the " + p.cfg.UserHeader + " header is not a valid user id"}
			return
		}
		st.user, st.hasUser = custos.User{ID: id, Name: id, Roles: headerRoles(r.Header.Get(p.cfg.RolesHeader))}, true
	}
}

func (p *Proxy) authenticateJWT(r *http.Request, st *request) {
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if auth == "" {
		return
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		st.refused = &custos.Error{Op: "proxy.authenticate", Kind: custos.Unauthenticated,
			Detail: "the Authorization header must be a Bearer token"}
		st.user, st.hasUser = custos.User{ID: "(no token)", Roles: []string{}}, true
		return
	}
	id, err := p.cfg.JWT.Verify(r.Context(), token)
	if err != nil {
		var ce *custos.Error
		if !errors.As(err, &ce) {
			ce = &custos.Error{Op: "proxy.authenticate", Kind: custos.Unavailable, Detail: "the token could not be checked", Err: err}
		}
		st.refused = ce
		if ce.Kind == custos.Unauthenticated {
			// A failed login names the user it claimed to be, as a login form's would.
			claimed := claimedSubject(token)
			st.user, st.hasUser = custos.User{ID: claimed, Name: claimed, Roles: []string{}}, true
		}
		return
	}
	if !cleanText(id.UserID, 255) {
		// An event naming this user would be refused, and the access go unrecorded.
		st.refused = &custos.Error{Op: "proxy.authenticate", Kind: custos.Unauthenticated,
			Detail: "the token's user claim is not a usable user id"}
		st.user, st.hasUser = custos.User{ID: "(invalid user id)", Roles: []string{}}, true
		return
	}
	name := id.Name
	if !cleanText(name, 255) {
		name = id.UserID
	}
	st.user, st.hasUser = custos.User{ID: id.UserID, Name: name, Roles: cleanRoles(id.ClaimRoles)}, true
}

// refuse answers a request whose credential was refused.
func (p *Proxy) refuse(w http.ResponseWriter, st *request) {
	switch st.refused.Kind {
	case custos.Unauthenticated:
		w.Header().Set("WWW-Authenticate", `Bearer realm="custos-proxy", error="invalid_token"`)
		writeProblem(w, http.StatusUnauthorized, st.refused.Detail, nil)
	case custos.Unavailable:
		w.Header().Set("Retry-After", "30")
		writeProblem(w, http.StatusServiceUnavailable, st.refused.Detail, nil)
	default:
		writeProblem(w, http.StatusBadRequest, st.refused.Detail, nil)
	}
}

// trustedPeer reports whether the request's direct peer is a trusted proxy.
func (p *Proxy) trustedPeer(r *http.Request) bool {
	if len(p.cfg.TrustedProxies) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, pfx := range p.cfg.TrustedProxies {
		if pfx.Contains(addr) {
			return true
		}
	}
	return false
}

// claimedSubject is the "sub" a refused token claims, unverified, cleaned
// so that the failed login's record is always valid.
func claimedSubject(token string) string {
	const unknown = "(invalid token)"
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(parts[1]) > 8<<10 {
		return unknown
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return unknown
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(raw, &c) != nil || !cleanText(c.Sub, 255) {
		return unknown
	}
	return c.Sub
}

// headerRoles splits a comma-separated roles header.
func headerRoles(h string) []string {
	roles := []string{}
	for r := range strings.SplitSeq(h, ",") {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, r)
		}
	}
	return cleanRoles(roles)
}

// cleanRoles keeps the roles an event accepts (at most 32, each a clean
// string of at most 64 characters).
func cleanRoles(in []string) []string {
	out := make([]string, 0, len(in))
	for _, r := range in {
		if cleanText(r, 64) && len(out) < 32 {
			out = append(out, r)
		}
	}
	return out
}

func cleanText(s string, max int) bool {
	return s != "" && utf8.ValidString(s) && utf8.RuneCountInString(s) <= max &&
		!strings.ContainsFunc(s, unicode.IsControl)
}

// problemBody is an RFC 9457 problem.
type problemBody struct {
	Type   string              `json:"type"`
	Title  string              `json:"title"`
	Status int                 `json:"status"`
	Detail string              `json:"detail,omitempty"`
	Errors []custos.FieldError `json:"errors,omitempty"`
}

func writeProblem(w http.ResponseWriter, status int, detail string, fields []custos.FieldError) {
	b, _ := json.Marshal(problemBody{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Errors: fields})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
