package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
	"github.com/custos-audit/custos/internal/store/storetest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// eventsAt returns n valid events from index from, all at ts.
func eventsAt(from uint64, n int, ts time.Time) *store.Batch {
	evs := storetest.Events(from, n)
	for i := range evs {
		evs[i].Timestamp = ts.Add(time.Duration(i) * time.Microsecond)
	}
	return &store.Batch{Events: evs}
}

// TestPartitionCacheSurvivesFailedAppend: an append whose first event opens
// a new month and whose later row the database refuses rolls back, the new
// partition with it. The store must not remember that partition: the next
// append in that month creates it again and commits. (Before the fix the
// cache was set inside the transaction, and every later append in the month
// failed with "no partition of relation events found for row" until
// restart.)
func TestPartitionCacheSurvivesFailedAppend(t *testing.T) {
	ctx := context.Background()
	s, err := postgres.Open(ctx, pgtest.FreshSchema(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	month := time.Date(2031, 3, 14, 9, 0, 0, 0, time.UTC) // no partition exists for it
	bad := eventsAt(0, 3, month)
	bad.Events[2].Changes = []byte("{\"note\":\"\xff\"}") // invalid UTF-8: SQLSTATE 22021
	err = s.Append(ctx, bad)
	var pg *pgconn.PgError
	if err == nil || !errors.As(err, &pg) || pg.Code != "22021" {
		t.Fatalf("append with invalid UTF-8 in changes: %v; want SQLSTATE 22021", err)
	}
	if !store.IsPermanent(err) || !errors.Is(err, store.ErrPermanent) {
		t.Fatalf("a refusal of the data is classified %v, want permanent", store.CauseOf(err))
	}
	h, err := s.Head(ctx)
	if err != nil || h.Size != 0 {
		t.Fatalf("head after the failed append: %+v, %v; want nothing stored", h, err)
	}
	for i, b := range []*store.Batch{eventsAt(0, 2, month), eventsAt(2, 2, month.AddDate(0, 0, 3))} {
		if err := s.Append(ctx, b); err != nil {
			t.Fatalf("append %d in the month of the failed append: %v", i, err)
		}
	}
	if e, err := s.Event(ctx, 3); err != nil || !e.Timestamp.Equal(month.AddDate(0, 0, 3).Add(time.Microsecond)) {
		t.Fatalf("event 3: %+v, %v", e, err)
	}
}

// TestAppendErrorsClassified: real PostgreSQL failures reach the sequencer
// with their cause: the data (permanent), the fence and a database that
// went away (pushback).
func TestAppendErrorsClassified(t *testing.T) {
	ctx := context.Background()
	app := fmt.Sprintf("custos-classify-%d", time.Now().UnixNano())
	u, _ := url.Parse(pgtest.FreshSchema(t))
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	s, err := postgres.Open(ctx, u.String(), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	ok := eventsAt(0, 1, ts)
	ok.Nodes = []store.Node{{Pos: 0, Hash: make([]byte, 32)}}
	if err := s.Append(ctx, ok); err != nil {
		t.Fatal(err)
	}

	t.Run("NUL in text", func(t *testing.T) {
		b := eventsAt(1, 1, ts)
		b.Events[0].UserAgent = "agent\x00"
		if err := s.Append(ctx, b); !store.IsPermanent(err) {
			t.Fatalf("NUL in a text column: %v (%v), want permanent", err, store.CauseOf(err))
		}
	})
	t.Run("fence", func(t *testing.T) {
		// Another writer took position 0: a later timestamp, the same leaf.
		b := eventsAt(0, 1, ts.Add(time.Second))
		b.Nodes = []store.Node{{Pos: 0, Hash: make([]byte, 32)}}
		err := s.Append(ctx, b)
		var pg *pgconn.PgError
		if !errors.As(err, &pg) || pg.Code != "23505" {
			t.Fatalf("a second leaf at index 0: %v, want a unique violation", err)
		}
		if !store.IsPushback(err) {
			t.Fatalf("the fence (%s on %s) is classified %v, want pushback", pg.ConstraintName, pg.TableName, store.CauseOf(err))
		}
	})
	t.Run("terminated", func(t *testing.T) {
		admin, err := pgx.Connect(ctx, pgtest.ServerURL(t))
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctx)
		// The backend is terminated inside the append, after the lock and
		// before the rows: as when an administrator or a failover cuts it.
		err = s.AppendLocked(ctx, func(h store.Head) (*store.Batch, error) {
			if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app); err != nil {
				return nil, err
			}
			return eventsAt(h.Size, 1, ts.Add(time.Minute)), nil
		})
		if err == nil || !store.IsPushback(err) {
			t.Fatalf("append on a terminated backend: %v (%v), want pushback", err, store.CauseOf(err))
		}
		t.Logf("terminated backend: %v", err)
	})
	t.Run("closed pool", func(t *testing.T) {
		s2, err := postgres.Open(ctx, u.String(), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s2.Close()
		err = s2.Append(ctx, eventsAt(1, 1, ts))
		if err == nil || !store.IsPushback(err) {
			t.Fatalf("append on a closed store: %v (%v), want pushback", err, store.CauseOf(err))
		}
	})
	s3, err := postgres.Open(ctx, u.String(), postgres.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if h, err := s3.Head(ctx); err != nil || h.Size != 1 {
		t.Fatalf("head after the failures: %+v, %v; want only the first event", h, err)
	}
}
