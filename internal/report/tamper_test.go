package report_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/report"
	"github.com/transparency-dev/merkle/compact"
)

// TestTamperedLedgerStillReports: a report over a ledger changed behind
// Custos's back still renders, with the failure at the top (the warning)
// and in the integrity section, naming what failed; on both stores.
func TestTamperedLedgerStillReports(t *testing.T) {
	for _, kind := range stores {
		for _, tc := range []struct {
			name  string
			sql   func(first uint64) string
			check string
		}{
			{"event deleted", func(first uint64) string {
				return fmt.Sprintf("DELETE FROM events WHERE idx = (SELECT min(idx) FROM events WHERE idx > %d)", first+5)
			}, "period range"},
			{"event changed", func(first uint64) string {
				return fmt.Sprintf("UPDATE events SET user_id = 'someone.else' WHERE idx = %d", first)
			}, "sampled records"},
			{"tree node changed", func(uint64) string {
				// The root of the first 128 leaves: part of every root from size 128 on.
				pos := ledger.NodePos(compact.NewNodeID(7, 0))
				return fmt.Sprintf("UPDATE tree_nodes SET hash = (SELECT hash FROM tree_nodes WHERE pos = 0) WHERE pos = %d", pos)
			}, "checkpoint root"},
		} {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				s := newScenario(t, kind)
				b := s.builder(report.Config{})
				ctx := context.Background()
				before, err := b.HIPAA(ctx, report.Request{From: periodFrom, To: periodTo})
				if err != nil || !before.Integrity.OK || before.Warning != "" {
					t.Fatalf("before tampering: %v, %+v", err, before.Integrity)
				}
				s.tamper(t, strings.Split(tc.sql(*before.Integrity.FirstIndex), "; ")...)
				r, err := b.HIPAA(ctx, report.Request{From: periodFrom, To: periodTo})
				if err != nil {
					t.Fatalf("a tampered ledger must still get its report: %v", err)
				}
				if r.Integrity.OK || !strings.HasPrefix(r.Warning, "INTEGRITY CHECK FAILED") {
					t.Fatalf("tampering not reported at the top: warning %q, integrity %+v", r.Warning, r.Integrity)
				}
				failed := false
				for _, c := range r.Integrity.Checks {
					if c.Name == tc.check && !c.OK {
						failed = true
					}
				}
				if !failed || !strings.Contains(r.Warning, tc.check) {
					t.Errorf("check %q did not fail: %+v", tc.check, r.Integrity.Checks)
				}
			})
		}
	}
}
