package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/custos-audit/custos"
	"modernc.org/sqlite"
)

// IndexFileName is the file of the secondary indexes inside the data folder.
const IndexFileName = "custos-index.db"

// keyTable is one secondary index kept in the index file as a key table
// (columns…, ts, idx).
type keyTable struct {
	name, cols string
	ncol       int
	key        func(e *custos.Event) []any // nil when the event has no such key
}

var keyTables = []keyTable{
	{"ix_user", "user_id, ts, idx", 3, func(e *custos.Event) []any { return []any{e.User.ID} }},
	{"ix_resource", "resource_type, resource_id, ts, idx", 4, func(e *custos.Event) []any {
		if e.ResourceID == "" {
			return nil
		}
		return []any{e.ResourceType, e.ResourceID}
	}},
	{"ix_patient", "patient_id, ts, idx", 3, func(e *custos.Event) []any {
		if e.PatientID == "" {
			return nil
		}
		return []any{e.PatientID}
	}},
	{"ix_ip", "ip_address, ts, idx", 3, func(e *custos.Event) []any {
		if e.IPAddress == "" {
			return nil
		}
		return []any{e.IPAddress}
	}},
}

// keyTableFor names the key table that indexes exactly these columns.
func keyTableFor(cols ...string) string {
	switch len(cols) {
	case 1:
		switch cols[0] {
		case "user_id":
			return "ix.ix_user"
		case "patient_id":
			return "ix.ix_patient"
		case "ip_address":
			return "ix.ix_ip"
		}
	case 2:
		if cols[0] == "resource_type" && cols[1] == "resource_id" {
			return "ix.ix_resource"
		}
	}
	return ""
}

// maxIndexLag bounds how many committed events may wait for the index; an
// append waits beyond it. Queries scan that tail by primary key.
const maxIndexLag = 32 << 10

// indexer maintains the key tables on a connection of its own, behind the
// ledger: committed batches queue up, and each index transaction takes all
// that is queued, so index maintenance (random B-tree inserts, the bulk of an
// append's cost) overlaps the ledger's commits and batches up under load.
// ix_state.upto says which events are indexed; queries read the rest of the
// ledger directly. An entry whose event never committed is harmless: queries
// join back to the event and re-check the key.
type indexer struct {
	db  *sql.DB
	ins map[string]insert
	// The reads and writes of ix_state, prepared once: under a load of
	// small appends (a READ record per search) an index transaction runs
	// for every few events.
	getUpto, setUpto *sql.Stmt
	mu               sync.Mutex // one index transaction at a time

	qmu    sync.Mutex
	cond   *sync.Cond
	queue  []custos.Event // committed, not yet indexed, contiguous
	closed bool
	done   chan struct{}
	stop   chan struct{} // closed by close: ends the retry pause
	log    *slog.Logger
}

// Bounds on the indexer's waits: an append waits for room in the queue at
// most queueWait (then the queue is dropped: the index is derived, and its
// next transaction re-reads the gap from the ledger), and one index
// transaction runs at most addTimeout.
const (
	queueWait  = 10 * time.Second
	addTimeout = time.Minute
)

// enqueue hands committed events to the index, waiting while the index lags
// more than maxIndexLag events behind.
func (x *indexer) enqueue(evs []custos.Event) {
	x.qmu.Lock()
	defer x.qmu.Unlock()
	if len(x.queue) >= maxIndexLag && !x.closed {
		deadline := time.Now().Add(queueWait)
		wake := time.AfterFunc(queueWait, func() { x.qmu.Lock(); x.cond.Broadcast(); x.qmu.Unlock() })
		defer wake.Stop()
		for len(x.queue) >= maxIndexLag && !x.closed {
			if !time.Now().Before(deadline) {
				// The index is stuck: drop what waits (searches read the
				// events it lacks from the ledger; the next index
				// transaction re-reads the gap) rather than stall appends.
				x.log.Warn("the secondary index fell behind for too long; its queue is dropped and it catches up from the ledger",
					"queued", len(x.queue))
				x.queue = nil
				break
			}
			x.cond.Wait()
		}
	}
	x.queue = append(x.queue, evs...)
	x.cond.Broadcast()
}

// run indexes queued events until close, then what is left.
func (x *indexer) run(log *slog.Logger, read func(from, to uint64) ([]custos.Event, error)) {
	defer close(x.done)
	for {
		x.qmu.Lock()
		for len(x.queue) == 0 && !x.closed {
			x.cond.Wait()
		}
		batch := x.queue
		x.queue = nil
		closed := x.closed
		x.cond.Broadcast()
		x.qmu.Unlock()
		if len(batch) > 0 {
			// On failure the next transaction finds upto behind its first
			// event and re-reads the gap from the ledger.
			ctx, cancel := context.WithTimeout(context.Background(), addTimeout)
			err := x.add(ctx, batch, read)
			cancel()
			if err != nil {
				log.Warn("secondary index commit failed; the next one catches up from the ledger", "err", err)
				select { // a pause before the retry, cut short by close
				case <-time.After(100 * time.Millisecond):
				case <-x.stop:
				}
			}
		}
		if closed && len(batch) == 0 {
			return
		}
	}
}

// openIndexer opens the index file and starts indexing queued events;
// read(from, to) returns committed events from the ledger.
func openIndexer(ctx context.Context, path string, log *slog.Logger, read func(from, to uint64) ([]custos.Event, error)) (*indexer, error) {
	// synchronous=NORMAL: the index is rebuilt from the ledger after a power
	// loss, so it needs no fsync of its own per commit.
	db, err := sql.Open("sqlite", dsn(path, "synchronous(NORMAL)", "cache_size(-262144)", "wal_autocheckpoint(0)")+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open index: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	x := &indexer{db: db, done: make(chan struct{}), stop: make(chan struct{}), log: log}
	x.cond = sync.NewCond(&x.qmu)
	err = initFile(ctx, db, path, pageSize)
	if err == nil {
		err = migrate(ctx, db, path, indexMigrationFS, "index_migrations")
	}
	if err == nil {
		var specs []insertSpec
		for _, t := range keyTables {
			specs = append(specs, insertSpec{t.name, t.cols, t.ncol, "OR IGNORE"})
		}
		x.ins, err = prepareInserts(ctx, db, specs)
	}
	if err == nil {
		x.getUpto, err = db.PrepareContext(ctx, `SELECT upto FROM ix_state`)
	}
	if err == nil {
		x.setUpto, err = db.PrepareContext(ctx, `UPDATE ix_state SET upto = ?`)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	go x.run(log, read)
	return x, nil
}

// add indexes events (contiguous, ascending) in one transaction, first
// indexing from the ledger any committed events it missed (after a failed
// index commit or a crash): read(from, to) returns them.
func (x *indexer) add(ctx context.Context, evs []custos.Event, read func(from, to uint64) ([]custos.Event, error)) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	tx, err := x.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: index: %w", err)
	}
	defer tx.Rollback()
	var upto int64
	if err := tx.StmtContext(ctx, x.getUpto).QueryRowContext(ctx).Scan(&upto); err != nil {
		return fmt.Errorf("sqlite: index state: %w", err)
	}
	if last := evs[len(evs)-1].Index; uint64(upto) > last {
		return nil // already indexed (a catch-up got there first)
	}
	if first := evs[0].Index; uint64(upto) < first {
		missed, err := read(uint64(upto), first)
		if err != nil {
			return err
		}
		evs = append(missed, evs...)
	}
	for _, t := range keyTables {
		var rows [][]any
		for i := range evs {
			if k := t.key(&evs[i]); k != nil {
				rows = append(rows, append(k, evs[i].Timestamp.UnixMicro(), int64(evs[i].Index)))
			}
		}
		err := insertRows(ctx, tx, x.ins[t.name], t.name, len(rows), func(i int, args []any) []any {
			return append(args, rows[i]...)
		})
		if err != nil {
			return err
		}
	}
	if _, err := tx.StmtContext(ctx, x.setUpto).ExecContext(ctx, int64(evs[len(evs)-1].Index)+1); err != nil {
		return fmt.Errorf("sqlite: index state: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: index commit: %w", err)
	}
	return nil
}

// upto reports how many events are indexed.
func (x *indexer) upto(ctx context.Context) (uint64, error) {
	var upto int64
	err := x.db.QueryRowContext(ctx, `SELECT upto FROM ix_state`).Scan(&upto)
	return uint64(upto), err
}

// close indexes what is queued, then closes the index file.
func (x *indexer) close() error {
	x.qmu.Lock()
	if !x.closed {
		close(x.stop)
	}
	x.closed = true
	x.cond.Broadcast()
	x.qmu.Unlock()
	<-x.done
	var errs []error
	for _, st := range x.ins {
		errs = append(errs, st.full.Close(), st.one.Close())
	}
	errs = append(errs, x.getUpto.Close(), x.setUpto.Close())
	x.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	errs = append(errs, x.db.Close())
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// attachConnector opens read connections that see the index file as "ix".
type attachConnector struct {
	drv *sqlite.Driver
	dsn string
}

func newAttachConnector(dsn, indexPath string) attachConnector {
	drv := &sqlite.Driver{}
	drv.RegisterConnectionHook(func(c sqlite.ExecQuerierContext, _ string) error {
		_, err := c.ExecContext(context.Background(), `ATTACH DATABASE ? AS ix`,
			[]driver.NamedValue{{Ordinal: 1, Value: indexPath}})
		return err
	})
	return attachConnector{drv: drv, dsn: dsn}
}

func (c attachConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c attachConnector) Driver() driver.Driver                        { return c.drv }
