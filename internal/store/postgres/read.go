package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
	"github.com/jackc/pgx/v5"
)

// scanChunk is how many rows one scan query reads.
const scanChunk = 5000

var dialect = store.Dialect{Placeholder: func(n int) string { return fmt.Sprintf("$%d", n) }}

func scanEvent(r pgx.Row) (custos.Event, error) {
	var row store.EventRow
	if err := r.Scan(row.Dest()...); err != nil {
		return custos.Event{}, err
	}
	return row.Event()
}

// Event returns the event at index, or custos.ErrNotFound.
func (s *Store) Event(ctx context.Context, index uint64) (custos.Event, error) {
	e, err := scanEvent(s.pool.QueryRow(ctx, `SELECT `+store.EventColumns+` FROM events WHERE idx = $1`, int64(index)))
	if isNoRows(err) {
		return e, custos.ErrNotFound
	}
	if err != nil {
		return e, fmt.Errorf("postgres: event: %w", err)
	}
	return e, nil
}

// Events answers a filtered, newest-first, keyset-paged query.
func (s *Store) Events(ctx context.Context, q store.Query) ([]custos.Event, error) {
	b := store.EventSQL(q, dialect)
	rows, err := s.pool.Query(ctx, `SELECT `+store.QualifiedEventColumns+` FROM `+b.From+` WHERE `+b.Where+
		` ORDER BY `+b.OrderBy+fmt.Sprintf(` LIMIT %d`, b.Limit), b.Args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: events: %w", err)
	}
	defer rows.Close()
	out := []custos.Event{}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: events: %w", err)
	}
	return out, nil
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
	rows, err := s.pool.Query(ctx, `SELECT pos, hash FROM tree_nodes WHERE pos = ANY($1)`, ps)
	if err != nil {
		return nil, fmt.Errorf("postgres: nodes: %w", err)
	}
	defer rows.Close()
	found := make(map[uint64][]byte, len(pos))
	for rows.Next() {
		var p int64
		var h []byte
		if err := rows.Scan(&p, &h); err != nil {
			return nil, fmt.Errorf("postgres: nodes: %w", err)
		}
		found[uint64(p)] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: nodes: %w", err)
	}
	out, err := store.OrderNodes(pos, found)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return out, nil
}

// LatestCheckpoint returns the newest checkpoint, or custos.ErrNotFound.
func (s *Store) LatestCheckpoint(ctx context.Context) (*store.Checkpoint, error) {
	var size, at int64
	var note []byte
	err := s.pool.QueryRow(ctx, `SELECT size, note, created_at FROM checkpoints ORDER BY size DESC LIMIT 1`).Scan(&size, &note, &at)
	if isNoRows(err) {
		return nil, custos.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: latest checkpoint: %w", err)
	}
	return &store.Checkpoint{Size: uint64(size), Note: note, CreatedAt: time.UnixMicro(at).UTC()}, nil
}

// Keys lists every API key, revoked ones included.
func (s *Store) Keys(ctx context.Context) ([]store.Key, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+store.KeyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: keys: %w", err)
	}
	defer rows.Close()
	var out []store.Key
	for rows.Next() {
		var r store.KeyRow
		if err := rows.Scan(r.Dest()...); err != nil {
			return nil, fmt.Errorf("postgres: keys: %w", err)
		}
		k, err := r.Key()
		if err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// scanChunks runs query (taking the last key seen and a limit, ordered by
// key) repeatedly, calling fn for each row after its chunk is read.
func scanChunks[T any](ctx context.Context, s *Store, what, query string, first int64,
	scan func(pgx.Rows) (T, int64, error), fn func(T) error) error {
	last := first
	for {
		rows, err := s.pool.Query(ctx, query, last, scanChunk)
		if err != nil {
			return fmt.Errorf("postgres: scan %s: %w", what, err)
		}
		var batch []T
		for rows.Next() {
			v, key, err := scan(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("postgres: scan %s: %w", what, err)
			}
			batch, last = append(batch, v), key
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres: scan %s: %w", what, err)
		}
		for _, v := range batch {
			if err := fn(v); err != nil {
				return err
			}
		}
		if len(batch) < scanChunk {
			return nil
		}
	}
}

// ScanEvents calls fn for every event with index >= from, in index order.
func (s *Store) ScanEvents(ctx context.Context, from uint64, fn func(custos.Event) error) error {
	return scanChunks(ctx, s, "events", `SELECT `+store.EventColumns+` FROM events WHERE idx > $1 ORDER BY idx LIMIT $2`,
		int64(from)-1, func(r pgx.Rows) (custos.Event, int64, error) {
			e, err := scanEvent(r)
			return e, int64(e.Index), err
		}, fn)
}

// ScanNodes calls fn for every stored tree node in position order.
func (s *Store) ScanNodes(ctx context.Context, fn func(store.Node) error) error {
	return scanChunks(ctx, s, "nodes", `SELECT pos, hash FROM tree_nodes WHERE pos > $1 ORDER BY pos LIMIT $2`,
		-1, func(r pgx.Rows) (store.Node, int64, error) {
			var p int64
			var h []byte
			err := r.Scan(&p, &h)
			return store.Node{Pos: uint64(p), Hash: h}, p, err
		}, fn)
}

// ScanCheckpoints calls fn for every stored checkpoint in size order.
func (s *Store) ScanCheckpoints(ctx context.Context, fn func(store.Checkpoint) error) error {
	return scanChunks(ctx, s, "checkpoints", `SELECT size, note, created_at FROM checkpoints WHERE size > $1 ORDER BY size LIMIT $2`,
		-1, func(r pgx.Rows) (store.Checkpoint, int64, error) {
			var size, at int64
			var note []byte
			err := r.Scan(&size, &note, &at)
			return store.Checkpoint{Size: uint64(size), Note: note, CreatedAt: time.UnixMicro(at).UTC()}, size, err
		}, fn)
}
