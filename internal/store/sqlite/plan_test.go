package sqlite

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos/internal/store"
)

// TestQueryPlans pins how SQLite runs the event searches: a keyed search
// reads its key table by key and the unindexed tail by primary-key range,
// never a scan of the whole events table.
func TestQueryPlans(t *testing.T) {
	s, err := Open(context.Background(), t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	explain := func(b store.SQL, cond string, arg any) string {
		t.Helper()
		b.Where += " AND " + cond
		rows, err := s.r.Query(`EXPLAIN QUERY PLAN SELECT `+store.QualifiedEventColumns+` FROM `+b.From+` WHERE `+b.Where+` ORDER BY `+b.OrderBy+` LIMIT 10`, append(b.Args, arg)...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			rows.Scan(&id, &parent, &notused, &detail)
			plan = append(plan, detail)
		}
		return strings.Join(plan, "; ")
	}
	for _, q := range []store.Query{
		{PatientID: "p-1"}, {User: "u", Action: "READ"}, {IPAddress: "203.0.113.7"},
		{ResourceType: "Patient", ResourceID: "p-1"}, {PatientID: "p-1", After: &store.Cursor{Index: 9}},
		{PatientID: "p-1", From: time.Unix(1, 0), To: time.Unix(1, 0)}, {User: "u", From: time.Unix(1, 0), To: time.Unix(9, 0)},
	} {
		tail, indexed := eventQueries(q)
		if indexed == nil {
			t.Fatalf("%+v is not driven by an index", q)
		}
		tail.From += " NOT INDEXED" // as Events runs it
		if p := explain(tail, "e.idx >= ?", 5); !strings.Contains(p, "INTEGER PRIMARY KEY (rowid>?") {
			t.Errorf("tail of %+v: %s", q, p)
		}
		if p := explain(*indexed, "k.idx < ?", 5); !strings.Contains(p, "SEARCH k USING PRIMARY KEY") || strings.Contains(p, "SCAN e") {
			t.Errorf("indexed part of %+v: %s", q, p)
		}
	}
	tail, _ := eventQueries(store.Query{})
	if p := explain(tail, "TRUE", nil); strings.Contains(p, "TEMP B-TREE") {
		t.Errorf("unfiltered search sorts: %s", p)
	}
}
