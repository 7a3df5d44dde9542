package ledger_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
)

// TestIdleLogSignedOnSchedule: the sequencer's ticker signs a checkpoint of
// an idle log's tail within the checkpoint interval, in fake time
// (testing/synctest): no test sleeps in real time for it.
func TestIdleLogSignedOnSchedule(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := ledgertest.Open(t, dir, "custos.test/ticker", ledger.Config{CheckpointInterval: time.Minute, CheckpointEvery: 1 << 40})
		defer l.Close()
		ev := custos.Event{User: custos.User{ID: "u", Roles: []string{}}, Action: custos.ActionRead, ResourceType: "Patient", Outcome: custos.OutcomeSuccess}
		// The first commit after the start is due (the start's own
		// checkpoint covers the empty log), so it carries a checkpoint; the
		// second is not due yet.
		for range 2 {
			if _, err := l.Seq.Append(ctx, "apikey:test", []custos.Event{ev}); err != nil {
				t.Fatal(err)
			}
		}
		cp, err := l.Store.LatestCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size == 2 {
			t.Fatalf("the second commit was signed at once; want it left to the ticker")
		}
		time.Sleep(time.Minute + time.Second) // fake time: the ticker fires
		synctest.Wait()
		cp, err = l.Store.LatestCheckpoint(ctx)
		if err != nil || cp.Size != 2 {
			t.Fatalf("after the interval the latest checkpoint is %+v (%v), want size 2", cp, err)
		}
	})
}
