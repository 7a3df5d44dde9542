package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
	"github.com/jackc/pgx/v5"
)

var _ store.Aggregator = (*Store)(nil)

// aggregates bounds every report query by both the time range (so that
// only the month partitions of the period are read) and the index range
// (so that nothing beyond the checkpoint is counted).
var aggregates = store.AggregateSQL{
	Placeholder: dialect.Placeholder,
	WindowCond: func(w store.Window, ph func(int) string) (string, []any) {
		return fmt.Sprintf("ts >= %s AND ts < %s AND idx >= %s AND idx <= %s", ph(1), ph(2), ph(3), ph(4)),
			[]any{w.From.UnixMicro(), w.To.UnixMicro(), int64(w.First), int64(w.Last)}
	},
}

// EventWindow finds the first and last index and the count of the events
// in [from, to) below the given size.
func (s *Store) EventWindow(ctx context.Context, from, to time.Time, below uint64) (store.Window, bool, error) {
	w := store.Window{From: from, To: to}
	var first, last *int64
	err := s.pool.QueryRow(ctx, store.EventWindowQuery, from.UnixMicro(), to.UnixMicro(), int64(below)).
		Scan(&first, &last, &w.Events)
	if err != nil {
		return w, false, fmt.Errorf("postgres: event window: %w", err)
	}
	if first == nil || last == nil {
		return w, false, nil
	}
	w.First, w.Last = uint64(*first), uint64(*last)
	return w, true, nil
}

// CountEvents groups the window's events by each dimension, with GROUPING
// SETS: one scan of the period's partitions, aggregated in the database.
func (s *Store) CountEvents(ctx context.Context, w store.Window, by []store.Dimension, f store.EventFilter, fn func(store.Dimension, string, store.Measures) error) error {
	if len(by) == 0 {
		return nil
	}
	q, args := aggregates.Count(w, by, f)
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("postgres: count events: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The hash tables of a report's grouping sets (users, addresses,
	// patients) exceed the default work_mem and would spill to disk: this
	// one statement may hold aggregateWorkMem.
	if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '"+aggregateWorkMem+"'"); err != nil {
		return fmt.Errorf("postgres: count events: %w", err)
	}
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("postgres: count events: %w", err)
	}
	defer rows.Close()
	if err := store.StreamGroups(rows, by, fn); err != nil {
		return fmt.Errorf("postgres: count events: %w", err)
	}
	return nil
}

// aggregateWorkMem bounds the memory of a report's aggregate on the
// database server.
const aggregateWorkMem = "128MB"

// CountDistinct counts the distinct values of a dimension in the window.
func (s *Store) CountDistinct(ctx context.Context, w store.Window, d store.Dimension, f store.EventFilter) (int64, error) {
	q, args := aggregates.Distinct(w, d, f)
	var n int64
	if err := s.pool.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count distinct: %w", err)
	}
	return n, nil
}

// WindowEvents returns a page of the window's events, oldest first.
func (s *Store) WindowEvents(ctx context.Context, w store.Window, f store.EventFilter, after int64, limit int) ([]custos.Event, error) {
	q, args := aggregates.Events(w, f, after, limit)
	return query(ctx, s, "window events", q, store.ScanEvent, args...)
}

// StateRecordsOf returns the state records of the given entities in
// [from, to) below an index, in index order.
func (s *Store) StateRecordsOf(ctx context.Context, entities []string, from, to time.Time, below uint64) ([]leaf.StateRecord, error) {
	q, args := aggregates.StateOf(entities, from, to, below)
	return query(ctx, s, "state records", q, store.ScanStateRecord, args...)
}

// RecordsIn counts the records of every kind in [first, last].
func (s *Store) RecordsIn(ctx context.Context, first, last uint64) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, store.RecordsInQuery, int64(first), int64(last)).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: records in range: %w", err)
	}
	return n, nil
}
