// Package sqlite is the embedded store: one SQLite database file in WAL mode
// with synchronous=FULL, one writer connection owned by the ledger's
// sequencer, a separate read pool, and WAL checkpoints run off the commit path.
//
// It implements store.Store and passes storetest.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/custos-audit/custos/internal/store"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// FileName is the database file inside the data folder.
const FileName = "custos.db"

// Options tune the store. Zero fields take the defaults.
type Options struct {
	ReadConns          int           // read pool size (default 4)
	CacheKiB           int           // page cache per connection (default 64 MiB for the writer)
	CheckpointInterval time.Duration // WAL checkpoint period (default 1 s)
	ReadOnly           bool          // open an existing store without writing to it (verify)
	PageSize           int           // page size of a new database (default 1024; see pageSize)
	Logger             *slog.Logger
}

// Store is the SQLite store.
type Store struct {
	w, r, ckpt *sql.DB
	path       string
	log        *slog.Logger

	stop chan struct{}
	wg   sync.WaitGroup

	ins map[string]insert // prepared INSERTs on the writer, by table
}

var _ store.Store = (*Store)(nil)

func dsn(path string, pragmas ...string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	// Statement journals (kept so a failing multi-row INSERT can be undone
	// inside its transaction) stay in memory: they never need to survive a
	// crash, since the whole transaction rolls back then. On disk they were
	// about half of all writes.
	q.Add("_pragma", "temp_store(MEMORY)")
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the database in dir, applies pending
// migrations after checking the checksums of applied ones, and starts the WAL
// checkpointer.
func Open(ctx context.Context, dir string, opt Options) (*Store, error) {
	if opt.ReadConns <= 0 {
		opt.ReadConns = 4
	}
	if opt.CacheKiB <= 0 {
		opt.CacheKiB = 1 << 20
	}
	if opt.CheckpointInterval <= 0 {
		opt.CheckpointInterval = time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create data folder: %w", err)
	}
	path := filepath.Join(dir, FileName)
	s := &Store{path: path, log: opt.Logger, stop: make(chan struct{})}
	if opt.ReadOnly {
		return s, s.openReadOnly(ctx, opt)
	}
	var err error
	// The writer: one connection, immediate transactions, automatic WAL
	// checkpoints off (the checkpointer runs them beside the commit path).
	s.w, err = sql.Open("sqlite", dsn(path, fmt.Sprintf("cache_size(-%d)", opt.CacheKiB), "wal_autocheckpoint(0)")+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	if err := s.initFile(ctx, opt.PageSize); err != nil {
		s.w.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.w.Close()
		return nil, err
	}
	if err := s.prepareInserts(ctx); err != nil {
		s.w.Close()
		return nil, err
	}
	s.r, err = sql.Open("sqlite", dsn(path, "query_only(1)", "cache_size(-16384)", "mmap_size(1099511627776)"))
	if err == nil {
		s.r.SetMaxOpenConns(opt.ReadConns)
		s.r.SetMaxIdleConns(opt.ReadConns)
		s.ckpt, err = sql.Open("sqlite", dsn(path))
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	s.ckpt.SetMaxOpenConns(1)
	s.wg.Add(1)
	go s.checkpointer(opt.CheckpointInterval)
	return s, nil
}

// pageSize is the default page size of a new database. Each commit writes
// every page it dirtied to the WAL in full, and inserts into the randomly
// keyed secondary indexes dirty about one page per row per index; small pages
// cut those bytes. Measured with custos bench (see README): 1 KiB pages
// sustain more ingest than the 4 KiB default once indexes outgrow a commit.
const pageSize = 1024

// initFile sets the page size of a new database, which must happen before
// it switches to WAL, then switches it.
func (s *Store) initFile(ctx context.Context, size int) error {
	if size == 0 {
		size = pageSize
	}
	if _, err := s.w.ExecContext(ctx, fmt.Sprintf("PRAGMA page_size = %d", size)); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil || mode != "wal" {
		return fmt.Errorf("sqlite: %s: cannot switch to WAL (journal_mode %q): %v", s.path, mode, err)
	}
	return nil
}

// openReadOnly opens an existing database for reading only: no migration, no
// checkpointer; its schema must match this release.
func (s *Store) openReadOnly(ctx context.Context, opt Options) error {
	if _, err := os.Stat(s.path); err != nil {
		return fmt.Errorf("sqlite: no Custos store at %s: %w", s.path, err)
	}
	close(s.stop)
	var err error
	s.r, err = sql.Open("sqlite", dsn(s.path, "query_only(1)", "cache_size(-65536)", "mmap_size(1099511627776)"))
	if err != nil {
		return fmt.Errorf("sqlite: open: %w", err)
	}
	s.r.SetMaxOpenConns(opt.ReadConns)
	s.w = s.r
	applied, err := s.applied(ctx)
	if err == nil {
		var ms []store.Migration
		if ms, err = store.LoadMigrations(migrationFS, "migrations"); err == nil {
			var todo []store.Migration
			todo, err = store.Pending(ms, applied)
			if err == nil && len(todo) > 0 {
				err = fmt.Errorf("sqlite: %s needs migration %s; start custos serve once to apply it", s.path, todo[0].Name)
			}
		}
	}
	if err != nil {
		s.r.Close()
	}
	return err
}

func (s *Store) applied(ctx context.Context) (map[int]string, error) {
	rows, err := s.w.QueryContext(ctx, `SELECT version, checksum FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read migrations: %w", err)
	}
	defer rows.Close()
	applied := map[int]string{}
	for rows.Next() {
		var v int
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return nil, fmt.Errorf("sqlite: read migrations: %w", err)
		}
		applied[v] = sum
	}
	return applied, rows.Err()
}

func (s *Store) migrate(ctx context.Context) error {
	ms, err := store.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	applied, err := s.applied(ctx)
	if err != nil {
		return err
	}
	todo, err := store.Pending(ms, applied)
	if err != nil {
		return err
	}
	for _, m := range todo {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", m.Name, err)
		}
		_, err = tx.ExecContext(ctx, m.SQL)
		if err == nil {
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (?, ?, ?, ?)`,
				m.Version, m.Name, m.Checksum, time.Now().UnixMicro())
		}
		if err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
		if err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", m.Name, err)
		}
	}
	return nil
}

// checkpointer copies WAL frames into the database file in the background
// (PASSIVE: it never blocks the writer or readers), so commits never pay for
// a checkpoint.
func (s *Store) checkpointer(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if _, err := s.ckpt.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
				s.log.Warn("sqlite wal checkpoint", "err", err)
			}
		}
	}
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.r.PingContext(ctx)
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close stops the checkpointer, runs a final checkpoint and closes the pools.
func (s *Store) Close() error {
	if s.w == s.r { // read-only
		return s.r.Close()
	}
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	s.wg.Wait()
	var errs []error
	for _, st := range s.ins {
		errs = append(errs, st.full.Close(), st.one.Close())
	}
	if s.ckpt != nil {
		s.ckpt.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
		errs = append(errs, s.ckpt.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}
