package sqlite_test

import (
	"context"
	"database/sql"
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
	dir := t.TempDir()
	s, err := sqlite.Open(context.Background(), dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := s.Path()
	s.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE schema_migrations SET checksum = 'deadbeef' WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = sqlite.Open(context.Background(), dir, sqlite.Options{})
	if err == nil || !strings.Contains(err.Error(), "0001_init.sql checksum mismatch") {
		t.Fatalf("Open after tampering with a migration: %v, want a checksum mismatch naming 0001_init.sql", err)
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
}
