package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
	"github.com/jackc/pgx/v5"
)

var (
	nov2026 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	dec2026 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
)

// newCheckedStore opens a store in a fresh schema with events in two month
// partitions (November and December 2026), written with plain SQL. It
// returns the store's URL.
func newCheckedStore(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	u := pgtest.FreshSchema(t)
	s, err := Open(ctx, u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, m := range []time.Time{nov2026, dec2026} {
		if err := s.ensurePartition(ctx, tx, m.UnixMicro()); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	execPG(t, u, eventsInsert(t, u, 40, nov2026.Add(29*24*time.Hour).UnixMicro()))
	return u
}

// eventsInsert returns an INSERT of n events, one a minute from ts0 (µs),
// built from the table's columns as they are.
func eventsInsert(t testing.TB, u string, n int, ts0 int64) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT column_name::text, data_type::text FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'events' ORDER BY ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	type col struct{ name, typ string }
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (c col, err error) { return c, r.Scan(&c.name, &c.typ) })
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]string{
		"idx": "i", "ts": fmt.Sprintf("%d + i * 60000000", ts0), "user_id": "'u-' || i % 3", "user_roles": `'["physician"]'`,
		"action": "'READ'", "resource_type": "'Patient'", "resource_id": "'p-' || i % 10", "patient_id": "'p-' || i % 10",
		"ip_address": "'203.0.113.' || i % 5", "outcome": "'success'", "status_code": "200", "source": "'ehr'",
	}
	var names, vals []string
	for _, c := range cols {
		v, ok := known[c.name]
		switch {
		case ok:
		case c.typ == "bigint" || c.typ == "integer" || c.typ == "smallint":
			v = "1"
		case c.typ == "boolean":
			v = "false"
		case c.typ == "bytea":
			v = "NULL"
		default:
			v = "''"
		}
		names, vals = append(names, c.name), append(vals, v)
	}
	return fmt.Sprintf(`INSERT INTO events (%s) SELECT %s FROM generate_series(0::bigint, %d) i`,
		strings.Join(names, ", "), strings.Join(vals, ", "), n-1)
}

// execPG runs statements on a connection of its own, as an insider would.
func execPG(t testing.TB, u string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func checkSchemaOf(t *testing.T, u string, opt Options) error {
	t.Helper()
	s, err := Open(context.Background(), u, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return s.CheckSchema(context.Background())
}

func wantProblem(t *testing.T, err error, parts ...string) {
	t.Helper()
	var p *store.SchemaProblem
	if !errors.As(err, &p) {
		t.Fatalf("CheckSchema: %v, want a *store.SchemaProblem", err)
	}
	for _, s := range parts {
		if !strings.Contains(p.Error(), s) {
			t.Fatalf("CheckSchema: %q, want it to mention %q", p.Error(), s)
		}
	}
	t.Logf("CheckSchema: %v", p)
}

func TestCheckSchemaPassesOnFreshStore(t *testing.T) {
	u := newCheckedStore(t)
	if err := checkSchemaOf(t, u, Options{}); err != nil {
		t.Fatalf("CheckSchema: %v", err)
	}
	if err := checkSchemaOf(t, u, Options{ReadOnly: true}); err != nil {
		t.Fatalf("CheckSchema on a read-only opening: %v", err)
	}
	// Nothing of the scratch schemas stays behind.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'custos\_schema\_check\_%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d scratch schemas left behind", n)
	}
}

func TestCheckSchemaCatchesAttacks(t *testing.T) {
	quiet := `FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()`
	for _, tt := range []struct {
		name   string
		attack []string
		want   []string
	}{
		{"collation C", []string{`ALTER TABLE events ALTER COLUMN patient_id TYPE text COLLATE "C"`},
			[]string{`schema: table "events": column patient_id has collation "C", the migrations declare "default"`}},
		{"type", []string{`ALTER TABLE events ALTER COLUMN status_code TYPE bigint`},
			[]string{`table "events": column status_code has type "bigint", the migrations declare "integer"`}},
		{"default", []string{`ALTER TABLE api_keys ALTER COLUMN revoked_at SET DEFAULT 0`},
			[]string{`table "api_keys": column revoked_at has default "0", the migrations declare none`}},
		{"rule", []string{`CREATE RULE no_revoke AS ON UPDATE TO api_keys DO INSTEAD NOTHING`},
			[]string{`rule "no_revoke" on "api_keys": not created by the migrations`}},
		{"trigger", []string{`CREATE TRIGGER quiet BEFORE UPDATE ON events ` + quiet},
			[]string{`trigger "quiet" on "events": not created by the migrations`}},
		{"trigger function", []string{
			`CREATE FUNCTION drop_row() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$`,
			`CREATE TRIGGER drop_p3 BEFORE INSERT ON tree_nodes FOR EACH ROW EXECUTE FUNCTION drop_row()`},
			[]string{`function "drop_row()": not created by the migrations`}},
		{"row-level security", []string{`ALTER TABLE events ENABLE ROW LEVEL SECURITY`,
			`CREATE POLICY hide_p3 ON events USING (patient_id IS DISTINCT FROM 'p-3')`},
			[]string{`table "events": has row level security "enabled", the migrations declare none`}},
		{"policy", []string{`CREATE POLICY hide_p3 ON events USING (patient_id IS DISTINCT FROM 'p-3')`},
			[]string{`policy "hide_p3" on "events": not created by the migrations`}},
		{"extra index", []string{`CREATE INDEX events_patient_lower ON events (lower(patient_id))`},
			[]string{`index "events_patient_lower" on "events": not created by the migrations`}},
		{"changed index", []string{`DROP INDEX events_patient`, `CREATE INDEX events_patient ON events (patient_id, ts, idx) WHERE patient_id <> 'p-3'`},
			[]string{`index "events_patient" on "events": has definition`, `WHERE (patient_id IS NOT NULL)`}},
		{"view", []string{`CREATE VIEW visible AS SELECT * FROM events WHERE patient_id <> 'p-3'`},
			[]string{`view "visible": not created by the migrations`}},
		{"unnamed partition", []string{
			fmt.Sprintf(`CREATE TABLE events_spare PARTITION OF events FOR VALUES FROM (%d) TO (%d)`,
				dec2026.AddDate(0, 1, 0).UnixMicro(), dec2026.AddDate(0, 2, 0).UnixMicro())},
			[]string{`table "events_spare": not created by the migrations`}},
		{"default partition", []string{`CREATE TABLE events_2027_01 PARTITION OF events DEFAULT`},
			[]string{`table "events_2027_01": has partition bound "DEFAULT", the migrations declare "FOR VALUES FROM ('1798761600000000') TO ('1801440000000000')"`}},
		{"partition with other bounds", []string{
			fmt.Sprintf(`CREATE TABLE events_2027_01 PARTITION OF events FOR VALUES FROM (%d) TO (%d)`,
				dec2026.AddDate(0, 1, 0).UnixMicro(), dec2026.AddDate(0, 1, 1).UnixMicro())},
			[]string{`table "events_2027_01": has partition bound`}},
		{"detached partition", []string{`ALTER TABLE events DETACH PARTITION events_2026_12`},
			[]string{`table "events_2026_12": has partition of none, the migrations declare "events"`}},
		{"trigger on a partition", []string{`CREATE TRIGGER quiet BEFORE UPDATE ON events_2026_11 ` + quiet},
			[]string{`trigger "quiet" on "events_2026_11": not created by the migrations`}},
		{"index on a partition", []string{`CREATE INDEX nov_patient ON events_2026_11 (patient_id)`},
			[]string{`index "nov_patient" on "events_2026_11": not created by the migrations`}},
		{"policy on a partition", []string{`CREATE POLICY hide_p3 ON events_2026_11 USING (patient_id <> 'p-3')`},
			[]string{`policy "hide_p3" on "events_2026_11": not created by the migrations`}},
		{"unlogged table", []string{`ALTER TABLE tree_nodes SET UNLOGGED`},
			[]string{`table "tree_nodes": has persistence "unlogged", the migrations declare "permanent"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := newCheckedStore(t)
			execPG(t, u, tt.attack...)
			wantProblem(t, checkSchemaOf(t, u, Options{ReadOnly: true}), tt.want...)
		})
	}
}

// TestCheckSchemaNondeterministicCollation: a case-insensitive ICU collation
// would make a search for one patient return another's records.
func TestCheckSchemaNondeterministicCollation(t *testing.T) {
	u := newCheckedStore(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`); err != nil {
		t.Skipf("no ICU: %v", err)
	}
	if _, err := conn.Exec(ctx, `ALTER TABLE events ALTER COLUMN patient_id TYPE text COLLATE ci`); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, checkSchemaOf(t, u, Options{}), `collation "ci": not created by the migrations`)
	// The collation kept elsewhere, the column still gives it away.
	schema := fmt.Sprintf("custos_test_coll_%d", rand.Uint64()>>1)
	for _, q := range []string{`CREATE SCHEMA ` + schema, `ALTER COLLATION ci SET SCHEMA ` + schema} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { execPG(t, u, `DROP SCHEMA `+schema+` CASCADE`) })
	wantProblem(t, checkSchemaOf(t, u, Options{}), `table "events": column patient_id has collation "`+schema+`.ci", the migrations declare "default"`)
}

// TestCheckSchemaEventTrigger: event triggers are database-wide, so this one
// lives only as long as the check.
func TestCheckSchemaEventTrigger(t *testing.T) {
	u := newCheckedStore(t)
	s, err := Open(context.Background(), u, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	name := fmt.Sprintf("custos_test_evt_%d", rand.Uint64()>>1)
	execPG(t, u, `CREATE FUNCTION evt() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$`)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE EVENT TRIGGER `+name+` ON ddl_command_start EXECUTE FUNCTION evt()`); err != nil {
		t.Skipf("cannot create an event trigger (not a superuser?): %v", err)
	}
	t.Cleanup(func() { execPG(t, u, `DROP EVENT TRIGGER IF EXISTS `+name) })
	err = s.CheckSchema(ctx)
	if _, derr := conn.Exec(ctx, `DROP EVENT TRIGGER `+name); derr != nil {
		t.Error(derr)
	}
	wantProblem(t, err, fmt.Sprintf(`event trigger %q: a database-wide trigger on ddl_command_start`, name))
}

// TestCheckSchemaAfterUpgrade: a database created by an older release,
// with month partitions, and migrated since has the schema of a fresh one.
// For each release k, the first k migrations are applied by hand, then Open
// applies the rest.
func TestCheckSchemaAfterUpgrade(t *testing.T) {
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	for k := 1; k < len(files); k++ {
		t.Run(filepath.Base(files[k-1]), func(t *testing.T) {
			u := pgtest.FreshSchema(t)
			stmts := []string{`CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)`}
			for v, f := range files[:k] {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				stmts = append(stmts, string(b), fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%d, '%s', '%x', 0)`,
					v+1, filepath.Base(f), sha256.Sum256(b)))
			}
			for _, m := range []time.Time{nov2026, dec2026} {
				stmts = append(stmts, fmt.Sprintf(`CREATE TABLE events_%04d_%02d PARTITION OF events FOR VALUES FROM (%d) TO (%d)`,
					m.Year(), m.Month(), m.UnixMicro(), m.AddDate(0, 1, 0).UnixMicro()))
			}
			execPG(t, u, stmts...)
			execPG(t, u, eventsInsert(t, u, 10, nov2026.UnixMicro()))
			if err := checkSchemaOf(t, u, Options{}); err != nil {
				t.Fatalf("CheckSchema after migrating from %s: %v", files[k-1], err)
			}
		})
	}
}

// TestCheckSchemaCost measures the check on a store of
// CUSTOS_SCHEMA_BENCH_ROWS events over twelve months; it runs only when that
// variable is set (pgtest gives a fresh schema to tests, not benchmarks):
//
//	CUSTOS_SCHEMA_BENCH_ROWS=1000000 go test -run CheckSchemaCost -v ./internal/store/postgres/
func TestCheckSchemaCost(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("CUSTOS_SCHEMA_BENCH_ROWS"))
	if err != nil || n <= 0 {
		t.Skip("set CUSTOS_SCHEMA_BENCH_ROWS to measure")
	}
	ctx := context.Background()
	u := pgtest.FreshSchema(t)
	s, err := Open(ctx, u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for m := range 12 {
		if err := s.ensurePartition(ctx, tx, nov2026.AddDate(0, m, 0).UnixMicro()); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	step := nov2026.AddDate(1, 0, 0).Sub(nov2026).Microseconds() / int64(n) // spread over the twelve months
	insert := strings.Replace(eventsInsert(t, u, n, nov2026.UnixMicro()), " * 60000000", fmt.Sprintf(" * %d", step), 1)
	start := time.Now()
	execPG(t, u, insert, `ANALYZE events`)
	t.Logf("%d events written in %s", n, time.Since(start).Round(time.Millisecond))
	const runs = 5
	start = time.Now()
	for range runs {
		if err := s.CheckSchema(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("CheckSchema: %s a run", (time.Since(start) / runs).Round(100*time.Microsecond))
}
