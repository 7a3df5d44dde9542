package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/ingest"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store"
)

func (a *API) postEvents(w http.ResponseWriter, r *http.Request) {
	key, err := idempotencyKey(r.Header)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	body := http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
	digest := sha256.New()
	var in io.Reader = body
	if key != "" {
		in = io.TeeReader(body, digest) // only then: a digest costs time on every byte
	}
	events, err := ingest.Decode(r.Header.Get("Content-Type"), in, a.decodeOptions())
	if err == nil && key != "" {
		_, err = io.Copy(digest, body) // what the decoder left: the digest covers the whole body
	}
	if err != nil {
		a.problem(w, r, err)
		return
	}
	by := authn.Submitter(principalOf(r))
	var d *custos.Delivery
	if key != "" && len(events) > 0 {
		d = &custos.Delivery{Key: key, Digest: hex.EncodeToString(digest.Sum(nil)), Count: len(events)}
		events[0].Delivery = d
	}
	receipts, err := a.ledger.Append(r.Context(), by, events)
	if d != nil && custos.KindOf(err) == custos.Conflict {
		// A retry of a request that committed: the original receipts.
		if receipts, err = a.redeliver(r.Context(), by, d); err == nil {
			writeJSON(w, http.StatusOK, map[string]any{"receipts": receipts})
			return
		}
	}
	if err != nil {
		a.problem(w, r, err)
		return
	}
	a.wakeMonitor()
	a.m.ingested.Add(float64(len(receipts)))
	writeJSON(w, http.StatusCreated, map[string]any{"receipts": receipts})
}

// idempotencyKey reads the optional Idempotency-Key header of POST
// /v1/events: at most one, 1 to 128 printable ASCII characters.
func idempotencyKey(h http.Header) (string, error) {
	v := h.Values("Idempotency-Key")
	if len(v) == 0 {
		return "", nil
	}
	if len(v) > 1 {
		return "", invalidHeader("Idempotency-Key", "must be given once")
	}
	if err := ledger.ValidDeliveryKey(v[0]); err != nil {
		return "", invalidHeader("Idempotency-Key", err.Error())
	}
	return v[0], nil
}

func invalidHeader(name, msg string) error {
	return &custos.Error{Op: "httpapi.header", Kind: custos.Invalid, Detail: "header " + name + " " + msg,
		Fields: []custos.FieldError{{Field: name, Message: msg}}}
}

// redeliver answers a request whose idempotency key its credential used
// before: the receipts of the events that request appended, when it was the
// same request (same body, same number of events); a conflict naming the
// key otherwise. Nothing is appended either way. The ledger's own record is
// checked, not only the deliveries table: a row planted there cannot make a
// request look delivered.
func (a *API) redeliver(ctx context.Context, by string, d *custos.Delivery) ([]custos.Receipt, error) {
	reused := &custos.Error{Op: "httpapi.redeliver", Kind: custos.Conflict,
		Detail: "this Idempotency-Key was used before for a different request; nothing was stored",
		Fields: []custos.FieldError{{Field: "Idempotency-Key", Message: "was used before for a different request"}}}
	idx, err := a.st.Delivery(ctx, by, d.Key)
	if err != nil {
		return nil, fmt.Errorf("httpapi: find delivery: %w", err)
	}
	receipts := make([]custos.Receipt, 0, d.Count)
	for i := range d.Count {
		e, err := a.st.Event(ctx, idx+uint64(i))
		if err != nil {
			return nil, fmt.Errorf("httpapi: read delivered event %d: %w", idx+uint64(i), err)
		}
		if e.SubmittedBy != by || (i == 0) != (e.Delivery != nil) {
			return nil, fmt.Errorf("httpapi: delivered event %d does not belong to the delivery of its key", e.Index)
		}
		if i == 0 && *e.Delivery != *d {
			return nil, reused
		}
		receipts = append(receipts, custos.Receipt{Index: e.Index, LeafHash: leaf.LeafHash(&e)})
	}
	return receipts, nil
}

// eventFilters are the query parameters of GET /v1/events, by field name.
var eventFilters = []string{"user", "action", "resource_type", "resource_id", "patient_id", "ip_address", "outcome", "source"}

// eventSearch is a parsed GET /v1/events query string.
type eventSearch struct {
	q      store.Query
	limit  int               // items per page
	params map[string]string // the parameters as given, for the READ record
}

// maxTimeParam bounds the text of from and to: the longest RFC 3339 time
// with nanoseconds and an offset is 35 characters.
const maxTimeParam = 64

// parseEventQuery turns the raw query string into a store query. It refuses
// (Invalid, naming the parameter, or "query" when no name can be read):
//   - a query string that does not parse: a bad percent-encoding, a ';'
//     (url.Query would drop the pair and widen the search to every patient);
//   - an unknown parameter (names are case-sensitive), or one given twice;
//   - an empty value ("patient_id=" or "patient_id"): to search everything,
//     leave the filter out;
//   - a value that is not valid UTF-8 or holds a control character, or is
//     longer than any record's field (a filter), a time (from, to) or a
//     limit can be.
//
// A misspelt or mangled filter must never silently widen an auditor's
// search. Empty pairs ("a=1&&b=2", a trailing '&') carry nothing and are
// skipped, as url.ParseQuery does.
func (a *API) parseEventQuery(raw string) (eventSearch, error) {
	v, err := parseQueryString(raw)
	if err != nil {
		return eventSearch{}, err
	}
	for _, f := range eventFilters {
		field := f
		if f == "user" {
			field = "user.id"
		}
		if n := custos.MaxLength(field); utf8.RuneCountInString(v.Get(f)) > n {
			return eventSearch{}, invalidParam(f, fmt.Sprintf("must be at most %d characters (no record has a longer one)", n))
		}
	}
	q := store.Query{User: v.Get("user"), Action: v.Get("action"), ResourceType: v.Get("resource_type"),
		ResourceID: v.Get("resource_id"), PatientID: v.Get("patient_id"), Outcome: v.Get("outcome"), Source: v.Get("source")}
	if q.Action != "" && !custos.Action(q.Action).Valid() {
		return eventSearch{}, invalidParam("action", "must be one of CREATE, READ, UPDATE, DELETE, LOGIN, LOGOUT, EXPORT, IMPORT")
	}
	if q.Outcome != "" && q.Outcome != "success" && q.Outcome != "failure" {
		return eventSearch{}, invalidParam("outcome", `must be "success" or "failure"`)
	}
	if s := v.Get("ip_address"); s != "" {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return eventSearch{}, invalidParam("ip_address", "must be an IPv4 or IPv6 address")
		}
		q.IPAddress = ip.Unmap().String()
	}
	if q.From, err = parseTime(v, "from"); err != nil {
		return eventSearch{}, err
	}
	if q.To, err = parseTime(v, "to"); err != nil {
		return eventSearch{}, err
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.From.After(q.To) {
		return eventSearch{}, invalidParam("from", "must not be after to")
	}
	limit := 100
	if s := v.Get("limit"); s != "" {
		// Canonical decimal only: "+5" or "0005" would be stored as given
		// in the READ record, unbounded in length.
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > store.MaxLimit || strconv.Itoa(limit) != s {
			return eventSearch{}, invalidParam("limit", fmt.Sprintf("must be an integer from 1 to %d, in decimal digits", store.MaxLimit))
		}
	}
	if s := v.Get("cursor"); s != "" {
		if q.After, err = a.decodeCursor(s); err != nil {
			return eventSearch{}, err
		}
	}
	// Every accepted search is answered from an index or a bounded scan.
	if err := store.CheckQueryBounded(q); err != nil {
		return eventSearch{}, err
	}
	q.Limit = limit + 1 // one more tells whether another page exists
	params := make(map[string]string, len(v))
	for k := range v {
		params[k] = v.Get(k)
	}
	return eventSearch{q: q, limit: limit, params: params}, nil
}

// eventParams are the parameters GET /v1/events knows.
var eventParams = func() map[string]bool {
	m := map[string]bool{"from": true, "to": true, "limit": true, "cursor": true}
	for _, f := range eventFilters {
		m[f] = true
	}
	return m
}()

// parseQueryString parses the raw query string of GET /v1/events and
// checks every parameter's name and value (see parseEventQuery); problems
// are reported in the order of the names, so the answer is the same for
// the same query.
func parseQueryString(raw string) (url.Values, error) {
	return parseQueryOf(raw, eventParams)
}

// parseQueryOf parses a raw query string strictly: only the names in known,
// each at most once, with a non-empty printable UTF-8 value.
func parseQueryOf(raw string, known map[string]bool) (url.Values, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, queryError(raw)
	}
	for _, name := range slices.Sorted(maps.Keys(v)) {
		vals := v[name]
		if !known[name] {
			if name == "" {
				return nil, invalidParam("query", "holds a value without a parameter name")
			}
			if !printableParam(name) {
				return nil, invalidParam("query", "holds a parameter whose name is not printable UTF-8 text; no such parameter exists")
			}
			return nil, invalidParam(name, "unknown parameter (names are case-sensitive)")
		}
		if len(vals) > 1 {
			return nil, invalidParam(name, "given more than once")
		}
		switch s := vals[0]; {
		case s == "":
			return nil, invalidParam(name, "must not be empty; to search without this filter, leave it out")
		case !utf8.ValidString(s):
			return nil, invalidParam(name, "must be valid UTF-8 (percent-encode its bytes as UTF-8)")
		case strings.ContainsFunc(s, unicode.IsControl):
			return nil, invalidParam(name, "must not contain control characters")
		}
	}
	return v, nil
}

// queryError names the first pair of a raw query string that
// url.ParseQuery refuses.
func queryError(raw string) error {
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		name := "query"
		if k, err := url.QueryUnescape(key); err == nil && k != "" && printableParam(k) && !strings.Contains(k, ";") {
			name = k
		}
		switch {
		case strings.Contains(pair, ";"):
			return invalidParam(name, "holds a ';': parameters are separated by '&' only, and a ';' in a value is written %3B")
		case name == "query":
			if _, err := url.QueryUnescape(key); err != nil {
				return invalidParam(name, "holds a parameter name that is not valid percent-encoding (a '%' is written %25)")
			}
		}
		if _, err := url.QueryUnescape(value); err != nil {
			return invalidParam(name, "is not valid percent-encoding (a '%' is written %25)")
		}
	}
	return invalidParam("query", "the query string does not parse")
}

// printableParam reports whether a client's parameter name may be echoed
// as a field name.
func printableParam(s string) bool {
	return len(s) <= 64 && utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

func parseTime(v url.Values, name string) (time.Time, error) {
	s := v.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || len(s) > maxTimeParam {
		return time.Time{}, invalidParam(name, "must be an RFC 3339 time such as 2026-11-25T00:00:00Z")
	}
	return t.UTC(), nil
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request) {
	search, err := a.parseEventQuery(r.URL.RawQuery)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	items, err := a.st.Events(r.Context(), search.q)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	resp := map[string]any{"items": items}
	if len(items) > search.limit {
		items = items[:search.limit]
		last := items[len(items)-1]
		resp["items"] = items
		resp["next_cursor"] = a.encodeCursor(store.Cursor{Timestamp: last.Timestamp, Index: last.Index})
	}
	if !a.recordSearch(w, r, search, len(items)) {
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// recordSearch appends the READ record of a search of the trail, and
// reports whether it was durably recorded; reading the trail fails closed,
// as in recordRead. When the search is by patient, the record carries the
// patient in patient_id, so that "who searched this patient's trail?" is
// itself a search by patient. The query, as given, and the number of
// results are in changes. The record is valid by construction:
// parseEventQuery bounds every parameter (a patient at most as long as a
// record's patient_id, no control characters, valid UTF-8), and
// --max-changes is at least MinMaxChanges.
func (a *API) recordSearch(w http.ResponseWriter, r *http.Request, search eventSearch, results int) bool {
	return a.appendRead(w, r, searchRead(search, results))
}

func searchRead(search eventSearch, results int) readRecord {
	return readRecord{patientID: search.q.PatientID, detail: map[string]any{"query": search.params, "results": results}}
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
	return a.appendRead(w, r, readRecord{resourceID: resourceID, detail: detail})
}

// readRecord is what varies between the READ records of the trail.
type readRecord struct {
	resourceID, patientID string
	detail                map[string]any // in changes, when not nil
}

// readEvent is the server event that records a read of the trail by this
// request's credential.
func (a *API) readEvent(r *http.Request, rr readRecord) (custos.Event, error) {
	var changes json.RawMessage
	if rr.detail != nil {
		changes, _ = json.Marshal(rr.detail) // maps of strings and numbers always marshal
	}
	e := custos.Event{Kind: custos.KindServer, User: authn.Actor(principalOf(r)), Action: custos.ActionRead, ResourceType: "AuditEvent",
		ResourceID: rr.resourceID, PatientID: rr.patientID, IPAddress: clientIP(r),
		UserAgent:     custos.Clip(r.UserAgent(), custos.MaxLength("user_agent")),
		RequestMethod: r.Method, RequestPath: custos.Clip(r.URL.Path, custos.MaxLength("request_path")),
		Changes: changes, StatusCode: http.StatusOK, Source: "custos"}
	return e, e.Normalize(a.cfg.Limits, "")
}

// appendRead appends the record of a read of the trail before anything is
// answered.
func (a *API) appendRead(w http.ResponseWriter, r *http.Request, rr readRecord) bool {
	e, err := a.readEvent(r, rr)
	if err != nil {
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
