package witness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/custos-audit/custos/internal/witness/witnesstest"
)

// startWitness starts a litewitness that knows l, and parses its flag value.
func startWitness(t *testing.T, logs ...*testLog) (*witnesstest.Litewitness, *Witness) {
	t.Helper()
	lw := witnesstest.Start(t)
	for _, l := range logs {
		lw.AddLog(t, l.origin, l.vkey)
	}
	w, err := Parse(lw.URL() + "," + lw.VKey())
	if err != nil {
		t.Fatalf("Parse of litewitness's URL and logged vkey: %v", err)
	}
	if w.Name != lw.Name() {
		t.Fatalf("Parse: name %q, litewitness runs as %q", w.Name, lw.Name())
	}
	return lw, w
}

// wantStatus checks that err is a *StatusError with code, matching sentinel.
func wantStatus(t *testing.T, err error, code int, sentinel error) {
	t.Helper()
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != code {
		t.Fatalf("got %v, want a *StatusError with HTTP %d", err, code)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("got %v, want errors.Is %v", err, sentinel)
	}
}

// wantConflict checks that err is a *ConflictError with the witness's size.
func wantConflict(t *testing.T, err error, size uint64) {
	t.Helper()
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Size != size || !errors.Is(err, ErrConflict) {
		t.Fatalf("got %v, want *ConflictError{Size: %d}", err, size)
	}
}

func leaves(prefix string, n int) []string {
	d := make([]string, n)
	for i := range d {
		d[i] = fmt.Sprintf("%s %d", prefix, i)
	}
	return d
}

// TestLitewitnessLifecycle walks a log through a real litewitness: first
// checkpoint, replay, growth with a proof, rollback and forks.
func TestLitewitnessLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := newTestLog(t, "custos.test/log")
	lw, w := startWitness(t, l)
	hc := &http.Client{Timeout: 10 * time.Second}

	// The first checkpoint, from old size 0 with no proof.
	l.append(leaves("a", 3)...)
	cp3 := l.checkpoint(t, 3)
	cosig, err := w.AddCheckpoint(ctx, hc, 0, nil, cp3)
	if err != nil {
		t.Fatalf("first checkpoint: %v", err)
	}
	merged, err := MergeSignatures(cp3, cosig)
	if err != nil {
		t.Fatal(err)
	}
	names, err := VerifyCosignatures(merged, l.vkey, []string{w.VKey})
	if err != nil || !slices.Equal(names, []string{w.Name}) {
		t.Fatalf("VerifyCosignatures = %q, %v; want [%s]", names, err, w.Name)
	}
	// The cosigned note still opens as the log's checkpoint for a verifier
	// that knows only the log's key.
	if cp, _, _, err := log.ParseCheckpoint(merged, l.origin, mustVerifier(t, l.vkey)); err != nil || cp.Size != 3 {
		t.Fatalf("log.ParseCheckpoint of the cosigned note = %v, %v", cp, err)
	}

	// The same request again: the witness is at 3 now.
	_, err = w.AddCheckpoint(ctx, hc, 0, nil, cp3)
	wantConflict(t, err, 3)

	// Growth with a consistency proof from the witness's size.
	l.append(leaves("b", 4)...)
	cp7 := l.checkpoint(t, 7)
	cosig, err = w.AddCheckpoint(ctx, hc, 3, l.consistency(t, 3, 7), cp7)
	if err != nil {
		t.Fatalf("growth 3→7: %v", err)
	}
	merged, err = MergeSignatures(cp7, cosig)
	if err != nil {
		t.Fatal(err)
	}
	if names, err := VerifyCosignatures(merged, l.vkey, []string{w.VKey}); err != nil || len(names) != 1 {
		t.Fatalf("VerifyCosignatures at 7 = %q, %v", names, err)
	}

	// The same checkpoint from the witness's size: cosigned again (callers
	// use this to learn whether a witness is at their size).
	if _, err := w.AddCheckpoint(ctx, hc, 7, nil, cp7); err != nil {
		t.Fatalf("resubmission at the witness's size: %v", err)
	}

	// Rollback: an old checkpoint. With the true old size litewitness says
	// 409 with its size, above the checkpoint's: the caller sees the rollback.
	_, err = w.AddCheckpoint(ctx, hc, 3, nil, cp3)
	wantConflict(t, err, 7)
	// With the witness's size as old size, old > new is a 400.
	_, err = w.AddCheckpoint(ctx, hc, 7, nil, cp3)
	wantStatus(t, err, http.StatusBadRequest, ErrBadRequest)

	// A fork with the same key: same sizes, different leaves after 5.
	fork := l.fork(5)
	fork.append(leaves("fork", 4)...)
	_, err = w.AddCheckpoint(ctx, hc, 7, fork.consistency(t, 7, 9), fork.checkpoint(t, 9))
	wantStatus(t, err, http.StatusUnprocessableEntity, ErrInconsistent)
	// At the witness's own size, a different root: C2SP tlog-witness says
	// 409, litewitness v0.6.1 answers 422 (its proof check fails).
	_, err = w.AddCheckpoint(ctx, hc, 7, nil, fork.checkpoint(t, 7))
	wantStatus(t, err, http.StatusUnprocessableEntity, ErrInconsistent)
	// A forked history presented from a size the witness is not at: 409.
	_, err = w.AddCheckpoint(ctx, hc, 5, fork.consistency(t, 5, 9), fork.checkpoint(t, 9))
	wantConflict(t, err, 7)
	if n := lw.TreeSize(t, l.origin); n != 7 {
		t.Fatalf("witness moved to %d on refused checkpoints", n)
	}

	// The honest log carries on.
	l.append(leaves("c", 2)...)
	if _, err := w.AddCheckpoint(ctx, hc, 7, l.consistency(t, 7, 9), l.checkpoint(t, 9)); err != nil {
		t.Fatalf("growth 7→9: %v", err)
	}
}

// TestLitewitnessRefusals: checkpoints the witness must not cosign, and an
// answer that is not by the configured witness key.
func TestLitewitnessRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := newTestLog(t, "custos.test/log")
	lw, w := startWitness(t, l)
	l.append(leaves("a", 2)...)

	// Same origin, another key: the witness trusts none of its signatures.
	other := newTestLog(t, l.origin)
	other.append(leaves("a", 2)...)
	_, err := w.AddCheckpoint(ctx, nil, 0, nil, other.checkpoint(t, 2))
	wantStatus(t, err, http.StatusForbidden, ErrForbidden)

	// An origin the witness does not know: C2SP tlog-witness says 404,
	// litewitness v0.6.1 answers 403.
	unknown := newTestLog(t, "custos.test/unknown")
	unknown.append("x")
	_, err = w.AddCheckpoint(ctx, nil, 0, nil, unknown.checkpoint(t, 1))
	wantStatus(t, err, http.StatusForbidden, ErrForbidden)
	if n := lw.TreeSize(t, l.origin); n != 0 {
		t.Fatalf("witness moved to %d on refused checkpoints", n)
	}

	// A Witness configured with the wrong key (same name) refuses the
	// answer: the witness did cosign, but not with the key we pin.
	wrong := *w
	wrong.VKey = newTestCosigner(t, w.Name, nil).vkey
	_, err = wrong.AddCheckpoint(ctx, nil, 0, nil, l.checkpoint(t, 2))
	if !errors.Is(err, ErrBadResponse) {
		t.Fatalf("cosignature by an unpinned key: got %v, want ErrBadResponse", err)
	}
}

// TestLitewitnessQuorum verifies cosignatures of two real witnesses.
func TestLitewitnessQuorum(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := newTestLog(t, "custos.test/log")
	_, w1 := startWitness(t, l)
	_, w2 := startWitness(t, l)
	l.append(leaves("a", 5)...)
	cp := l.checkpoint(t, 5)
	signed := cp
	for _, w := range []*Witness{w1, w2} {
		cosig, err := w.AddCheckpoint(ctx, nil, 0, nil, cp)
		if err != nil {
			t.Fatal(err)
		}
		// Merging twice adds nothing the second time.
		for range 2 {
			if signed, err = MergeSignatures(signed, cosig); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, _ := note.Open(signed, note.VerifierList(mustVerifier(t, l.vkey))); n == nil || len(n.UnverifiedSigs) != 2 {
		t.Fatalf("merged note:\n%s\nwant exactly 2 cosignatures", signed)
	}

	absent := newTestCosigner(t, "custos.test/absent", nil)
	wrongW1 := newTestCosigner(t, w1.Name, nil) // w1's name, another key
	for _, tc := range []struct {
		keys []string
		want []string
	}{
		{[]string{w1.VKey, w2.VKey}, []string{w1.Name, w2.Name}},
		{[]string{w2.VKey, w1.VKey, absent.vkey}, []string{w2.Name, w1.Name}},
		{[]string{wrongW1.vkey, w2.VKey}, []string{w2.Name}},
		{[]string{wrongW1.vkey, absent.vkey}, nil},
		{nil, nil},
	} {
		names, err := VerifyCosignatures(signed, l.vkey, tc.keys)
		if err != nil || !slices.Equal(names, tc.want) {
			t.Errorf("VerifyCosignatures(keys %q) = %q, %v; want %q", tc.keys, names, err, tc.want)
		}
	}

	// The log's signature is required.
	other := newTestLog(t, l.origin)
	if _, err := VerifyCosignatures(signed, other.vkey, []string{w1.VKey}); err == nil {
		t.Error("VerifyCosignatures accepted a note without the log's signature")
	}
	// A tampered checkpoint fails.
	var cpv log.Checkpoint
	if _, err := cpv.Unmarshal(signed); err != nil {
		t.Fatal(err)
	}
	tampered := signCheckpoint(t, l.signer, log.Checkpoint{Origin: l.origin, Size: 6, Hash: cpv.Hash})
	lines := signed[len(cp):] // the two cosignature lines
	tampered, err := MergeSignatures(tampered, lines)
	if err != nil {
		t.Fatal(err)
	}
	_, err = VerifyCosignatures(tampered, l.vkey, []string{w1.VKey, w2.VKey})
	var ise *note.InvalidSignatureError
	if !errors.As(err, &ise) {
		t.Fatalf("cosignatures of another checkpoint: got %v, want *note.InvalidSignatureError", err)
	}
	// Unknown keys are ignored, so the same note passes without them.
	if names, err := VerifyCosignatures(tampered, l.vkey, nil); err != nil || names != nil {
		t.Fatalf("VerifyCosignatures without witness keys = %q, %v", names, err)
	}
}

func mustVerifier(t *testing.T, vkey string) note.Verifier {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
