package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one forward-only schema step, embedded in a store's binary.
// Files are named NNNN_description.sql; Checksum is SHA-256 of the file.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string
}

// LoadMigrations reads the *.sql files of dir in fsys, in version order.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("store: migration %q is not named NNNN_description.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("store: read migration %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("store: migrations must be numbered 1, 2, 3…: found %s at position %d", m.Name, i+1)
		}
	}
	return ms, nil
}

// Pending checks the applied migrations (version → checksum) against the
// embedded ones and returns those still to apply. A changed or unknown applied
// migration is an error naming it: the database was altered, or belongs to a
// newer release.
func Pending(ms []Migration, applied map[int]string) ([]Migration, error) {
	for v, sum := range applied {
		if v < 1 || v > len(ms) {
			return nil, fmt.Errorf("store: database has migration %d, unknown to this release (newer custos?)", v)
		}
		if m := ms[v-1]; m.Checksum != sum {
			return nil, fmt.Errorf("store: migration %s checksum mismatch: database has %s, release has %s; refusing to start", m.Name, sum, m.Checksum)
		}
	}
	var todo []Migration
	for _, m := range ms {
		if _, ok := applied[m.Version]; !ok {
			todo = append(todo, m)
		}
	}
	return todo, nil
}

// AppliedQuery reads the applied migrations; Applied scans its rows.
const AppliedQuery = `SELECT version, checksum FROM schema_migrations`

// Applied reads the rows of AppliedQuery as version → checksum. The caller
// closes rows.
func Applied(rows Rows) (map[int]string, error) {
	type applied struct {
		v   int
		sum string
	}
	list, err := Collect(rows, func(r Row) (applied, error) {
		var a applied
		err := r.Scan(&a.v, &a.sum)
		return a, err
	})
	if err != nil {
		return nil, err
	}
	m := make(map[int]string, len(list))
	for _, a := range list {
		m[a.v] = a.sum
	}
	return m, nil
}

// readerOptional names the migrations a reader of an older store (verify,
// and every read-only open) can do without: they only add a table that the
// older release never wrote to, and the readers treat it as empty. A
// read-only open of a store that lacks only these reads it as it is, and
// compares its schema with the migrations it has; any other pending
// migration still needs custos serve to apply it first.
var readerOptional = map[string]bool{DeliveriesMigration: true}

// DeliveriesMigration creates the deliveries table (idempotent delivery).
const DeliveriesMigration = "0003_deliveries.sql"

// ReadableWithout reports whether a reader can use a store whose pending
// migrations are todo, and which of the optional ones it lacks.
func ReadableWithout(todo []Migration) (lacking map[string]bool, ok bool) {
	lacking = map[string]bool{}
	for _, m := range todo {
		if !readerOptional[m.Name] {
			return nil, false
		}
		lacking[m.Name] = true
	}
	return lacking, true
}

// Without returns fsys with the files of dir named in skip hidden: the
// migrations a store was made with, for the schema checks of a store opened
// read-only that lacks some optional ones.
func Without(fsys fs.FS, dir string, skip map[string]bool) fs.FS {
	if len(skip) == 0 {
		return fsys
	}
	return hiddenFS{fsys, dir, skip}
}

type hiddenFS struct {
	fs.FS
	dir  string
	skip map[string]bool
}

func (h hiddenFS) ReadDir(name string) ([]fs.DirEntry, error) {
	ents, err := fs.ReadDir(h.FS, name)
	if err != nil || name != h.dir {
		return ents, err
	}
	out := ents[:0:0]
	for _, e := range ents {
		if !h.skip[e.Name()] {
			out = append(out, e)
		}
	}
	return out, nil
}
