// Package ledgertest opens a real ledger (SQLite store, signing key,
// sequencer) in a folder, for tests of the packages built on the ledger.
package ledgertest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store/sqlite"
)

// Ledger is an open ledger on a SQLite store in Dir.
type Ledger struct {
	Dir    string
	Store  *sqlite.Store
	Signer *ledger.Signer
	Seq    *ledger.Sequencer
}

// Open opens (or creates) the store and signing key in dir, with key name
// origin, and starts a sequencer with cfg. Close it when done.
func Open(tb testing.TB, dir, origin string, cfg ledger.Config) *Ledger {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	sig, _, err := ledger.LoadOrCreateKey(filepath.Join(dir, ledger.KeyFileName), origin)
	if err != nil {
		st.Close()
		tb.Fatal(err)
	}
	seq, err := ledger.Open(ctx, st, st, st, sig, cfg)
	if err != nil {
		st.Close()
		tb.Fatal(err)
	}
	return &Ledger{Dir: dir, Store: st, Signer: sig, Seq: seq}
}

// Close stops the sequencer (signing the tail) and closes the store.
func (l *Ledger) Close() {
	l.Seq.Close()
	l.Store.Close()
}
