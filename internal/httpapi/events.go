package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/ingest"
	"github.com/custos-audit/custos/internal/store"
)

func (a *API) postEvents(w http.ResponseWriter, r *http.Request) {
	body := http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
	events, err := ingest.Decode(r.Header.Get("Content-Type"), body, a.decodeOptions())
	if err != nil {
		a.problem(w, r, err)
		return
	}
	receipts, err := a.ledger.Append(r.Context(), authn.Submitter(principalOf(r)), events)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	a.m.ingested.Add(float64(len(receipts)))
	writeJSON(w, http.StatusCreated, map[string]any{"receipts": receipts})
}

// eventFilters are the query parameters of GET /v1/events, by field name.
var eventFilters = []string{"user", "action", "resource_type", "resource_id", "patient_id", "ip_address", "outcome", "source"}

// parseEventQuery turns the query string into a store query, refusing
// unknown, repeated or malformed parameters: a misspelt filter must not
// silently widen an auditor's search.
func (a *API) parseEventQuery(v url.Values) (store.Query, int, error) {
	known := map[string]bool{"from": true, "to": true, "limit": true, "cursor": true}
	for _, f := range eventFilters {
		known[f] = true
	}
	for name, vals := range v {
		if !known[name] {
			return store.Query{}, 0, invalidParam(name, "unknown parameter")
		}
		if len(vals) > 1 {
			return store.Query{}, 0, invalidParam(name, "given more than once")
		}
	}
	for _, f := range eventFilters {
		field := f
		if f == "user" {
			field = "user.id"
		}
		if n := custos.MaxLength(field); utf8.RuneCountInString(v.Get(f)) > n {
			return store.Query{}, 0, invalidParam(f, fmt.Sprintf("must be at most %d characters (no record has a longer one)", n))
		}
	}
	q := store.Query{User: v.Get("user"), Action: v.Get("action"), ResourceType: v.Get("resource_type"),
		ResourceID: v.Get("resource_id"), PatientID: v.Get("patient_id"), Outcome: v.Get("outcome"), Source: v.Get("source")}
	if q.Action != "" && !custos.Action(q.Action).Valid() {
		return q, 0, invalidParam("action", "must be one of CREATE, READ, UPDATE, DELETE, LOGIN, LOGOUT, EXPORT, IMPORT")
	}
	if q.Outcome != "" && q.Outcome != "success" && q.Outcome != "failure" {
		return q, 0, invalidParam("outcome", `must be "success" or "failure"`)
	}
	if s := v.Get("ip_address"); s != "" {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return q, 0, invalidParam("ip_address", "must be an IPv4 or IPv6 address")
		}
		q.IPAddress = ip.Unmap().String()
	}
	var err error
	if q.From, err = parseTime(v, "from"); err != nil {
		return q, 0, err
	}
	if q.To, err = parseTime(v, "to"); err != nil {
		return q, 0, err
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.From.After(q.To) {
		return q, 0, invalidParam("from", "must not be after to")
	}
	limit := 100
	if s := v.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > store.MaxLimit {
			return q, 0, invalidParam("limit", "must be an integer from 1 to 1000")
		}
	}
	if s := v.Get("cursor"); s != "" {
		if q.After, err = a.decodeCursor(s); err != nil {
			return q, 0, err
		}
	}
	q.Limit = limit + 1 // one more tells whether another page exists
	return q, limit, nil
}

func parseTime(v url.Values, name string) (time.Time, error) {
	s := v.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, invalidParam(name, "must be an RFC 3339 time such as 2026-11-25T00:00:00Z")
	}
	return t.UTC(), nil
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request) {
	q, limit, err := a.parseEventQuery(r.URL.Query())
	if err != nil {
		a.problem(w, r, err)
		return
	}
	items, err := a.st.Events(r.Context(), q)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	resp := map[string]any{"items": items}
	if len(items) > limit {
		items = items[:limit]
		last := items[len(items)-1]
		resp["items"] = items
		resp["next_cursor"] = a.encodeCursor(store.Cursor{Timestamp: last.Timestamp, Index: last.Index})
	}
	query := map[string]string{}
	for k := range r.URL.Query() {
		query[k] = r.URL.Query().Get(k)
	}
	if !a.recordRead(w, r, "", map[string]any{"query": query, "results": len(items)}) {
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *API) getEvent(w http.ResponseWriter, r *http.Request) {
	index, err := parseIndex(r.PathValue("index"))
	if err != nil {
		a.problem(w, r, err)
		return
	}
	e, err := a.st.Event(r.Context(), index)
	if errors.Is(err, custos.ErrNotFound) {
		err = custos.Errorf("httpapi.event", custos.NotFound, "no event at index %d", index)
	}
	if err != nil {
		a.problem(w, r, err)
		return
	}
	if !a.recordRead(w, r, strconv.FormatUint(index, 10), nil) {
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func parseIndex(s string) (uint64, error) {
	i, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		return 0, invalidParam("index", "must be a ledger index: a non-negative integer")
	}
	return i, nil
}

// recordRead appends a READ of AuditEvent for this request and reports
// whether it was durably recorded. Reading the trail fails closed: when the
// read cannot be recorded, nothing is answered but the error. The record is
// valid by construction: its text is clipped to the fields' limits, and the
// query detail is bounded by the filters' own limits (parseEventQuery) and
// by --max-changes being at least MinMaxChanges.
func (a *API) recordRead(w http.ResponseWriter, r *http.Request, resourceID string, detail map[string]any) bool {
	var changes json.RawMessage
	if detail != nil {
		changes, _ = json.Marshal(detail)
	}
	e := custos.Event{Kind: custos.KindServer, User: authn.Actor(principalOf(r)), Action: custos.ActionRead, ResourceType: "AuditEvent",
		ResourceID: resourceID, IPAddress: clientIP(r),
		UserAgent:     custos.Clip(r.UserAgent(), custos.MaxLength("user_agent")),
		RequestMethod: r.Method, RequestPath: custos.Clip(r.URL.Path, custos.MaxLength("request_path")),
		Changes: changes, StatusCode: http.StatusOK, Source: "custos"}
	if err := e.Normalize(a.cfg.Limits, ""); err != nil {
		// A bug, not the client's fault: answered 500, logged.
		a.problem(w, r, &custos.Error{Op: "httpapi.recordRead", Kind: custos.Internal, Err: err})
		return false
	}
	if _, err := a.ledger.Append(r.Context(), authn.Submitter(principalOf(r)), []custos.Event{e}); err != nil {
		a.problem(w, r, err)
		return false
	}
	return true
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}
