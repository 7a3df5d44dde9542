package witness

import (
	"bytes"
	"slices"
	"strconv"
	"testing"

	"github.com/transparency-dev/formats/log"
)

// fuzzFixture is a fixed log key, checkpoint and witness key, so that the
// seed corpus under testdata/fuzz holds valid signatures.
type fuzzFixture struct {
	logVKey string
	cp      []byte // the signed checkpoint
	text    []byte
	c       *testCosigner
	v       *cosigVerifier
}

func newFuzzFixture(t testing.TB) *fuzzFixture {
	s, logVKey := fixedLogSigner(t, "custos.test/fuzz-log", "fuzz log")
	l := &testLog{origin: "custos.test/fuzz-log"}
	l.append("a", "b", "c")
	cp := signCheckpoint(t, s, log.Checkpoint{Origin: l.origin, Size: 3, Hash: l.hash(t, 0, 3)})
	c := newTestCosigner(t, "custos.test/fuzz-witness", seedFor("fuzz witness"))
	v, err := parseVerifier(c.vkey)
	if err != nil {
		t.Fatal(err)
	}
	text, _, err := splitNote(cp)
	if err != nil {
		t.Fatal(err)
	}
	return &fuzzFixture{logVKey: logVKey, cp: cp, text: text, c: c, v: v}
}

// FuzzResponse feeds arbitrary add-checkpoint answers to the 200 and 409
// parsers. Whatever they accept must be valid: cosignature lines that merge
// into a note VerifyCosignatures accepts, a size that formats back to the
// same body.
func FuzzResponse(f *testing.F) {
	fx := newFuzzFixture(f)
	f.Add(fx.c.line(fx.text, 1_700_000_000))
	f.Add([]byte("51\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		if lines, err := verifiedCosignatures(fx.v, fx.text, body); err == nil {
			merged, err := MergeSignatures(fx.cp, lines)
			if err != nil {
				t.Fatalf("MergeSignatures of accepted lines %q: %v", lines, err)
			}
			names, err := VerifyCosignatures(merged, fx.logVKey, []string{fx.c.vkey})
			if err != nil || !slices.Equal(names, []string{fx.c.name}) {
				t.Fatalf("accepted lines %q do not verify: %q, %v", lines, names, err)
			}
		}
		if n, err := parseSizeAnswer(body); err == nil {
			if got := strconv.FormatUint(n, 10) + "\n"; got != string(body) {
				t.Fatalf("size answer %q parsed as %d", body, n)
			}
		}
	})
}

// FuzzNote feeds arbitrary notes, with the fixed log and witness keys, to
// VerifyCosignatures and MergeSignatures.
func FuzzNote(f *testing.F) {
	fx := newFuzzFixture(f)
	cosigned := append(bytes.Clone(fx.cp), fx.c.line(fx.text, 1_700_000_000)...)
	f.Add(fx.cp, []byte(nil))
	f.Add(fx.cp, fx.c.line(fx.text, 1_700_000_000))
	f.Add(cosigned, fx.c.line(fx.text, 1_700_000_001))
	f.Fuzz(func(t *testing.T, signed, extra []byte) {
		names, err := VerifyCosignatures(signed, fx.logVKey, []string{fx.c.vkey})
		if err == nil && len(names) > 1 {
			t.Fatalf("names %q for one witness key", names)
		}
		merged, err := MergeSignatures(signed, extra)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(merged, signed) {
			t.Fatalf("MergeSignatures changed the note:\n%q\n%q", signed, merged)
		}
		// Merging again adds nothing.
		again, err := MergeSignatures(merged, extra)
		if err != nil || !bytes.Equal(again, merged) {
			t.Fatalf("MergeSignatures is not idempotent: %q, %v", again, err)
		}
		// The merged note keeps its text and parses as a note.
		text, _, err := splitNote(merged)
		if err != nil {
			t.Fatalf("merged note does not parse: %v", err)
		}
		if orig, _, _ := splitNote(signed); !bytes.Equal(text, orig) {
			t.Fatalf("merged note text %q, was %q", text, orig)
		}
	})
}
