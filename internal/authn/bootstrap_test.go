package authn_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
)

// TestBootstrapRaceMakesOneKey: nodes starting together on an empty
// PostgreSQL database, without CUSTOS_BOOTSTRAP_TOKEN, create one
// administrator key between them and print one token, whoever wins.
func TestBootstrapRaceMakesOneKey(t *testing.T) {
	ctx := context.Background()
	db := pgtest.FreshSchema(t)
	sig, _, err := ledger.LoadOrCreateKey(filepath.Join(t.TempDir(), ledger.KeyFileName), "custos.test/bootstrap")
	if err != nil {
		t.Fatal(err)
	}
	const nodes = 4
	keys := make([]*authn.Directory, nodes)
	for i := range keys {
		st, err := postgres.Open(ctx, db, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		seq, err := ledger.Open(ctx, st, st, st, sig, ledger.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { seq.Close(); st.Close() })
		if keys[i], err = authn.NewDirectory(ctx, seq, ledger.NewStateFeed(st, sig.VerifierKey()), authn.Config{}); err != nil {
			t.Fatal(err)
		}
	}
	tokens := make([]string, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() { tokens[i], errs[i] = keys[i].Bootstrap(ctx, "") })
	}
	wg.Wait()
	printed := 0
	for i := range keys {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
		if tokens[i] != "" {
			printed++
		}
	}
	if printed != 1 {
		t.Fatalf("%d nodes printed a token, want exactly 1", printed)
	}
	for i := range keys {
		list, err := keys[i].List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].ID != "bootstrap" {
			t.Fatalf("node %d sees keys %+v, want the one bootstrap key", i, list)
		}
	}
}
