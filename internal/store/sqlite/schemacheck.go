package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/custos-audit/custos/internal/store"
)

// CheckSchema compares the schema of the ledger file, and of the index file
// when there is one, with the schema that this release's migrations create
// in a fresh database: every table, index, trigger and view (SQLite's own
// sqlite_autoindex_*, sqlite_sequence and sqlite_stat* included) with its SQL
// (comments and spacing aside), every table column with its position,
// declared type, collation, NOT NULL, default and primary-key position, every
// index column with its order and collation. An extra, missing or changed
// object is returned as a *store.SchemaProblem: it could hide records from
// searches or change what they return. It returns nil when both match, and
// works on a read-only store.
func (s *Store) CheckSchema(ctx context.Context) error {
	return s.checkFiles(ctx, checkFileSchema)
}

// CheckStorageTypes checks that every value stored in the tables the
// migrations create has the type its column declares (an INTEGER column holds
// integers, TEXT text, BLOB blobs, REAL reals) and is NULL only where the
// column is nullable: SQLite lets any column hold any type, and a key stored
// as a blob, say, matches no search for it. It reads each table once, in the
// ledger and in the index file, and returns the first offending value as a
// *store.SchemaProblem naming its row, or nil. Run it after CheckSchema: it
// takes the columns from the migrations.
func (s *Store) CheckStorageTypes(ctx context.Context) error {
	return s.checkFiles(ctx, fileTypes(nil))
}

// checkFiles runs check on the ledger file and its migrations, then on the
// index file and its own if there is one (a missing index file is rebuilt
// from the ledger on the next start), naming the file in the SchemaProblem
// that check returns for it.
func (s *Store) checkFiles(ctx context.Context, check func(context.Context, *sql.DB, fs.FS, string) error) error {
	if err := check(ctx, s.r, s.migrations, "migrations"); err != nil {
		return err
	}
	path := filepath.Join(filepath.Dir(s.path), IndexFileName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	db, err := sql.Open("sqlite", dsn(path, "query_only(1)"))
	if err != nil {
		return fmt.Errorf("sqlite: open index: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	err = check(ctx, db, indexMigrationFS, "index_migrations")
	if p := (*store.SchemaProblem)(nil); errors.As(err, &p) {
		p.Object += " in " + IndexFileName
	}
	return err
}

// migratedDB applies the migrations of dir in fsys, exactly as Open does, to
// a fresh in-memory database: the reference the checks compare against.
func migratedDB(ctx context.Context, fsys fs.FS, dir string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	db.SetMaxOpenConns(1) // each connection to :memory: is a database of its own
	db.SetConnMaxLifetime(0)
	if err := migrate(ctx, db, ":memory:", fsys, dir); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// queryer is a *sql.DB or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// checkFileSchema compares the schema of db (its main database) with the one
// the migrations of dir create.
func checkFileSchema(ctx context.Context, db *sql.DB, fsys fs.FS, dir string) error {
	ref, err := migratedDB(ctx, fsys, dir)
	if err != nil {
		return err
	}
	defer ref.Close()
	want, err := readSchema(ctx, ref, nil)
	if err != nil {
		return fmt.Errorf("sqlite: check schema: %w", err)
	}
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: check schema: %w", err)
	}
	defer tx.Rollback()
	known := map[string]bool{}
	for _, o := range want {
		known[o.Kind+"\x00"+o.Name] = true
	}
	// Only objects the migrations also create are looked into: an extra one
	// (a virtual table of an unknown module, say) is a problem as it is.
	got, err := readSchema(ctx, tx, func(e schemaEntry) bool { return known[e.typ+"\x00"+e.name] })
	if err != nil {
		return fmt.Errorf("sqlite: check schema: %w", err)
	}
	if p := store.DiffSchema(want, got); p != nil {
		return p
	}
	return nil
}

type schemaEntry struct{ typ, name, tbl, sql string }

// readSchema describes the objects of the main database of q, looking into
// those for which detail returns true (all when detail is nil).
func readSchema(ctx context.Context, q queryer, detail func(schemaEntry) bool) ([]store.SchemaObject, error) {
	entries, err := collectRows(ctx, q, func(r store.Row) (e schemaEntry, err error) {
		return e, r.Scan(&e.typ, &e.name, &e.tbl, &e.sql)
	}, `SELECT type, name, tbl_name, coalesce(sql, '') FROM main.sqlite_schema ORDER BY type, name`)
	if err != nil {
		return nil, err
	}
	objs := make([]store.SchemaObject, 0, len(entries))
	for _, e := range entries {
		o := store.SchemaObject{Kind: e.typ, Name: e.name}
		if e.typ == "index" || e.typ == "trigger" {
			o.On = e.tbl
		}
		if detail == nil || detail(e) {
			if err := describe(ctx, q, e, &o); err != nil {
				return nil, err
			}
		}
		objs = append(objs, o)
	}
	return objs, nil
}

// describe adds the attributes of one object: its columns, then its SQL.
func describe(ctx context.Context, q queryer, e schemaEntry, o *store.SchemaObject) error {
	switch e.typ {
	case "table":
		if strings.HasPrefix(strings.ToUpper(e.sql), "CREATE VIRTUAL") {
			break // its module may be unknown here: the definition differs anyway
		}
		colls := columnCollations(e.sql)
		cols, err := tableColumns(ctx, q, e.name)
		if err != nil {
			return err
		}
		for _, c := range cols {
			part := "column " + c.name
			o.Attr(part, "position", strconv.Itoa(c.cid))
			o.Attr(part, "declared type", c.typ)
			o.Attr(part, "collation", colls[strings.ToLower(c.name)])
			o.Attr(part, "nullability", map[bool]string{true: "NOT NULL", false: "nullable"}[c.notNull])
			o.Attr(part, "default", c.dflt)
			o.Attr(part, "primary key position", strings.TrimPrefix(strconv.Itoa(c.pk), "0"))
			o.Attr(part, "generated", [...]string{"", "hidden", "virtual", "stored"}[min(max(c.hidden, 0), 3)])
		}
	case "index":
		ents, err := collectRows(ctx, q, func(r store.Row) (x [5]string, err error) {
			return x, r.Scan(&x[0], &x[1], &x[2], &x[3], &x[4])
		}, `SELECT seqno, CASE cid WHEN -1 THEN 'rowid' WHEN -2 THEN 'an expression' ELSE name END,
			CASE WHEN "desc" THEN 'DESC' ELSE 'ASC' END, lower(coalesce(coll, '')), CASE WHEN "key" THEN 'key' ELSE 'auxiliary' END
			FROM pragma_index_xinfo(?, 'main') ORDER BY seqno`, e.name)
		if err != nil {
			return err
		}
		for _, x := range ents {
			part := "indexed column " + x[0]
			o.Attr(part, "name", x[1])
			o.Attr(part, "order", x[2])
			o.Attr(part, "collation", x[3])
			o.Attr(part, "role", x[4])
		}
	}
	o.Attr("", "definition", store.NormalizeSQL(e.sql))
	return nil
}

type column struct {
	cid, pk, hidden int
	name, typ, dflt string
	notNull         bool
}

// tableColumns reads PRAGMA table_xinfo for a table of the main database.
func tableColumns(ctx context.Context, q queryer, table string) ([]column, error) {
	return collectRows(ctx, q, func(r store.Row) (c column, err error) {
		return c, r.Scan(&c.cid, &c.name, &c.typ, &c.notNull, &c.dflt, &c.pk, &c.hidden)
	}, `SELECT cid, name, type, "notnull", coalesce(dflt_value, ''), pk, hidden FROM pragma_table_xinfo(?, 'main') ORDER BY cid`, table)
}

// collectRows runs a query and scans each row with scan.
func collectRows[T any](ctx context.Context, q queryer, scan func(store.Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.Collect(rows, scan)
}

// unquote strips the quotes of a quoted identifier or string.
func unquote(tok string) string {
	if len(tok) < 2 || !strings.ContainsRune("\"`'[", rune(tok[0])) {
		return tok
	}
	q := tok[:1]
	return strings.ReplaceAll(tok[1:len(tok)-1], q+q, q)
}

// columnCollations returns the collation each column of a CREATE TABLE
// statement declares, in lower case, by lower-case column name. SQLite has no
// PRAGMA that tells it.
func columnCollations(createSQL string) map[string]string {
	toks := store.SQLTokens(createSQL)
	start := slices.Index(toks, "(")
	if start < 0 {
		return nil
	}
	out := map[string]string{}
	var def []string // the current column definition, outside parentheses
	flush := func() {
		defer func() { def = def[:0] }()
		if len(def) == 0 {
			return
		}
		switch strings.ToUpper(def[0]) {
		case "CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN":
			return // a table constraint
		}
		for i := 1; i+1 < len(def); i++ {
			if strings.EqualFold(def[i], "COLLATE") {
				out[strings.ToLower(unquote(def[0]))] = strings.ToLower(unquote(def[i+1]))
			}
		}
	}
	depth := 0
	for _, t := range toks[start+1:] {
		switch {
		case t == "(":
			depth++
		case t == ")" && depth == 0:
			flush()
			return out
		case t == ")":
			depth--
		case depth > 0:
		case t == ",":
			flush()
		default:
			def = append(def, t)
		}
	}
	return out
}

// fileTypes returns the check of the stored type of every value in the
// tables that the migrations of a file create, one scan per table. A table
// that a complete typeWatch followed (only the ledger file's) is scanned with
// SQL only for the rows the watched scans cannot have read (negative keys);
// the watch gives the first wrong value among the others, the one the scan of
// the whole table would have found.
func fileTypes(watched map[string]*typeWatch) func(context.Context, *sql.DB, fs.FS, string) error {
	return func(ctx context.Context, db *sql.DB, fsys fs.FS, dir string) error {
		if dir != "migrations" {
			watched = nil
		}
		ref, err := migratedDB(ctx, fsys, dir)
		if err != nil {
			return err
		}
		defer ref.Close()
		tables, err := collectRows(ctx, ref, func(r store.Row) (name string, err error) { return name, r.Scan(&name) },
			`SELECT name FROM main.sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
		if err != nil {
			return fmt.Errorf("sqlite: check storage types: %w", err)
		}
		tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return fmt.Errorf("sqlite: check storage types: %w", err)
		}
		defer tx.Rollback()
		for _, t := range tables {
			cols, err := tableColumns(ctx, ref, t)
			if err != nil {
				return fmt.Errorf("sqlite: check storage types of %s: %w", t, err)
			}
			if w := watched[t]; w != nil && w.complete(cols) {
				if err := checkTableTypes(ctx, tx, t, cols, ident(w.key)+" < 0"); err != nil {
					return err
				}
				if err := w.problem(); err != nil {
					return err
				}
				continue
			}
			if err := checkTableTypes(ctx, tx, t, cols, ""); err != nil {
				return err
			}
		}
		return nil
	}
}

// checkTableTypes finds the first row of table holding a value of another
// type than its column declares, in one scan of the rows that match where
// (all when where is empty).
func checkTableTypes(ctx context.Context, tx *sql.Tx, table string, cols []column, where string) error {
	var pk, checked []column
	var key, sel, bad []string
	for _, c := range cols {
		if c.pk > 0 {
			pk = append(pk, c)
		}
		if types := storedTypes(c); c.hidden == 0 && types != nil {
			checked = append(checked, c)
			sel = append(sel, "typeof("+ident(c.name)+")")
			bad = append(bad, fmt.Sprintf("typeof(%s) NOT IN ('%s')", ident(c.name), strings.Join(types, "', '")))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.SortFunc(pk, func(a, b column) int { return a.pk - b.pk })
	for _, c := range pk {
		key = append(key, ident(c.name))
	}
	if len(key) == 0 {
		key = []string{"rowid"}
	}
	vals := make([]any, len(key)+len(sel))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	cond := strings.Join(bad, " OR ")
	if where != "" {
		cond = where + " AND (" + cond + ")"
	}
	err := tx.QueryRowContext(ctx, fmt.Sprintf(`SELECT %s, %s FROM main.%s WHERE %s LIMIT 1`,
		strings.Join(key, ", "), strings.Join(sel, ", "), ident(table), cond)).Scan(ptrs...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: check storage types of %s: %w", table, err)
	}
	row := make([]string, len(key))
	for i, k := range key {
		row[i] = unquote(k) + "=" + sqlLiteral(vals[i])
	}
	for i, c := range checked {
		got, _ := vals[len(key)+i].(string)
		if !slices.Contains(storedTypes(c), got) {
			return typeProblem(table, c, strings.Join(row, ", "), got)
		}
	}
	return fmt.Errorf("sqlite: check storage types of %s: a row matched but no column differs", table)
}

// typeProblem names a value stored as got in column c of the row of table
// whose key is row.
func typeProblem(table string, c column, row, got string) *store.SchemaProblem {
	declared := c.typ
	if c.notNull {
		declared += " NOT NULL"
	}
	return &store.SchemaProblem{Object: fmt.Sprintf("table %q", table),
		Reason: fmt.Sprintf("column %s, row %s: stored as %s, declared %s", c.name, row, got, declared)}
}

// storedTypes lists the typeof() values a column may hold by its declared
// type (the affinity rules for other names than INTEGER, TEXT, BLOB and
// REAL), or nil when it may hold any.
func storedTypes(c column) []string {
	var types []string
	switch t := strings.ToUpper(c.typ); {
	case strings.Contains(t, "INT"):
		types = []string{"integer"}
	case strings.Contains(t, "CHAR"), strings.Contains(t, "CLOB"), strings.Contains(t, "TEXT"):
		types = []string{"text"}
	case t == "BLOB":
		types = []string{"blob"}
	case t == "", strings.Contains(t, "BLOB"):
		return nil // no affinity: anything goes
	case strings.Contains(t, "REAL"), strings.Contains(t, "FLOA"), strings.Contains(t, "DOUB"):
		types = []string{"real"}
	default: // NUMERIC affinity
		types = []string{"integer", "real"}
	}
	if !c.notNull {
		types = append(types, "null")
	}
	return types
}

// ident quotes an SQL identifier.
func ident(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// sqlLiteral shows a scanned value as SQL would write it.
func sqlLiteral(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	case []byte:
		return fmt.Sprintf("x'%X'", v)
	default:
		return fmt.Sprint(v)
	}
}
