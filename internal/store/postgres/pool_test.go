package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
	"github.com/custos-audit/custos/internal/store/storetest"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestSearchesHaveTheirOwnPool: with every connection of the search pool
// taken (as long searches would take them), Ping (readiness), point reads,
// proofs' nodes, checkpoints, the ledger's head and appends are answered,
// and a search waits for a search connection until its deadline.
func TestSearchesHaveTheirOwnPool(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.FreshSchema(t), Options{MaxConns: 2, SearchConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Append(ctx, &store.Batch{Events: storetest.Events(0, 50),
		Nodes: []store.Node{{Pos: 0, Hash: make([]byte, 32)}}}); err != nil {
		t.Fatal(err)
	}
	var held []*pgxpool.Conn
	for range 2 {
		c, err := s.search.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// Were any of these to wait for a search connection, it would wait
	// until its deadline: none is due before the held ones are released.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Ping(wctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if _, err := s.Event(wctx, 3); err != nil {
		t.Errorf("Event: %v", err)
	}
	if _, err := s.Nodes(wctx, []uint64{0}); err != nil {
		t.Errorf("Nodes: %v", err)
	}
	if _, err := s.LatestCheckpoint(wctx); !errors.Is(err, custos.ErrNotFound) {
		t.Errorf("LatestCheckpoint: %v", err)
	}
	if _, err := s.Head(wctx); err != nil {
		t.Errorf("Head: %v", err)
	}
	if err := s.Append(wctx, &store.Batch{Events: storetest.Events(50, 10)}); err != nil {
		t.Errorf("Append: %v", err)
	}
	sctx, scancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer scancel()
	if _, err := s.Events(sctx, store.Query{PatientID: "p-1"}); err == nil {
		t.Error("a search ran while every search connection was taken")
	}
	for _, c := range held {
		c.Release()
	}
	if evs, err := s.Events(ctx, store.Query{PatientID: "p-1"}); err != nil || len(evs) == 0 {
		t.Fatalf("a search once the connections are back: %d events, %v", len(evs), err)
	}
	// A search runs in one backend: the API's bound on searches then
	// bounds the database's CPUs they take.
	var workers string
	if err := s.search.QueryRow(ctx, `SHOW max_parallel_workers_per_gather`).Scan(&workers); err != nil || workers != "0" {
		t.Errorf("max_parallel_workers_per_gather on the search pool: %q, %v; want 0", workers, err)
	}
}

// TestSearchCancelledOnTheServer: a statement on the search pool whose
// context ends is cancelled in the database, not left running there after
// the client gave up on it.
func TestSearchCancelledOnTheServer(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.FreshSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tag := fmt.Sprintf("custos-cancel-test-%d", rand.Uint64())
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = s.search.Exec(sctx, `SELECT pg_sleep(60) /* `+tag+` */`)
	if err == nil {
		t.Fatal("a 60 s statement finished within its 200 ms deadline")
	}
	running := func() int {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE state = 'active' AND query = $1`, `SELECT pg_sleep(60) /* `+tag+` */`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The cancel request is asynchronous: wait for it, up to 10 s.
	for end := time.Now().Add(10 * time.Second); running() > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the statement still runs in the database 10 s after its deadline")
		}
	}
}
