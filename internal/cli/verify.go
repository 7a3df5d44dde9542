package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store/sqlite"
)

func verify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var cfg serverConfig
	fs.StringVar(&cfg.data, "data", "./custos-data", "data folder of the embedded SQLite store")
	fs.StringVar(&cfg.db, "db", "", "PostgreSQL URL (postgres://…) instead of the embedded store")
	fs.StringVar(&cfg.keyFile, "key-file", "", "signing key to take the public key from (default <data>/"+ledger.KeyFileName+")")
	pub := fs.String("public-key", "", "pinned verifier key (see custos public-key); overrides --key-file")
	bundle := fs.String("bundle", "", "an exported archive bundle to check offline")
	quiet := fs.Bool("quiet", false, "no progress output")
	checkIx := fs.Bool("index", false, "also check the embedded store's secondary index against the ledger (a deleted or altered entry would hide a record from searches)")
	if ok, code := parse(fs, args, stderr); !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "custos verify: "+format+"\n", a...)
		return exitError
	}
	switch {
	case *bundle != "":
		return fail("--bundle: archive bundles arrive with custos export; this release verifies stores (--data)")
	}
	vkey := strings.TrimSpace(*pub)
	if vkey == "" {
		b, err := os.ReadFile(cfg.keyPath())
		if err != nil {
			return fail("no public key: pass --public-key, or --key-file (%v)", err)
		}
		s, err := ledger.NewSigner(string(b))
		if err != nil {
			return fail("%v", err)
		}
		vkey = s.VerifierKey()
	}
	st, _, err := openStore(ctx, cfg, nil, true)
	if err != nil {
		return fail("%v", err)
	}
	defer st.Close()
	start := time.Now()
	var progress ledger.Progress
	if !*quiet {
		progress = func(n uint64) {
			fmt.Fprintf(stderr, "verified %d records (%.0f/s)\n", n, float64(n)/time.Since(start).Seconds())
		}
	}
	rep, err := ledger.Audit(ctx, st, vkey, progress)
	if err != nil {
		return fail("%v", err)
	}
	if rep.Problem != nil {
		fmt.Fprintf(stdout, "FAILED: record %d: %s\n", rep.Problem.Index, rep.Problem.Reason)
		fmt.Fprintf(stdout, "checked %d records before it in %s\n", rep.Records, rep.Elapsed.Round(time.Millisecond))
		return exitProblem
	}
	fmt.Fprintf(stdout, "OK: %d records, %d tree nodes and %d signed checkpoints are intact (%s, %.0f records/s)\n",
		rep.Records, rep.Nodes, rep.Checkpoints, rep.Elapsed.Round(time.Millisecond), float64(rep.Records)/rep.Elapsed.Seconds())
	if rep.Checkpoints > 0 {
		fmt.Fprintf(stdout, "latest checkpoint: size %d, origin %s\n", rep.LatestSize, rep.LatestOrigin)
	}
	if rep.Uncovered > 0 {
		fmt.Fprintf(stdout, "note: the last %d records are not yet covered by a signed checkpoint (one is signed within a second while the server runs)\n", rep.Uncovered)
	}
	if ix, ok := st.(*sqlite.Store); ok && *checkIx {
		return checkIndex(ctx, ix, stdout, stderr)
	}
	return exitOK
}

// checkIndex checks the embedded store's secondary index: a deleted or
// altered entry would hide an event from searches.
func checkIndex(ctx context.Context, st *sqlite.Store, stdout, stderr io.Writer) int {
	start := time.Now()
	p, err := st.CheckIndex(ctx)
	switch {
	case errors.Is(err, sqlite.ErrNoIndex):
		fmt.Fprintf(stdout, "index: none (it is rebuilt from the ledger on the next start)\n")
	case err != nil:
		fmt.Fprintf(stderr, "custos verify: %v\n", err)
		return exitError
	case p != nil:
		fmt.Fprintf(stdout, "FAILED: %v\n", p)
		return exitProblem
	default:
		fmt.Fprintf(stdout, "index: every indexed record is findable by its keys (%s)\n", time.Since(start).Round(time.Millisecond))
	}
	return exitOK
}

func publicKey(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("public-key", flag.ContinueOnError)
	var cfg serverConfig
	fs.StringVar(&cfg.data, "data", "./custos-data", "data folder holding the signing key")
	fs.StringVar(&cfg.keyFile, "key-file", "", "signing key (default <data>/"+ledger.KeyFileName+")")
	if ok, code := parse(fs, args, stderr); !ok {
		return code
	}
	b, err := os.ReadFile(cfg.keyPath())
	if err != nil {
		fmt.Fprintf(stderr, "custos public-key: %v (start custos serve once to create the key)\n", err)
		return exitError
	}
	s, err := ledger.NewSigner(string(b))
	if err != nil {
		fmt.Fprintln(stderr, "custos public-key:", err)
		return exitError
	}
	fmt.Fprintln(stdout, s.VerifierKey())
	return exitOK
}
