package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// eventColumns lists the events table's columns in insert and select order.
const eventColumns = `idx, ts, occurred_at, user_id, user_name, user_roles, action, resource_type,
	resource_id, patient_id, ip_address, user_agent, request_method, request_path, changes, outcome,
	status_code, source, request_id, session_id, purpose_of_use, break_glass, break_glass_reason`

const eventColumnCount = 23

// rowsPerInsert is how many rows one prepared multi-row INSERT carries.
const rowsPerInsert = 128

// Head returns the size of the ledger and where the sequencer resumes.
func (s *Store) Head(ctx context.Context) (store.Head, error) {
	var h store.Head
	var maxIdx, ts, maxPos sql.NullInt64
	err := s.w.QueryRowContext(ctx, `SELECT idx, ts FROM events ORDER BY idx DESC LIMIT 1`).Scan(&maxIdx, &ts)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return h, fmt.Errorf("sqlite: head: %w", err)
	}
	if maxIdx.Valid {
		h.Size = uint64(maxIdx.Int64) + 1
		h.LastTimestamp = time.UnixMicro(ts.Int64).UTC()
	}
	if err := s.w.QueryRowContext(ctx, `SELECT max(pos) FROM tree_nodes`).Scan(&maxPos); err != nil {
		return h, fmt.Errorf("sqlite: head: %w", err)
	}
	if maxPos.Valid {
		h.NodeCount = uint64(maxPos.Int64) + 1
	}
	return h, nil
}

// Append writes the batch in one immediate transaction; synchronous=FULL makes
// the commit durable (WAL fsynced) before Append returns.
func (s *Store) Append(ctx context.Context, b *store.Batch) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback()
	if err := s.insertRows(ctx, tx, "events", len(b.Events), func(i int, args []any) []any {
		return appendEventArgs(args, &b.Events[i])
	}); err != nil {
		return err
	}
	if err := s.insertRows(ctx, tx, "tree_nodes", len(b.Nodes), func(i int, args []any) []any {
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
	for _, k := range b.Keys {
		if err := applyKeyChange(ctx, tx, k); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// insertRows inserts n rows: full chunks with the prepared rowsPerInsert-row
// statement, the remainder with the one-row statement.
func (s *Store) insertRows(ctx context.Context, tx *sql.Tx, table string, n int, row func(i int, args []any) []any) error {
	st := s.ins[table]
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

// insert holds the prepared INSERTs of one table.
type insert struct {
	ncol      int
	full, one *sql.Stmt
}

// prepareInserts prepares, once at open, the INSERT statements of the writer.
func (s *Store) prepareInserts(ctx context.Context) error {
	s.ins = map[string]insert{}
	for _, t := range []struct {
		table, cols string
		ncol        int
	}{{"events", eventColumns, eventColumnCount}, {"tree_nodes", "pos, hash", 2}} {
		one := "(" + strings.TrimSuffix(strings.Repeat("?,", t.ncol), ",") + ")"
		// OR ROLLBACK: a failing row aborts the whole transaction (a batch is
		// stored whole or not at all), so SQLite keeps no statement journal.
		prefix := "INSERT OR ROLLBACK INTO " + t.table + " (" + t.cols + ") VALUES "
		full, err := s.w.PrepareContext(ctx, prefix+strings.TrimSuffix(strings.Repeat(one+",", rowsPerInsert), ","))
		if err != nil {
			return fmt.Errorf("sqlite: prepare insert %s: %w", t.table, err)
		}
		single, err := s.w.PrepareContext(ctx, prefix+one)
		if err != nil {
			return fmt.Errorf("sqlite: prepare insert %s: %w", t.table, err)
		}
		s.ins[t.table] = insert{ncol: t.ncol, full: full, one: single}
	}
	return nil
}

func appendEventArgs(args []any, e *custos.Event) []any {
	roles := e.User.Roles
	if roles == nil {
		roles = []string{}
	}
	rolesJSON, _ := json.Marshal(roles) // a []string always marshals
	var occurred, changes any
	if e.OccurredAt != nil {
		occurred = e.OccurredAt.UnixMicro()
	}
	if e.Changes != nil {
		changes = string(e.Changes)
	}
	return append(args, int64(e.Index), e.Timestamp.UnixMicro(), occurred, e.User.ID, e.User.Name,
		string(rolesJSON), string(e.Action), e.ResourceType, e.ResourceID, nullIfEmpty(e.PatientID),
		nullIfEmpty(e.IPAddress), e.UserAgent, e.RequestMethod, e.RequestPath, changes, string(e.Outcome),
		e.StatusCode, e.Source, e.RequestID, e.SessionID, e.PurposeOfUse, e.BreakGlass, e.BreakGlassReason)
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func applyKeyChange(ctx context.Context, tx *sql.Tx, k store.KeyChange) error {
	switch {
	case k.Insert != nil:
		scopes, _ := json.Marshal(k.Insert.Scopes)
		_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (id, name, scopes, hash, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)`,
			k.Insert.ID, k.Insert.Name, string(scopes), k.Insert.Hash, k.Insert.CreatedAt.UnixMicro(), k.Insert.CreatedBy)
		if err != nil {
			return fmt.Errorf("sqlite: insert api key: %w", err)
		}
	case k.Revoke != nil:
		_, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`,
			k.Revoke.At.UnixMicro(), k.Revoke.ID)
		if err != nil {
			return fmt.Errorf("sqlite: revoke api key: %w", err)
		}
	}
	return nil
}
