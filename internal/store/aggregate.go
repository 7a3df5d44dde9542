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
	// CountEvents groups the window's events that match f by one dimension
	// and calls fn once per group, in no particular order.
	CountEvents(ctx context.Context, w Window, by Dimension, f EventFilter, fn func(key string, m Measures) error) error
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
	sum(CASE WHEN outcome = 'failure' THEN 1 ELSE 0 END),
	sum(CASE WHEN patient_id IS NOT NULL AND patient_id <> '' THEN 1 ELSE 0 END),
	sum(CASE WHEN action = 'EXPORT' THEN 1 ELSE 0 END),
	sum(CASE WHEN break_glass THEN 1 ELSE 0 END),
	sum(CASE WHEN action = 'LOGIN' AND outcome = 'success' THEN 1 ELSE 0 END),
	sum(CASE WHEN action = 'LOGIN' AND outcome = 'failure' THEN 1 ELSE 0 END),
	sum(CASE WHEN action = 'LOGOUT' THEN 1 ELSE 0 END)`

// AggregateSQL builds the aggregate queries of the Aggregator for one
// store: WindowCond is how the store bounds a query to a window (its
// primary key, the time range, or both), from the first placeholder on.
type AggregateSQL struct {
	Placeholder func(n int) string
	// WindowCond returns the condition bounding a query to w and its
	// arguments, numbered from 1.
	WindowCond func(w Window, ph func(n int) string) (string, []any)
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

// Count builds the GROUP BY query of CountEvents.
func (a AggregateSQL) Count(w Window, by Dimension, f EventFilter) (string, []any) {
	where, args := a.where(w, f)
	key := dimensions[by]
	group := " GROUP BY " + key
	if by == ByNothing { // one group, and none when no event matches
		group = " HAVING count(*) > 0"
	}
	return fmt.Sprintf(`SELECT %s, %s FROM events WHERE %s%s`, key, measureSQL, where, group), args
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
	return fmt.Sprintf(`SELECT %s FROM events WHERE %s AND idx > %s ORDER BY idx LIMIT %d`,
		EventColumns, where, a.Placeholder(len(args)), max(limit, 1)), args
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

// ScanGroup reads one row of a Count query.
func ScanGroup(r Row) (string, Measures, error) {
	var key string
	var m Measures
	err := r.Scan(&key, &m.Events, &m.Failures, &m.PHI, &m.Exports, &m.BreakGlass, &m.LoginSuccess, &m.LoginFailure, &m.Logouts)
	return key, m, err
}

// StreamGroups reads every row of a Count query into fn.
func StreamGroups(rows Rows, fn func(string, Measures) error) error {
	for rows.Next() {
		k, m, err := ScanGroup(rows)
		if err != nil {
			return err
		}
		if err := fn(k, m); err != nil {
			return err
		}
	}
	return rows.Err()
}
