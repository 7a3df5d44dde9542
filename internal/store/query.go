package store

import (
	"fmt"
	"strings"
)

// MaxLimit bounds one page of events.
const MaxLimit = 1000

// SQL is a WHERE clause, an ORDER BY clause and their arguments, built from a
// Query for the events table that both SQL stores share.
type SQL struct {
	Where   string
	OrderBy string
	Args    []any
	Limit   int
}

// EventSQL builds the filter and keyset order of q. placeholder(n) spells the
// n-th (1-based) bind parameter: "?" for SQLite, "$n" for PostgreSQL.
//
// Ledger timestamps never decrease with the index, so "newest first" is both
// (ts DESC, idx DESC) and (idx DESC). When an equality filter leads an index
// of the form (column, ts) the first order walks that index; otherwise the
// primary key does.
func EventSQL(q Query, placeholder func(n int) string) SQL {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, strings.ReplaceAll(cond, "?", placeholder(len(args))))
	}
	byTS := false
	for _, f := range []struct {
		col, val string
		leadsTS  bool
	}{
		{"user_id", q.User, true}, {"action", q.Action, false},
		{"resource_type", q.ResourceType, false}, {"resource_id", q.ResourceID, q.ResourceType != ""},
		{"patient_id", q.PatientID, true}, {"ip_address", q.IPAddress, true},
		{"outcome", q.Outcome, false}, {"source", q.Source, false},
	} {
		if f.val != "" {
			add(f.col+" = ?", f.val)
			byTS = byTS || f.leadsTS
		}
	}
	if !q.From.IsZero() {
		add("ts >= ?", q.From.UnixMicro())
	}
	if !q.To.IsZero() {
		add("ts <= ?", q.To.UnixMicro())
	}
	order := "idx DESC"
	if byTS {
		order = "ts DESC, idx DESC"
	}
	if c := q.After; c != nil {
		if byTS {
			args = append(args, c.Timestamp.UnixMicro(), int64(c.Index))
			conds = append(conds, fmt.Sprintf("(ts, idx) < (%s, %s)", placeholder(len(args)-1), placeholder(len(args))))
		} else {
			add("idx < ?", int64(c.Index))
		}
	}
	where := "TRUE"
	if len(conds) > 0 {
		where = strings.Join(conds, " AND ")
	}
	limit := q.Limit
	if limit <= 0 || limit > MaxLimit {
		limit = MaxLimit
	}
	return SQL{Where: where, OrderBy: order, Args: args, Limit: limit}
}
