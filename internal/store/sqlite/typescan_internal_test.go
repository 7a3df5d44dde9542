package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// The scans of a TypeScan cover the whole tables only when they read them
// whole: then CheckStorageTypes reads no row of them with SQL but those with
// a negative key.
func TestTypeScanCoverage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO tree_nodes (pos, hash) VALUES (0, x'00'), (1, x'01'), (2, x'02')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	ro, err := Open(ctx, dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	ref, err := migratedDB(ctx, migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	cols := func(table string) []column {
		c, err := tableColumns(ctx, ref, table)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ts, err := ro.TypeScan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts.events.checked) != store.EventColumnCount || !ts.events.usable || !ts.nodes.usable {
		t.Fatalf("the watches check %d event columns (usable %v, nodes %v), want every one", len(ts.events.checked), ts.events.usable, ts.nodes.usable)
	}
	if ts.events.complete(cols("events")) || ts.nodes.complete(cols("tree_nodes")) {
		t.Fatal("complete before any scan")
	}
	if err := ts.ScanNodes(ctx, func(n store.Node) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ts.ScanEvents(ctx, 0, func(custos.Event) error { return nil })
	if !ts.events.complete(cols("events")) || !ts.nodes.complete(cols("tree_nodes")) {
		t.Fatalf("not complete after whole scans: %v %v", ts.events.spans, ts.nodes.spans)
	}
	ts, _ = ro.TypeScan(ctx)
	ts.ScanEvents(ctx, 1, func(custos.Event) error { return nil })
	if ts.events.complete(cols("events")) {
		t.Fatalf("complete after a scan from 1: %v", ts.events.spans)
	}
}
