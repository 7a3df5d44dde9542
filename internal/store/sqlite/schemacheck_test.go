package sqlite_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/sqlite"
)

// newStoreDir creates a store in a fresh folder, writes n events into it with
// plain SQL, and closes it.
func newStoreDir(t testing.TB, n int) string {
	t.Helper()
	dir := t.TempDir()
	s, err := sqlite.Open(context.Background(), dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	execSQL(t, filepath.Join(dir, sqlite.FileName), eventsInsert(t, filepath.Join(dir, sqlite.FileName), n))
	return dir
}

// eventsInsert returns an INSERT of n events rows with plausible values,
// built from the table's columns as they are, so that it does not depend on
// how events are written.
func eventsInsert(t testing.TB, path string, n int) string {
	t.Helper()
	db := openDB(t, path)
	defer db.Close()
	rows, err := db.Query(`SELECT name, type FROM pragma_table_xinfo('events') ORDER BY cid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	known := map[string]string{
		"idx": "i", "ts": "1793520000000000 + i*60000000", "occurred_at": "1793520000000000 + i*1000000",
		"user_id": "'u-' || (i % 3)", "user_name": "'Dr. Test'", "user_roles": `'["physician"]'`,
		"action": "'READ'", "resource_type": "'Patient'", "resource_id": "'p-' || (i % 10)",
		"patient_id": "'p-' || (i % 10)", "ip_address": "'203.0.113.' || (i % 5)",
		"user_agent":     "'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) EHR/1.0'",
		"request_method": "'GET'", "request_path": "'/fhir/Patient/p-' || (i % 10) || '/Observation'",
		"changes": `CASE WHEN i % 7 = 0 THEN '{"field":"name","to":"x"}' END`, "outcome": "'success'",
		"status_code": "200", "source": "'ehr'", "request_id": "'req-' || i", "session_id": "'sess-' || (i / 20)",
		"break_glass": "0",
	}
	var cols, vals []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		v, ok := known[name]
		switch {
		case ok:
		case strings.Contains(strings.ToUpper(typ), "INT"):
			v = "1"
		case strings.Contains(strings.ToUpper(typ), "BLOB"):
			v = "NULL"
		default:
			v = "''"
		}
		cols, vals = append(cols, name), append(vals, v)
	}
	return fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < %d)
		INSERT INTO events (%s) SELECT %s FROM c`, n-1, strings.Join(cols, ", "), strings.Join(vals, ", "))
}

func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	return db
}

// execSQL runs statements on a connection of its own, as an insider would.
func execSQL(t testing.TB, path string, stmts ...string) {
	t.Helper()
	db := openDB(t, path)
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// queryString reads one string with a connection of its own.
func queryString(t testing.TB, path, q string) string {
	t.Helper()
	db := openDB(t, path)
	defer db.Close()
	var s string
	if err := db.QueryRow(q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

func openReadOnly(t testing.TB, dir string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), dir, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// wantProblem fails unless err is a *store.SchemaProblem whose message has
// every one of parts.
func wantProblem(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	var p *store.SchemaProblem
	if !errors.As(err, &p) {
		t.Fatalf("%s: %v, want a *store.SchemaProblem", what, err)
	}
	for _, s := range parts {
		if !strings.Contains(p.Error(), s) {
			t.Fatalf("%s: %q, want it to mention %q", what, p.Error(), s)
		}
	}
	t.Logf("%s: %v", what, p)
}

func TestSchemaChecksPassOnFreshStore(t *testing.T) {
	ctx := context.Background()
	dir := newStoreDir(t, 50)
	s, err := sqlite.Open(ctx, dir, sqlite.Options{}) // indexes the events written by hand
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema on a fresh store: %v", err)
	}
	if err := s.CheckStorageTypes(ctx); err != nil {
		t.Fatalf("CheckStorageTypes on a fresh store: %v", err)
	}
	// An insider adds a trigger while the server runs.
	execSQL(t, s.Path(), `CREATE TRIGGER hide AFTER INSERT ON events BEGIN DELETE FROM events WHERE idx = new.idx; END`)
	wantProblem(t, "CheckSchema on an open store", s.CheckSchema(ctx), `trigger "hide" on "events"`, "not created by the migrations")
	s.Close()
	ro := openReadOnly(t, dir)
	wantProblem(t, "CheckSchema on a read-only store", ro.CheckSchema(ctx), `trigger "hide"`)
}

// TestSchemaChecksWithoutIndexFile: a missing index file (rebuilt on the
// next start) is not checked, and not created by the checks.
func TestSchemaChecksWithoutIndexFile(t *testing.T) {
	ctx := context.Background()
	dir := newStoreDir(t, 20)
	for _, f := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(dir, sqlite.IndexFileName+f))
	}
	s := openReadOnly(t, dir)
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema: %v", err)
	}
	if err := s.CheckStorageTypes(ctx); err != nil {
		t.Fatalf("CheckStorageTypes: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.IndexFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the checks created %s: %v", sqlite.IndexFileName, err)
	}
}

func TestCheckSchemaCatchesAttacks(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		file   string // sqlite.FileName or sqlite.IndexFileName
		attack func(t *testing.T, path string) []string
		want   []string
	}{
		{"trigger", sqlite.FileName, stmts(`CREATE TRIGGER fake_read AFTER INSERT ON events BEGIN
			UPDATE events SET patient_id = 'p-0' WHERE idx = new.idx; END`),
			[]string{`schema: trigger "fake_read" on "events": not created by the migrations`}},
		{"view", sqlite.FileName, stmts(`CREATE VIEW events_visible AS SELECT * FROM events WHERE patient_id <> 'p-3'`),
			[]string{`view "events_visible": not created by the migrations`}},
		{"extra NOCASE index", sqlite.FileName, stmts(`CREATE INDEX events_patient_ci ON events (patient_id COLLATE NOCASE)`),
			[]string{`index "events_patient_ci" on "events": not created by the migrations`}},
		{"extra table", sqlite.FileName, stmts(`CREATE TABLE shadow (idx INTEGER PRIMARY KEY, hidden INTEGER)`),
			[]string{`table "shadow": not created by the migrations`}},
		{"ANALYZE statistics", sqlite.FileName, stmts(`ANALYZE`), []string{`table "sqlite_stat1": not created by the migrations`}},
		{"dropped index", sqlite.FileName, stmts(`DROP INDEX events_ts_action`),
			[]string{`index "events_ts_action" on "events": missing (the migrations create it)`}},
		{"events rebuilt with NOCASE patient_id", sqlite.FileName, rebuildEvents(`(patient_id\s+TEXT)`, "$1 COLLATE NOCASE"),
			[]string{`schema: table "events": column patient_id has collation "nocase", the migrations declare none`}},
		{"events rebuilt with a quoted collation", sqlite.FileName, rebuildEvents(`patient_id\s+TEXT`, `"patient_id" TEXT COLLATE "NoCase"`),
			[]string{`schema: table "events": column patient_id has collation "nocase", the migrations declare none`}},
		{"NOT NULL dropped through writable_schema", sqlite.FileName, editSchema(`(user_agent\s+TEXT)\s+NOT NULL`, "$1"),
			[]string{`table "events": column user_agent has nullability "nullable", the migrations declare "NOT NULL"`}},
		{"index file trigger", sqlite.IndexFileName, stmts(`CREATE TRIGGER ix_hide AFTER INSERT ON ix_patient BEGIN
			DELETE FROM ix_patient WHERE patient_id = 'p-3'; END`),
			[]string{`trigger "ix_hide" on "ix_patient" in custos-index.db: not created by the migrations`}},
		{"index file NOCASE key", sqlite.IndexFileName, stmts(`DROP TABLE ix_patient`,
			`CREATE TABLE ix_patient (patient_id TEXT NOT NULL COLLATE NOCASE, ts INTEGER NOT NULL, idx INTEGER NOT NULL,
				PRIMARY KEY (patient_id, ts, idx)) WITHOUT ROWID`),
			[]string{`table "ix_patient" in custos-index.db: column patient_id has collation "nocase", the migrations declare none`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := newStoreDir(t, 30)
			path := filepath.Join(dir, tt.file)
			execSQL(t, path, tt.attack(t, path)...)
			wantProblem(t, "CheckSchema", openReadOnly(t, dir).CheckSchema(ctx), tt.want...)
		})
	}
}

func stmts(qs ...string) func(*testing.T, string) []string {
	return func(*testing.T, string) []string { return qs }
}

// rebuildEvents rebuilds the events table the classic way (new table,
// copy, drop, rename, indexes again), with its CREATE statement edited.
func rebuildEvents(pattern, repl string) func(*testing.T, string) []string {
	return func(t *testing.T, path string) []string {
		create := queryString(t, path, `SELECT sql FROM sqlite_schema WHERE name = 'events'`)
		edited := regexp.MustCompile(pattern).ReplaceAllString(create, repl)
		if edited == create {
			t.Fatalf("%s matches nothing in %s", pattern, create)
		}
		indexes := queryString(t, path, `SELECT group_concat(sql, ';') FROM sqlite_schema WHERE tbl_name = 'events' AND type = 'index' AND sql IS NOT NULL`)
		return append([]string{
			strings.Replace(edited, "CREATE TABLE events", "CREATE TABLE events_new", 1),
			`INSERT INTO events_new SELECT * FROM events`,
			`DROP TABLE events`,
			`ALTER TABLE events_new RENAME TO events`,
		}, strings.Split(indexes, ";")...)
	}
}

// editSchema rewrites the stored CREATE statement of events in place.
func editSchema(pattern, repl string) func(*testing.T, string) []string {
	return func(t *testing.T, path string) []string {
		create := queryString(t, path, `SELECT sql FROM sqlite_schema WHERE name = 'events'`)
		edited := regexp.MustCompile(pattern).ReplaceAllString(create, repl)
		return []string{`PRAGMA writable_schema = ON`,
			`UPDATE sqlite_schema SET sql = '` + strings.ReplaceAll(edited, "'", "''") + `' WHERE name = 'events'`}
	}
}

func TestCheckStorageTypesCatchesAttacks(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		file   string
		attack []string
		want   string
	}{
		{"patient_id as blob", sqlite.FileName, []string{`UPDATE events SET patient_id = CAST(patient_id AS BLOB) WHERE idx = 5`},
			`schema: table "events": column patient_id, row idx=5: stored as blob, declared TEXT`},
		{"status_code as text", sqlite.FileName, []string{`UPDATE events SET status_code = 'two hundred' WHERE idx = 3`},
			`table "events": column status_code, row idx=3: stored as text, declared INTEGER NOT NULL`},
		{"timestamp as real", sqlite.FileName, []string{`UPDATE events SET ts = ts + 0.5 WHERE idx = 8`},
			`table "events": column ts, row idx=8: stored as real, declared INTEGER NOT NULL`},
		{"index key as blob", sqlite.IndexFileName, []string{`UPDATE ix_patient SET patient_id = CAST(patient_id AS BLOB) WHERE idx = 4`},
			`table "ix_patient" in custos-index.db: column patient_id, row patient_id=x'702D34', ts=1793520240000000, idx=4: stored as blob, declared TEXT NOT NULL`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := newStoreDir(t, 30)
			s, err := sqlite.Open(ctx, dir, sqlite.Options{}) // indexes the events
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			execSQL(t, filepath.Join(dir, tt.file), tt.attack...)
			ro := openReadOnly(t, dir)
			if err := ro.CheckSchema(ctx); err != nil {
				t.Fatalf("CheckSchema: %v, want nil: the schema is intact", err)
			}
			wantProblem(t, "CheckStorageTypes", ro.CheckStorageTypes(ctx), tt.want)
		})
	}
}

// TestNullBehindNotNull: an insider drops NOT NULL from the stored schema,
// writes a NULL, and puts the schema back. The schema matches again; the
// stored value does not.
func TestNullBehindNotNull(t *testing.T) {
	ctx := context.Background()
	dir := newStoreDir(t, 30)
	path := filepath.Join(dir, sqlite.FileName)
	original := queryString(t, path, `SELECT sql FROM sqlite_schema WHERE name = 'events'`)
	execSQL(t, path, editSchema(`(user_agent\s+TEXT)\s+NOT NULL`, "$1")(t, path)...)
	execSQL(t, path, `UPDATE events SET user_agent = NULL WHERE idx = 7`)
	execSQL(t, path, `PRAGMA writable_schema = ON`,
		`UPDATE sqlite_schema SET sql = '`+strings.ReplaceAll(original, "'", "''")+`' WHERE name = 'events'`)
	ro := openReadOnly(t, dir)
	if err := ro.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema: %v, want nil: the schema was put back", err)
	}
	wantProblem(t, "CheckStorageTypes", ro.CheckStorageTypes(ctx),
		`table "events": column user_agent, row idx=7: stored as null, declared TEXT NOT NULL`)
}

// BenchmarkSchemaChecks measures both checks on a ledger of
// CUSTOS_SCHEMA_BENCH_ROWS events (default 1,000,000) and an index of them:
//
//	go test -run '^$' -bench SchemaChecks -benchtime 3x ./internal/store/sqlite/
func BenchmarkSchemaChecks(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("CUSTOS_SCHEMA_BENCH_ROWS")); err == nil && v > 0 {
		n = v
	}
	start := time.Now()
	dir := newStoreDir(b, n)
	execSQL(b, filepath.Join(dir, sqlite.IndexFileName),
		`ATTACH DATABASE '`+filepath.Join(dir, sqlite.FileName)+`' AS l`,
		`INSERT INTO ix_user SELECT user_id, ts, idx FROM l.events`,
		`INSERT INTO ix_resource SELECT resource_type, resource_id, ts, idx FROM l.events`,
		`INSERT INTO ix_patient SELECT patient_id, ts, idx FROM l.events WHERE patient_id IS NOT NULL`,
		`INSERT INTO ix_ip SELECT ip_address, ts, idx FROM l.events WHERE ip_address IS NOT NULL`,
		fmt.Sprintf(`UPDATE ix_state SET upto = %d`, n))
	b.Logf("%d events written in %s", n, time.Since(start).Round(time.Millisecond))
	s := openReadOnly(b, dir)
	ctx := context.Background()
	for name, check := range map[string]func(context.Context) error{
		"CheckSchema": s.CheckSchema, "CheckStorageTypes": s.CheckStorageTypes,
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if err := check(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCheckSchemaAfterUpgrade: a ledger created by an older release and
// migrated since has the schema of a fresh one. For each release k, the
// first k migrations are applied by hand, then Open applies the rest.
func TestCheckSchemaAfterUpgrade(t *testing.T) {
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	for k := 1; k < len(files); k++ {
		t.Run(filepath.Base(files[k-1]), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, sqlite.FileName)
			stmts := []string{`CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL)`}
			for v, f := range files[:k] {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				stmts = append(stmts, string(b), fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%d, '%s', '%x', 0)`,
					v+1, filepath.Base(f), sha256.Sum256(b)))
			}
			execSQL(t, path, stmts...)
			execSQL(t, path, eventsInsert(t, path, 10))
			s, err := sqlite.Open(context.Background(), dir, sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.CheckSchema(context.Background()); err != nil {
				t.Fatalf("CheckSchema after migrating from %s: %v", files[k-1], err)
			}
			if err := s.CheckStorageTypes(context.Background()); err != nil {
				t.Fatalf("CheckStorageTypes after migrating from %s: %v", files[k-1], err)
			}
		})
	}
}
