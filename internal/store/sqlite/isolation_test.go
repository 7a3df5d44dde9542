package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/sqlite"
	"github.com/custos-audit/custos/internal/store/storetest"
	lite "modernc.org/sqlite"
)

// TestAppendErrorsClassified: real SQLite failures of Append carry their
// cause: a constraint the data breaks is permanent; the fence (a ledger
// position taken), a database held busy past the deadline are pushback; a
// trigger's refusal is unknown.
// Each failed append stores nothing, and the next one commits.
func TestAppendErrorsClassified(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	side, err := sql.Open("sqlite", "file:"+s.Path()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close()
	if err := s.Append(ctx, &store.Batch{Events: storetest.Events(0, 2)}); err != nil {
		t.Fatal(err)
	}
	wantSize := func(n uint64) {
		t.Helper()
		if h, err := s.Head(ctx); err != nil || h.Size != n {
			t.Fatalf("head %+v, %v; want %d records", h, err, n)
		}
	}

	t.Run("not null", func(t *testing.T) {
		// A tree node without its hash: SQLITE_CONSTRAINT_NOTNULL.
		err := s.Append(ctx, &store.Batch{Events: storetest.Events(2, 1), Nodes: []store.Node{{Pos: 2, Hash: nil}}})
		var le *lite.Error
		if !errors.As(err, &le) || le.Code() != 1299 {
			t.Fatalf("a NULL in a NOT NULL column: %v, want SQLITE_CONSTRAINT_NOTNULL", err)
		}
		if !store.IsPermanent(err) || !errors.Is(err, store.ErrPermanent) {
			t.Fatalf("a constraint the data breaks is classified %v, want permanent", store.CauseOf(err))
		}
		wantSize(2)
	})
	t.Run("trigger", func(t *testing.T) {
		// Custos has no triggers: one that refuses rows is not a verdict on
		// the data by the schema's rules, and must not be answered as one.
		if _, err := side.Exec(`CREATE TRIGGER refuse_poison BEFORE INSERT ON events
			WHEN NEW.resource_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poison refused'); END`); err != nil {
			t.Fatal(err)
		}
		defer side.Exec(`DROP TRIGGER refuse_poison`)
		evs := storetest.Events(2, 3)
		evs[2].ResourceID = "poison"
		err := s.Append(ctx, &store.Batch{Events: evs})
		var le *lite.Error
		if !errors.As(err, &le) || le.Code() != 1811 {
			t.Fatalf("append refused by a trigger: %v, want SQLITE_CONSTRAINT_TRIGGER", err)
		}
		if store.CauseOf(err) != store.CauseUnknown {
			t.Fatalf("a trigger's refusal is classified %v, want unknown", store.CauseOf(err))
		}
		wantSize(2)
	})
	t.Run("fence", func(t *testing.T) {
		err := s.Append(ctx, &store.Batch{Events: storetest.Events(1, 2)})
		var le *lite.Error
		if !errors.As(err, &le) || le.Code() != 1555 {
			t.Fatalf("a second event at index 1: %v, want SQLITE_CONSTRAINT_PRIMARYKEY", err)
		}
		if !store.IsPushback(err) {
			t.Fatalf("the fence is classified %v, want pushback", store.CauseOf(err))
		}
		wantSize(2)
	})
	t.Run("busy", func(t *testing.T) {
		conn, err := side.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
			t.Fatal(err)
		}
		actx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err = s.Append(actx, &store.Batch{Events: storetest.Events(2, 1)})
		cancel()
		if _, rerr := conn.ExecContext(ctx, `ROLLBACK`); rerr != nil {
			t.Fatal(rerr)
		}
		if err == nil || !store.IsPushback(err) || !errors.Is(err, store.ErrPushback) {
			t.Fatalf("append while another connection writes: %v (%v), want pushback", err, store.CauseOf(err))
		}
		t.Logf("busy: %v", err)
		wantSize(2)
	})
	if err := s.Append(ctx, &store.Batch{Events: storetest.Events(2, 3)}); err != nil {
		t.Fatalf("append after the failures: %v", err)
	}
	wantSize(5)
}
