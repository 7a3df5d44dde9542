package cli

import (
	"bytes"
	"context"
	"fmt"
	"github.com/custos-audit/custos/internal/clocktest"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/monitor"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// The tests in this file play an insider with write access to the store's
// files and no signing key, one attack class at a time, each in more than
// one variant, and show that verify and the server's start checks catch it.

const tamperAdmin = "tamper-admin-token-0123456789"

// timedLedger is a store written over simulated minutes: the log's key
// record, an administrator and an ingest key (revoked later), and batches of
// events 5 s apart, each batch signed by its own checkpoint (interval 1 s).
type timedLedger struct {
	kind      string // "sqlite" or "postgres"
	dir, vkey string // the data folder (key file, and the SQLite store)
	db        string // the PostgreSQL URL
	ingestID  string
	trusted   string // a checkpoint saved by an auditor before the end, as a file
	trustedAt uint64 // its size
	size      uint64
}

func newTimedLedger(t *testing.T, kind ...string) *timedLedger {
	t.Helper()
	ctx := context.Background()
	tl := &timedLedger{kind: "sqlite", dir: t.TempDir()}
	if len(kind) > 0 {
		tl.kind = kind[0]
	}
	clk := clocktest.New(time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC))
	l := tl.open(t, ledger.Config{CheckpointInterval: time.Second, Now: clk.Now, LocalClock: true})
	tl.vkey = l.Signer.VerifierKey()
	if _, err := l.Seq.Append(ctx, "custos", nil, ledger.LogKeyRecord(tl.vkey)); err != nil {
		t.Fatal(err)
	}
	keys, err := authn.NewDirectory(ctx, l.Seq, ledger.NewStateFeed(l.Store, tl.vkey), authn.Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := keys.Create(ctx, nil, authn.KeySpec{Name: "admin", Scopes: []custos.Scope{custos.ScopeAdmin}}, tamperAdmin); err != nil {
		t.Fatal(err)
	}
	ingest, _, err := keys.Create(ctx, nil, authn.KeySpec{Name: "ehr", Scopes: []custos.Scope{custos.ScopeIngest}}, "")
	if err != nil {
		t.Fatal(err)
	}
	tl.ingestID = ingest.ID
	// Roles, users and an emergency grant: state for the tamper tests.
	if _, _, err := keys.PutRole(ctx, nil, custos.Role{Name: "ward_nurse", Permissions: []custos.Permission{"patient:read"},
		ParentRole: custos.RoleAuditor}, true); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ id, role, status string }{{"dr.grey", "ward_nurse", authn.StatusActive},
		{"dr.shepherd", "ward_nurse", authn.StatusSuspended}} {
		name, roles := u.id, []string{u.role}
		if _, _, err := keys.SaveUser(ctx, nil, authn.UserChange{ID: u.id, Name: &name, Roles: &roles}, true); err != nil {
			t.Fatal(err)
		}
		if u.status != authn.StatusActive {
			if _, _, err := keys.SaveUser(ctx, nil, authn.UserChange{ID: u.id, Status: &u.status}, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := keys.OpenGrant(ctx, &custos.Principal{Kind: "apikey", ID: "admin", Permissions: map[custos.Permission]bool{custos.PermAuthorize: true}},
		authn.GrantRequest{UserID: "dr.grey", Reason: "code blue", PatientID: "p-1", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// A block and an open security event, as the monitor records them.
	if _, err := l.Seq.Append(ctx, "custos", nil,
		leaf.StateRecord{Entity: monitor.EntityBlock, ID: "blk-1", Op: leaf.OpCreate,
			Doc: []byte(`{"id":"blk-1","cidr":"203.0.113.9/32","reason":"brute force","created_at":"2026-11-01T08:00:00Z","blocked_until":"2026-11-02T08:00:00Z","created_by":"brute_force","rule":"brute_force"}`)},
		leaf.StateRecord{Entity: monitor.EntitySecurityEvent, ID: "se-1", Op: leaf.OpCreate,
			Doc: []byte(`{"id":"se-1","event_type":"BRUTE_FORCE","severity":"HIGH","description":"5 failures","ip_address":"203.0.113.9/32","rule":"brute_force","status":"open","count":5}`)},
	); err != nil {
		t.Fatal(err)
	}
	for b := range 12 {
		clk.Add(5 * time.Second)
		var evs []custos.Event
		for j := range 4 {
			evs = append(evs, custos.Event{User: custos.User{ID: fmt.Sprintf("dr-%d", j), Roles: []string{}},
				Action: custos.ActionRead, ResourceType: "Patient", PatientID: fmt.Sprintf("p-%d", (b+j)%5),
				IPAddress: "203.0.113.9", Outcome: custos.OutcomeSuccess})
		}
		if b == 1 || b == 2 { // requests sent with an idempotency key
			evs[0].Delivery = &custos.Delivery{Key: fmt.Sprintf("k-%d", b), Digest: strings.Repeat("0f", 32), Count: len(evs)}
		}
		if _, err := l.Seq.Append(ctx, "apikey:"+ingest.ID, evs); err != nil {
			t.Fatal(err)
		}
		if b == 3 {
			if err := keys.Revoke(ctx, nil, ingest.ID); err != nil {
				t.Fatal(err)
			}
		}
		if b == 8 {
			cp, err := l.Store.LatestCheckpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tl.trusted, tl.trustedAt = filepath.Join(t.TempDir(), "trusted.checkpoint"), cp.Size
			if err := os.WriteFile(tl.trusted, cp.Note, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	h, err := l.Store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tl.size = h.Size
	l.Close()
	return tl
}

// openLedger is a ledger open for writing on either store.
type openLedger struct {
	Store  store.Store
	Signer *ledger.Signer
	Seq    *ledger.Sequencer
}

func (l *openLedger) Close() { l.Seq.Close(); l.Store.Close() }

// open opens the ledger in the test's store, for writing.
func (tl *timedLedger) open(t *testing.T, cfg ledger.Config) *openLedger {
	t.Helper()
	if tl.kind == "sqlite" {
		l := ledgertest.Open(t, tl.dir, "custos.test/tamper", cfg)
		return &openLedger{Store: l.Store, Signer: l.Signer, Seq: l.Seq}
	}
	if tl.db == "" {
		tl.db = pgtest.FreshSchema(t)
	}
	ctx := context.Background()
	st, err := postgres.Open(ctx, tl.db, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sig, _, err := ledger.LoadOrCreateKey(filepath.Join(tl.dir, ledger.KeyFileName), "custos.test/tamper")
	if err != nil {
		t.Fatal(err)
	}
	seq, err := ledger.Open(ctx, st, st, st, sig, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &openLedger{Store: st, Signer: sig, Seq: seq}
}

// readOnly opens the store for reading.
func (tl *timedLedger) readOnly(t *testing.T) store.Store {
	t.Helper()
	st, _, err := openStore(context.Background(), tl.config(), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// config is a server configuration on the test's store.
func (tl *timedLedger) config() serverConfig {
	return serverConfig{data: tl.dir, db: tl.db, addr: "127.0.0.1:0", checkpointEvery: 1000, checkpointInterval: time.Second,
		maxBody: 1 << 20, maxBatch: 100, maxChanges: 64 << 10}
}

// tamper runs SQL on the store behind Custos's back.
func (tl *timedLedger) tamper(t *testing.T, stmts ...string) {
	t.Helper()
	if tl.kind == "sqlite" {
		tamper(t, tl.dir, stmts...)
		return
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, tl.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// verify runs custos verify on the test's store and checks its exit code
// and that its output says want.
func (tl *timedLedger) verify(t *testing.T, code int, want string, extra ...string) {
	t.Helper()
	args := []string{"verify", "--quiet", "--data", tl.dir}
	if tl.db != "" {
		args = append(args, "--db", tl.db)
	}
	var out bytes.Buffer
	got := Main(context.Background(), append(args, extra...), &out, &out)
	if got != code || !strings.Contains(out.String(), want) {
		t.Fatalf("verify %v on %s: exit %d, want %d with %q:\n%s", extra, tl.kind, got, code, want, out.String())
	}
}

// expectStartRefused starts a server on the store and expects it to
// refuse, naming want.
func (tl *timedLedger) expectStartRefused(t *testing.T, want string) {
	t.Helper()
	srv, err := startServer(context.Background(), tl.config(), slog.New(slog.DiscardHandler), io.Discard)
	if err == nil {
		srv.shutdown()
		t.Fatalf("the server started on a tampered %s store; want a refusal naming %q", tl.kind, want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("the server refused to start on %s, but with %q; want it to name %q", tl.kind, err, want)
	}
}

// checkpointSizes lists the stored checkpoints' sizes.
func (tl *timedLedger) checkpointSizes(t *testing.T) []uint64 {
	t.Helper()
	st := tl.readOnly(t)
	defer st.Close()
	var sizes []uint64
	st.ScanCheckpoints(context.Background(), func(c store.Checkpoint) error { sizes = append(sizes, c.Size); return nil })
	return sizes
}

// sizeBefore is the size of the last checkpoint smaller than size.
func (tl *timedLedger) sizeBefore(t *testing.T, size uint64) uint64 {
	t.Helper()
	var best uint64
	for _, s := range tl.checkpointSizes(t) {
		if s < size {
			best = s
		}
	}
	return best
}

// rollback deletes every record from size on, with its tree nodes and the
// checkpoints beyond: a self-consistent earlier state of the ledger.
func (tl *timedLedger) rollback(t *testing.T, size uint64) {
	t.Helper()
	tl.tamper(t,
		fmt.Sprintf(`DELETE FROM events WHERE idx >= %d`, size),
		fmt.Sprintf(`DELETE FROM state_records WHERE idx >= %d`, size),
		fmt.Sprintf(`DELETE FROM tree_nodes WHERE pos >= %d`, ledger.NodeCount(size)),
		fmt.Sprintf(`DELETE FROM checkpoints WHERE size > %d`, size))
}

// retree recomputes every tree node from the stored records, as an
// attacker without the key can.
func (tl *timedLedger) retree(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	st := tl.readOnly(t)
	states, err := st.StateRecords(ctx, -1)
	if err != nil {
		t.Fatal(err)
	}
	hashes := map[uint64][]byte{}
	st.ScanEvents(ctx, 0, func(e custos.Event) error { hashes[e.Index] = leaf.LeafHash(&e); return nil })
	for i := range states {
		hashes[states[i].Index] = leaf.StateHash(&states[i])
	}
	st.Close()
	rng := ledger.NewEmptyRange()
	stmts := []string{`DELETE FROM tree_nodes`}
	for i := uint64(0); i < uint64(len(hashes)); i++ {
		rng.Append(hashes[i], func(id compact.NodeID, h []byte) {
			stmts = append(stmts, fmt.Sprintf(`INSERT INTO tree_nodes (pos, hash) VALUES (%d, %s)`, ledger.NodePos(id), tl.blob(h)))
		})
	}
	tl.tamper(t, stmts...)
}

// blob spells a byte string in the store's SQL.
func (tl *timedLedger) blob(b []byte) string {
	if tl.kind == "sqlite" {
		return fmt.Sprintf("X'%x'", b)
	}
	return fmt.Sprintf("'\\x%x'::bytea", b)
}

func TestTamperIntactBaseline(t *testing.T) { forEachStore(t, tamperIntactBaseline) }

func tamperIntactBaseline(t *testing.T, kind string) {
	tl := newTimedLedger(t, kind)
	tl.verify(t, exitOK, "OK: ", "--public-key", tl.vkey, "--trusted-checkpoint", tl.trusted)
	tl.verify(t, exitOK, "anchors: 1 trusted checkpoints extended", "--public-key", tl.vkey, "--trusted-checkpoint", tl.trusted)
	tl.verify(t, exitOK, "NOT pinned")
	tl.verify(t, exitOK, "anchors: none")
}

// Rollback: the newest records deleted with their nodes and checkpoints
// leave a self-consistent ledger; only an anchor outside the store shows it.
func TestTamperRollback(t *testing.T) { forEachStore(t, tamperRollback) }

func tamperRollback(t *testing.T, kind string) {
	t.Run("truncated to an earlier checkpoint", func(t *testing.T) {
		tl := newTimedLedger(t, kind)
		tl.rollback(t, tl.sizeBefore(t, tl.trustedAt))
		tl.verify(t, exitOK, "anchors: none") // the ledger alone cannot tell
		tl.verify(t, exitProblem, "the trusted checkpoint "+tl.trusted+" covers", "--trusted-checkpoint", tl.trusted)
	})
	t.Run("rolled back, then extended into a fork", func(t *testing.T) {
		tl := newTimedLedger(t, kind)
		tl.rollback(t, tl.sizeBefore(t, tl.trustedAt))
		tl.appendThroughServer(t, 30) // the server signs the fork with the real key
		tl.verify(t, exitProblem, "is not an extension of the trusted checkpoint", "--trusted-checkpoint", tl.trusted)
	})
}

// appendThroughServer starts the real server on the store and appends n
// events through its API, then stops it.
func (tl *timedLedger) appendThroughServer(t *testing.T, n int) {
	t.Helper()
	srv, err := startServer(context.Background(), tl.config(), slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.shutdown()
	for i := range n {
		postEvent(t, srv.url, tamperAdmin, fmt.Sprintf(`{"user":{"id":"fork-%d"},"action":"READ","resource_type":"Patient"}`, i))
	}
}

// Rewriting the uncovered tail: records changed or forged where no
// checkpoint (any more) covers them. The server must not sign them.
func TestTamperUncoveredTail(t *testing.T) { forEachStore(t, tamperUncoveredTail) }

func tamperUncoveredTail(t *testing.T, kind string) {
	t.Run("record changed, tree recomputed, covering checkpoints deleted", func(t *testing.T) {
		tl := newTimedLedger(t, kind)
		sizes := tl.checkpointSizes(t)
		keep := sizes[len(sizes)-5]
		tl.tamper(t, fmt.Sprintf(`UPDATE events SET user_id = 'mallory' WHERE idx = %d`, tl.size-3),
			fmt.Sprintf(`DELETE FROM checkpoints WHERE size > %d`, keep))
		tl.retree(t)
		tl.verify(t, exitProblem, "not covered by a signed checkpoint", "--public-key", tl.vkey)
		tl.expectStartRefused(t, "not covered by a signed checkpoint")
	})
	t.Run("forged record appended at the tail", func(t *testing.T) {
		tl := newTimedLedger(t, kind)
		tl.tamper(t, fmt.Sprintf(`INSERT INTO events SELECT %d, ts + 60000000, occurred_at, 'mallory', user_name, user_roles,
			action, resource_type, resource_id, patient_id, ip_address, user_agent, request_method, request_path, changes,
			outcome, status_code, source, request_id, session_id, purpose_of_use, break_glass, break_glass_reason,
			leaf_version, leaf_kind, submitted_by, ext FROM events WHERE idx = %d`, tl.size, tl.size-1))
		tl.retree(t)
		tl.verify(t, exitProblem, "not covered by a signed checkpoint", "--public-key", tl.vkey)
		tl.expectStartRefused(t, "not covered by a signed checkpoint")
	})
}

// Swapping the key: every checkpoint re-signed with a new key placed in the
// data folder. The ledger records its own key, so even the default verify
// (no pinned key) fails, and so does the start.
func TestTamperSwappedKey(t *testing.T) { forEachStore(t, tamperSwappedKey) }

func tamperSwappedKey(t *testing.T, kind string) {
	swap := func(t *testing.T, tl *timedLedger) {
		t.Helper()
		skey, _, err := note.GenerateKey(nil, "custos.test/tamper")
		if err != nil {
			t.Fatal(err)
		}
		forger, err := ledger.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		st := tl.readOnly(t)
		var stmts []string
		st.ScanCheckpoints(ctx, func(c store.Checkpoint) error {
			cp, err := ledger.OpenCheckpoint(c.Note, tl.vkey)
			if err != nil {
				return err
			}
			signed, _ := forger.Sign(cp.Size, cp.Hash)
			stmts = append(stmts, fmt.Sprintf(`UPDATE checkpoints SET note = %s WHERE size = %d`, tl.blob(signed), c.Size))
			return nil
		})
		st.Close()
		tl.tamper(t, stmts...)
		if err := os.WriteFile(filepath.Join(tl.dir, ledger.KeyFileName), []byte(skey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("default verify", func(t *testing.T) {
		tl := newTimedLedger(t, kind)
		swap(t, tl)
		tl.verify(t, exitProblem, "the signing key was replaced")
		tl.expectStartRefused(t, "the signing key was replaced")
	})
	t.Run("pinned key and trusted checkpoint", func(t *testing.T) {
		tl := newTimedLedger(t, kind)
		swap(t, tl)
		tl.verify(t, exitProblem, "does not verify with the log's public key", "--public-key", tl.vkey)
		tl.verify(t, exitProblem, "the signing key was replaced", "--trusted-checkpoint", tl.trusted)
	})
}

// State tables that no record backs: rows inserted, edited or deleted behind
// Custos's back. verify names the row; the server refuses to start; and a
// running server never believes them (TestStateRowsNeverTrusted).
func TestTamperStateTables(t *testing.T) { forEachStore(t, tamperStateTables) }

func tamperStateTables(t *testing.T, kind string) {
	unrevoke := `UPDATE state SET doc = json_remove(doc, '$.revoked_at', '$.revoked_by') WHERE doc LIKE '%revoked_at%'`
	if kind == "postgres" {
		unrevoke = `UPDATE state SET doc = ((doc::jsonb - 'revoked_at') - 'revoked_by')::text WHERE doc LIKE '%revoked_at%'`
	}
	for name, tc := range map[string]struct{ stmt, want string }{
		"admin key inserted": {`INSERT INTO state (entity, id, doc, idx) SELECT 'api_key', 'evil', replace(replace(doc, id, 'evil'), '"ingest"', '"admin"'), idx FROM state WHERE entity = 'api_key' AND doc LIKE '%"ingest"%'`,
			"state row api_key evil has no record"},
		"key un-revoked": {unrevoke, "differs from record"},
		"scopes widened": {`UPDATE state SET doc = replace(doc, '"ingest"', '"admin"') WHERE doc LIKE '%"ingest"%'`, "differs from record"},
		"row deleted":    {`DELETE FROM state WHERE doc LIKE '%"ingest"%'`, "is missing"},
		"row re-pointed": {`UPDATE state SET idx = idx - 1 WHERE entity = 'api_key'`, "the ledger's latest record for it is"},
		"role inserted": {`INSERT INTO state (entity, id, doc, idx) SELECT 'role', 'evil', replace(doc, 'ward_nurse', 'evil'), idx FROM state WHERE entity = 'role'`,
			"state row role evil has no record"},
		"role widened":            {`UPDATE state SET doc = replace(doc, 'patient:read', 'keys:manage') WHERE entity = 'role'`, "differs from record"},
		"role re-parented":        {`UPDATE state SET doc = replace(doc, '"auditor"', '"administrator"') WHERE entity = 'role'`, "differs from record"},
		"user made administrator": {`UPDATE state SET doc = replace(doc, '"ward_nurse"', '"administrator"') WHERE id = 'dr.grey'`, "differs from record"},
		"user un-suspended":       {`UPDATE state SET doc = replace(doc, '"suspended"', '"active"') WHERE id = 'dr.shepherd'`, "differs from record"},
		"user inserted": {`INSERT INTO state (entity, id, doc, idx) SELECT 'user', 'mallory', replace(doc, 'dr.grey', 'mallory'), idx FROM state WHERE id = 'dr.grey'`,
			"state row user mallory has no record"},
		"grant inserted": {`INSERT INTO state (entity, id, doc, idx) SELECT 'grant', 'g-evil', doc, idx FROM state WHERE entity = 'grant'`,
			"state row grant g-evil has no record"},
		"grant extended": {`UPDATE state SET doc = replace(doc, '"expires_at":"2026', '"expires_at":"2099') WHERE entity = 'grant'`, "differs from record"},
		"block lifted":   {`UPDATE state SET doc = replace(doc, '2026-11-02T08', '2026-11-01T08') WHERE entity = 'block'`, "differs from record"},
		"block deleted":  {`DELETE FROM state WHERE entity = 'block'`, "is missing"},
		"alert resolved": {`UPDATE state SET doc = replace(doc, '"open"', '"resolved"') WHERE entity = 'security_event'`, "differs from record"},
		"alert inserted": {`INSERT INTO state (entity, id, doc, idx) SELECT entity, 'se-2', replace(doc, 'se-1', 'se-2'), idx FROM state WHERE entity = 'security_event'`,
			"state row security_event se-2 has no record"},
		"legacy key row": {`INSERT INTO api_keys (id, name, scopes, hash, created_at, created_by) VALUES ('old', 'x', '["admin"]', 'x', 0, 'x')`, "api_keys"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tl := newTimedLedger(t, kind)
			tl.tamper(t, tc.stmt)
			tl.verify(t, exitProblem, tc.want, "--public-key", tl.vkey)
			tl.expectStartRefused(t, strings.SplitN(tc.want, " (", 2)[0])
		})
	}
	t.Run("state record forged", func(t *testing.T) {
		tl := newTimedLedger(t, kind)
		tl.tamper(t, fmt.Sprintf(`INSERT INTO state_records SELECT %d, ts, submitted_by, entity, 'evil', op, doc FROM state_records WHERE entity = 'api_key' LIMIT 1`, tl.size))
		tl.verify(t, exitProblem, fmt.Sprintf("record %d:", tl.size), "--public-key", tl.vkey)
		tl.expectStartRefused(t, "run custos verify")
	})
}

// The deliveries table (which idempotency key appended which request): a
// row deleted would let a retry append twice, a row planted or moved would
// point a key at events it did not bring.
func TestTamperDeliveries(t *testing.T) { forEachStore(t, tamperDeliveries) }

func tamperDeliveries(t *testing.T, kind string) {
	for name, tc := range map[string]struct{ stmt, want string }{
		"row deleted": {`DELETE FROM deliveries WHERE key = 'k-2'`, "lacks the row of this event's idempotency key"},
		"row planted": {`INSERT INTO deliveries (submitted_by, key, idx) SELECT submitted_by, 'k-9', idx + 1 FROM deliveries WHERE key = 'k-2'`,
			"holds a row (key \"k-9\") that no event names"},
		"row moved": {`UPDATE deliveries SET idx = idx + 1 WHERE key = 'k-1'`, "lacks the row of this event's idempotency key"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tl := newTimedLedger(t, kind)
			tl.tamper(t, tc.stmt)
			tl.verify(t, exitProblem, tc.want, "--public-key", tl.vkey)
		})
	}
}

// Checkpoints deleted: all of them, or some in the middle, or one dated
// before the one preceding it.
func TestTamperCheckpoints(t *testing.T) { forEachStore(t, tamperCheckpoints) }

func tamperCheckpoints(t *testing.T, kind string) {
	t.Run("all deleted", func(t *testing.T) {
		tl := newTimedLedger(t, kind)
		tl.tamper(t, `DELETE FROM checkpoints`)
		tl.verify(t, exitProblem, "no signed checkpoint covers any", "--public-key", tl.vkey)
		tl.expectStartRefused(t, "not covered by a signed checkpoint")
	})
	t.Run("some in the middle deleted", func(t *testing.T) {
		tl := newTimedLedger(t, kind)
		sizes := tl.checkpointSizes(t)
		tl.tamper(t, fmt.Sprintf(`DELETE FROM checkpoints WHERE size IN (%d, %d)`, sizes[len(sizes)-5], sizes[len(sizes)-4]))
		tl.verify(t, exitProblem, "a checkpoint was deleted", "--public-key", tl.vkey)
	})
	t.Run("one dated out of order", func(t *testing.T) {
		tl := newTimedLedger(t, kind)
		sizes := tl.checkpointSizes(t)
		tl.tamper(t, fmt.Sprintf(`UPDATE checkpoints SET created_at = 0 WHERE size = %d`, sizes[len(sizes)-3]))
		tl.verify(t, exitProblem, "before the one preceding it", "--public-key", tl.vkey)
	})
}

// Contiguity: indices must be exactly 0..n−1 across records of every kind.
func TestTamperContiguity(t *testing.T) { forEachStore(t, tamperContiguity) }

func tamperContiguity(t *testing.T, kind string) {
	t.Run("event moved onto a state record's index", func(t *testing.T) {
		tl := newTimedLedger(t, kind)
		tl.tamper(t, `UPDATE state_records SET idx = idx + 100000 WHERE idx = (SELECT max(idx) FROM state_records)`)
		tl.verify(t, exitProblem, "missing", "--public-key", tl.vkey)
		tl.expectStartRefused(t, "records were deleted or inserted")
	})
	t.Run("record duplicated under another kind", func(t *testing.T) {
		tl := newTimedLedger(t, kind)
		tl.tamper(t, `INSERT INTO state_records SELECT idx, ts, 'custos', 'api_key', 'x', 'delete', NULL FROM events WHERE idx = 20`)
		tl.verify(t, exitProblem, "stored twice", "--public-key", tl.vkey)
		tl.expectStartRefused(t, "records were deleted or inserted")
	})
}

// forEachStore runs a tamper test on SQLite and on PostgreSQL.
func forEachStore(t *testing.T, fn func(t *testing.T, kind string)) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel() // separate stores (a schema of their own on PostgreSQL)
			if kind == "postgres" {
				pgtest.ServerURL(t) // skips without a PostgreSQL (fails in CI)
			}
			fn(t, kind)
		})
	}
}

func postEvent(t *testing.T, url, token, body string) {
	t.Helper()
	code, out := httpPost(t, url+"/v1/events", token, body)
	if code != 201 {
		t.Fatalf("POST /v1/events: %d %s", code, out)
	}
}

func httpPost(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Records that searches silently lose: edits that leave every leaf hash
// intact but change how a value is stored or compared, or schema objects
// added behind Custos's back.
func TestTamperHiddenFromSearches(t *testing.T) { forEachStore(t, tamperHiddenFromSearches) }

func tamperHiddenFromSearches(t *testing.T, kind string) {
	type attack struct {
		stmts       []string
		want, start string
	}
	attacks := map[string]attack{
		"trigger hiding new rows": {[]string{`CREATE TRIGGER hide AFTER INSERT ON events BEGIN UPDATE events SET patient_id = NULL WHERE idx = new.idx; END`},
			`trigger "hide"`, `trigger "hide"`},
		"case-insensitive index": {[]string{`CREATE INDEX sneaky ON events (user_id COLLATE NOCASE)`},
			`index "sneaky"`, `index "sneaky"`},
		"view shadowing": {[]string{`CREATE VIEW events_all AS SELECT * FROM events WHERE user_id <> 'dr-1'`},
			`view "events_all"`, `view "events_all"`},
		"value stored as a blob": {[]string{`UPDATE events SET patient_id = CAST(patient_id AS BLOB) WHERE idx = 30`},
			"stored as blob", ""},
		"user stored as a blob": {[]string{`UPDATE events SET user_id = CAST(user_id AS BLOB) WHERE idx = 31`},
			"stored as blob", ""},
	}
	if kind == "postgres" {
		attacks = map[string]attack{
			"column collation changed": {[]string{`ALTER TABLE events ALTER COLUMN patient_id TYPE text COLLATE "C"`}, "patient_id", "patient_id"},
			"row-level security policy": {[]string{`ALTER TABLE events ENABLE ROW LEVEL SECURITY`,
				`CREATE POLICY hide ON events USING (user_id <> 'dr-1')`}, "events", "events"},
			"rule": {[]string{`CREATE RULE keep AS ON INSERT TO events WHERE new.user_id = 'dr-1' DO INSTEAD NOTHING`}, `"keep"`, `"keep"`},
			"trigger": {[]string{`CREATE FUNCTION hide() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.patient_id := NULL; RETURN NEW; END $$`,
				`CREATE TRIGGER hide BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION hide()`}, "hide", "hide"},
			"extra index": {[]string{`CREATE INDEX sneaky ON events (lower(user_id))`}, `"sneaky"`, `"sneaky"`},
		}
	}
	for name, tc := range attacks {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tl := newTimedLedger(t, kind)
			tl.tamper(t, tc.stmts...)
			tl.verify(t, exitProblem, tc.want, "--public-key", tl.vkey)
			if tc.start != "" {
				tl.expectStartRefused(t, tc.start)
			}
		})
	}
}

// An ingest key cannot forge Custos's own records: the fields that mark a
// server record are not accepted from clients, and the records a client
// sends carry its key as their submitter and the client kind in their leaf.
func TestIngestKeyCannotForgeServerRecords(t *testing.T) {
	tl := newTimedLedger(t)
	cfg := serverConfig{data: tl.dir, addr: "127.0.0.1:0", checkpointEvery: 1000, checkpointInterval: time.Second,
		maxBody: 1 << 20, maxBatch: 100, maxChanges: 64 << 10}
	srv, err := startServer(context.Background(), cfg, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.shutdown()
	code, out := httpPost(t, srv.url+"/v1/api-keys", tamperAdmin, `{"name":"ehr","scopes":["ingest"]}`)
	if code != 201 {
		t.Fatalf("create ingest key: %d %s", code, out)
	}
	token := out[strings.Index(out, `"token":"`)+9:]
	token = token[:strings.Index(token, `"`)]
	lookalike := `{"user":{"id":"custos","name":"Custos"},"action":"CREATE","resource_type":"ApiKey","resource_id":"x","source":"custos","outcome":"success"`
	for _, forged := range []string{
		lookalike + `,"kind":"server"}`,
		lookalike + `,"submitted_by":"custos"}`,
		lookalike + `,"KIND":"server"}`,
	} {
		if code, out := httpPost(t, srv.url+"/v1/events", token, forged); code != 400 {
			t.Errorf("an ingest key posted %s: %d %s", forged, code, out)
		}
	}
	code, out = httpPost(t, srv.url+"/v1/events", token, lookalike+`}`)
	if code != 201 {
		t.Fatalf("post: %d %s", code, out)
	}
	found, err := srv.st.Events(context.Background(), store.Query{ResourceType: "ApiKey", ResourceID: "x", Limit: 10})
	if err != nil || len(found) != 1 {
		t.Fatalf("the look-alike event: %v, %v", found, err)
	}
	if ev := found[0]; ev.Kind != custos.KindClient || !strings.HasPrefix(ev.SubmittedBy, "apikey:") || ev.SubmittedBy == "apikey:" {
		t.Fatalf("the look-alike event is stored as kind %q submitted by %q; want a client event naming the ingest key", found[0].Kind, found[0].SubmittedBy)
	}
}
