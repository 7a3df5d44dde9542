package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/custos-audit/custos/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
//
// Errors are classified (store.Classify): store.ErrPermanent when the
// database refused the data, store.ErrPushback when it is down or busy.
func (s *Store) AppendLocked(ctx context.Context, build func(store.Head) (*store.Batch, error)) error {
	return store.Classify(s.appendLocked(ctx, build))
}

func (s *Store) appendLocked(ctx context.Context, build func(store.Head) (*store.Batch, error)) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	committed := false
	defer func() { s.partitionsSettled(tx, committed) }() // after the rollback below
	defer tx.Rollback(ctx)
	// Bounded tenure: waiting for the lock, any statement, and idling
	// inside the transaction (a node paused while it holds the lock) each
	// end after the tenure, and the lock goes with the transaction, so a
	// stopped node cannot stop the others for longer.
	// (The lock wait ends first, so that its error says what it is.)
	t := s.tenure().Milliseconds()
	if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d; SET LOCAL statement_timeout = %d; SET LOCAL idle_in_transaction_session_timeout = %d`,
		t, t+500, t)); err != nil {
		return fmt.Errorf("postgres: append timeouts: %w", err)
	}
	// The key is the schema's: ledgers in two schemas of one database are
	// two ledgers, and never wait for each other.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(current_schema(), $1))`, int64(sequencerLock)); err != nil {
		if isLockTimeout(err) {
			s.evictStalledHolder(ctx)
		}
		return fmt.Errorf("postgres: sequencer lock: %w", err)
	}
	h, err := head(ctx, tx)
	if err != nil {
		return err
	}
	// The ledger's one clock: the database's, read under the lock.
	var now int64
	if err := tx.QueryRow(ctx, `SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint`).Scan(&now); err != nil {
		return fmt.Errorf("postgres: read the clock: %w", err)
	}
	h.Now = time.UnixMicro(now).UTC()
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
	committed = true
	if b.Committed != nil {
		b.Committed()
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
	exec := func(ctx context.Context, q string, args ...any) (int64, error) {
		tag, err := tx.Exec(ctx, q, args...)
		return tag.RowsAffected(), err
	}
	ph := func(n int) string { return fmt.Sprintf("$%d", n) }
	if err := store.ApplyStates(ctx, exec, ph, b.States); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := store.ApplyDeliveries(ctx, exec, ph, b.Events); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// isLockTimeout reports whether err is PostgreSQL's lock_timeout.
func isLockTimeout(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55P03"
}

// evictStalledHolder ends the session that holds the append lock when it
// has been running one statement for longer than half the tenure (so that
// the wait that timed out is the only one: a commit's statements take
// milliseconds). PostgreSQL
// cannot time out a COPY that waits for data from a client that stopped (a
// paused node mid-append): it defers the cancel until the client speaks
// again, and the idle timeout does not apply to an active statement. Ending
// that session aborts its transaction, so nothing it wrote commits, and
// frees the lock; the stalled node's next commit finds its connection gone.
// It needs the same role as the holder, or pg_signal_backend; it is best
// effort, and the caller answers pushback either way.
func (s *Store) evictStalledHolder(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var pid *int32
	err := s.pool.QueryRow(ctx, `SELECT pg_terminate_backend(a.pid)::int * a.pid
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		  AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(current_schema(), $1)
		  AND a.state = 'active' AND a.pid <> pg_backend_pid()
		  AND clock_timestamp() - a.state_change > make_interval(secs => $2)
		LIMIT 1`, int64(sequencerLock), s.tenure().Seconds()/2).Scan(&pid)
	switch {
	case isNoRows(err):
	case err != nil:
		s.log.Warn("could not end the session stalled on the append lock", "err", err)
	case pid != nil && *pid != 0:
		s.log.Warn("ended the session that held the append lock without progress for longer than half the lock tenure (a paused node mid-append)",
			"pid", *pid, "tenure", s.tenure().String())
	}
}

// DefaultLockTenure bounds how long one node may hold or wait for the
// append lock, or run one statement of an append.
const DefaultLockTenure = 2500 * time.Millisecond

// SetLockTenure sets the bound on the append lock's tenure (see
// DefaultLockTenure); zero restores the default.
func (s *Store) SetLockTenure(d time.Duration) { s.lockTenure.Store(int64(d)) }

func (s *Store) tenure() time.Duration {
	if d := time.Duration(s.lockTenure.Load()); d > 0 {
		return d
	}
	return DefaultLockTenure
}

// AddCosignatures stores witnesses' cosignature lines with the checkpoint of
// the given size, replacing those stored before (the caller merges).
func (s *Store) AddCosignatures(ctx context.Context, size uint64, lines []byte) error {
	if _, err := s.pool.Exec(ctx, `UPDATE checkpoints SET cosignatures = $1 WHERE size = $2`, lines, int64(size)); err != nil {
		return fmt.Errorf("postgres: store cosignatures: %w", err)
	}
	return nil
}
