package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
)

// Exec runs one statement inside the append transaction and returns the
// number of rows it changed.
type Exec func(ctx context.Context, sql string, args ...any) (int64, error)

// legacyTables names, per entity, the table of the first release whose rows
// a put of that entity replaces (they are adopted into the ledger once).
var legacyTables = map[string]string{"api_key": "api_keys"}

// ApplyStates writes state records and applies each to the state table, in
// order, inside the caller's transaction: the one mechanism by which every
// kind of server state (keys today; roles, users, blocks… later) is stored.
// A put replaces the entity's row; a delete removes it. ph spells the n-th
// placeholder of the store's SQL dialect.
func ApplyStates(ctx context.Context, exec Exec, ph func(int) string, states []leaf.StateRecord) error {
	insRecord := fmt.Sprintf(`INSERT INTO state_records (`+StateRecordColumns+`) VALUES (%s, %s, %s, %s, %s, %s, %s)`,
		ph(1), ph(2), ph(3), ph(4), ph(5), ph(6), ph(7))
	put := fmt.Sprintf(`INSERT INTO state (entity, id, doc, idx) VALUES (%s, %s, %s, %s)
		ON CONFLICT (entity, id) DO UPDATE SET doc = excluded.doc, idx = excluded.idx`, ph(1), ph(2), ph(3), ph(4))
	create := fmt.Sprintf(`INSERT INTO state (entity, id, doc, idx) VALUES (%s, %s, %s, %s)
		ON CONFLICT (entity, id) DO NOTHING`, ph(1), ph(2), ph(3), ph(4))
	del := fmt.Sprintf(`DELETE FROM state WHERE entity = %s AND id = %s`, ph(1), ph(2))
	for i := range states {
		r := &states[i]
		if err := leaf.ValidState(r); err != nil {
			return fmt.Errorf("state record %d: %w", r.Index, err)
		}
		var doc any
		if r.Doc != nil {
			doc = string(r.Doc)
		}
		if _, err := exec(ctx, insRecord, int64(r.Index), r.Timestamp.UnixMicro(), r.SubmittedBy, r.Entity, r.ID, string(r.Op), doc); err != nil {
			return fmt.Errorf("insert state record %d: %w", r.Index, err)
		}
		var err error
		var n int64
		switch r.Op {
		case leaf.OpCreate:
			if n, err = exec(ctx, create, r.Entity, r.ID, string(r.Doc), int64(r.Index)); err == nil && n == 0 {
				return &custos.Error{Op: "store.state", Kind: custos.Conflict,
					Detail: fmt.Sprintf("%s %s exists already", r.Entity, r.ID)}
			}
		case leaf.OpPut:
			_, err = exec(ctx, put, r.Entity, r.ID, string(r.Doc), int64(r.Index))
		default:
			_, err = exec(ctx, del, r.Entity, r.ID)
		}
		if t := legacyTables[r.Entity]; err == nil && t != "" && r.Op.Puts() {
			_, err = exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE id = %s`, t, ph(1)), r.ID)
		}
		if err != nil {
			return fmt.Errorf("apply state record %d (%s): %w", r.Index, r.Key(), err)
		}
	}
	return nil
}

// StateRecordColumns are the state_records columns ScanStateRecord reads.
const StateRecordColumns = `idx, ts, submitted_by, entity, id, op, doc`

// ScanStateRecord scans one row of StateRecordColumns.
func ScanStateRecord(r Row) (leaf.StateRecord, error) {
	var idx, ts int64
	var op string
	var doc *string
	var s leaf.StateRecord
	if err := r.Scan(&idx, &ts, &s.SubmittedBy, &s.Entity, &s.ID, &op, &doc); err != nil {
		return s, err
	}
	s.Index, s.Timestamp, s.Op = uint64(idx), time.UnixMicro(ts).UTC(), leaf.StateOp(op)
	if doc != nil {
		s.Doc = []byte(*doc)
	}
	return s, nil
}

// StateRowColumns are the state columns ScanStateRow reads.
const StateRowColumns = `entity, id, doc, idx`

// ScanStateRow scans one row of StateRowColumns.
func ScanStateRow(r Row) (StateRow, error) {
	var s StateRow
	var doc string
	var idx int64
	err := r.Scan(&s.Entity, &s.ID, &doc, &idx)
	s.Doc, s.Index = []byte(doc), uint64(idx)
	return s, err
}

// Queries both stores run as they are.
const (
	StateRecordsQuery = `SELECT ` + StateRecordColumns + ` FROM state_records WHERE idx > %s ORDER BY idx`
	StateRecordQuery  = `SELECT ` + StateRecordColumns + ` FROM state_records WHERE idx = %s`
	StateRowsQuery    = `SELECT ` + StateRowColumns + ` FROM state ORDER BY entity, id`
	// RecordCountQuery counts the records and finds the newest index in one
	// statement, so in one snapshot even while other nodes append.
	RecordCountQuery = `SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM state_records),
		coalesce(greatest_idx.m, -1) FROM (SELECT max(m) AS m FROM (SELECT max(idx) AS m FROM events UNION ALL SELECT max(idx) FROM state_records) x) greatest_idx`
	LegacyKeysQuery = `SELECT ` + KeyColumns + ` FROM api_keys ORDER BY created_at, id`
)

// ReadHead reads the head of the ledger with queryRow (the store's pool or
// transaction): the size is one more than the newest record of any kind.
// isNoRows tells the driver's "no rows" error.
func ReadHead(ctx context.Context, queryRow func(ctx context.Context, sql string) Row, isNoRows func(error) bool) (Head, error) {
	var h Head
	for _, q := range []string{`SELECT idx, ts FROM events ORDER BY idx DESC LIMIT 1`,
		`SELECT idx, ts FROM state_records ORDER BY idx DESC LIMIT 1`} {
		var idx, ts int64
		err := queryRow(ctx, q).Scan(&idx, &ts)
		switch {
		case isNoRows(err):
		case err != nil:
			return h, fmt.Errorf("head: %w", err)
		case uint64(idx)+1 > h.Size:
			h.Size, h.LastTimestamp = uint64(idx)+1, time.UnixMicro(ts).UTC()
		}
	}
	var maxPos *int64
	if err := queryRow(ctx, `SELECT max(pos) FROM tree_nodes`).Scan(&maxPos); err != nil {
		return h, fmt.Errorf("head: %w", err)
	}
	if maxPos != nil {
		h.NodeCount = uint64(*maxPos) + 1
	}
	return h, nil
}

// ErrCorruptRow marks a stored row that no record can encode (a value of
// the wrong shape): verify reports it as tampering, naming the row.
var ErrCorruptRow = errors.New("stored row is not a record")
