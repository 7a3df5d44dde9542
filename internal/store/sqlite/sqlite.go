// Package sqlite is the embedded store: the ledger in one SQLite file (WAL,
// synchronous=FULL, one writer connection owned by the ledger's sequencer),
// its secondary indexes in a second file maintained in parallel by a
// connection of their own, a read pool that sees both, and WAL checkpoints run
// off the commit path.
//
// It implements store.Store and passes storetest.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
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

//go:embed index_migrations/*.sql
var indexMigrationFS embed.FS

// FileName is the ledger's database file inside the data folder.
const FileName = "custos.db"

// Options tune the store. Zero fields take the defaults.
type Options struct {
	ReadConns          int           // read pool size (default 4): Ping, point reads, proofs, the ledger's and the index's reads
	SearchConns        int           // search pool size (default 4): Events only, so searches never hold the read pool
	CacheKiB           int           // writer page cache (default 256 MiB)
	CheckpointInterval time.Duration // WAL checkpoint period (default 1 s)
	ReadOnly           bool          // open an existing store without writing to it (verify)
	MustExist          bool          // refuse to create a new store (admin-key)
	Logger             *slog.Logger
}

// Store is the SQLite store.
type Store struct {
	w, r, ckpt  *sql.DB
	search      *sql.DB    // Events only: searches never wait for, or hold, the connections of r
	readStmts   *stmtCache // prepared statements of r
	searchStmts *stmtCache // prepared statements of search (readStmts when search is r)
	ix          *indexer
	path        string
	log         *slog.Logger
	ins         map[string]insert // prepared INSERTs on the writer, by table
	lock        *os.File          // the data folder's lock; nil when read-only
	readOnly    bool
	noIndex     bool            // read-only without an index file: searches scan the ledger
	migrations  fs.FS           // the ledger's migrations as this store has them
	lacking     map[string]bool // optional migrations a read-only open found missing

	stop chan struct{}
	wg   sync.WaitGroup
}

var _ store.Store = (*Store)(nil)

func dsn(path string, pragmas ...string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	// Statement journals (kept so a failing multi-row INSERT can be undone
	// inside its transaction) stay in memory: they never need to survive a
	// crash, since the whole transaction rolls back then.
	q.Add("_pragma", "temp_store(MEMORY)")
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the store in dir, applies pending
// migrations after checking the checksums of applied ones, brings the index
// file up to date with the ledger, and starts the WAL checkpointer.
func Open(ctx context.Context, dir string, opt Options) (*Store, error) {
	if opt.ReadConns <= 0 {
		opt.ReadConns = 4
	}
	if opt.SearchConns <= 0 {
		opt.SearchConns = 4
	}
	if opt.CacheKiB <= 0 {
		opt.CacheKiB = 256 << 10
	}
	if opt.CheckpointInterval <= 0 {
		opt.CheckpointInterval = time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	path := filepath.Join(dir, FileName)
	s := &Store{path: path, log: opt.Logger, stop: make(chan struct{}), readOnly: opt.ReadOnly, migrations: migrationFS}
	if opt.ReadOnly {
		if err := s.openReadOnly(ctx, opt); err != nil {
			return nil, err
		}
		return s, nil
	}
	if opt.MustExist {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("sqlite: no Custos store at %s: %w", path, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create data folder: %w", err)
	}
	var err error
	if s.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	if err := s.open(ctx, dir, opt); err != nil {
		s.closeAll()
		return nil, err
	}
	s.wg.Add(1)
	go s.checkpointer(opt.CheckpointInterval)
	return s, nil
}

func (s *Store) open(ctx context.Context, dir string, opt Options) error {
	var err error
	// The writer: one connection, immediate transactions, automatic WAL
	// checkpoints off (the checkpointer runs them beside the commit path).
	s.w, err = sql.Open("sqlite", dsn(s.path, fmt.Sprintf("cache_size(-%d)", opt.CacheKiB), "wal_autocheckpoint(0)")+"&_txlock=immediate")
	if err != nil {
		return fmt.Errorf("sqlite: open: %w", err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetConnMaxLifetime(0)
	if err := initFile(ctx, s.w, s.path, pageSize); err != nil {
		return err
	}
	if err := migrate(ctx, s.w, s.path, migrationFS, "migrations"); err != nil {
		return err
	}
	if s.ins, err = prepareInserts(ctx, s.w, []insertSpec{
		{"events", store.EventColumns, store.EventColumnCount, "OR ROLLBACK"}, {"tree_nodes", "pos, hash", 2, "OR ROLLBACK"},
	}); err != nil {
		return err
	}
	ixPath := filepath.Join(dir, IndexFileName)
	if s.ix, err = openIndexer(ctx, ixPath, s.log, s.eventRange); err != nil {
		return err
	}
	// Readers map the files (mmap_size) and see the index file as "ix".
	// Searches, which may scan, have a pool of their own: Ping (readiness),
	// point reads, proofs and the ledger's and the index's reads never wait
	// behind them.
	readDSN := dsn(s.path, "query_only(1)", "cache_size(-16384)", "mmap_size(1099511627776)")
	s.r = sql.OpenDB(newAttachConnector(readDSN, ixPath))
	s.r.SetMaxOpenConns(opt.ReadConns)
	s.r.SetMaxIdleConns(opt.ReadConns)
	s.search = sql.OpenDB(newAttachConnector(readDSN, ixPath))
	s.search.SetMaxOpenConns(opt.SearchConns)
	s.search.SetMaxIdleConns(opt.SearchConns)
	s.readStmts, s.searchStmts = newStmtCache(s.r), newStmtCache(s.search)
	if s.ckpt, err = sql.Open("sqlite", dsn(s.path)); err != nil {
		return fmt.Errorf("sqlite: open: %w", err)
	}
	s.ckpt.SetMaxOpenConns(1)
	return s.catchUpIndex(ctx)
}

// pageSize is the page size of a new database file. Each commit writes every
// page it dirtied to the WAL in full, and randomly keyed index inserts dirty
// about one page per row per index; small pages cut those bytes. Measured
// with custos bench (README): 1 KiB beat 2 KiB and the 4 KiB default.
const pageSize = 1024

// initFile sets the page size of a new database, which must happen before
// it switches to WAL, then switches it, and makes the files readable by the
// owner only: they hold PHI.
func initFile(ctx context.Context, db *sql.DB, path string, size int) error {
	if _, err := db.ExecContext(ctx, fmt.Sprintf("PRAGMA page_size = %d", size)); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil || mode != "wal" {
		return fmt.Errorf("sqlite: %s: cannot switch to WAL (journal_mode %q): %v", path, mode, err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(f, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sqlite: %w", err)
		}
	}
	return nil
}

// openReadOnly opens an existing ledger for reading only (verify): no
// migration, no index, no checkpointer; its schema must match this release.
func (s *Store) openReadOnly(ctx context.Context, opt Options) error {
	if _, err := os.Stat(s.path); err != nil {
		return fmt.Errorf("sqlite: no Custos store at %s: %w", s.path, err)
	}
	close(s.stop)
	var err error
	roDSN := dsn(s.path, "query_only(1)", "cache_size(-65536)", "mmap_size(1099511627776)")
	// Searches (verify's search check) read the index file when there is
	// one, as the server does; without it they scan the ledger.
	ixPath := filepath.Join(filepath.Dir(s.path), IndexFileName)
	if _, serr := os.Stat(ixPath); serr == nil {
		s.r = sql.OpenDB(newAttachConnector(roDSN, ixPath))
	} else if s.r, err = sql.Open("sqlite", roDSN); err != nil {
		return fmt.Errorf("sqlite: open: %w", err)
	} else {
		s.noIndex = true
	}
	s.r.SetMaxOpenConns(opt.ReadConns)
	s.r.SetMaxIdleConns(opt.ReadConns) // the audit's readers would otherwise open (and ATTACH) a connection per chunk
	s.w, s.search = s.r, s.r
	s.readStmts = newStmtCache(s.r)
	s.searchStmts = s.readStmts
	applied, err := appliedMigrations(ctx, s.r)
	if err == nil {
		var ms []store.Migration
		if ms, err = store.LoadMigrations(migrationFS, "migrations"); err == nil {
			var todo []store.Migration
			todo, err = store.Pending(ms, applied)
			if err == nil && len(todo) > 0 {
				if lacking, ok := store.ReadableWithout(todo); ok {
					s.lacking, s.migrations = lacking, store.Without(migrationFS, "migrations", lacking)
				} else {
					err = fmt.Errorf("sqlite: %s needs migration %s; start custos serve once to apply it", s.path, todo[0].Name)
				}
			}
		}
	}
	if err != nil {
		s.r.Close()
	}
	return err
}

func appliedMigrations(ctx context.Context, db *sql.DB) (map[int]string, error) {
	rows, err := db.QueryContext(ctx, store.AppliedQuery)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read migrations: %w", err)
	}
	defer rows.Close()
	applied, err := store.Applied(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read migrations: %w", err)
	}
	return applied, nil
}

// migrate applies the pending migrations of dir in fsys to db, after
// checking that the applied ones are unchanged.
func migrate(ctx context.Context, db *sql.DB, path string, fsys fs.FS, dir string) error {
	ms, err := store.LoadMigrations(fsys, dir)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	applied, err := appliedMigrations(ctx, db)
	if err != nil {
		return err
	}
	todo, err := store.Pending(ms, applied)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, m := range todo {
		tx, err := db.BeginTx(ctx, nil)
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
			return fmt.Errorf("sqlite: migrate %s %s: %w", path, m.Name, err)
		}
	}
	return nil
}

// checkpointer copies WAL frames into the database files in the background
// (PASSIVE: it never blocks the writers or readers), so commits never pay for
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
			if _, err := s.ix.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
				s.log.Warn("sqlite index wal checkpoint", "err", err)
			}
		}
	}
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.r.PingContext(ctx)
}

// Path is the ledger's database file.
func (s *Store) Path() string { return s.path }

// Close stops the checkpointer, runs a final checkpoint and closes the pools.
func (s *Store) Close() error {
	if s.readOnly {
		s.readStmts.close()
		return s.r.Close()
	}
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	s.wg.Wait()
	if s.ckpt != nil {
		s.ckpt.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	}
	return s.closeAll()
}

func (s *Store) closeAll() error {
	var errs []error
	for _, st := range s.ins {
		errs = append(errs, st.full.Close(), st.one.Close())
	}
	if s.ix != nil {
		errs = append(errs, s.ix.close())
	}
	s.readStmts.close()
	s.searchStmts.close()
	for _, db := range []*sql.DB{s.ckpt, s.search, s.r, s.w} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close()) // releases the flock
	}
	return errors.Join(errs...)
}
