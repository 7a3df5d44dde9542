package ledger_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/sqlite"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// TestNodePos checks the post-order position formula against the order in
// which the compact range really emits nodes.
func TestNodePos(t *testing.T) {
	rng := ledger.NewEmptyRange()
	var next uint64
	for i := 0; i < 1000; i++ {
		h := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		rng.Append(h[:], func(id compact.NodeID, _ []byte) {
			if got := ledger.NodePos(id); got != next {
				t.Fatalf("leaf %d: node (%d,%d) at position %d, emitted %dth", i, id.Level, id.Index, got, next)
			}
			next++
		})
		if got := ledger.NodeCount(uint64(i + 1)); got != next {
			t.Fatalf("NodeCount(%d) = %d, emitted %d", i+1, got, next)
		}
	}
}

type harness struct {
	*ledgertest.Ledger
	st  *sqlite.Store
	seq *ledger.Sequencer
	sig *ledger.Signer
	now time.Time
	mu  sync.Mutex
}

// clock is a test clock that moves 1 ms per reading.
func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = h.now.Add(time.Millisecond)
	return h.now
}

func open(t testing.TB, dir string, cfg ledger.Config) *harness {
	t.Helper()
	h := &harness{now: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	if cfg.Now == nil {
		cfg.Now = h.clock
	}
	h.Ledger = ledgertest.Open(t, dir, "custos.test/log", cfg)
	h.st, h.seq, h.sig = h.Store, h.Seq, h.Signer
	return h
}

func (h *harness) close() { h.Close() }

func event(i int) custos.Event {
	return custos.Event{User: custos.User{ID: fmt.Sprintf("u%d", i%7)}, Action: custos.ActionRead,
		ResourceType: "Patient", PatientID: fmt.Sprintf("p%d", i%13), Outcome: custos.OutcomeSuccess}
}

func events(from, n int) []custos.Event {
	out := make([]custos.Event, n)
	for i := range out {
		out[i] = event(from + i)
	}
	return out
}

// TestSequencerGroupCommitAndProofs appends from many goroutines at once and
// checks receipts, proofs against signed checkpoints, and a clean audit.
func TestSequencerGroupCommitAndProofs(t *testing.T) {
	ctx := context.Background()
	h := open(t, t.TempDir(), ledger.Config{CheckpointEvery: 100})
	defer h.close()
	const clients, per = 16, 40
	var wg sync.WaitGroup
	receipts := make([][]custos.Receipt, clients*per)
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for j := 0; j < per; j++ {
				r, err := h.seq.Append(ctx, "apikey:test", events(c*per+j, 1+j%3))
				if err != nil {
					errs <- err
					return
				}
				receipts[c*per+j] = r
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, rs := range receipts {
		for _, r := range rs {
			if seen[r.Index] {
				t.Fatalf("index %d acknowledged twice", r.Index)
			}
			seen[r.Index] = true
		}
	}
	size := uint64(len(seen))
	for i := uint64(0); i < size; i++ {
		if !seen[i] {
			t.Fatalf("index %d never acknowledged: indices are not contiguous", i)
		}
	}
	h.seq.Close() // publishes the tail checkpoint
	cp, err := h.st.LatestCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ledger.OpenCheckpoint(cp.Note, h.sig.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Size != size {
		t.Fatalf("final checkpoint size %d, want %d", parsed.Size, size)
	}
	for _, rs := range receipts[:50] {
		for _, r := range rs {
			p, err := ledger.InclusionProof(ctx, h.st, r.Index, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(ledger.Hasher, r.Index, size, r.LeafHash, p, parsed.Hash); err != nil {
				t.Fatalf("inclusion proof of %d: %v", r.Index, err)
			}
		}
	}
	var prev *store.Checkpoint
	h.st.ScanCheckpoints(ctx, func(c store.Checkpoint) error {
		if prev != nil {
			old, _ := ledger.OpenCheckpoint(prev.Note, h.sig.VerifierKey())
			cur, _ := ledger.OpenCheckpoint(c.Note, h.sig.VerifierKey())
			p, err := ledger.ConsistencyProof(ctx, h.st, old.Size, cur.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(ledger.Hasher, old.Size, cur.Size, p, old.Hash, cur.Hash); err != nil {
				t.Fatalf("consistency %d→%d: %v", old.Size, cur.Size, err)
			}
		}
		prev = &c
		return nil
	})
	rep, err := ledger.Audit(ctx, h.st, ledger.AuditOptions{VKey: h.sig.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem != nil || rep.Records != size || rep.Uncovered != 0 {
		t.Fatalf("audit = %+v (problem %v), want %d records intact", rep, rep.Problem, size)
	}
}

// TestSequencerResumes: after a restart, indices continue and the tree
// (checked against the latest checkpoint at open) extends without a fork.
func TestSequencerResumes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	h := open(t, dir, ledger.Config{})
	if _, err := h.seq.Append(ctx, "apikey:test", events(0, 7)); err != nil {
		t.Fatal(err)
	}
	h.close()
	h = open(t, dir, ledger.Config{})
	defer h.close()
	r, err := h.seq.Append(ctx, "apikey:test", events(7, 3))
	if err != nil {
		t.Fatal(err)
	}
	if r[0].Index != 7 || r[2].Index != 9 {
		t.Fatalf("after restart receipts start at %d, want 7", r[0].Index)
	}
	h.seq.Close()
	rep, err := ledger.Audit(ctx, h.st, ledger.AuditOptions{VKey: h.sig.VerifierKey()})
	if err != nil || rep.Problem != nil || rep.Records != 10 || rep.Checkpoints < 2 {
		t.Fatalf("audit after restart: %+v, %v", rep, err)
	}
}

// TestCheckpointByTime: an idle log gets a checkpoint of its tail once the
// interval passes, without another append.
func TestCheckpointByTime(t *testing.T) {
	ctx := context.Background()
	h := open(t, t.TempDir(), ledger.Config{CheckpointInterval: 20 * time.Millisecond, Now: time.Now})
	defer h.close()
	if _, err := h.seq.Append(ctx, "apikey:test", events(0, 3)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cp, err := h.st.LatestCheckpoint(ctx); err == nil && cp.Size == 3 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no checkpoint of size 3 within 5 s of an idle log")
}

// TestAppendAfterCloseFails: nothing is acknowledged once closed.
func TestAppendAfterCloseFails(t *testing.T) {
	h := open(t, t.TempDir(), ledger.Config{})
	h.close()
	if _, err := h.seq.Append(context.Background(), "apikey:test", events(0, 1)); custos.KindOf(err) != custos.Unavailable {
		t.Fatalf("Append after Close: %v, want unavailable", err)
	}
}

// TestCommitFailureAcknowledgesNothing: when the store cannot commit, the
// caller gets an error, and the next append continues at the same index.
func TestCommitFailureAcknowledgesNothing(t *testing.T) {
	ctx := context.Background()
	h := open(t, t.TempDir(), ledger.Config{})
	defer h.close()
	if _, err := h.seq.Append(ctx, "apikey:test", events(0, 2)); err != nil {
		t.Fatal(err)
	}
	// Make the next commit fail inside the store: a trigger aborts inserts.
	exec(t, h.st, `CREATE TRIGGER no_more BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk says no'); END`)
	if _, err := h.seq.Append(ctx, "apikey:test", events(2, 2)); custos.KindOf(err) != custos.Unavailable {
		t.Fatalf("append into a failing store: %v, want unavailable", err)
	}
	exec(t, h.st, `DROP TRIGGER no_more`)
	r, err := h.seq.Append(ctx, "apikey:test", events(2, 1))
	if err != nil {
		t.Fatal(err)
	}
	if r[0].Index != 2 {
		t.Fatalf("after a failed commit the next index is %d, want 2", r[0].Index)
	}
	h.seq.Close()
	if rep, err := ledger.Audit(ctx, h.st, ledger.AuditOptions{VKey: h.sig.VerifierKey()}); err != nil || rep.Problem != nil {
		t.Fatalf("audit: %+v %v", rep, err)
	}
}

// exec runs SQL on the store's database file through a connection of its own,
// as anyone with write access to the file could.
func exec(t *testing.T, st *sqlite.Store, q string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+st.Path()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestDeriveSecret: secrets come from the private key: stable across reloads
// of the key file, different for another key, and never the public key.
func TestDeriveSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ledger.KeyFileName)
	a, _, err := ledger.LoadOrCreateKey(path, "custos.test/a")
	if err != nil {
		t.Fatal(err)
	}
	again, created, err := ledger.LoadOrCreateKey(path, "ignored")
	if err != nil || created {
		t.Fatalf("reload: created=%v err=%v", created, err)
	}
	other, _, err := ledger.LoadOrCreateKey(filepath.Join(dir, "other.key"), "custos.test/a")
	if err != nil {
		t.Fatal(err)
	}
	s := a.DeriveSecret("paging cursor")
	if string(s) != string(again.DeriveSecret("paging cursor")) {
		t.Error("the secret changed when the key was reloaded")
	}
	if string(s) == string(other.DeriveSecret("paging cursor")) || string(s) == string(a.DeriveSecret("other purpose")) {
		t.Error("different keys or purposes give the same secret")
	}
	if again.Origin() != "custos.test/a" {
		t.Errorf("reloaded origin %q", again.Origin())
	}
}
