package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/storetest"
)

// TestSearchesHaveTheirOwnPool: with every connection of the search pool
// taken (as long searches would take them), Ping (readiness), point reads,
// proofs' nodes, checkpoints, the ledger's reads, scans and appends are
// answered, and a search waits for a search connection until its deadline.
func TestSearchesHaveTheirOwnPool(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{SearchConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Append(ctx, &store.Batch{Events: storetest.Events(0, 50),
		Nodes: []store.Node{{Pos: 0, Hash: make([]byte, 32)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Events(ctx, store.Query{PatientID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	var held []*sql.Conn
	for range 2 {
		c, err := s.search.Conn(ctx)
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
	if _, _, err := s.RecordCount(wctx); err != nil {
		t.Errorf("RecordCount: %v", err)
	}
	if err := s.ScanEvents(wctx, 0, func(custos.Event) error { return nil }); err != nil {
		t.Errorf("ScanEvents: %v", err)
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
		c.Close()
	}
	if evs, err := s.Events(ctx, store.Query{PatientID: "p-1"}); err != nil || len(evs) == 0 {
		t.Fatalf("a search once the connections are back: %d events, %v", len(evs), err)
	}
}

// TestTimeBoundedSearchPlans: a search that no index key drives but a time
// range bounds walks the time index from its upper end and stops at its
// limit: it never sorts the whole range, and with a filter that no index
// serves it reads only the range.
func TestTimeBoundedSearchPlans(t *testing.T) {
	s, err := Open(context.Background(), t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	from, to := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for _, q := range []store.Query{
		{From: from, To: to}, {From: from}, {To: to}, {Outcome: "failure", From: from, To: to},
		{Action: "DELETE", From: from}, {Source: "x", To: to, After: &store.Cursor{Timestamp: to, Index: 9}},
	} {
		b, indexed := eventQueries(q)
		if indexed != nil {
			t.Fatalf("%+v is driven by a key table", q)
		}
		rows, err := s.search.Query(`EXPLAIN QUERY PLAN SELECT `+store.QualifiedEventColumns+` FROM `+b.From+
			` WHERE `+b.Where+` ORDER BY `+b.OrderBy+` LIMIT 10`, b.Args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			rows.Scan(&id, &parent, &notused, &detail)
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if !strings.Contains(p, "USING INDEX events_ts_action (ts") || strings.Contains(p, "TEMP B-TREE FOR ORDER BY") {
			t.Errorf("%+v: %s", q, p)
		}
	}
}

// TestConcurrentSearchesPrepare: more concurrent indexed searches than the
// search pool has connections, each of a SQL text not prepared yet, all
// finish. (A statement prepared on the pool inside a search's transaction
// waited for a connection that only the other waiting searches held, until
// their deadlines.)
func TestConcurrentSearchesPrepare(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{SearchConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Append(ctx, &store.Batch{Events: storetest.Events(0, 50)}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	errs := make(chan error)
	for i := range 16 {
		go func() {
			_, err := s.Events(wctx, store.Query{PatientID: "p-1", Limit: 2 + i})
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
