package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// ScanEvents calls fn for every event with index >= from, in index order,
// reading scanChunk rows at a time.
func (s *Store) ScanEvents(ctx context.Context, from uint64, fn func(custos.Event) error) error {
	next := int64(from)
	for {
		rows, err := s.r.QueryContext(ctx, `SELECT `+eventColumns+` FROM events WHERE idx >= ? ORDER BY idx LIMIT ?`, next, scanChunk)
		if err != nil {
			return fmt.Errorf("sqlite: scan events: %w", err)
		}
		var batch []custos.Event
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: scan events: %w", err)
			}
			batch = append(batch, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlite: scan events: %w", err)
		}
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(batch) < scanChunk {
			return nil
		}
		next = int64(batch[len(batch)-1].Index) + 1
	}
}

// ScanNodes calls fn for every stored tree node in position order.
func (s *Store) ScanNodes(ctx context.Context, fn func(store.Node) error) error {
	next := int64(0)
	for {
		rows, err := s.r.QueryContext(ctx, `SELECT pos, hash FROM tree_nodes WHERE pos >= ? ORDER BY pos LIMIT ?`, next, scanChunk*2)
		if err != nil {
			return fmt.Errorf("sqlite: scan nodes: %w", err)
		}
		var batch []store.Node
		for rows.Next() {
			var p int64
			var h []byte
			if err := rows.Scan(&p, &h); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: scan nodes: %w", err)
			}
			batch = append(batch, store.Node{Pos: uint64(p), Hash: h})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlite: scan nodes: %w", err)
		}
		for _, n := range batch {
			if err := fn(n); err != nil {
				return err
			}
		}
		if len(batch) < scanChunk*2 {
			return nil
		}
		next = int64(batch[len(batch)-1].Pos) + 1
	}
}

// ScanCheckpoints calls fn for every stored checkpoint in size order.
func (s *Store) ScanCheckpoints(ctx context.Context, fn func(store.Checkpoint) error) error {
	next := int64(-1)
	for {
		rows, err := s.r.QueryContext(ctx, `SELECT size, note, created_at FROM checkpoints WHERE size > ? ORDER BY size LIMIT ?`, next, scanChunk)
		if err != nil {
			return fmt.Errorf("sqlite: scan checkpoints: %w", err)
		}
		var batch []store.Checkpoint
		for rows.Next() {
			var size, at int64
			var note []byte
			if err := rows.Scan(&size, &note, &at); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: scan checkpoints: %w", err)
			}
			batch = append(batch, store.Checkpoint{Size: uint64(size), Note: note, CreatedAt: time.UnixMicro(at).UTC()})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlite: scan checkpoints: %w", err)
		}
		for _, c := range batch {
			if err := fn(c); err != nil {
				return err
			}
		}
		if len(batch) < scanChunk {
			return nil
		}
		next = int64(batch[len(batch)-1].Size)
	}
}
