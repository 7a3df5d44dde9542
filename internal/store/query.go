package store

import (
	"fmt"
	"strings"
	"time"

	"github.com/custos-audit/custos"
)

// MaxLimit bounds one page of events.
const MaxLimit = 1000

// SQL is a FROM clause (the events table is aliased e), a WHERE clause, an
// ORDER BY clause and their arguments, built from a Query for the events
// table that both SQL stores share.
type SQL struct {
	From    string
	Where   string
	OrderBy string
	Args    []any
	Limit   int
}

// Dialect is what differs between the SQL stores.
type Dialect struct {
	// Placeholder spells the n-th (1-based) bind parameter: "?" or "$n".
	Placeholder func(n int) string
	// KeyTable names the table that indexes the events by the given
	// columns as (columns…, ts, idx), or "" when the events table's own
	// indexes serve them. Nil means "" for all.
	KeyTable func(cols ...string) string
}

type filter struct {
	cols []string
	vals []string
}

// EventSQL builds the filter and keyset order of q.
//
// Ledger timestamps never decrease with the index, so "newest first" is both
// (ts DESC, idx DESC) and (idx DESC). A query with an equality filter on
// indexed columns is driven by that index, aliased k (a key table joined
// back to e, re-checking the key so a stale entry never matches another
// event), in (ts, idx) order; otherwise the primary key drives it.
func EventSQL(q Query, d Dialect) SQL {
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return d.Placeholder(len(args))
	}
	// Candidates to drive the query, most selective first.
	drivers := []filter{
		{[]string{"patient_id"}, []string{q.PatientID}},
		{[]string{"resource_type", "resource_id"}, []string{q.ResourceType, q.ResourceID}},
		{[]string{"user_id"}, []string{q.User}},
		{[]string{"ip_address"}, []string{q.IPAddress}},
	}
	var drive *filter
	keyTable := ""
	for i, f := range drivers {
		if !all(f.vals) {
			continue
		}
		drive = &drivers[i]
		if d.KeyTable != nil {
			keyTable = d.KeyTable(f.cols...)
		}
		break
	}
	from, ord := "events e", "e"
	if keyTable != "" {
		on := []string{"e.idx = k.idx", "e.ts = k.ts"}
		for _, c := range drive.cols {
			on = append(on, fmt.Sprintf("e.%s = k.%s", c, c))
		}
		from, ord = keyTable+" k JOIN events e ON "+strings.Join(on, " AND "), "k"
	}
	for _, f := range []struct{ col, val string }{
		{"user_id", q.User}, {"action", q.Action}, {"resource_type", q.ResourceType},
		{"resource_id", q.ResourceID}, {"patient_id", q.PatientID}, {"ip_address", q.IPAddress},
		{"outcome", q.Outcome}, {"source", q.Source},
	} {
		if f.val == "" {
			continue
		}
		alias := "e"
		if keyTable != "" && contains(drive.cols, f.col) {
			alias = "k"
		}
		conds = append(conds, fmt.Sprintf("%s.%s = %s", alias, f.col, arg(f.val)))
	}
	if !q.From.IsZero() {
		conds = append(conds, fmt.Sprintf("%s.ts >= %s", ord, arg(q.From.UnixMicro())))
	}
	if !q.To.IsZero() {
		conds = append(conds, fmt.Sprintf("%s.ts <= %s", ord, arg(q.To.UnixMicro())))
	}
	// An undriven search bounded in time walks the time index from its
	// upper end: in (ts, idx) order it stops after Limit rows, where the
	// primary-key order would sort the whole range first (SQLite) or scan
	// every newer event. Unbounded, the primary key serves it best.
	byTime := drive != nil || !q.From.IsZero() || !q.To.IsZero()
	order := "e.idx DESC"
	if byTime {
		order = fmt.Sprintf("%s.ts DESC, %s.idx DESC", ord, ord)
	}
	if c := q.After; c != nil {
		if byTime {
			conds = append(conds, fmt.Sprintf("(%s.ts, %s.idx) < (%s, %s)", ord, ord,
				arg(c.Timestamp.UnixMicro()), arg(int64(c.Index))))
		} else {
			conds = append(conds, "e.idx < "+arg(int64(c.Index)))
		}
	}
	where := "TRUE"
	if len(conds) > 0 {
		where = strings.Join(conds, " AND ")
	}
	limit := q.Limit
	if limit <= 0 || limit > MaxLimit+1 {
		limit = MaxLimit + 1
	}
	return SQL{From: from, Where: where, OrderBy: order, Args: args, Limit: limit}
}

// MaxScanWindow is the widest time range a search may scan: a search with a
// filter that no index serves (see CheckQueryBounded) reads every event of
// its time range.
const MaxScanWindow = 31 * 24 * time.Hour

// Indexed reports whether an index drives q: it has a patient_id, a user, an
// ip_address, or a resource_type together with a resource_id.
func (q Query) Indexed() bool {
	return q.PatientID != "" || q.User != "" || q.IPAddress != "" || (q.ResourceType != "" && q.ResourceID != "")
}

// Scans reports whether a search must read events that it may not return:
// it filters on a field no index serves (action, outcome, source, one of
// resource_type and resource_id without the other). A search that does not
// scan reads at most the page it returns.
func (q Query) Scans() bool {
	return q.Action != "" || q.Outcome != "" || q.Source != "" || (q.ResourceType != "") != (q.ResourceID != "")
}

// CheckQueryBounded enforces the rule that keeps every search the API
// accepts answered from an index or from a bounded scan:
//
//   - patient_id, user, ip_address, and resource_type with resource_id are
//     indexed: a search with any of them reads only the events of that key;
//   - from and to are served by the time index; with no other filter a
//     search reads only the page it returns;
//   - action, outcome, source, and resource_type or resource_id alone are
//     not indexed: a search with one of them must also have an indexed
//     filter, or a time range at most MaxScanWindow (31 days) wide (from
//     and to, or from alone no earlier than 31 days ago), which it scans.
//
// It returns nil or a custos.Invalid error naming the unindexed filters.
func CheckQueryBounded(q Query) error { return checkQueryBounded(q, time.Now()) }

func checkQueryBounded(q Query, now time.Time) error {
	if q.Indexed() {
		return nil
	}
	var unindexed []string
	for _, f := range []struct{ name, val string }{
		{"action", q.Action}, {"outcome", q.Outcome}, {"source", q.Source},
		{"resource_type", q.ResourceType}, {"resource_id", q.ResourceID},
	} {
		if f.val != "" {
			unindexed = append(unindexed, f.name)
		}
	}
	if len(unindexed) == 0 || (!q.From.IsZero() && windowEnd(q, now).Sub(q.From) <= MaxScanWindow) {
		return nil
	}
	days := int(MaxScanWindow / (24 * time.Hour))
	msg := fmt.Sprintf("no index serves this filter: add patient_id, user, ip_address, or resource_type with resource_id, "+
		"or a time range (from, and to) at most %d days wide", days)
	e := &custos.Error{Op: "store.query", Kind: custos.Invalid,
		Detail: fmt.Sprintf("a search on %s alone would scan the whole trail; narrow it by an indexed filter or a time range of at most %d days",
			strings.Join(unindexed, ", "), days)}
	for _, f := range unindexed {
		e.Fields = append(e.Fields, custos.FieldError{Field: f, Message: msg})
	}
	return e
}

// windowEnd is the upper end of q's time range: To, or now when open.
func windowEnd(q Query, now time.Time) time.Time {
	if q.To.IsZero() {
		return now
	}
	return q.To
}

func all(vals []string) bool {
	for _, v := range vals {
		if v == "" {
			return false
		}
	}
	return true
}

func contains(cols []string, c string) bool {
	for _, x := range cols {
		if x == c {
			return true
		}
	}
	return false
}
