package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/custos-audit/custos/internal/store"
	"github.com/jackc/pgx/v5"
)

var _ store.SharedWriter = (*Store)(nil)

var eventColumnList = strings.Split(strings.Join(strings.Fields(store.EventColumns), ""), ",")

// sequencerLock is the advisory lock key that makes appends exclusive
// across nodes ("custos seq").
const sequencerLock = 0x637573746f73_02

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Head returns the size of the ledger and where the sequencer resumes.
func (s *Store) Head(ctx context.Context) (store.Head, error) { return head(ctx, s.pool) }

func head(ctx context.Context, db querier) (store.Head, error) {
	h, err := store.ReadHead(ctx, func(ctx context.Context, q string) store.Row { return db.QueryRow(ctx, q) }, isNoRows)
	if err != nil {
		return h, fmt.Errorf("postgres: %w", err)
	}
	return h, nil
}

// Append writes the batch in one transaction with COPY; the commit is
// synchronous (synchronous_commit=on), so it is durable when Append returns.
func (s *Store) Append(ctx context.Context, b *store.Batch) error {
	return s.AppendLocked(ctx, func(store.Head) (*store.Batch, error) { return b, nil })
}

// AppendLocked appends under the sequencer advisory lock, held until the
// transaction ends: one node appends at a time, each from the head the last
// one committed. A node that dies mid-append loses its connection, which
// aborts its transaction and frees the lock at once. The primary key of
// tree_nodes is the fence: two appends of the same leaf can never both commit.
func (s *Store) AppendLocked(ctx context.Context, build func(store.Head) (*store.Batch, error)) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(sequencerLock)); err != nil {
		return fmt.Errorf("postgres: sequencer lock: %w", err)
	}
	h, err := head(ctx, tx)
	if err != nil {
		return err
	}
	b, err := build(h)
	if err != nil || b == nil {
		return err
	}
	if err := s.write(ctx, tx, b); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

func (s *Store) write(ctx context.Context, tx pgx.Tx, b *store.Batch) error {
	if n := len(b.Events); n > 0 {
		for _, ts := range []int64{b.Events[0].Timestamp.UnixMicro(), b.Events[n-1].Timestamp.UnixMicro()} {
			if err := s.ensurePartition(ctx, tx, ts); err != nil {
				return err
			}
		}
		rows := make([][]any, n)
		for i := range b.Events {
			rows[i] = store.EventArgs(make([]any, 0, store.EventColumnCount), &b.Events[i])
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumnList, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("postgres: copy events: %w", err)
		}
	}
	if len(b.Nodes) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"tree_nodes"}, []string{"pos", "hash"},
			pgx.CopyFromSlice(len(b.Nodes), func(i int) ([]any, error) {
				return []any{int64(b.Nodes[i].Pos), b.Nodes[i].Hash}, nil
			})); err != nil {
			return fmt.Errorf("postgres: copy tree nodes: %w", err)
		}
	}
	if cp := b.Checkpoint; cp != nil {
		if _, err := tx.Exec(ctx, `INSERT INTO checkpoints (size, note, created_at) VALUES ($1, $2, $3)`,
			int64(cp.Size), cp.Note, cp.CreatedAt.UnixMicro()); err != nil {
			return fmt.Errorf("postgres: insert checkpoint: %w", err)
		}
	}
	if err := store.ApplyStates(ctx, func(ctx context.Context, q string, args ...any) (int64, error) {
		tag, err := tx.Exec(ctx, q, args...)
		return tag.RowsAffected(), err
	}, func(n int) string { return fmt.Sprintf("$%d", n) }, b.States); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// AddCosignatures stores witnesses' cosignature lines with the checkpoint of
// the given size, replacing those stored before (the caller merges).
func (s *Store) AddCosignatures(ctx context.Context, size uint64, lines []byte) error {
	if _, err := s.pool.Exec(ctx, `UPDATE checkpoints SET cosignatures = $1 WHERE size = $2`, lines, int64(size)); err != nil {
		return fmt.Errorf("postgres: store cosignatures: %w", err)
	}
	return nil
}
