package monitor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/clocktest"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/rules"
)

// TestWriteBatchWithAConflictKeepsTheRest: the monitor writes its records
// many to a commit. When another node created one of them first, that one
// is dropped and every other record of the batch still lands, once.
func TestWriteBatchWithAConflictKeepsTheRest(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC))
	l := ledgertest.Open(t, t.TempDir(), "custos.test/monitor", ledger.Config{Now: clk.Now, LocalClock: true})
	t.Cleanup(l.Close)
	m, err := New(context.Background(), l.Store, l.Seq, ledger.NewStateFeed(l.Store, l.Signer.VerifierKey()),
		Config{Rules: rules.DefaultConfig(), Now: clk.Now, UpdateEvery: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	doc := func(i int) leaf.StateRecord {
		d := eventDoc{ID: fmt.Sprintf("se-%03d", i), EventType: custos.BruteForce, Severity: custos.SeverityHigh,
			Description: "test", Rule: "brute_force", Status: custos.StatusOpen, Count: 1}
		return d.record(leaf.OpCreate)
	}
	// Another node's create of se-002, before this node's batch.
	if _, err := l.Seq.Append(context.Background(), "custos", nil, doc(2)); err != nil {
		t.Fatal(err)
	}
	var batch []leaf.StateRecord
	for i := range writeChunk + 10 { // two chunks, the conflict in the first
		batch = append(batch, doc(i))
	}
	if !m.write(context.Background(), batch) {
		t.Fatal("write reported nothing written")
	}
	recs, err := l.Store.StateRecords(context.Background(), -1)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range recs {
		if r.Entity == EntitySecurityEvent {
			seen[r.ID]++
		}
	}
	if len(seen) != writeChunk+10 {
		t.Errorf("%d security events recorded, want %d", len(seen), writeChunk+10)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s recorded %d times", id, n)
		}
	}
}
