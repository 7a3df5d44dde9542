package fhir

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// Search serves GET /fhir/AuditEvent and POST /fhir/AuditEvent/_search
// (IHE ITI-81): a searchset Bundle, newest first, paged with the same
// keyset cursors as /v1/events. The search is recorded in the trail before
// it is answered.
func (h *Handler) Search(w http.ResponseWriter, r *http.Request) {
	if err := checkFormat(r); err != nil {
		h.Problem(w, r, err)
		return
	}
	v, err := h.searchValues(w, r)
	if err != nil {
		h.Problem(w, r, err)
		return
	}
	s, err := parseSearch(v, lenient(r), h)
	if err != nil {
		h.Problem(w, r, err)
		return
	}
	var out *bundleOut
	if s.summary {
		out, err = h.countAll(r.Context(), s)
	} else {
		out, err = h.page(r, s)
	}
	if err != nil {
		h.Problem(w, r, err)
		return
	}
	results := len(out.Entry)
	if out.Total != nil {
		results = *out.Total
	}
	for _, wn := range s.warnings {
		out.Entry = append(out.Entry, entryOut{Search: &searchOut{Mode: "outcome"}, Resource: mustMarshal(&operationOutcome{
			ResourceType: "OperationOutcome", Issue: []issue{{Severity: "warning", Code: "not-supported",
				Diagnostics: fString("unknown search parameter " + strconv.Quote(wn) + " ignored (Prefer: handling=lenient)")}}})})
	}
	if err := h.recordSearch(r, s, results); err != nil {
		h.Problem(w, r, err)
		return
	}
	h.write(w, r, http.StatusOK, out.encode())
}

func mustMarshal(v any) []byte {
	b, _ := marshal(v) // the types here always marshal
	return b
}

// searchValues reads the parameters: the query string, and for POST the
// form body as well (ITI-81 allows both).
func (h *Handler) searchValues(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	raw := r.URL.RawQuery
	if r.Method == http.MethodPost {
		ct := r.Header.Get("Content-Type")
		if ct != "" && !isForm(ct) {
			return nil, custos.Errorf("fhir.search", custos.UnsupportedMedia, "send the search parameters as application/x-www-form-urlencoded")
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxQuery+1))
		if err != nil || len(body) > maxQuery {
			return nil, invalidParam("query", fmt.Sprintf("the search is longer than %d bytes; narrow it", maxQuery))
		}
		if len(body) > 0 {
			if raw != "" {
				raw += "&"
			}
			raw += string(body)
		}
	}
	if len(raw) > maxQuery {
		return nil, invalidParam("query", fmt.Sprintf("the search is longer than %d bytes; narrow it", maxQuery))
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, invalidParam("query", "the query string does not parse: parameters are separated by '&', and a '%' or ';' in a value is percent-encoded")
	}
	return v, nil
}

func isForm(ct string) bool {
	return len(ct) >= 33 && ct[:33] == "application/x-www-form-urlencoded"
}

// recordSearch appends the record of the search: one READ of AuditEvent
// per patient searched (so that "who searched this patient's trail?" is a
// search by patient too), or one without a patient.
func (h *Handler) recordSearch(r *http.Request, s *search, results int) error {
	detail := map[string]any{"query": s.params, "results": results}
	if len(s.patients) == 0 {
		return h.host.RecordRead(r, "", "", detail)
	}
	for _, p := range s.patients {
		if err := h.host.RecordRead(r, "", p, detail); err != nil {
			return err
		}
	}
	return nil
}

// candidates reads the next n candidates after the cursor: the store
// queries merged newest first.
func (h *Handler) candidates(ctx context.Context, s *search, after *store.Cursor, n int) ([]custos.Event, bool, error) {
	var merged []custos.Event
	more := false
	for _, q := range s.queries {
		q.After, q.Limit = after, n+1
		evs, err := h.st.Events(ctx, q)
		if err != nil {
			return nil, false, err
		}
		if len(evs) > n {
			more = true
			evs = evs[:n]
		}
		merged = mergeNewest(merged, evs)
	}
	if len(merged) > n {
		more = true
		merged = merged[:n]
	}
	return merged, more, nil
}

// mergeNewest merges two newest-first lists, dropping repeats.
func mergeNewest(a, b []custos.Event) []custos.Event {
	if len(a) == 0 {
		return b
	}
	out := make([]custos.Event, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j >= len(b) || (i < len(a) && newer(&a[i], &b[j])):
			out = append(out, a[i])
			i++
		case i >= len(a) || newer(&b[j], &a[i]):
			out = append(out, b[j])
			j++
		default: // the same record
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

func newer(x, y *custos.Event) bool {
	if !x.Timestamp.Equal(y.Timestamp) {
		return x.Timestamp.After(y.Timestamp)
	}
	return x.Index > y.Index
}

func position(e *custos.Event) *store.Cursor {
	return &store.Cursor{Timestamp: e.Timestamp, Index: e.Index}
}

// collect finds up to limit matching records after the cursor, examining
// at most budget candidates. It returns them, and where to go on from
// (nil when the search is exhausted).
func (h *Handler) collect(ctx context.Context, s *search, limit, budget int) ([]custos.Event, *store.Cursor, error) {
	var out []custos.Event
	after := s.after
	if s.none {
		return nil, nil, nil
	}
	n := limit + 1
	if len(s.filters) > 0 {
		n = fetchSize
	}
	for examined := 0; examined < budget; {
		evs, more, err := h.candidates(ctx, s, after, min(n, budget-examined))
		if err != nil {
			return nil, nil, err
		}
		for i := range evs {
			examined++
			after = position(&evs[i])
			ok, err := h.match(s, &evs[i])
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				continue
			}
			out = append(out, evs[i])
			if len(out) > limit {
				return out[:limit], position(&out[limit-1]), nil
			}
		}
		if !more {
			return out, nil, nil
		}
	}
	return out, after, nil // the budget ran out: the next page goes on from here
}

func (h *Handler) match(s *search, e *custos.Event) (bool, error) {
	if len(s.filters) == 0 {
		return true, nil
	}
	ae, err := view(e)
	if err != nil {
		return false, &custos.Error{Op: "fhir.search", Kind: custos.Internal, Err: err}
	}
	for _, f := range s.filters {
		if !f(e, ae) {
			return false, nil
		}
	}
	return true, nil
}

// page answers one page of a search.
func (h *Handler) page(r *http.Request, s *search) (*bundleOut, error) {
	evs, next, err := h.collect(r.Context(), s, s.count, scanBudget)
	if err != nil {
		return nil, err
	}
	base := h.base(r)
	out := &bundleOut{ResourceType: "Bundle", Type: "searchset", Entry: make([]entryOut, 0, len(evs))}
	self := s.params.Encode()
	if s.after != nil {
		self = join(self, "_cursor="+h.host.EncodeCursor(*s.after))
	}
	out.Link = append(out.Link, linkOut{Relation: "self", URL: base + "/AuditEvent?" + self})
	if next != nil {
		out.Link = append(out.Link, linkOut{Relation: "next",
			URL: base + "/AuditEvent?" + join(s.params.Encode(), "_cursor="+h.host.EncodeCursor(*next))})
	} else if s.after == nil {
		total := len(evs) // the whole result is this page: the total is free
		out.Total = &total
	}
	for i := range evs {
		b, err := Render(&evs[i])
		if err != nil {
			return nil, &custos.Error{Op: "fhir.search", Kind: custos.Internal, Err: err}
		}
		out.Entry = append(out.Entry, entryOut{FullURL: base + "/AuditEvent/" + strconv.FormatUint(evs[i].Index, 10),
			Resource: b, Search: &searchOut{Mode: "match"}})
	}
	return out, nil
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "&" + b
}

// countAll answers _summary=count: the number of matches, counted up to
// maxCount.
func (h *Handler) countAll(ctx context.Context, s *search) (*bundleOut, error) {
	budget := maxCount
	if len(s.filters) > 0 {
		budget = scanBudget
	}
	total := 0
	for {
		evs, next, err := h.collect(ctx, s, store.MaxLimit, budget)
		if err != nil {
			return nil, err
		}
		total += len(evs)
		budget -= len(evs)
		if next == nil {
			break
		}
		if total >= maxCount || budget <= 0 || len(s.filters) > 0 && len(evs) < store.MaxLimit {
			return nil, &custos.Error{Op: "fhir.search", Kind: custos.Invalid, Detail: "too many records to count",
				Fields: []custos.FieldError{{Field: "_summary", Message: fmt.Sprintf("more records than Custos counts at once (%d, or %d candidates examined) may match; narrow the search", maxCount, scanBudget)}}}
		}
		s.after = next
	}
	return &bundleOut{ResourceType: "Bundle", Type: "searchset", Total: &total}, nil
}
