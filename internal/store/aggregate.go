package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
)

// Aggregator computes the counts of a compliance report inside the store,
// with GROUP BY over the events table: memory does not grow with the
// number of events, only with the number of groups, and CountEvents streams
// those. Both SQL stores implement it and pass the conformance suite.
//
// A report reads a Window: the audit events with ledger timestamps in
// [From, To) and indexes below a checkpoint's size. Ledger timestamps never
// decrease with the index, so those events are exactly the events of an
// index range, and a store may walk its primary key instead of the time
// index.
type Aggregator interface {
	// EventWindow finds the window of [from, to) below the given size: its
	// first and last event index and its event count. ok is false when the
	// window holds no event.
	EventWindow(ctx context.Context, from, to time.Time, below uint64) (w Window, ok bool, err error)
	// CountEvents groups the window's events that match f by each of the
	// dimensions in turn (GROUPING SETS, in one read of the window) and
	// calls fn once per group, in no particular order. Memory grows with
	// the number of groups, never with the number of events.
	CountEvents(ctx context.Context, w Window, by []Dimension, f EventFilter, fn func(d Dimension, key string, m Measures) error) error
	// CountDistinct counts the distinct values of a dimension among the
	// window's events that match f.
	CountDistinct(ctx context.Context, w Window, d Dimension, f EventFilter) (int64, error)
	// WindowEvents returns, oldest first, at most limit of the window's
	// events that match f with index > after (-1 for the first page).
	WindowEvents(ctx context.Context, w Window, f EventFilter, after int64, limit int) ([]custos.Event, error)
	// StateRecordsOf returns, in index order, the state records of the
	// given entities with timestamps in [from, to) and index < below. A
	// zero to does not bound.
	StateRecordsOf(ctx context.Context, entities []string, from, to time.Time, below uint64) ([]leaf.StateRecord, error)
	// RecordsIn counts the records of every kind with first <= index <=
	// last: last-first+1 unless records are missing (or were inserted).
	RecordsIn(ctx context.Context, first, last uint64) (int64, error)
}

// Window is a period of audit events as a report reads it. Events is the
// number of events in it.
type Window struct {
	From, To    time.Time // ledger timestamps in [From, To)
	First, Last uint64    // the index range those events span
	Events      int64
}

// Dimension is what CountEvents groups by.
type Dimension int

// The dimensions. The key of a group is the column's text: the roles as
// their stored JSON array, the day as the number of days since the Unix
// epoch (UTC), a missing address or patient as "".
const (
	ByNothing Dimension = iota // one group, key ""
	ByAction
	ByResourceType
	ByUser
	ByRoles
	BySource
	ByOutcome
	ByDay
	ByIP
	ByPatient
)

// dimensions holds the SQL expression of each dimension: the one place
// that says which column a dimension reads.
var dimensions = [...]string{
	ByNothing:      "''",
	ByAction:       "action",
	ByResourceType: "resource_type",
	ByUser:         "user_id",
	ByRoles:        "user_roles",
	BySource:       "source",
	ByOutcome:      "outcome",
	ByDay:          "CAST(ts / 86400000000 AS TEXT)",
	ByIP:           "COALESCE(ip_address, '')",
	ByPatient:      "COALESCE(patient_id, '')",
}

// EventFilter narrows the events CountEvents, CountDistinct and
// WindowEvents read. Zero fields do not filter.
type EventFilter struct {
	Action     custos.Action
	Outcome    custos.Outcome
	PHI        bool // only events that name a patient
	BreakGlass bool // only events flagged break-the-glass
	Extended   bool // only events with an extension (a disclosure, an original record)
}

// Measures are the counts of one group of events.
type Measures struct {
	Events       int64
	Failures     int64 // outcome failure
	PHI          int64 // naming a patient
	Exports      int64 // action EXPORT
	BreakGlass   int64 // flagged break-the-glass
	LoginSuccess int64 // LOGIN with outcome success
	LoginFailure int64 // LOGIN with outcome failure
	Logouts      int64 // LOGOUT
}

// measureSQL computes Measures in its field order; portable between the
// stores (break_glass is an integer in SQLite, a boolean in PostgreSQL, and
// CASE WHEN reads both).
const measureSQL = `count(*),
	coalesce(sum(CASE WHEN outcome = 'failure' THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN patient_id IS NOT NULL AND patient_id <> '' THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN action = 'EXPORT' THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN break_glass THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN action = 'LOGIN' AND outcome = 'success' THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN action = 'LOGIN' AND outcome = 'failure' THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN action = 'LOGOUT' THEN 1 ELSE 0 END), 0)`

// AggregateSQL builds the aggregate queries of the Aggregator for one
// store: WindowCond is how the store bounds a query to a window (its
// primary key, the time range, or both), from the first placeholder on.
type AggregateSQL struct {
	Placeholder func(n int) string
	// WindowCond returns the condition bounding a query to w and its
	// arguments, numbered from 1.
	WindowCond func(w Window, ph func(n int) string) (string, []any)
	// Order is the ORDER BY of WindowEvents (default "idx"): the order of
	// the index WindowCond walks, the same as the index's since timestamps
	// never decrease with it.
	Order string
}

// EventWindowQuery finds the window of [$1, $2) below $3: min and max index
// and the count. Both stores serve it from the (ts, action) index.
const EventWindowQuery = `SELECT min(idx), max(idx), count(*) FROM events WHERE ts >= $1 AND ts < $2 AND idx < $3`

func (a AggregateSQL) where(w Window, f EventFilter) (string, []any) {
	cond, args := a.WindowCond(w, a.Placeholder)
	conds := []string{cond}
	arg := func(v any) string {
		args = append(args, v)
		return a.Placeholder(len(args))
	}
	if f.Action != "" {
		conds = append(conds, "action = "+arg(string(f.Action)))
	}
	if f.Outcome != "" {
		conds = append(conds, "outcome = "+arg(string(f.Outcome)))
	}
	if f.PHI {
		conds = append(conds, "patient_id IS NOT NULL AND patient_id <> ''")
	}
	if f.BreakGlass {
		conds = append(conds, "break_glass")
	}
	if f.Extended {
		conds = append(conds, "ext IS NOT NULL")
	}
	return strings.Join(conds, " AND "), args
}

// Count builds the GROUPING SETS query of CountEvents (PostgreSQL): each
// row carries GROUPING() of the dimensions' expressions (a bit set for each
// expression the row is not grouped by; ByNothing is the empty grouping
// set, every bit set) and every expression's value.
func (a AggregateSQL) Count(w Window, by []Dimension, f EventFilter) (string, []any) {
	where, args := a.where(w, f)
	var exprs, sets []string
	for _, d := range by {
		if d == ByNothing {
			sets = append(sets, "()")
			continue
		}
		exprs = append(exprs, dimensions[d])
		sets = append(sets, "("+dimensions[d]+")")
	}
	if len(exprs) == 0 { // ByNothing alone
		return fmt.Sprintf(`SELECT 0, %s FROM events WHERE %s`, measureSQL, where), args
	}
	return fmt.Sprintf(`SELECT GROUPING(%s), %s, %s FROM events WHERE %s GROUP BY GROUPING SETS (%s)`,
		strings.Join(exprs, ", "), strings.Join(exprs, ", "), measureSQL, where, strings.Join(sets, ", ")), args
}

// groupOf reads the dimension of a Count row from its GROUPING() bits over
// the expressions of grouped (by without ByNothing): the one expression the
// row is grouped by has its bit clear, the first expression's bit the
// highest; with every bit set, the row is the empty grouping set's.
func groupOf(grouped []Dimension, grouping int64) (int, Dimension) {
	n := len(grouped)
	for i, d := range grouped {
		if grouping&(1<<(n-1-i)) == 0 {
			return i, d
		}
	}
	return -1, ByNothing
}

// FoldSQL builds the query a store runs to fold CountEvents itself, in one
// read of the window (SQLite, which has no GROUPING SETS). Each row is one
// column: the event's value of every dimension asked, then its action, its
// outcome, and "1" or "0" for naming a patient and for break-the-glass,
// joined by FoldSeparator. One column, because a driver pays per column
// fetched; the separator is a control character, which no stored text
// holds (validation refuses them).
func (a AggregateSQL) FoldSQL(w Window, by []Dimension, f EventFilter) (string, []any) {
	where, args := a.where(w, f)
	exprs := make([]string, 0, len(by)+4)
	for _, d := range by {
		exprs = append(exprs, dimensions[d])
	}
	exprs = append(exprs, "action", "outcome",
		"CASE WHEN patient_id IS NOT NULL AND patient_id <> '' THEN '1' ELSE '0' END",
		"CASE WHEN break_glass THEN '1' ELSE '0' END")
	return fmt.Sprintf(`SELECT %s FROM events WHERE %s`, strings.Join(exprs, " || char(31) || "), where), args
}

// FoldSeparator separates the fields of a FoldSQL row.
const FoldSeparator = 0x1f

// Add adds o's counts to m.
func (m *Measures) Add(o Measures) {
	m.Events += o.Events
	m.Failures += o.Failures
	m.PHI += o.PHI
	m.Exports += o.Exports
	m.BreakGlass += o.BreakGlass
	m.LoginSuccess += o.LoginSuccess
	m.LoginFailure += o.LoginFailure
	m.Logouts += o.Logouts
}

// Fold accumulates one event into m: what measureSQL counts.
func (m *Measures) Fold(action, outcome string, phi, breakGlass bool) {
	b := func(c bool) int64 {
		if c {
			return 1
		}
		return 0
	}
	m.Events++
	m.Failures += b(outcome == "failure")
	m.PHI += b(phi)
	m.Exports += b(action == "EXPORT")
	m.BreakGlass += b(breakGlass)
	m.LoginSuccess += b(action == "LOGIN" && outcome == "success")
	m.LoginFailure += b(action == "LOGIN" && outcome == "failure")
	m.Logouts += b(action == "LOGOUT")
}

// Distinct builds the query of CountDistinct.
func (a AggregateSQL) Distinct(w Window, d Dimension, f EventFilter) (string, []any) {
	where, args := a.where(w, f)
	return fmt.Sprintf(`SELECT count(DISTINCT %s) FROM events WHERE %s`, dimensions[d], where), args
}

// Events builds the query of WindowEvents.
func (a AggregateSQL) Events(w Window, f EventFilter, after int64, limit int) (string, []any) {
	where, args := a.where(w, f)
	args = append(args, after)
	order := a.Order
	if order == "" {
		order = "idx"
	}
	return fmt.Sprintf(`SELECT %s FROM events WHERE %s AND idx > %s ORDER BY %s LIMIT %d`,
		EventColumns, where, a.Placeholder(len(args)), order, max(limit, 1)), args
}

// StateOf builds the query of StateRecordsOf.
func (a AggregateSQL) StateOf(entities []string, from, to time.Time, below uint64) (string, []any) {
	end := int64(1<<63 - 1)
	if !to.IsZero() {
		end = to.UnixMicro()
	}
	args := []any{from.UnixMicro(), end, int64(below)}
	ph := make([]string, len(entities))
	for i, e := range entities {
		args = append(args, e)
		ph[i] = a.Placeholder(len(args))
	}
	in := "TRUE"
	if len(ph) > 0 {
		in = "entity IN (" + strings.Join(ph, ", ") + ")"
	}
	return fmt.Sprintf(`SELECT %s FROM state_records WHERE ts >= %s AND ts < %s AND idx < %s AND %s ORDER BY idx`,
		StateRecordColumns, a.Placeholder(1), a.Placeholder(2), a.Placeholder(3), in), args
}

// RecordsInQuery counts the records of every kind in [$1, $2].
const RecordsInQuery = `SELECT (SELECT count(*) FROM events WHERE idx >= $1 AND idx <= $2) +
	(SELECT count(*) FROM state_records WHERE idx >= $1 AND idx <= $2)`

// StreamGroups reads every row of a Count query into fn.
func StreamGroups(rows Rows, by []Dimension, fn func(Dimension, string, Measures) error) error {
	var grouped []Dimension
	for _, d := range by {
		if d != ByNothing {
			grouped = append(grouped, d)
		}
	}
	keys := make([]*string, len(grouped))
	for rows.Next() {
		var grouping int64
		var m Measures
		dest := []any{&grouping}
		for i := range keys {
			dest = append(dest, &keys[i])
		}
		dest = append(dest, &m.Events, &m.Failures, &m.PHI, &m.Exports, &m.BreakGlass, &m.LoginSuccess, &m.LoginFailure, &m.Logouts)
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if len(grouped) == 0 {
			grouping = 0 // ByNothing alone: the one row of the plain aggregate
		}
		i, d := groupOf(grouped, grouping)
		if m.Events == 0 { // the empty grouping set of no event
			continue
		}
		key := ""
		if i >= 0 && keys[i] != nil {
			key = *keys[i]
		}
		if err := fn(d, key, m); err != nil {
			return err
		}
	}
	return rows.Err()
}
