package ledger_test

import (
	"context"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/ledger"
)

func BenchmarkLeafHash(b *testing.B) {
	e := event(7)
	e.Index = 123456
	b.ReportAllocs()
	for b.Loop() {
		leaf.LeafHash(&e)
	}
}

// BenchmarkSequencerAppend500 measures one durable group commit of 500
// events into a real SQLite store (ns/op is per batch).
func BenchmarkSequencerAppend500(b *testing.B) {
	h := open(b, b.TempDir(), ledger.Config{})
	defer h.close()
	batch := make([]custos.Event, 500)
	for i := range batch {
		batch[i] = event(i)
	}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := h.seq.Append(ctx, "apikey:test", batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
}
