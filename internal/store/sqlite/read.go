package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
)

// scanChunk is how many rows one scan query reads; scans hold one chunk.
const scanChunk = 5000

// Event returns the event at index, or custos.ErrNotFound.
func (s *Store) Event(ctx context.Context, index uint64) (custos.Event, error) {
	row := s.readStmts.queryRow(ctx, `SELECT `+store.EventColumns+` FROM events WHERE idx = ?`, int64(index))
	e, err := store.ScanEvent(row)
	if errors.Is(err, sql.ErrNoRows) {
		return e, custos.ErrNotFound
	}
	if err != nil {
		return e, fmt.Errorf("sqlite: event: %w", err)
	}
	return e, nil
}

// Events answers a filtered, newest-first, keyset-paged query on the search
// pool. A query that an index key drives reads, in one snapshot, the events
// the index has not reached yet (at most maxIndexLag, by primary key), then
// the indexed ones. When ctx ends, the running statement is interrupted.
func (s *Store) Events(ctx context.Context, q store.Query) ([]custos.Event, error) {
	tail, indexed := eventQueries(q)
	if indexed == nil || s.noIndex {
		return s.queryEvents(ctx, s.search, newEventSelect(tail, "", nil))
	}
	// The tail walks the primary key from upto, whatever else the filter
	// offers: NOT INDEXED keeps SQLite from the time index, which for a
	// time-bounded search would read every event of the range (or, for a
	// window of one timestamp, the whole group commit that wrote it) to
	// find the few the index has not reached.
	tail.From += " NOT INDEXED"
	var upto int64
	tailSel, indexedSel := newEventSelect(tail, "e.idx >= ?", &upto), newEventSelect(*indexed, "k.idx < ?", &upto)
	// The statements are prepared (or found prepared) before the
	// transaction holds a connection of the pool: preparing inside it could
	// wait for a connection that only the waiting searches hold.
	stUpto := s.searchStmts.get(ctx, uptoQuery)
	tailSel.st, indexedSel.st = s.searchStmts.get(ctx, tailSel.text), s.searchStmts.get(ctx, indexedSel.text)
	tx, err := s.search.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlite: events: %w", err)
	}
	defer tx.Rollback()
	st, err := inTx(ctx, tx, stUpto, uptoQuery)
	if err == nil {
		err = st.QueryRowContext(ctx).Scan(&upto)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: events: %w", err)
	}
	out, err := s.queryEvents(ctx, tx, tailSel)
	if err != nil || len(out) >= tail.Limit {
		return out, err
	}
	// The indexed part asks for a whole page, so that its SQL text (and
	// prepared statement) does not depend on how many events the tail
	// found; what exceeds the page is dropped.
	older, err := s.queryEvents(ctx, tx, indexedSel)
	if n := tail.Limit - len(out); len(older) > n {
		older = older[:n]
	}
	return append(out, older...), err
}

const uptoQuery = `SELECT upto FROM ix.ix_state`

// eventQueries builds q for the events table alone and, when an index key
// drives it, for the key table (nil otherwise). The events-only query walks
// the primary key newest first: as the tail of a keyed query it then reads
// only the events the index has not reached.
func eventQueries(q store.Query) (tail store.SQL, indexed *store.SQL) {
	plain := store.Dialect{Placeholder: func(int) string { return "?" }}
	keyed := plain
	keyed.KeyTable = keyTableFor
	b := store.EventSQL(q, keyed)
	if b.From == "events e" {
		return b, nil
	}
	tail = store.EventSQL(q, plain)
	tail.OrderBy = "e.idx DESC" // the same order: ts never decreases with idx
	return tail, &b
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// eventSelect is one SELECT of events: its text, its arguments (a pointer
// argument is read when the query runs), and its prepared statement, if any.
type eventSelect struct {
	text string
	args []any
	st   *sql.Stmt
}

// newEventSelect builds b, with one more condition when cond is not empty.
func newEventSelect(b store.SQL, cond string, arg *int64) eventSelect {
	if cond != "" {
		b.Where += " AND " + cond
		b.Args = append(b.Args, arg)
	}
	return eventSelect{text: `SELECT ` + store.QualifiedEventColumns + ` FROM ` + b.From + ` WHERE ` + b.Where +
		` ORDER BY ` + b.OrderBy + fmt.Sprintf(` LIMIT %d`, b.Limit), args: b.Args}
}

// queryEvents runs sel on db (the search pool or a transaction on it).
func (s *Store) queryEvents(ctx context.Context, db querier, sel eventSelect) ([]custos.Event, error) {
	args := make([]any, len(sel.args))
	for i, a := range sel.args {
		if p, ok := a.(*int64); ok {
			a = *p
		}
		args[i] = a
	}
	var rows *sql.Rows
	var err error
	switch tx, isTx := db.(*sql.Tx); {
	case isTx:
		var st *sql.Stmt
		if st, err = inTx(ctx, tx, sel.st, sel.text); err == nil {
			rows, err = st.QueryContext(ctx, args...)
		}
	case sel.st == nil:
		if sel.st = s.searchStmts.get(ctx, sel.text); sel.st == nil {
			rows, err = db.QueryContext(ctx, sel.text, args...)
			break
		}
		fallthrough
	default:
		rows, err = sel.st.QueryContext(ctx, args...)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: events: %w", err)
	}
	defer rows.Close()
	out, err := store.Collect(rows, store.ScanEvent)
	if err != nil {
		return nil, fmt.Errorf("sqlite: events: %w", err)
	}
	return out, nil
}

// Nodes returns the hashes at the given positions, in order.
func (s *Store) Nodes(ctx context.Context, pos []uint64) ([][]byte, error) {
	if len(pos) == 0 {
		return nil, nil
	}
	args := make([]any, len(pos))
	for i, p := range pos {
		args[i] = int64(p)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+store.NodeColumns+` FROM tree_nodes WHERE pos IN (`+
		strings.TrimSuffix(strings.Repeat("?,", len(pos)), ",")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: nodes: %w", err)
	}
	defer rows.Close()
	nodes, err := store.Collect(rows, store.ScanNode)
	if err == nil {
		var out [][]byte
		if out, err = store.OrderNodes(pos, nodes); err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("sqlite: nodes: %w", err)
}

// LatestCheckpoint returns the newest checkpoint, or custos.ErrNotFound.
func (s *Store) LatestCheckpoint(ctx context.Context) (*store.Checkpoint, error) {
	cp, err := store.ScanCheckpoint(s.r.QueryRowContext(ctx,
		`SELECT `+store.CheckpointColumns+` FROM checkpoints ORDER BY size DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, custos.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: latest checkpoint: %w", err)
	}
	return &cp, nil
}

// StateRecords returns the state records with index > after, in order.
func (s *Store) StateRecords(ctx context.Context, after int64) ([]leaf.StateRecord, error) {
	return collect(ctx, s, "state records", fmt.Sprintf(store.StateRecordsQuery, "?"), store.ScanStateRecord, after)
}

// StateRows returns the state table.
func (s *Store) StateRows(ctx context.Context) ([]store.StateRow, error) {
	return collect(ctx, s, "state", store.StateRowsQuery, store.ScanStateRow)
}

// LegacyKeys returns the rows of the first release's api_keys table.
func (s *Store) LegacyKeys(ctx context.Context) ([]store.Key, error) {
	return collect(ctx, s, "legacy keys", store.LegacyKeysQuery, store.ScanKey)
}

// RecordCount counts the stored records of every kind and the size the
// newest index implies, in one snapshot.
func (s *Store) RecordCount(ctx context.Context) (count, size uint64, err error) {
	var n, last int64
	if err := s.r.QueryRowContext(ctx, store.RecordCountQuery).Scan(&n, &last); err != nil {
		return 0, 0, fmt.Errorf("sqlite: count records: %w", err)
	}
	return uint64(n), uint64(last + 1), nil
}

// collect runs a query on the read pool and scans every row.
func collect[T any](ctx context.Context, s *Store, what, query string, scan func(store.Row) (T, error), args ...any) ([]T, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	defer rows.Close()
	out, err := store.Collect(rows, scan)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return out, nil
}

// PatientDays counts each user's distinct patients per UTC day in [from, to).
func (s *Store) PatientDays(ctx context.Context, from, to time.Time) ([]store.PatientDay, error) {
	q := strings.NewReplacer("$1", "?1", "$2", "?2").Replace(store.PatientDaysQuery)
	return collect(ctx, s, "patient days", q, store.ScanPatientDay, from.UnixMicro(), to.UnixMicro())
}

// Delivery returns the index of the first event of the request its
// submitter sent with key, or custos.ErrNotFound.
func (s *Store) Delivery(ctx context.Context, submittedBy, key string) (uint64, error) {
	q := strings.NewReplacer("$1", "?1", "$2", "?2").Replace(store.DeliveryQuery)
	return store.One(collect(ctx, s, "delivery", q, store.ScanIndex, submittedBy, key))
}

// DeliveryRows returns the deliveries table in index order.
func (s *Store) DeliveryRows(ctx context.Context) ([]store.DeliveryRow, error) {
	return collect(ctx, s, "deliveries", store.DeliveryRowsQuery, store.ScanDeliveryRow)
}

// StateRecord returns the state record at index, or custos.ErrNotFound.
func (s *Store) StateRecord(ctx context.Context, index uint64) (leaf.StateRecord, error) {
	return store.One(collect(ctx, s, "state record", fmt.Sprintf(store.StateRecordQuery, "?"), store.ScanStateRecord, int64(index)))
}
