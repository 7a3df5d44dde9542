package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// scanChunks runs query (which takes the last key seen and a limit, and
// orders by key) repeatedly, chunk rows at a time, calling fn for each row
// after the chunk's rows are read, so no connection is held while fn runs.
func scanChunks[T any](ctx context.Context, db *sql.DB, what, query string, first int64, chunk int,
	scan func(*sql.Rows) (T, int64, error), fn func(T) error) error {
	last := first
	for {
		rows, err := db.QueryContext(ctx, query, last, chunk)
		if err != nil {
			return fmt.Errorf("sqlite: scan %s: %w", what, err)
		}
		var batch []T
		for rows.Next() {
			v, key, err := scan(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: scan %s: %w", what, err)
			}
			batch, last = append(batch, v), key
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlite: scan %s: %w", what, err)
		}
		for _, v := range batch {
			if err := fn(v); err != nil {
				return err
			}
		}
		if len(batch) < chunk {
			return nil
		}
	}
}

// ScanEvents calls fn for every event with index >= from, in index order,
// reading scanChunk rows at a time.
func (s *Store) ScanEvents(ctx context.Context, from uint64, fn func(custos.Event) error) error {
	return scanChunks(ctx, s.r, "events", `SELECT `+store.EventColumns+` FROM events WHERE idx > ? ORDER BY idx LIMIT ?`,
		int64(from)-1, scanChunk, func(r *sql.Rows) (custos.Event, int64, error) {
			e, err := scanEvent(r)
			return e, int64(e.Index), err
		}, fn)
}

// ScanNodes calls fn for every stored tree node in position order.
func (s *Store) ScanNodes(ctx context.Context, fn func(store.Node) error) error {
	return scanChunks(ctx, s.r, "nodes", `SELECT pos, hash FROM tree_nodes WHERE pos > ? ORDER BY pos LIMIT ?`,
		-1, 2*scanChunk, func(r *sql.Rows) (store.Node, int64, error) {
			var p int64
			var h []byte
			err := r.Scan(&p, &h)
			return store.Node{Pos: uint64(p), Hash: h}, p, err
		}, fn)
}

// ScanCheckpoints calls fn for every stored checkpoint in size order.
func (s *Store) ScanCheckpoints(ctx context.Context, fn func(store.Checkpoint) error) error {
	return scanChunks(ctx, s.r, "checkpoints", `SELECT size, note, created_at FROM checkpoints WHERE size > ? ORDER BY size LIMIT ?`,
		-1, scanChunk, func(r *sql.Rows) (store.Checkpoint, int64, error) {
			var size, at int64
			var note []byte
			err := r.Scan(&size, &note, &at)
			return store.Checkpoint{Size: uint64(size), Note: note, CreatedAt: time.UnixMicro(at).UTC()}, size, err
		}, fn)
}
