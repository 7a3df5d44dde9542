package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/sqlite"
	"github.com/custos-audit/custos/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestMigrationChecksumMismatch: a database whose applied migration differs
// from the release's is refused, naming the migration.
func TestMigrationChecksumMismatch(t *testing.T) {
	for _, file := range []string{sqlite.FileName, sqlite.IndexFileName} {
		t.Run(file, func(t *testing.T) { testMigrationChecksumMismatch(t, file) })
	}
}

// testMigrationChecksumMismatch: a tampered migration record in either file
// stops the opening (the index file's setup errors once went unseen).
func testMigrationChecksumMismatch(t *testing.T, file string) {
	dir := t.TempDir()
	s, err := sqlite.Open(context.Background(), dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE schema_migrations SET checksum = 'deadbeef' WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	st, err := sqlite.Open(context.Background(), dir, sqlite.Options{})
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || st != nil {
		t.Fatalf("Open after tampering with a migration of %s: %v (store %v), want a checksum mismatch and no store", file, err, st)
	}
}

func TestDurabilitySettings(t *testing.T) {
	s, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db, err := sql.Open("sqlite", "file:"+s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q (%v), want wal", mode, err)
	}
	for _, f := range []string{s.Path(), s.Path() + "-wal", filepath.Join(filepath.Dir(s.Path()), sqlite.IndexFileName)} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600: the files hold PHI", filepath.Base(f), fi.Mode().Perm())
		}
	}
}

func patientCount(t *testing.T, s *sqlite.Store, patient string) int {
	t.Helper()
	evs, err := s.Events(context.Background(), store.Query{PatientID: patient, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// TestIndexRebuiltFromLedger: the index file is derived data. Deleted, or
// behind the ledger (as after a power loss: it commits without fsync), it is
// brought up to date from the ledger on open, and searches find everything.
func TestIndexRebuiltFromLedger(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	evs := storetest.Events(0, 500)
	if err := s.Append(ctx, &store.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, e := range evs {
		if e.PatientID == "p-3" {
			want++
		}
	}
	if got := patientCount(t, s, "p-3"); got != want {
		t.Fatalf("p-3 has %d events, want %d", got, want)
	}
	s.Close()

	for name, damage := range map[string]func(){
		"deleted": func() {
			for _, f := range []string{"", "-wal", "-shm"} {
				os.Remove(filepath.Join(dir, sqlite.IndexFileName+f))
			}
		},
		"behind": func() {
			db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.IndexFileName))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for _, q := range []string{`DELETE FROM ix_patient WHERE idx >= 200`, `UPDATE ix_state SET upto = 200`} {
				if _, err := db.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			damage()
			s, err := sqlite.Open(ctx, dir, sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := patientCount(t, s, "p-3"); got != want {
				t.Fatalf("after the index was %s, p-3 has %d events, want %d", name, got, want)
			}
		})
	}
}

// TestStaleIndexEntryNeverMatches: an index entry pointing at an event with
// another key (left by a commit that failed) is ignored by searches.
func TestStaleIndexEntryNeverMatches(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := storetest.Events(0, 20)
	if err := s.Append(ctx, &store.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	patientCount(t, s, "p-1") // let the index catch up
	s.Close()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.IndexFileName))
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`INSERT INTO ix_patient VALUES ('p-stale', ?, 5)`, evs[5].Timestamp.UnixMicro())
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := patientCount(t, s, "p-stale"); got != 0 {
		t.Fatalf("a stale index entry surfaced %d events", got)
	}
}

// TestParallelFold: a report window read as several index ranges on
// several connections gives the same groups as a walk over the events.
func TestParallelFold(t *testing.T) {
	defer sqlite.SetFoldMinPart(7)()
	s, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.Aggregates(t, s)
}
