package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// IndexProblem is an indexed event that a keyed search would not find.
type IndexProblem struct {
	Index uint64
	Table string
}

func (p *IndexProblem) Error() string {
	return fmt.Sprintf("record %d has no entry in the secondary index %s: keyed searches would not find it (index altered); delete %s to rebuild it from the ledger",
		p.Index, p.Table, IndexFileName)
}

// CheckIndex checks that every event the index file claims to cover has its
// entries in every key table, with the event's own key: a deleted or altered
// entry would hide the event from searches. Extra entries are harmless
// (searches re-check them against the event) and not reported. It returns
// the first problem, nil when the index is sound, and ErrNoIndex when there is
// no index file (it is rebuilt on the next start).
func (s *Store) CheckIndex(ctx context.Context) (*IndexProblem, error) {
	ixPath := filepath.Join(filepath.Dir(s.path), IndexFileName)
	if _, err := os.Stat(ixPath); errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoIndex
	}
	db := sql.OpenDB(newAttachConnector(dsn(s.path, "query_only(1)", "mmap_size(1099511627776)"), ixPath))
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlite: check index: %w", err)
	}
	defer tx.Rollback()
	var upto int64
	if err := tx.QueryRowContext(ctx, `SELECT upto FROM ix.ix_state`).Scan(&upto); err != nil {
		return nil, fmt.Errorf("sqlite: check index: %w", err)
	}
	var first *IndexProblem
	for _, t := range keyTables {
		cols := strings.Split(strings.ReplaceAll(t.cols, " ", ""), ",")
		var on []string
		var present []string
		for _, c := range cols {
			on = append(on, fmt.Sprintf("k.%s = e.%s", c, c))
			if c != "ts" && c != "idx" {
				present = append(present, fmt.Sprintf("e.%s IS NOT NULL AND e.%s <> ''", c, c))
			}
		}
		q := fmt.Sprintf(`SELECT min(e.idx) FROM events e WHERE e.idx < ? AND %s
			AND NOT EXISTS (SELECT 1 FROM ix.%s k WHERE %s)`,
			strings.Join(present, " AND "), t.name, strings.Join(on, " AND "))
		var idx sql.NullInt64
		if err := tx.QueryRowContext(ctx, q, upto).Scan(&idx); err != nil {
			return nil, fmt.Errorf("sqlite: check index %s: %w", t.name, err)
		}
		if idx.Valid && (first == nil || uint64(idx.Int64) < first.Index) {
			first = &IndexProblem{Index: uint64(idx.Int64), Table: t.name}
		}
	}
	return first, nil
}

// ErrNoIndex says the data folder has no index file.
var ErrNoIndex = errors.New("no index file")
