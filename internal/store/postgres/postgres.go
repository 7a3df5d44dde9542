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
	"sync"
	"time"

	"github.com/custos-audit/custos/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the advisory lock key that serialises migrations between
// nodes starting together ("custos migrate").
const migrationLock = 0x637573746f73_01

// Options tune the store. Zero fields take the defaults.
type Options struct {
	MaxConns int32 // pool size (default 8)
	ReadOnly bool  // do not migrate (verify); the schema must be current
	Logger   *slog.Logger
}

// Store is the PostgreSQL store.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	partMu sync.Mutex
	parts  map[int64]bool // months (µs of their first instant) whose partition exists
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (postgres://…), checks the checksums
// of applied migrations and applies pending ones (unless ReadOnly).
func Open(ctx context.Context, url string, opt Options) (*Store, error) {
	if opt.MaxConns <= 0 {
		opt.MaxConns = 8
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
	s := &Store{pool: pool, log: opt.Logger, parts: map[int64]bool{}}
	if err := s.migrate(ctx, opt.ReadOnly); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
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
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
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
		if len(todo) > 0 {
			return fmt.Errorf("postgres: the database needs migration %s; start custos serve once to apply it", todo[0].Name)
		}
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
	return nil
}

// ensurePartition creates the monthly partition holding ts (µs) if it does
// not exist yet, inside tx.
func (s *Store) ensurePartition(ctx context.Context, tx pgx.Tx, ts int64) error {
	t := time.UnixMicro(ts).UTC()
	start := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	s.partMu.Lock()
	known := s.parts[start.UnixMicro()]
	s.partMu.Unlock()
	if known {
		return nil
	}
	end := start.AddDate(0, 1, 0)
	name := fmt.Sprintf("events_%04d_%02d", start.Year(), start.Month())
	_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF events FOR VALUES FROM (%d) TO (%d)`,
		pgx.Identifier{name}.Sanitize(), start.UnixMicro(), end.UnixMicro()))
	if err != nil {
		return fmt.Errorf("postgres: create partition %s: %w", name, err)
	}
	s.partMu.Lock()
	s.parts[start.UnixMicro()] = true
	s.partMu.Unlock()
	return nil
}

// isNoRows reports whether err is pgx's "no rows".
func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
