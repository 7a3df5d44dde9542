package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// rowsPerInsert is how many rows one prepared multi-row INSERT carries.
const rowsPerInsert = 128

// Head returns the size of the ledger and where the sequencer resumes.
func (s *Store) Head(ctx context.Context) (store.Head, error) {
	h, err := store.ReadHead(ctx, func(ctx context.Context, q string) store.Row { return s.w.QueryRowContext(ctx, q) },
		func(err error) bool { return errors.Is(err, sql.ErrNoRows) })
	if err != nil {
		return h, fmt.Errorf("sqlite: %w", err)
	}
	return h, nil
}

// Append writes the batch (events, state records, tree nodes, checkpoint) in
// one immediate transaction that synchronous=FULL makes durable before Append
// returns, then queues the events for the secondary index, which follows on
// its own connection. Queries see committed events at once either way.
// Errors are classified (store.Classify): store.ErrPermanent when SQLite
// refused the data, store.ErrPushback when it is busy or the deadline passed.
func (s *Store) Append(ctx context.Context, b *store.Batch) error {
	if err := s.appendLedger(ctx, b); err != nil {
		return store.Classify(err)
	}
	if b.Committed != nil {
		b.Committed()
	}
	if len(b.Events) > 0 {
		s.ix.enqueue(b.Events)
	}
	return nil
}

func (s *Store) appendLedger(ctx context.Context, b *store.Batch) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback()
	if err := insertRows(ctx, tx, s.ins["events"], "events", len(b.Events), func(i int, args []any) []any {
		return store.EventArgs(args, &b.Events[i])
	}); err != nil {
		return err
	}
	if err := insertRows(ctx, tx, s.ins["tree_nodes"], "tree_nodes", len(b.Nodes), func(i int, args []any) []any {
		return append(args, int64(b.Nodes[i].Pos), b.Nodes[i].Hash)
	}); err != nil {
		return err
	}
	if cp := b.Checkpoint; cp != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (size, note, created_at) VALUES (?, ?, ?)`,
			int64(cp.Size), cp.Note, cp.CreatedAt.UnixMicro()); err != nil {
			return fmt.Errorf("sqlite: insert checkpoint: %w", err)
		}
	}
	exec := func(ctx context.Context, q string, args ...any) (int64, error) {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	ph := func(int) string { return "?" }
	if err := store.ApplyStates(ctx, exec, ph, b.States); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if err := store.ApplyDeliveries(ctx, exec, ph, b.Events); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// eventRange reads the committed events with index in [from, to).
func (s *Store) eventRange(from, to uint64) ([]custos.Event, error) {
	var out []custos.Event
	err := s.ScanEventRange(context.Background(), from, to, func(e custos.Event) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

var errRangeDone = errors.New("range done")

// catchUpIndex indexes whatever events the ledger holds beyond the index:
// after a crash, a failed index commit, or a deleted index file (a full
// rebuild). Indices that hold state records have nothing to index.
func (s *Store) catchUpIndex(ctx context.Context) error {
	var maxIdx sql.NullInt64
	if err := s.w.QueryRowContext(ctx, `SELECT max(idx) FROM events`).Scan(&maxIdx); err != nil {
		return fmt.Errorf("sqlite: catch up index: %w", err)
	}
	if !maxIdx.Valid {
		return nil
	}
	end := uint64(maxIdx.Int64) + 1
	for {
		upto, err := s.ix.upto(ctx)
		if err != nil || upto >= end {
			return err
		}
		to := min(upto+50_000, end)
		evs, err := s.eventRange(upto, to)
		if err == nil && len(evs) == 0 {
			// only state records in [upto, to): index up to the next event
			err = s.ScanEvents(ctx, to, func(e custos.Event) error {
				evs = append(evs, e)
				return errRangeDone
			})
			if errors.Is(err, errRangeDone) {
				err = nil
			}
		}
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return fmt.Errorf("sqlite: event %d is missing from the ledger; run custos verify", end-1)
		}
		if err := s.ix.add(ctx, evs, s.eventRange); err != nil {
			return err
		}
		if to < end && to%200_000 < 50_000 {
			s.log.Info("rebuilding the secondary index from the ledger", "indexed", to, "of", end)
		}
	}
}

// insertSpec names a table, its columns and the conflict clause of its
// INSERTs.
type insertSpec struct {
	table, cols string
	ncol        int
	conflict    string // "OR ROLLBACK", "OR IGNORE"
}

// insert holds the prepared INSERTs of one table.
type insert struct {
	ncol      int
	full, one *sql.Stmt
}

// prepareInserts prepares, once at open, a rowsPerInsert-row and a one-row
// INSERT for each table.
func prepareInserts(ctx context.Context, db *sql.DB, specs []insertSpec) (map[string]insert, error) {
	out := map[string]insert{}
	for _, t := range specs {
		one := "(" + strings.TrimSuffix(strings.Repeat("?,", t.ncol), ",") + ")"
		prefix := "INSERT " + t.conflict + " INTO " + t.table + " (" + t.cols + ") VALUES "
		full, err := db.PrepareContext(ctx, prefix+strings.TrimSuffix(strings.Repeat(one+",", rowsPerInsert), ","))
		if err != nil {
			return nil, fmt.Errorf("sqlite: prepare insert %s: %w", t.table, err)
		}
		single, err := db.PrepareContext(ctx, prefix+one)
		if err != nil {
			return nil, fmt.Errorf("sqlite: prepare insert %s: %w", t.table, err)
		}
		out[t.table] = insert{ncol: t.ncol, full: full, one: single}
	}
	return out, nil
}

// insertRows inserts n rows: full chunks with the rowsPerInsert-row
// statement, the remainder with the one-row statement.
func insertRows(ctx context.Context, tx *sql.Tx, st insert, table string, n int, row func(i int, args []any) []any) error {
	if n == 0 {
		return nil
	}
	args := make([]any, 0, rowsPerInsert*st.ncol)
	full, one := tx.StmtContext(ctx, st.full), tx.StmtContext(ctx, st.one)
	for start := 0; start < n; {
		stmt, end := full, start+rowsPerInsert
		if end > n {
			stmt, end = one, start+1
		}
		args = args[:0]
		for i := start; i < end; i++ {
			args = row(i, args)
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("sqlite: insert %s: %w", table, err)
		}
		start = end
	}
	return nil
}

// AddCosignatures stores witnesses' cosignature lines with the checkpoint of
// the given size, replacing those stored before (the caller merges).
func (s *Store) AddCosignatures(ctx context.Context, size uint64, lines []byte) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE checkpoints SET cosignatures = ? WHERE size = ?`, lines, int64(size)); err != nil {
		return fmt.Errorf("sqlite: store cosignatures: %w", err)
	}
	return nil
}
