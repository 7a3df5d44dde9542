// Package postgres is the production store: PostgreSQL through pgx and
// pgxpool, with its own embedded migrations, the events table partitioned by
// month, synchronous commit enforced on every connection, and batches
// written with COPY in one transaction.
//
// It implements store.Store and passes storetest.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos-audit/custos/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the advisory lock key that serialises migrations between
// nodes starting together ("custos migrate").
const migrationLock = 0x637573746f73_01

// Options tune the store. Zero fields take the defaults.
type Options struct {
	MaxConns int32 // pool size (default 8): appends, Ping, point reads, proofs
	ReadOnly bool  // do not migrate (verify); the schema must be current
	// Exclusive opens the store only when no other Custos process writes to
	// it (custos admin-key); otherwise Open fails with ErrInUse.
	Exclusive bool
	Logger    *slog.Logger

	// SearchConns sizes the pool of searches (Events; default 4), kept
	// apart so that searches never hold the connections of appends and
	// readiness. A search whose context ends is cancelled on the server.
	SearchConns int32
}

// presenceLock is the session advisory lock every writing process holds
// (shared) while it runs, and that an exclusive opening takes alone
// ("custos run").
const presenceLock = 0x637573746f73_03

// ErrInUse is returned by an Exclusive Open while a server runs on the
// database.
var ErrInUse = errors.New("a custos server is running on this database")

// Store is the PostgreSQL store.
type Store struct {
	pool       *pgxpool.Pool
	presence   *pgx.Conn    // holds presenceLock while the store is open for writing
	lockTenure atomic.Int64 // see SetLockTenure
	log        *slog.Logger

	search *pgxpool.Pool // Events only; see Options.SearchConns

	// The partition cache: months (µs of their first instant) whose
	// partition exists, as committed; and the months whose partition an
	// open transaction created, known only once it commits (a rollback
	// takes the partition with it). See ensurePartition.
	partMu sync.Mutex
	parts  map[int64]bool
	partTx map[pgx.Tx][]int64

	lacking map[string]bool // optional migrations a read-only open found missing
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (postgres://…), checks the checksums
// of applied migrations and applies pending ones (unless ReadOnly).
func Open(ctx context.Context, url string, opt Options) (*Store, error) {
	if opt.MaxConns <= 0 {
		opt.MaxConns = 8
	}
	if opt.SearchConns <= 0 {
		opt.SearchConns = 4
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: --db is not a valid PostgreSQL URL: %w", err)
	}
	cfg.MaxConns = opt.MaxConns
	// An acknowledged event must survive a crash of the database server too,
	// whatever the server's default.
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "custos"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: cannot reach %s@%s:%d/%s: %w", cfg.ConnConfig.User,
			cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	scfg := cfg.Copy()
	scfg.MaxConns = opt.SearchConns
	// One backend per search, no parallel workers: the API bounds the
	// searches running at once and their share of time, which then bounds
	// the database's CPUs they take; a parallel scan would take them all.
	scfg.ConnConfig.RuntimeParams["max_parallel_workers_per_gather"] = "0"
	// A search past its deadline is cancelled in the database at once (a
	// cancel request) and keeps its connection; pgx's default closes the
	// connection first, and a pool of timed-out searches would reconnect.
	scfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 2 * time.Second}
	}
	search, err := pgxpool.NewWithConfig(ctx, scfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool, search: search, log: opt.Logger, parts: map[int64]bool{}}
	if !opt.ReadOnly {
		if err := s.announce(ctx, cfg.ConnConfig, opt.Exclusive); err != nil {
			pool.Close()
			search.Close()
			return nil, err
		}
	}
	if err := s.migrate(ctx, opt.ReadOnly); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// announce takes the presence lock on a connection of its own: shared for a
// server (several nodes may run), exclusive for a process that must run
// alone.
func (s *Store) announce(ctx context.Context, cc *pgx.ConnConfig, exclusive bool) error {
	conn, err := pgx.ConnectConfig(ctx, cc.Copy())
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	fn := "pg_try_advisory_lock_shared"
	if exclusive {
		fn = "pg_try_advisory_lock"
	}
	var ok bool
	// Keyed by schema too: stores in two schemas of one database are two
	// ledgers.
	if err := conn.QueryRow(ctx, `SELECT `+fn+`(hashtextextended(current_schema(), $1))`, int64(presenceLock)).Scan(&ok); err != nil {
		conn.Close(ctx)
		return fmt.Errorf("postgres: presence lock: %w", err)
	}
	if !ok {
		conn.Close(ctx)
		return fmt.Errorf("postgres: %w; stop every custos serve on it first", ErrInUse)
	}
	s.presence = conn
	return nil
}

func (s *Store) migrate(ctx context.Context, readOnly bool) error {
	ms, err := store.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer tx.Rollback(ctx)
	if !readOnly {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		if _, err := tx.Exec(ctx, schemaMigrationsDDL); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
	}
	rows, err := tx.Query(ctx, store.AppliedQuery)
	if err != nil {
		return fmt.Errorf("postgres: read migrations (is this a Custos database?): %w", err)
	}
	applied, err := store.Applied(rows)
	rows.Close()
	if err != nil {
		return fmt.Errorf("postgres: read migrations: %w", err)
	}
	todo, err := store.Pending(ms, applied)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if readOnly {
		lacking, ok := store.ReadableWithout(todo)
		if !ok {
			return fmt.Errorf("postgres: the database needs migration %s; start custos serve once to apply it", todo[0].Name)
		}
		s.lacking = lacking
		return nil
	}
	for _, m := range todo {
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("postgres: migrate %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations VALUES ($1, $2, $3, $4)`,
			m.Version, m.Name, m.Checksum, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("postgres: migrate %s: %w", m.Name, err)
		}
	}
	return tx.Commit(ctx)
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	s.search.Close()
	if s.presence != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return s.presence.Close(ctx) // ends the session, and its lock
	}
	return nil
}

// ensurePartition creates the monthly partition holding ts (µs) if it does
// not exist yet, inside tx. The month becomes known to the cache only when
// tx commits (partitionsSettled): until then a rollback would remove the
// partition that the cache says exists, and every later append in that
// month would fail.
func (s *Store) ensurePartition(ctx context.Context, tx pgx.Tx, ts int64) error {
	t := time.UnixMicro(ts).UTC()
	start := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	month := start.UnixMicro()
	s.partMu.Lock()
	known := s.parts[month] || slices.Contains(s.partTx[tx], month)
	s.partMu.Unlock()
	if known {
		return nil
	}
	end := start.AddDate(0, 1, 0)
	name := fmt.Sprintf("events_%04d_%02d", start.Year(), start.Month())
	_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF events FOR VALUES FROM (%d) TO (%d)`,
		pgx.Identifier{name}.Sanitize(), month, end.UnixMicro()))
	if err != nil {
		return fmt.Errorf("postgres: create partition %s: %w", name, err)
	}
	s.partMu.Lock()
	if s.partTx == nil {
		s.partTx = map[pgx.Tx][]int64{}
	}
	s.partTx[tx] = append(s.partTx[tx], month)
	s.partMu.Unlock()
	return nil
}

// partitionsSettled ends tx's part in the partition cache: the months whose
// partition it created are known from now on if it committed, and forgotten
// if not (when a commit's outcome is unknown, the next append in the month
// creates the partition again, if it does not exist).
func (s *Store) partitionsSettled(tx pgx.Tx, committed bool) {
	s.partMu.Lock()
	defer s.partMu.Unlock()
	if committed {
		if s.parts == nil {
			s.parts = map[int64]bool{}
		}
		for _, m := range s.partTx[tx] {
			s.parts[m] = true
		}
	}
	delete(s.partTx, tx)
}

// isNoRows reports whether err is pgx's "no rows".
func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
