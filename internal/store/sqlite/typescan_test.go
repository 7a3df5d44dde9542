package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/sqlite"
)

// TypeScan's CheckStorageTypes, after scans of the events and tree nodes
// (whole, partial, or failed), reports exactly what Store.CheckStorageTypes
// reports with its own SQL scans.
func TestTypeScanMatchesCheckStorageTypes(t *testing.T) {
	ctx := context.Background()
	type scan struct {
		from  uint64 // events scanned from this index
		nodes bool   // tree nodes scanned
	}
	whole := scan{0, true}
	for _, tt := range []struct {
		name   string
		file   string
		attack []string
		scans  []scan
	}{
		{"intact", sqlite.FileName, nil, []scan{whole, {5, true}, {0, false}}},
		{"patient_id as blob", sqlite.FileName, []string{`UPDATE events SET patient_id = CAST(patient_id AS BLOB) WHERE idx = 5`}, []scan{whole, {6, true}}},
		{"two rows, two columns", sqlite.FileName, []string{
			`UPDATE events SET user_agent = CAST(user_agent AS BLOB), ip_address = CAST(ip_address AS BLOB) WHERE idx = 17`,
			`UPDATE events SET status_code = 'two hundred' WHERE idx = 23`}, []scan{whole, {18, true}}},
		{"timestamp as real", sqlite.FileName, []string{`UPDATE events SET ts = ts + 0.5 WHERE idx = 8`}, []scan{whole}},
		{"extensions as text", sqlite.FileName, []string{`UPDATE events SET ext = 'x' WHERE idx = 9`}, []scan{whole}},
		{"changes as blob", sqlite.FileName, []string{`UPDATE events SET changes = CAST('{}' AS BLOB) WHERE idx = 14`}, []scan{whole}},
		{"negative index", sqlite.FileName, []string{`UPDATE events SET idx = -5, patient_id = CAST(patient_id AS BLOB) WHERE idx = 12`,
			`UPDATE events SET user_id = CAST(user_id AS BLOB) WHERE idx = 3`}, []scan{whole}},
		{"tree node hash as text", sqlite.FileName, []string{`INSERT INTO tree_nodes (pos, hash) VALUES (0, x'00'), (1, 'abc'), (2, x'01')`}, []scan{whole, {0, false}}},
		{"checkpoint before events", sqlite.FileName, []string{`INSERT INTO checkpoints (size, note, created_at) VALUES (1, 'note', 5)`,
			`UPDATE events SET patient_id = CAST(patient_id AS BLOB) WHERE idx = 2`}, []scan{whole}},
		{"index key as blob", sqlite.IndexFileName, []string{`UPDATE ix_patient SET patient_id = CAST(patient_id AS BLOB) WHERE idx = 4`}, []scan{whole}},
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
			want := fmt.Sprint(ro.CheckStorageTypes(ctx))
			for _, sc := range tt.scans {
				ts, err := ro.TypeScan(ctx)
				if err != nil {
					t.Fatal(err)
				}
				ts.ScanEvents(ctx, sc.from, func(custos.Event) error { return nil })
				if sc.nodes {
					ts.ScanNodes(ctx, func(store.Node) error { return nil })
				}
				if got := fmt.Sprint(ts.CheckStorageTypes(ctx)); got != want {
					t.Errorf("scans %+v: TypeScan says %s; the SQL check says %s", sc, got, want)
				}
			}
			t.Log(want)
		})
	}
}
