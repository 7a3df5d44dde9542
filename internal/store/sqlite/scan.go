package sqlite

import (
	"context"
	"fmt"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// chunkQuery runs a keyset query (last key, limit) on the read pool and reads
// its rows, for store.ScanChunks.
func chunkQuery[T any](s *Store, what, query string, scan func(store.Row) (T, error)) func(context.Context, int64, int) ([]T, error) {
	return func(ctx context.Context, last int64, limit int) ([]T, error) {
		rows, err := s.r.QueryContext(ctx, query, last, limit)
		if err != nil {
			return nil, fmt.Errorf("sqlite: scan %s: %w", what, err)
		}
		defer rows.Close()
		out, err := store.Collect(rows, scan)
		if err != nil {
			return nil, fmt.Errorf("sqlite: scan %s: %w", what, err)
		}
		return out, nil
	}
}

// ScanEvents calls fn for every event with index >= from, in index order,
// reading scanChunk rows at a time.
func (s *Store) ScanEvents(ctx context.Context, from uint64, fn func(custos.Event) error) error {
	return store.ScanChunks(ctx, int64(from)-1, scanChunk,
		chunkQuery(s, "events", `SELECT `+store.EventColumns+` FROM events WHERE idx > ? ORDER BY idx LIMIT ?`, store.ScanEvent),
		func(e custos.Event) int64 { return int64(e.Index) }, fn)
}

// ScanNodes calls fn for every stored tree node in position order.
func (s *Store) ScanNodes(ctx context.Context, fn func(store.Node) error) error {
	return store.ScanChunks(ctx, -1, 2*scanChunk,
		chunkQuery(s, "nodes", `SELECT `+store.NodeColumns+` FROM tree_nodes WHERE pos > ? ORDER BY pos LIMIT ?`, store.ScanNode),
		func(n store.Node) int64 { return int64(n.Pos) }, fn)
}

// ScanCheckpoints calls fn for every stored checkpoint in size order.
func (s *Store) ScanCheckpoints(ctx context.Context, fn func(store.Checkpoint) error) error {
	return store.ScanChunks(ctx, -1, scanChunk,
		chunkQuery(s, "checkpoints", `SELECT `+store.CheckpointColumns+` FROM checkpoints WHERE size > ? ORDER BY size LIMIT ?`, store.ScanCheckpoint),
		func(c store.Checkpoint) int64 { return int64(c.Size) }, fn)
}
