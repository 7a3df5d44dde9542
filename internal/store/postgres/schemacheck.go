package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/custos-audit/custos/internal/store"
	"github.com/jackc/pgx/v5"
)

// CheckSchema compares the objects of the store's schema (current_schema())
// with those this release's migrations create, applied for the comparison to
// a scratch schema inside a transaction that is rolled back, so nothing
// persists: tables (kind, persistence, row-level security, partitioning),
// columns (type, collation, NOT NULL, default, identity, generation),
// indexes, constraints, triggers, rules, views, policies, sequences, and the
// functions, procedures, types, collations and operators defined in the
// schema. The month partitions events_YYYY_MM that the store creates as time
// goes by are expected, each compared with one created the store's way for
// its month, so a partition with another name or other bounds, or carrying
// anything partitioning does not give it, is a problem. So is any
// database-wide event trigger. The first difference is returned as a
// *store.SchemaProblem: it could hide records from searches or change what
// they return; nil means the schema is as the migrations made it.
//
// It works on a read-only opening too, but needs a role that may create a
// schema in the database (it creates one only in its own transaction).
func (s *Store) CheckSchema(ctx context.Context) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadWrite})
	if err != nil {
		return fmt.Errorf("postgres: check schema: %w", err)
	}
	defer tx.Rollback(ctx) // drops the scratch schema
	p, err := checkSchema(ctx, tx, s.lacking)
	if err != nil {
		return fmt.Errorf("postgres: check schema: %w", err)
	}
	if p != nil {
		return p
	}
	return nil
}

// schemaMigrationsDDL is the statement migrate runs before the migrations;
// the scratch schema gets the same table.
const schemaMigrationsDDL = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)`

// checkSchema compares the schema with the migrations, but those lacking
// (optional ones a read-only open found missing).
func checkSchema(ctx context.Context, tx pgx.Tx, lacking map[string]bool) (*store.SchemaProblem, error) {
	// First, as an event trigger would fire on the scratch schema's DDL.
	var evt, event string
	err := tx.QueryRow(ctx, `SELECT evtname, evtevent FROM pg_event_trigger ORDER BY evtname LIMIT 1`).Scan(&evt, &event)
	switch {
	case err == nil:
		return &store.SchemaProblem{Object: fmt.Sprintf("event trigger %q", evt),
			Reason: fmt.Sprintf("a database-wide trigger on %s; custos creates none", event)}, nil
	case !isNoRows(err):
		return nil, err
	}
	var ours *string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&ours); err != nil {
		return nil, err
	}
	if ours == nil {
		return nil, fmt.Errorf("no schema of the search_path exists")
	}
	scratch := fmt.Sprintf("custos_schema_check_%016x", rand.Uint64())
	if err := migrateScratch(ctx, tx, *ours, scratch, lacking); err != nil {
		return nil, err
	}
	want, err := readSchema(ctx, tx, scratch)
	if err != nil {
		return nil, err
	}
	got, err := readSchema(ctx, tx, *ours)
	if err != nil {
		return nil, err
	}
	return store.DiffSchema(want, got), nil
}

// migrateScratch creates the schema scratch, applies the migrations to it,
// and creates there, the way the store does, the month partition of every
// relation of schema ours named events_YYYY_MM.
func migrateScratch(ctx context.Context, tx pgx.Tx, ours, scratch string, lacking map[string]bool) error {
	rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind NOT IN ('i', 'I') AND c.relname ~ '^events_[0-9]{4}_(0[1-9]|1[0-2])$'`, ours)
	if err != nil {
		return err
	}
	months, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	ms, err := store.LoadMigrations(store.Without(migrationFS, "migrations", lacking), "migrations")
	if err != nil {
		return err
	}
	ident := pgx.Identifier{scratch}.Sanitize()
	for _, q := range []string{`CREATE SCHEMA ` + ident, `SET LOCAL search_path = ` + ident, schemaMigrationsDDL} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return err
		}
	}
	for _, m := range ms {
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	// A store of its own, so that its cache of known months is empty.
	twin := &Store{log: slog.New(slog.DiscardHandler), parts: map[int64]bool{}}
	for _, name := range months {
		year, _ := strconv.Atoi(name[7:11])
		month, _ := strconv.Atoi(name[12:14])
		if err := twin.ensurePartition(ctx, tx, time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC).UnixMicro()); err != nil {
			return err
		}
	}
	return nil
}

// readSchema describes the objects of schema, with search_path set to it so
// that the definitions name its objects unqualified.
func readSchema(ctx context.Context, tx pgx.Tx, schema string) ([]store.SchemaObject, error) {
	if _, err := tx.Exec(ctx, `SET LOCAL search_path = `+pgx.Identifier{schema}.Sanitize()); err != nil {
		return nil, err
	}
	var prefix string
	if err := tx.QueryRow(ctx, `SELECT quote_ident($1) || '.'`, schema).Scan(&prefix); err != nil {
		return nil, err
	}
	var objs []store.SchemaObject
	rels := map[string]int{} // relation name → index in objs
	ncols := map[string]int{}
	for _, q := range catalogQueries {
		rows, err := tx.Query(ctx, q.sql, schema)
		if err != nil {
			return nil, fmt.Errorf("read %ss: %w", q.kind, err)
		}
		recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]string, error) {
			vals := make([]string, len(r.FieldDescriptions()))
			ptrs := make([]any, len(vals))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			return vals, r.Scan(ptrs...)
		})
		if err != nil {
			return nil, fmt.Errorf("read %ss: %w", q.kind, err)
		}
		for _, rec := range recs {
			for i := range rec {
				rec[i] = strings.ReplaceAll(rec[i], prefix, "")
			}
			if q.kind == "column" { // relation, name, then columnAttrs
				i, ok := rels[rec[0]]
				if !ok {
					return nil, fmt.Errorf("column %s of unknown relation %s", rec[1], rec[0])
				}
				ncols[rec[0]]++
				part := "column " + rec[1]
				objs[i].Attr(part, "position", strconv.Itoa(ncols[rec[0]]))
				for j, name := range columnAttrs {
					objs[i].Attr(part, name, rec[2+j])
				}
				continue
			}
			o := store.SchemaObject{Kind: q.kind, Name: rec[0], On: rec[1]}
			if q.kind == "relation" || q.kind == "function" {
				o.Kind, o.On = rec[1], "" // the kind of relation or function
			}
			for i, name := range q.attrs {
				o.Attr("", name, rec[2+i])
			}
			if q.kind == "relation" {
				rels[o.Name] = len(objs)
			}
			objs = append(objs, o)
		}
	}
	return objs, nil
}

// columnAttrs are the attributes of a column that the column query reads.
var columnAttrs = []string{"type", "collation", "nullability", "default", "identity", "generated"}

// catalogQuery reads the objects of one kind in schema $1: each row is the
// object's name, the table it belongs to (for relations and functions,
// its kind), then the values of attrs.
type catalogQuery struct {
	kind  string
	attrs []string
	sql   string
}

// inSchema restricts a catalog's namespace column to schema $1.
const inSchema = ` = (SELECT oid FROM pg_namespace WHERE nspname = $1)`

var catalogQueries = []catalogQuery{
	{"relation", []string{"kind", "persistence", "row level security", "forced row level security", "access method", "options",
		"partition of", "partition bound", "partition key", "view definition", "sequence definition"}, `
		SELECT c.relname::text,
			CASE WHEN c.relkind IN ('v', 'm') THEN 'view' WHEN c.relkind = 'S' THEN 'sequence' WHEN c.relkind = 'c' THEN 'type' ELSE 'table' END,
			CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
				WHEN 'f' THEN 'foreign table' WHEN 'c' THEN 'composite type' WHEN 'S' THEN 'sequence' ELSE c.relkind::text END,
			CASE c.relpersistence WHEN 'p' THEN 'permanent' WHEN 'u' THEN 'unlogged' ELSE 'temporary' END,
			CASE WHEN c.relrowsecurity THEN 'enabled' ELSE '' END, CASE WHEN c.relforcerowsecurity THEN 'forced' ELSE '' END,
			coalesce(am.amname::text, ''), coalesce(array_to_string(c.reloptions, ', '), ''),
			coalesce((SELECT string_agg(quote_ident(pn.nspname) || '.' || quote_ident(p.relname), ', ' ORDER BY h.inhseqno)
				FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
				WHERE h.inhrelid = c.oid), ''),
			coalesce(pg_get_expr(c.relpartbound, c.oid), ''),
			CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) ELSE '' END,
			CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) ELSE '' END,
			coalesce((SELECT concat_ws(' ', format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin, q.seqmax, q.seqcycle)
				FROM pg_sequence q WHERE q.seqrelid = c.oid), '')
		FROM pg_class c LEFT JOIN pg_am am ON am.oid = c.relam
		WHERE c.relnamespace` + inSchema + ` AND c.relkind NOT IN ('i', 'I')`},
	{"column", nil, `
		SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod),
			coalesce(CASE WHEN co.collnamespace = 'pg_catalog'::regnamespace THEN co.collname::text
				ELSE quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END, ''),
			CASE WHEN a.attnotnull THEN 'NOT NULL' ELSE 'nullable' END,
			coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text, a.attgenerated::text
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
			LEFT JOIN pg_collation co ON co.oid = a.attcollation LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
			LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE c.relnamespace` + inSchema + ` AND c.relkind NOT IN ('i', 'I', 'S') AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY c.relname, a.attnum`},
	{"index", []string{"definition", "state"}, `
		SELECT i.relname::text, t.relname::text, pg_get_indexdef(i.oid),
			CASE WHEN x.indisvalid AND x.indisready AND x.indislive THEN 'valid' ELSE 'invalid' END
		FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
		WHERE i.relnamespace` + inSchema},
	{"constraint", []string{"definition", "validated"}, `
		SELECT co.conname::text, coalesce(t.relname::text, 'domain ' || ty.typname), pg_get_constraintdef(co.oid), co.convalidated::text
		FROM pg_constraint co LEFT JOIN pg_class t ON t.oid = co.conrelid LEFT JOIN pg_type ty ON ty.oid = co.contypid
		WHERE co.connamespace` + inSchema},
	{"trigger", []string{"definition", "enabled"}, `
		SELECT tg.tgname::text, c.relname::text, pg_get_triggerdef(tg.oid), tg.tgenabled::text
		FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
		WHERE c.relnamespace` + inSchema + ` AND NOT tg.tgisinternal`},
	{"rule", []string{"definition", "enabled"}, `
		SELECT r.rulename::text, c.relname::text, pg_get_ruledef(r.oid), r.ev_enabled::text
		FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
		WHERE c.relnamespace` + inSchema + ` AND NOT (r.rulename = '_RETURN' AND c.relkind IN ('v', 'm'))`},
	{"policy", []string{"command", "mode", "roles", "using", "with check"}, `
		SELECT p.polname::text, c.relname::text, p.polcmd::text, CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END,
			coalesce((SELECT string_agg(CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END, ', ' ORDER BY r)
				FROM unnest(p.polroles) r), ''),
			coalesce(pg_get_expr(p.polqual, p.polrelid), ''), coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
		FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
		WHERE c.relnamespace` + inSchema},
	{"function", []string{"definition"}, `
		SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
			CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
			CASE WHEN p.prokind = 'a' THEN '' ELSE pg_get_functiondef(p.oid) END
		FROM pg_proc p WHERE p.pronamespace` + inSchema},
	{"type", []string{"kind", "base type", "NOT NULL", "default", "collation", "labels"}, `
		SELECT t.typname::text, '', t.typtype::text,
			CASE WHEN t.typbasetype <> 0 THEN format_type(t.typbasetype, t.typtypmod) ELSE '' END,
			t.typnotnull::text, coalesce(t.typdefault, ''), coalesce(co.collname::text, ''),
			coalesce((SELECT string_agg(e.enumlabel::text, ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '')
		FROM pg_type t LEFT JOIN pg_collation co ON co.oid = t.typcollation
		WHERE t.typnamespace` + inSchema + ` AND t.typrelid = 0 AND NOT EXISTS (SELECT FROM pg_type a WHERE a.typarray = t.oid)`},
	{"collation", []string{"definition"}, `
		SELECT collname::text, '', concat_ws(' ', collprovider, collisdeterministic, collcollate, collctype)
		FROM pg_collation WHERE collnamespace` + inSchema},
	{"operator", []string{"definition"}, `
		SELECT oprname || '(' || format_type(oprleft, NULL) || ', ' || format_type(oprright, NULL) || ')', '', oprcode::text
		FROM pg_operator WHERE oprnamespace` + inSchema + `
		UNION ALL SELECT 'class ' || opcname, '', opcmethod::text FROM pg_opclass WHERE opcnamespace` + inSchema + `
		UNION ALL SELECT 'family ' || opfname, '', opfmethod::text FROM pg_opfamily WHERE opfnamespace` + inSchema},
}
