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
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/sqlite"
	"github.com/custos-audit/custos/internal/witness"
	"golang.org/x/mod/sumdb/note"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// verifyConfig is what custos verify is told.
type verifyConfig struct {
	serverConfig
	publicKey, bundle   string
	trusted, witnessKey listFlag
	witnesses           listFlag
	quorum              int
	witnessGrace        time.Duration
	interval            time.Duration
	allowTail, quiet    bool
	checkIndex          bool
	searchSample        int
}

func verify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var c verifyConfig
	fs.StringVar(&c.data, "data", "./custos-data", "data folder of the embedded SQLite store")
	fs.StringVar(&c.db, "db", "", "PostgreSQL URL (postgres://…) instead of the embedded store")
	fs.StringVar(&c.keyFile, "key-file", "", "signing key to take the public key from (default <data>/"+ledger.KeyFileName+"); prefer --public-key")
	fs.StringVar(&c.publicKey, "public-key", "", "pinned verifier key (see custos public-key); overrides --key-file")
	fs.StringVar(&c.bundle, "bundle", "", "an exported archive bundle to check offline")
	fs.Var(&c.trusted, "trusted-checkpoint", "a signed checkpoint saved earlier (the body of GET /v1/checkpoint); the ledger must extend it (repeatable)")
	fs.Var(&c.witnessKey, "witness-key", "a witness's cosignature verifier key; checkpoints must carry --witness-quorum valid cosignatures (repeatable)")
	fs.Var(&c.witnesses, "witness", "URL,KEY of a witness to ask online whether it has seen a larger tree (catches a rollback of the whole store; repeatable)")
	fs.IntVar(&c.quorum, "witness-quorum", 0, "cosignatures each witnessed checkpoint needs (default: one per --witness-key)")
	fs.DurationVar(&c.witnessGrace, "witness-grace", time.Minute, "how long a new checkpoint may stay unwitnessed (the server submits it to the witnesses as it signs it)")
	fs.DurationVar(&c.interval, "checkpoint-interval", time.Second, "the server's --checkpoint-interval")
	fs.BoolVar(&c.allowTail, "allow-uncovered-tail", false, "accept records beyond the newest checkpoint however old (a server that crashed and never restarted)")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress output")
	fs.IntVar(&c.searchSample, "search-sample", 100, "records, spread over the ledger, that must each be found by a search on every indexed field through the API's query path")
	fs.BoolVar(&c.checkIndex, "index", false, "also check the embedded store's secondary index against the ledger (a deleted or altered entry would hide a record from searches)")
	if ok, code := parse(fs, args, stderr); !ok {
		if code == exitUsageErr {
			code = exitError
		}
		return code
	}
	v := verifier{c: c, stdout: stdout, stderr: stderr}
	return v.run(ctx)
}

type verifier struct {
	c              verifyConfig
	stdout, stderr io.Writer
}

// usage reports that verify could not run (exit 2).
func (v *verifier) usage(format string, a ...any) int {
	fmt.Fprintf(v.stderr, "custos verify: "+format+"\n", a...)
	return exitError
}

// failed reports the first bad thing (exit 1).
func (v *verifier) failed(format string, a ...any) int {
	fmt.Fprintf(v.stdout, "FAILED: "+format+"\n", a...)
	return exitProblem
}

func (v *verifier) run(ctx context.Context) int {
	c := &v.c
	if c.bundle != "" {
		return v.usage("--bundle: archive bundles arrive with custos export; this release verifies stores (--data or --db)")
	}
	vkey, pinned, code := v.key()
	if code >= 0 {
		return code
	}
	witnessKeys, quorum, code := v.witnessKeys()
	if code >= 0 {
		return code
	}
	anchors, code := v.anchors(vkey, pinned)
	if code >= 0 {
		return code
	}
	if c.db == "" {
		if _, err := os.Stat(c.data); err != nil {
			return v.usage("no data folder at %s: %v", c.data, err)
		}
	}
	st, _, err := openStore(ctx, c.serverConfig, nil, true)
	if err != nil {
		return v.usage("%v", err)
	}
	defer st.Close()
	if p := checkSchema(ctx, st); p != nil {
		return v.schemaProblem(p)
	}
	// On SQLite the audit's own scans of the events and tree nodes also
	// check their values' storage types; the rest of that check runs after.
	src, err := auditSource(ctx, st)
	if err != nil {
		return v.usage("%v", err)
	}
	start := time.Now()
	opt := ledger.AuditOptions{VKey: vkey, Anchors: anchors, CheckpointInterval: c.interval, AllowUncoveredTail: c.allowTail}
	if !c.quiet {
		opt.Progress = func(n uint64) {
			fmt.Fprintf(v.stderr, "verified %d records (%.0f/s)\n", n, float64(n)/time.Since(start).Seconds())
		}
	}
	rep, err := ledger.Audit(ctx, src, opt)
	if err != nil {
		return v.usage("%v", err)
	}
	if rep.Problem != nil {
		code := v.failed("record %d: %s", rep.Problem.Index, rep.Problem.Reason)
		fmt.Fprintf(v.stdout, "checked %d records before it in %s\n", rep.Records, rep.Elapsed.Round(time.Millisecond))
		return code
	}
	// The rest of the storage-type check and the sampled searches run side
	// by side: both only read. A storage problem is reported first.
	types := make(chan error, 1)
	go func() { types <- checkStorageTypes(ctx, src) }()
	searchStart := time.Now()
	p, serr := ledger.SearchCheck(ctx, src, rep.Records, c.searchSample)
	searched := time.Since(searchStart)
	if terr := <-types; terr != nil {
		return v.schemaProblem(terr)
	}
	if serr != nil {
		return v.usage("%v", serr)
	} else if p != nil {
		return v.failed("record %d: %s", p.Index, p.Reason)
	}
	if code := v.checkWitnessed(ctx, st, vkey, witnessKeys, quorum); code >= 0 {
		return code
	}
	if code := v.askWitnesses(ctx, st, vkey); code >= 0 {
		return code
	}
	fmt.Fprintf(v.stdout, "OK: %d records (%d of them state records), %d tree nodes and %d signed checkpoints are intact (%s, %.0f records/s)\n",
		rep.Records, rep.States, rep.Nodes, rep.Checkpoints, rep.Elapsed.Round(time.Millisecond), float64(rep.Records)/rep.Elapsed.Seconds())
	if rep.Checkpoints > 0 {
		fmt.Fprintf(v.stdout, "latest checkpoint: size %d, origin %s\n", rep.LatestSize, rep.LatestOrigin)
	}
	fmt.Fprintf(v.stdout, "schema and storage types: as the migrations create them; searches: %d sampled records found by every indexed field (%s)\n",
		min(uint64(c.searchSample), rep.Records), searched.Round(time.Millisecond))
	if rep.Uncovered > 0 {
		fmt.Fprintf(v.stdout, "note: the last %d records are not yet covered by a signed checkpoint (one is signed within %s while the server runs)\n", rep.Uncovered, c.interval)
	}
	v.sayAnchors(pinned, rep, len(witnessKeys), quorum)
	if ix, ok := st.(*sqlite.Store); ok && c.checkIndex {
		return checkIndex(ctx, ix, v.stdout, v.stderr)
	}
	return exitOK
}

// key returns the verifier key and whether it was pinned; code ≥ 0 ends.
func (v *verifier) key() (vkey string, pinned bool, code int) {
	c := &v.c
	if vkey = strings.TrimSpace(c.publicKey); vkey != "" {
		if _, err := note.NewVerifier(vkey); err != nil {
			return "", false, v.usage("--public-key is not a verifier key (<origin>+<hash>+<key>, as custos public-key prints it): %v", err)
		}
		return vkey, true, -1
	}
	b, err := os.ReadFile(c.keyPath())
	if err != nil {
		return "", false, v.usage("no public key: pass --public-key (the output of custos public-key), or --key-file: %v", err)
	}
	s, err := ledger.NewSigner(string(b))
	if err != nil {
		return "", false, v.usage("%s: %v", c.keyPath(), err)
	}
	return s.VerifierKey(), false, -1
}

func (v *verifier) witnessKeys() ([]string, int, int) {
	c := &v.c
	for _, k := range c.witnessKey {
		if _, err := witness.NewVerifier(k); err != nil {
			return nil, 0, v.usage("--witness-key %q: %v", k, err)
		}
	}
	q := c.quorum
	if q == 0 {
		q = len(c.witnessKey)
	}
	if q < 0 || q > len(c.witnessKey) {
		return nil, 0, v.usage("--witness-quorum %d: must be between 1 and the number of --witness-key (%d)", c.quorum, len(c.witnessKey))
	}
	return c.witnessKey, q, -1
}

// anchors reads the trusted checkpoints. One that does not verify with the
// log's key is a failure when the key was pinned (the file is not this
// log's) and when it was not (the key in the data folder may be a swap).
func (v *verifier) anchors(vkey string, pinned bool) ([]ledger.Anchor, int) {
	var out []ledger.Anchor
	for _, f := range v.c.trusted {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, v.usage("--trusted-checkpoint: %v", err)
		}
		cp, err := ledger.OpenCheckpoint(b, vkey)
		if err != nil {
			if pinned {
				return nil, v.usage("--trusted-checkpoint %s does not verify with the pinned public key (another log, or altered): %v", f, err)
			}
			return nil, v.failed("the trusted checkpoint %s does not verify with the key in the data folder: the signing key was replaced, or the file is another log's (%v)", f, err)
		}
		out = append(out, ledger.Anchor{Name: f, Size: cp.Size, Root: cp.Hash})
	}
	return out, -1
}

func (v *verifier) sayAnchors(pinned bool, rep *ledger.AuditReport, witnessKeys, quorum int) {
	if pinned {
		fmt.Fprintln(v.stdout, "public key: pinned (--public-key)")
	} else {
		fmt.Fprintf(v.stdout, "public key: read from %s, NOT pinned: a key replaced together with every checkpoint would go unnoticed; pass --public-key\n", v.c.keyPath())
	}
	switch {
	case rep.Trusted > 0 || witnessKeys > 0 || len(v.c.witnesses) > 0:
		fmt.Fprintf(v.stdout, "anchors: %d trusted checkpoints extended; witnessed: %d of %d witness keys required per checkpoint; witnesses asked online: %d\n",
			rep.Trusted, quorum, witnessKeys, len(v.c.witnesses))
	default:
		fmt.Fprintln(v.stdout, "anchors: none: a rollback of the whole store to an earlier consistent state would go unnoticed; pass --trusted-checkpoint or --witness-key")
	}
}

// checkSchema runs the store's schema and storage checks, when it has them.
func checkSchema(ctx context.Context, st store.Store) error {
	type schemaChecker interface {
		CheckSchema(ctx context.Context) error
	}
	if sc, ok := st.(schemaChecker); ok {
		return sc.CheckSchema(ctx)
	}
	return nil
}

// auditSource is what the audit reads: on SQLite, the store's TypeScan view,
// whose scans check the storage types of the rows they read.
func auditSource(ctx context.Context, st store.Store) (store.Store, error) {
	if s, ok := st.(*sqlite.Store); ok {
		return s.TypeScan(ctx)
	}
	return st, nil
}

// checkStorageTypes runs the store's storage-type check, when it has one
// (SQLite: every value must have its column's declared type).
func checkStorageTypes(ctx context.Context, st store.Store) error {
	type typeChecker interface {
		CheckStorageTypes(ctx context.Context) error
	}
	if tc, ok := st.(typeChecker); ok {
		return tc.CheckStorageTypes(ctx)
	}
	return nil
}

// schemaProblem reports a schema or storage problem as tampering (exit 1),
// any other error as could not run (exit 2).
func (v *verifier) schemaProblem(err error) int {
	if errors.As(err, new(*store.SchemaProblem)) {
		return v.failed("%v", err)
	}
	return v.usage("%v", err)
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
