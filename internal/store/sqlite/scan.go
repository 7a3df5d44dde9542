package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// chunkQuery runs a keyset query (last key, limit) on the read pool and reads
// its rows, for store.ScanChunks. It decodes each row from the values the
// driver returns (rawQuery): these scans read whole tables, and database/sql's
// conversions by reflection were a large part of their cost. The batch it
// returns is reused by the next call: ScanChunks is done with one batch
// before it asks for the next. The query's parameters are the last key, the
// limit, then extra.
func chunkQuery[T any](s *Store, what, query string, decode func([]driver.Value) (T, error), w *typeWatch,
	extra ...driver.Value) func(context.Context, int64, int) ([]T, error) {
	var batch []T
	return func(ctx context.Context, last int64, limit int) ([]T, error) {
		clear(batch)
		batch = batch[:0]
		check, checked := w.chunk(last, limit)
		args := []driver.NamedValue{{Ordinal: 1, Value: last}, {Ordinal: 2, Value: int64(limit)}}
		for i, v := range extra {
			args = append(args, driver.NamedValue{Ordinal: 3 + i, Value: v})
		}
		err := s.rawQuery(ctx, query, args,
			func(vals []driver.Value) error {
				if check != nil {
					check(vals)
				}
				v, err := decode(vals)
				if err != nil {
					return err
				}
				batch = append(batch, v)
				return nil
			})
		if err != nil {
			return nil, fmt.Errorf("sqlite: scan %s: %w", what, err)
		}
		checked()
		return batch, nil
	}
}

// rawQuery runs query on a connection of the read pool and calls fn with the
// driver's values of each row, which are valid until fn returns.
func (s *Store) rawQuery(ctx context.Context, query string, args []driver.NamedValue, fn func([]driver.Value) error) error {
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		qc, ok := dc.(driver.QueryerContext)
		if !ok {
			return errors.New("the driver's connection cannot run a query")
		}
		rows, err := qc.QueryContext(ctx, query, args)
		if err != nil {
			return err
		}
		vals := make([]driver.Value, len(rows.Columns()))
		for {
			err := rows.Next(vals)
			if err == nil {
				err = fn(vals)
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				return errors.Join(err, rows.Close())
			}
		}
	})
}

const (
	scanEventsQuery = `SELECT ` + store.EventColumns + ` FROM events WHERE idx > ? ORDER BY idx LIMIT ?`
	scanNodesQuery  = `SELECT ` + store.NodeColumns + ` FROM tree_nodes WHERE pos > ? ORDER BY pos LIMIT ?`
	// The parameters are numbered as chunkQuery passes them: last, limit, end.
	scanEventRangeQuery = `SELECT ` + store.EventColumns + ` FROM events WHERE idx > ?1 AND idx < ?3 ORDER BY idx LIMIT ?2`
)

// ScanEvents calls fn for every event with index >= from, in index order,
// reading scanChunk rows at a time.
func (s *Store) ScanEvents(ctx context.Context, from uint64, fn func(custos.Event) error) error {
	return s.scanEvents(ctx, from, fn, nil)
}

func (s *Store) scanEvents(ctx context.Context, from uint64, fn func(custos.Event) error, w *typeWatch) error {
	return store.ScanChunks(ctx, int64(from)-1, scanChunk,
		chunkQuery(s, "events", scanEventsQuery, store.EventFromValues, w),
		func(e custos.Event) int64 { return int64(e.Index) }, fn)
}

// ScanEventRange calls fn for every event with from <= index < to, in index
// order, reading no row beyond to: a short range costs a short query.
func (s *Store) ScanEventRange(ctx context.Context, from, to uint64, fn func(custos.Event) error) error {
	if from >= to {
		return nil
	}
	return store.ScanChunks(ctx, int64(from)-1, int(min(to-from, scanChunk)),
		chunkQuery(s, "events", scanEventRangeQuery, store.EventFromValues, nil, driver.Value(int64(to))),
		func(e custos.Event) int64 { return int64(e.Index) }, fn)
}

// ScanNodes calls fn for every stored tree node in position order.
func (s *Store) ScanNodes(ctx context.Context, fn func(store.Node) error) error {
	return s.scanNodes(ctx, fn, nil)
}

func (s *Store) scanNodes(ctx context.Context, fn func(store.Node) error, w *typeWatch) error {
	return store.ScanChunks(ctx, -1, 2*scanChunk, chunkQuery(s, "nodes", scanNodesQuery, store.NodeFromValues, w),
		func(n store.Node) int64 { return int64(n.Pos) }, fn)
}

// ScanCheckpoints calls fn for every stored checkpoint in size order.
func (s *Store) ScanCheckpoints(ctx context.Context, fn func(store.Checkpoint) error) error {
	return store.ScanChunks(ctx, -1, scanChunk, func(ctx context.Context, last int64, limit int) ([]store.Checkpoint, error) {
		rows, err := s.r.QueryContext(ctx, `SELECT `+store.CheckpointColumns+` FROM checkpoints WHERE size > ? ORDER BY size LIMIT ?`, last, limit)
		if err != nil {
			return nil, fmt.Errorf("sqlite: scan checkpoints: %w", err)
		}
		defer rows.Close()
		out, err := store.Collect(rows, store.ScanCheckpoint)
		if err != nil {
			return nil, fmt.Errorf("sqlite: scan checkpoints: %w", err)
		}
		return out, nil
	}, func(c store.Checkpoint) int64 { return int64(c.Size) }, fn)
}
