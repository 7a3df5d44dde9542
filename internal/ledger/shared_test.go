package ledger_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
)

// TestSequencersRacingOnOneDatabase: several nodes (each its own store pool
// and sequencer) append to one PostgreSQL ledger at once. Every receipt is
// unique, the indices are contiguous, each stored event matches its receipt,
// and the audit passes: no fork.
func TestSequencersRacingOnOneDatabase(t *testing.T) {
	ctx := context.Background()
	db := pgtest.FreshSchema(t)
	sig, _, err := ledger.LoadOrCreateKey(filepath.Join(t.TempDir(), ledger.KeyFileName), "custos.test/shared")
	if err != nil {
		t.Fatal(err)
	}
	const nodes, writers, per = 3, 4, 25
	var stores []*postgres.Store
	var seqs []*ledger.Sequencer
	for n := 0; n < nodes; n++ {
		st, err := postgres.Open(ctx, db, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		seq, err := ledger.Open(ctx, st, st, st, sig, ledger.Config{CheckpointEvery: 50, CheckpointInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		stores, seqs = append(stores, st), append(seqs, seq)
	}
	var mu sync.Mutex
	acked := map[uint64][]byte{}
	var wg sync.WaitGroup
	for n := range seqs {
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					rs, err := seqs[n].Append(ctx, "apikey:test", events(i, 1+i%4))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, r := range rs {
						if _, dup := acked[r.Index]; dup {
							t.Errorf("index %d acknowledged twice", r.Index)
						}
						acked[r.Index] = r.LeafHash
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for _, seq := range seqs {
		seq.Close()
	}
	for i := uint64(0); i < uint64(len(acked)); i++ {
		e, err := stores[0].Event(ctx, i)
		if err != nil {
			t.Fatalf("index %d: %v (indices not contiguous)", i, err)
		}
		if string(leaf.LeafHash(&e)) != string(acked[i]) {
			t.Fatalf("index %d: stored event differs from its receipt", i)
		}
	}
	// The fence: a writer that skips the lock and reuses an index is refused.
	stale := events(0, 1)
	stale[0].Index, stale[0].Timestamp = 3, time.Now().UTC().Truncate(time.Microsecond)
	err = stores[1].Append(ctx, &store.Batch{Events: stale, Nodes: []store.Node{{Pos: ledger.LeafPos(3), Hash: leaf.LeafHash(&stale[0])}}})
	if err == nil {
		t.Fatal("a second leaf at index 3 was committed: the ledger forked")
	}
	rep, err := ledger.Audit(ctx, stores[2], ledger.AuditOptions{VKey: sig.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem != nil || rep.Records != uint64(len(acked)) {
		t.Fatalf("audit after racing sequencers: %d records, problem %v; want %d intact", rep.Records, rep.Problem, len(acked))
	}
	if rep.Uncovered != 0 {
		t.Errorf("%d records not covered by a checkpoint after clean shutdowns", rep.Uncovered)
	}
}
