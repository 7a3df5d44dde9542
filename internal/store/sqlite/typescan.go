package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// TypeScan is the store as a verifier reads it when it wants both the audit
// and the storage-type check (CheckStorageTypes) without reading the two
// largest tables twice. Its ScanEvents and ScanNodes check, for every row
// they read, the storage type of each value against its column's declared
// type in the migrations, by the rules of the SQL check (storedTypes), and
// note the key ranges they have read. Its CheckStorageTypes then returns what
// Store.CheckStorageTypes returns, the same problem or nil, but reads with
// SQL only what those scans have not: every other table, and the rows of
// events and tree_nodes with a negative key (no scan asks for them), or all
// of a table whose scans left a range unread.
//
// Why this is the same check: the driver reports each value with the type
// SQLite stores it in (sqlite3_column_type, as typeof() does: INTEGER int64,
// REAL float64, TEXT string, BLOB []byte, NULL nil), before any conversion;
// a table whose every row was read has had every value checked; and the
// smallest key with a wrong value is the row the SQL scan (in key order,
// first match) names, its first wrong column the one it names.
type TypeScan struct {
	*Store
	events, nodes *typeWatch
}

// TypeScan returns a view of s that checks storage types as it scans. It
// reads the columns of events and tree_nodes from the migrations.
func (s *Store) TypeScan(ctx context.Context) (*TypeScan, error) {
	ref, err := migratedDB(ctx, s.migrations, "migrations")
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	t := &TypeScan{Store: s}
	for _, w := range []struct {
		watch      **typeWatch
		table, key string
		scanned    string
	}{{&t.events, "events", "idx", store.EventColumns}, {&t.nodes, "tree_nodes", "pos", store.NodeColumns}} {
		cols, err := tableColumns(ctx, ref, w.table)
		if err != nil {
			return nil, fmt.Errorf("sqlite: columns of %s: %w", w.table, err)
		}
		*w.watch = newTypeWatch(w.table, w.key, cols, strings.Split(strings.Join(strings.Fields(w.scanned), ""), ","))
	}
	return t, nil
}

// ScanEvents is Store.ScanEvents, checking storage types.
func (t *TypeScan) ScanEvents(ctx context.Context, from uint64, fn func(custos.Event) error) error {
	return t.scanEvents(ctx, from, fn, t.events)
}

// ScanNodes is Store.ScanNodes, checking storage types.
func (t *TypeScan) ScanNodes(ctx context.Context, fn func(store.Node) error) error {
	return t.scanNodes(ctx, fn, t.nodes)
}

// CheckStorageTypes is Store.CheckStorageTypes, taking what the scans have
// checked into account. Call it once the scans are done.
func (t *TypeScan) CheckStorageTypes(ctx context.Context) error {
	return t.checkFiles(ctx, fileTypes(map[string]*typeWatch{t.events.table: t.events, t.nodes.table: t.nodes}))
}

// Storage classes, as bits.
const (
	classInteger uint8 = 1 << iota
	classReal
	classText
	classBlob
	classNull
)

var classNames = map[string]uint8{"integer": classInteger, "real": classReal, "text": classText, "blob": classBlob, "null": classNull}

// classOf is the storage class of a value as the driver returns it, 0 for a
// type that does not tell.
func classOf(v driver.Value) uint8 {
	switch v.(type) {
	case int64:
		return classInteger
	case float64:
		return classReal
	case string:
		return classText
	case []byte:
		return classBlob
	case nil:
		return classNull
	}
	return 0
}

func className(c uint8) string {
	for name, bit := range classNames {
		if bit == c {
			return name
		}
	}
	return "unknown"
}

// typeWatch follows the scans of one table: the first wrong value, by key,
// and the key ranges read.
type typeWatch struct {
	table, key string
	cols       []column // every column of the table, from the migrations
	scanned    []string // the columns a scan reads, in its order
	checked    []int    // scan positions of the columns checked, in column order
	allowed    []uint8  // by scan position: the classes the column may hold
	usable     bool     // the scan reads every checked column, the key first

	mu      sync.Mutex
	spans   [][2]int64 // (after, upto] read; upto = MaxInt64 when a scan reached the end
	bad     *store.SchemaProblem
	badKey  int64
	unknown bool // a value of a type that tells no storage class
}

func newTypeWatch(table, key string, cols []column, scanned []string) *typeWatch {
	w := &typeWatch{table: table, key: key, cols: cols, scanned: scanned, allowed: make([]uint8, len(scanned))}
	w.usable = len(scanned) > 0 && scanned[0] == key
	for _, c := range cols {
		types := storedTypes(c)
		if c.hidden != 0 || types == nil {
			continue
		}
		pos := slices.Index(scanned, c.name)
		if pos < 0 {
			w.usable = false
			continue
		}
		for _, ty := range types {
			w.allowed[pos] |= classNames[ty]
		}
		w.checked = append(w.checked, pos)
	}
	return w
}

// chunk returns the per-row check of one scan query that reads rows with a
// key greater than after, and the function that records, once the query has
// read every row it returns, the range it read.
func (w *typeWatch) chunk(after int64, limit int) (row func([]driver.Value), done func()) {
	if w == nil {
		return nil, func() {}
	}
	rows, last := 0, after
	row = func(vals []driver.Value) {
		rows++
		if k, ok := vals[0].(int64); ok {
			last = k
		}
		for _, i := range w.checked {
			if c := classOf(vals[i]); w.allowed[i]&c == 0 {
				w.wrong(vals, i, c)
				return
			}
		}
	}
	done = func() {
		upto := last
		if rows < limit {
			upto = math.MaxInt64
		}
		w.mu.Lock()
		w.spans = append(w.spans, [2]int64{after, upto})
		w.mu.Unlock()
	}
	return row, done
}

// wrong records a value of the wrong class in scan position i, if its row
// is the first so far.
func (w *typeWatch) wrong(vals []driver.Value, i int, class uint8) {
	w.mu.Lock()
	defer w.mu.Unlock()
	key, ok := vals[0].(int64)
	if class == 0 || !ok {
		w.unknown = true
		return
	}
	if w.bad != nil && key >= w.badKey {
		return
	}
	name := w.scanned[i]
	c := w.cols[slices.IndexFunc(w.cols, func(c column) bool { return c.name == name })]
	w.bad, w.badKey = typeProblem(w.table, c, unquote(ident(w.key))+"="+sqlLiteral(key), className(class)), key
}

// complete reports whether the scans read every row with a key of at least
// 0 and checked every column that cols (the migrations') declares a type
// for, as the watch knew them.
func (w *typeWatch) complete(cols []column) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.usable || w.unknown || !slices.Equal(cols, w.cols) {
		return false
	}
	spans := slices.Clone(w.spans)
	slices.SortFunc(spans, func(a, b [2]int64) int {
		switch {
		case a[0] < b[0]:
			return -1
		case a[0] > b[0]:
			return 1
		}
		return 0
	})
	covered := int64(-1) // every key ≤ covered (and ≥ 0) was read
	for _, s := range spans {
		if s[0] > covered {
			return false
		}
		covered = max(covered, s[1])
	}
	return covered == math.MaxInt64
}

// problem is the first wrong value the scans found, or nil.
func (w *typeWatch) problem() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.bad == nil {
		return nil
	}
	return w.bad
}
