package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
	"golang.org/x/sync/errgroup"
)

var _ store.Aggregator = (*Store)(nil)

// aggregates bounds every report query by the primary key: the events of
// a window are one range of rowids, read in order from the ledger file
// itself, so the search index file (and its unindexed tail) plays no part.
var aggregates = store.AggregateSQL{
	Placeholder: func(n int) string { return fmt.Sprintf("?%d", n) },
	WindowCond: func(w store.Window, ph func(int) string) (string, []any) {
		return fmt.Sprintf("idx >= %s AND idx <= %s", ph(1), ph(2)), []any{int64(w.First), int64(w.Last)}
	},
}

// byAction bounds a query filtered on an action by the time index (ts,
// action) instead: it reads the index entries of the period and only the
// rows of that action (an EXPORT is a few in a hundred), where the primary
// key would read every row. The unary + keeps SQLite from the rowid range.
var byAction = store.AggregateSQL{
	Placeholder: aggregates.Placeholder,
	WindowCond: func(w store.Window, ph func(int) string) (string, []any) {
		return fmt.Sprintf("ts >= %s AND ts < %s AND +idx >= %s AND +idx <= %s", ph(1), ph(2), ph(3), ph(4)),
			[]any{w.From.UnixMicro(), w.To.UnixMicro(), int64(w.First), int64(w.Last)}
	},
	Order: "ts, idx",
}

// numbered turns the $n placeholders of a shared query into SQLite's ?n.
func numbered(q string) string {
	return strings.NewReplacer("$1", "?1", "$2", "?2", "$3", "?3").Replace(q)
}

// EventWindow finds the first and last index and the count of the events
// in [from, to) below the given size, from the time index.
func (s *Store) EventWindow(ctx context.Context, from, to time.Time, below uint64) (store.Window, bool, error) {
	w := store.Window{From: from, To: to}
	var first, last *int64
	err := s.r.QueryRowContext(ctx, numbered(store.EventWindowQuery), from.UnixMicro(), to.UnixMicro(), int64(below)).
		Scan(&first, &last, &w.Events)
	if err != nil {
		return w, false, fmt.Errorf("sqlite: event window: %w", err)
	}
	if first == nil || last == nil {
		return w, false, nil
	}
	w.First, w.Last = uint64(*first), uint64(*last)
	return w, true, nil
}

// CountEvents groups the window's events by each dimension in one read of
// the window: SQLite has no GROUPING SETS, and a GROUP BY per dimension
// reads (and sorts) the whole window again for each. The rows stream
// through, each added to its group of every dimension; memory holds the
// groups (actions, roles, users, days, addresses…), never the events. A
// large window is read as contiguous index ranges on as many connections
// as there are CPUs (the driver's decoding, not the disk, is what a read
// waits on), and their groups are merged.
func (s *Store) CountEvents(ctx context.Context, w store.Window, by []store.Dimension, f store.EventFilter, fn func(store.Dimension, string, store.Measures) error) error {
	if len(by) == 0 {
		return nil
	}
	parts := foldParts(w)
	results := make([][]map[string]*store.Measures, len(parts))
	g, gctx := errgroup.WithContext(ctx)
	for i, part := range parts {
		g.Go(func() (err error) {
			results[i], err = s.fold(gctx, part, by, f)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	groups := results[0]
	for _, r := range results[1:] {
		for d, g := range r {
			for k, m := range g {
				if have := groups[d][k]; have != nil {
					have.Add(*m)
				} else {
					groups[d][k] = m
				}
			}
		}
	}
	for i, g := range groups {
		for k, m := range g {
			if err := fn(by[i], k, *m); err != nil {
				return err
			}
		}
	}
	return nil
}

// foldMinPart is the fewest indexes a window holds per parallel read (a
// variable for the tests).
var foldMinPart uint64 = 250_000

// foldParts splits a window into contiguous index ranges, one per CPU (at
// most 4, the read pool's default size), none under foldMinPart indexes.
func foldParts(w store.Window) []store.Window {
	span := w.Last - w.First + 1
	n := min(uint64(runtime.GOMAXPROCS(0)), 4, max(span/foldMinPart, 1))
	parts := make([]store.Window, 0, n)
	for i := range n {
		p := w
		p.First = w.First + span*i/n
		p.Last = w.First + span*(i+1)/n - 1
		parts = append(parts, p)
	}
	return parts
}

// fold reads one index range of a window and returns its groups.
func (s *Store) fold(ctx context.Context, w store.Window, by []store.Dimension, f store.EventFilter) ([]map[string]*store.Measures, error) {
	q, args := aggregates.FoldSQL(w, by, f)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: count events: %w", err)
	}
	defer rows.Close()
	groups := make([]map[string]*store.Measures, len(by))
	for i := range groups {
		groups[i] = map[string]*store.Measures{}
	}
	var row sql.RawBytes
	fields := make([][]byte, len(by)+4)
	for rows.Next() {
		if err := rows.Scan(&row); err != nil {
			return nil, fmt.Errorf("sqlite: count events: %w", err)
		}
		rest := []byte(row)
		for i := range fields {
			j := bytes.IndexByte(rest, store.FoldSeparator)
			if j < 0 {
				j = len(rest)
				if i != len(fields)-1 {
					return nil, fmt.Errorf("sqlite: count events: a row with %d fields, want %d (a control character in a stored value?)", i+1, len(fields))
				}
			}
			fields[i], rest = rest[:j], rest[min(j+1, len(rest)):]
		}
		n := len(by)
		a, o := string(fields[n]), string(fields[n+1]) // short strings: no allocation for the one-byte flags
		phi, bg := len(fields[n+2]) == 1 && fields[n+2][0] == '1', len(fields[n+3]) == 1 && fields[n+3][0] == '1'
		for i, k := range fields[:n] {
			m := groups[i][string(k)] // no allocation for the lookup
			if m == nil {
				m = &store.Measures{}
				groups[i][string(k)] = m
			}
			m.Fold(a, o, phi, bg)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: count events: %w", err)
	}
	return groups, nil
}

// CountDistinct counts the distinct values of a dimension in the window.
func (s *Store) CountDistinct(ctx context.Context, w store.Window, d store.Dimension, f store.EventFilter) (int64, error) {
	q, args := aggregates.Distinct(w, d, f)
	var n int64
	if err := s.r.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count distinct: %w", err)
	}
	return n, nil
}

// WindowEvents returns a page of the window's events, oldest first.
func (s *Store) WindowEvents(ctx context.Context, w store.Window, f store.EventFilter, after int64, limit int) ([]custos.Event, error) {
	a := aggregates
	if f.Action != "" {
		a = byAction
	}
	q, args := a.Events(w, f, after, limit)
	return collect(ctx, s, "window events", q, store.ScanEvent, args...)
}

// StateRecordsOf returns the state records of the given entities in
// [from, to) below an index, in index order.
func (s *Store) StateRecordsOf(ctx context.Context, entities []string, from, to time.Time, below uint64) ([]leaf.StateRecord, error) {
	q, args := aggregates.StateOf(entities, from, to, below)
	return collect(ctx, s, "state records", q, store.ScanStateRecord, args...)
}

// RecordsIn counts the records of every kind in [first, last].
func (s *Store) RecordsIn(ctx context.Context, first, last uint64) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, numbered(store.RecordsInQuery), int64(first), int64(last)).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: records in range: %w", err)
	}
	return n, nil
}
