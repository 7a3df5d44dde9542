package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
	"github.com/custos-audit/custos/internal/store/storetest"
	"github.com/jackc/pgx/v5"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(context.Background(), pgtest.FreshSchema(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestMigrationChecksumMismatch(t *testing.T) {
	ctx := context.Background()
	u := pgtest.FreshSchema(t)
	s, err := postgres.Open(ctx, u, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE schema_migrations SET checksum = 'deadbeef' WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	_, err = postgres.Open(ctx, u, postgres.Options{})
	if err == nil || !strings.Contains(err.Error(), "0001_init.sql checksum mismatch") {
		t.Fatalf("Open after tampering with a migration: %v, want a checksum mismatch naming 0001_init.sql", err)
	}
}

func TestUnreachableDatabase(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=2", postgres.Options{})
	if err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("Open of an unreachable database: %v, want a clear error", err)
	}
}

func TestMonthlyPartitions(t *testing.T) {
	ctx := context.Background()
	u := pgtest.FreshSchema(t)
	s, err := postgres.Open(ctx, u, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := storetest.Events(0, 3)
	for i := range evs {
		evs[i].Timestamp = evs[i].Timestamp.AddDate(0, i*2, 0) // Nov, Jan, Mar
	}
	for i := range evs {
		if err := s.Append(ctx, &store.Batch{Events: evs[i : i+1]}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("%d partitions for events in three months, want 3", n)
	}
}
