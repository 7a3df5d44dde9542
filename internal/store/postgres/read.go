package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
)

// scanChunk is how many rows one scan query reads.
const scanChunk = 5000

var dialect = store.Dialect{Placeholder: func(n int) string { return fmt.Sprintf("$%d", n) }}

// Event returns the event at index, or custos.ErrNotFound.
func (s *Store) Event(ctx context.Context, index uint64) (custos.Event, error) {
	e, err := store.ScanEvent(s.pool.QueryRow(ctx, `SELECT `+store.EventColumns+` FROM events WHERE idx = $1`, int64(index)))
	if isNoRows(err) {
		return e, custos.ErrNotFound
	}
	if err != nil {
		return e, fmt.Errorf("postgres: event: %w", err)
	}
	return e, nil
}

// query runs a query on the pool and reads all its rows with scan.
func query[T any](ctx context.Context, s *Store, what, sql string, scan func(store.Row) (T, error), args ...any) ([]T, error) {
	return queryOn(ctx, s.pool, what, sql, scan, args...)
}

// queryOn runs a query on pool and reads all its rows with scan.
func queryOn[T any](ctx context.Context, pool *pgxpool.Pool, what, sql string, scan func(store.Row) (T, error), args ...any) ([]T, error) {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, err)
	}
	defer rows.Close()
	out, err := store.Collect(rows, scan)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, err)
	}
	return out, nil
}

// Events answers a filtered, newest-first, keyset-paged query on the search
// pool; when ctx ends, the statement is cancelled on the server.
func (s *Store) Events(ctx context.Context, q store.Query) ([]custos.Event, error) {
	b := store.EventSQL(q, dialect)
	return queryOn(ctx, s.search, "events", `SELECT `+store.QualifiedEventColumns+` FROM `+b.From+` WHERE `+b.Where+
		` ORDER BY `+b.OrderBy+fmt.Sprintf(` LIMIT %d`, b.Limit), store.ScanEvent, b.Args...)
}

// Nodes returns the hashes at the given positions, in order.
func (s *Store) Nodes(ctx context.Context, pos []uint64) ([][]byte, error) {
	if len(pos) == 0 {
		return nil, nil
	}
	ps := make([]int64, len(pos))
	for i, p := range pos {
		ps[i] = int64(p)
	}
	nodes, err := query(ctx, s, "nodes", `SELECT `+store.NodeColumns+` FROM tree_nodes WHERE pos = ANY($1)`, store.ScanNode, ps)
	if err != nil {
		return nil, err
	}
	out, err := store.OrderNodes(pos, nodes)
	if err != nil {
		return nil, fmt.Errorf("postgres: nodes: %w", err)
	}
	return out, nil
}

// LatestCheckpoint returns the newest checkpoint, or custos.ErrNotFound.
func (s *Store) LatestCheckpoint(ctx context.Context) (*store.Checkpoint, error) {
	cp, err := store.ScanCheckpoint(s.pool.QueryRow(ctx,
		`SELECT `+store.CheckpointColumns+` FROM checkpoints ORDER BY size DESC LIMIT 1`))
	if isNoRows(err) {
		return nil, custos.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: latest checkpoint: %w", err)
	}
	return &cp, nil
}

// StateRecords returns the state records with index > after, in order.
func (s *Store) StateRecords(ctx context.Context, after int64) ([]leaf.StateRecord, error) {
	return query(ctx, s, "state records", fmt.Sprintf(store.StateRecordsQuery, "$1"), store.ScanStateRecord, after)
}

// StateRows returns the state table.
func (s *Store) StateRows(ctx context.Context) ([]store.StateRow, error) {
	return query(ctx, s, "state", store.StateRowsQuery, store.ScanStateRow)
}

// LegacyKeys returns the rows of the first release's api_keys table.
func (s *Store) LegacyKeys(ctx context.Context) ([]store.Key, error) {
	return query(ctx, s, "legacy keys", store.LegacyKeysQuery, store.ScanKey)
}

// RecordCount counts the stored records of every kind and the size the
// newest index implies, in one snapshot.
func (s *Store) RecordCount(ctx context.Context) (count, size uint64, err error) {
	var n, last int64
	if err := s.pool.QueryRow(ctx, store.RecordCountQuery).Scan(&n, &last); err != nil {
		return 0, 0, fmt.Errorf("postgres: count records: %w", err)
	}
	return uint64(n), uint64(last + 1), nil
}

// chunkQuery is a keyset query (last key, limit) for store.ScanChunks.
func chunkQuery[T any](s *Store, what, sql string, scan func(store.Row) (T, error)) func(context.Context, int64, int) ([]T, error) {
	return func(ctx context.Context, last int64, limit int) ([]T, error) {
		return query(ctx, s, "scan "+what, sql, scan, last, limit)
	}
}

// ScanEvents calls fn for every event with index >= from, in index order.
func (s *Store) ScanEvents(ctx context.Context, from uint64, fn func(custos.Event) error) error {
	return store.ScanChunks(ctx, int64(from)-1, scanChunk,
		chunkQuery(s, "events", `SELECT `+store.EventColumns+` FROM events WHERE idx > $1 ORDER BY idx LIMIT $2`, store.ScanEvent),
		func(e custos.Event) int64 { return int64(e.Index) }, fn)
}

// ScanEventRange calls fn for every event with from <= index < to, in index
// order, reading no row beyond to.
func (s *Store) ScanEventRange(ctx context.Context, from, to uint64, fn func(custos.Event) error) error {
	if from >= to {
		return nil
	}
	return store.ScanChunks(ctx, int64(from)-1, int(min(to-from, scanChunk)),
		func(ctx context.Context, last int64, limit int) ([]custos.Event, error) {
			return query(ctx, s, "scan events", `SELECT `+store.EventColumns+` FROM events WHERE idx > $1 AND idx < $2 ORDER BY idx LIMIT $3`,
				store.ScanEvent, last, int64(to), limit)
		},
		func(e custos.Event) int64 { return int64(e.Index) }, fn)
}

// ScanNodes calls fn for every stored tree node in position order.
func (s *Store) ScanNodes(ctx context.Context, fn func(store.Node) error) error {
	return store.ScanChunks(ctx, -1, scanChunk,
		chunkQuery(s, "nodes", `SELECT `+store.NodeColumns+` FROM tree_nodes WHERE pos > $1 ORDER BY pos LIMIT $2`, store.ScanNode),
		func(n store.Node) int64 { return int64(n.Pos) }, fn)
}

// ScanCheckpoints calls fn for every stored checkpoint in size order.
func (s *Store) ScanCheckpoints(ctx context.Context, fn func(store.Checkpoint) error) error {
	return store.ScanChunks(ctx, -1, scanChunk,
		chunkQuery(s, "checkpoints", `SELECT `+store.CheckpointColumns+` FROM checkpoints WHERE size > $1 ORDER BY size LIMIT $2`, store.ScanCheckpoint),
		func(c store.Checkpoint) int64 { return int64(c.Size) }, fn)
}

// PatientDays counts each user's distinct patients per UTC day in [from, to).
func (s *Store) PatientDays(ctx context.Context, from, to time.Time) ([]store.PatientDay, error) {
	return query(ctx, s, "patient days", store.PatientDaysQuery, store.ScanPatientDay, from.UnixMicro(), to.UnixMicro())
}

// Delivery returns the index of the first event of the request its
// submitter sent with key, or custos.ErrNotFound.
func (s *Store) Delivery(ctx context.Context, submittedBy, key string) (uint64, error) {
	if s.lacking[store.DeliveriesMigration] {
		return 0, custos.ErrNotFound // a read-only open of a store older than idempotent delivery
	}
	return store.One(query(ctx, s, "delivery", store.DeliveryQuery, store.ScanIndex, submittedBy, key))
}

// DeliveryRows returns the deliveries table in index order.
func (s *Store) DeliveryRows(ctx context.Context) ([]store.DeliveryRow, error) {
	if s.lacking[store.DeliveriesMigration] {
		return nil, nil // a read-only open of a store older than idempotent delivery
	}
	return query(ctx, s, "deliveries", store.DeliveryRowsQuery, store.ScanDeliveryRow)
}

// StateRecord returns the state record at index, or custos.ErrNotFound.
func (s *Store) StateRecord(ctx context.Context, index uint64) (leaf.StateRecord, error) {
	return store.One(query(ctx, s, "state record", fmt.Sprintf(store.StateRecordQuery, "$1"), store.ScanStateRecord, int64(index)))
}
