package authn_test

import (
	"context"
	"github.com/custos-audit/custos/internal/clocktest"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
)

// TestKeysAcrossNodes: two authenticators on one store, as two nodes share a
// database. A key made on one works on the other at once; a revocation on one
// takes effect on the other within 2 s.
func TestKeysAcrossNodes(t *testing.T) {
	ctx := context.Background()
	l := ledgertest.Open(t, t.TempDir(), "custos.test/authn", ledger.Config{})
	defer l.Close()
	c := clocktest.New(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	a, err := authn.NewDirectory(ctx, l.Seq, ledger.NewStateFeed(l.Store, l.Signer.VerifierKey()), authn.Config{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	b, err := authn.NewDirectory(ctx, l.Seq, ledger.NewStateFeed(l.Store, l.Signer.VerifierKey()), authn.Config{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	key, token, err := a.Create(ctx, nil, authn.KeySpec{Name: "ehr", Scopes: []custos.Scope{custos.ScopeIngest}}, "")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(300 * time.Millisecond) // past the miss-reload spacing
	p, err := b.Authenticate(ctx, token)
	if err != nil {
		t.Fatalf("a key made on node A is refused on node B: %v", err)
	}
	if !p.Can(custos.PermEventsWrite) || p.Can(custos.PermEventsRead) {
		t.Errorf("ingest key permissions: %+v", p.Permissions)
	}
	if err := a.Revoke(ctx, nil, key.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, token); err == nil {
		t.Error("node A accepts a key it revoked")
	}
	c.Add(2100 * time.Millisecond)
	if _, err := b.Authenticate(ctx, token); custos.KindOf(err) != custos.Unauthenticated {
		t.Fatalf("node B accepts a key revoked on node A 2.1 s ago: %v", err)
	}
}

func TestBootstrap(t *testing.T) {
	ctx := context.Background()
	l := ledgertest.Open(t, t.TempDir(), "custos.test/authn", ledger.Config{})
	defer l.Close()
	k, err := authn.NewDirectory(ctx, l.Seq, ledger.NewStateFeed(l.Store, l.Signer.VerifierKey()), authn.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Bootstrap(ctx, "short"); err == nil {
		t.Error("a bootstrap token of 5 characters was accepted")
	}
	tok, err := k.Bootstrap(ctx, "")
	if err != nil || len(tok) < 40 {
		t.Fatalf("generated bootstrap token %q: %v", tok, err)
	}
	if again, err := k.Bootstrap(ctx, ""); err != nil || again != "" {
		t.Fatalf("second bootstrap of a store with keys: %q %v, want nothing", again, err)
	}
	p, err := k.Authenticate(ctx, tok)
	if err != nil || !p.Can(custos.PermKeysManage) {
		t.Fatalf("bootstrap token: %+v %v", p, err)
	}
}
