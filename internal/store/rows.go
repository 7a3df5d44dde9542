package store

import (
	"context"
	"fmt"
	"time"

	"github.com/custos-audit/custos"
)

// Row is one result row: *sql.Row, pgx.Row, or a Rows positioned on a row.
type Row interface {
	Scan(dest ...any) error
}

// Rows is the part of a result set that both SQL drivers' rows offer
// (*sql.Rows and pgx.Rows), so that the stores share their scanning code.
type Rows interface {
	Row
	Next() bool
	Err() error
}

// Collect scans every remaining row with scan. The caller closes rows.
func Collect[T any](rows Rows, scan func(Row) (T, error)) ([]T, error) {
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ScanEvent scans one row of EventColumns.
func ScanEvent(r Row) (custos.Event, error) {
	var row eventRow
	if err := r.Scan(row.dest()...); err != nil {
		return custos.Event{}, err
	}
	return row.event()
}

// NodeColumns are the tree_nodes columns ScanNode reads.
const NodeColumns = `pos, hash`

// ScanNode scans one row of NodeColumns.
func ScanNode(r Row) (Node, error) {
	var pos int64
	var n Node
	err := r.Scan(&pos, &n.Hash)
	n.Pos = uint64(pos)
	return n, err
}

// CheckpointColumns are the checkpoints columns ScanCheckpoint reads.
const CheckpointColumns = `size, note, created_at, cosignatures`

// ScanCheckpoint scans one row of CheckpointColumns.
func ScanCheckpoint(r Row) (Checkpoint, error) {
	var size, at int64
	var c Checkpoint
	err := r.Scan(&size, &c.Note, &at, &c.Cosignatures)
	c.Size, c.CreatedAt = uint64(size), time.UnixMicro(at).UTC()
	return c, err
}

// ScanKey scans one row of KeyColumns.
func ScanKey(r Row) (Key, error) {
	var row keyRow
	if err := r.Scan(row.dest()...); err != nil {
		return Key{}, err
	}
	return row.key()
}

// OrderNodes returns the hashes of nodes in the order pos asks for, or an
// error naming the first position that is missing.
func OrderNodes(pos []uint64, nodes []Node) ([][]byte, error) {
	found := make(map[uint64][]byte, len(nodes))
	for _, n := range nodes {
		found[n.Pos] = n.Hash
	}
	out := make([][]byte, len(pos))
	for i, p := range pos {
		h, ok := found[p]
		if !ok {
			return nil, fmt.Errorf("tree node at position %d is missing", p)
		}
		out[i] = h
	}
	return out, nil
}

// ScanChunks reads a table in key order, chunk rows at a time: query returns
// the rows whose key is greater than last, at most limit of them, already
// read (no connection is held while fn runs); key gives a row's key. fn is
// called for every row; its error ends the scan.
func ScanChunks[T any](ctx context.Context, first int64, chunk int,
	query func(ctx context.Context, last int64, limit int) ([]T, error), key func(T) int64, fn func(T) error) error {
	last := first
	for {
		batch, err := query(ctx, last, chunk)
		if err != nil {
			return err
		}
		for _, v := range batch {
			if err := fn(v); err != nil {
				return err
			}
		}
		if len(batch) < chunk {
			return nil
		}
		last = key(batch[len(batch)-1])
	}
}
