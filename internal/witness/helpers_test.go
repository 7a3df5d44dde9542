package witness

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// testLog is an in-memory RFC 6962 log that signs checkpoints as Custos does.
type testLog struct {
	origin string
	signer note.Signer
	vkey   string
	leaves [][]byte // leaf hashes
}

var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// newTestLog returns an empty log with a new Ed25519 note key named origin.
func newTestLog(t testing.TB, origin string) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{origin: origin, signer: s, vkey: vkey}
}

// fork returns a log with the same key and the first n leaves of l.
func (l *testLog) fork(n int) *testLog {
	f := *l
	f.leaves = append([][]byte(nil), l.leaves[:n]...)
	return &f
}

// append adds leaves with the given data.
func (l *testLog) append(data ...string) {
	for _, d := range data {
		l.leaves = append(l.leaves, rfc6962.DefaultHasher.HashLeaf([]byte(d)))
	}
}

// hash returns the root hash of leaves [begin, end): the tree for begin 0, a
// perfect subtree otherwise.
func (l *testLog) hash(t testing.TB, begin, end uint64) []byte {
	t.Helper()
	if end == 0 {
		return rfc6962.DefaultHasher.EmptyRoot()
	}
	r := rangeFactory.NewEmptyRange(begin)
	for _, h := range l.leaves[begin:end] {
		if err := r.Append(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	if begin != 0 {
		if len(r.Hashes()) != 1 {
			t.Fatalf("[%d, %d) is not a perfect subtree", begin, end)
		}
		return r.Hashes()[0]
	}
	h, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checkpoint returns the signed checkpoint of the first size leaves.
func (l *testLog) checkpoint(t testing.TB, size uint64) []byte {
	t.Helper()
	return signCheckpoint(t, l.signer, log.Checkpoint{Origin: l.origin, Size: size, Hash: l.hash(t, 0, size)})
}

// signCheckpoint signs a checkpoint with s.
func signCheckpoint(t testing.TB, s note.Signer, cp log.Checkpoint) []byte {
	t.Helper()
	signed, err := note.Sign(&note.Note{Text: string(cp.Marshal())}, s)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// consistency returns the consistency proof between two sizes.
func (l *testLog) consistency(t testing.TB, size1, size2 uint64) [][]byte {
	t.Helper()
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		t.Fatal(err)
	}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		begin, end := id.Coverage()
		hashes[i] = l.hash(t, begin, end)
	}
	p, err := nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, p, l.hash(t, 0, size1), l.hash(t, 0, size2)); err != nil {
		t.Fatalf("test log built a bad proof %d→%d: %v", size1, size2, err)
	}
	return p
}

// testCosigner makes cosignature/v1 signatures, as a witness does.
type testCosigner struct {
	name string
	priv ed25519.PrivateKey
	vkey string
}

// newTestCosigner returns a cosigner with a key from seed, or a random one
// if seed is nil.
func newTestCosigner(t testing.TB, name string, seed []byte) *testCosigner {
	t.Helper()
	if seed == nil {
		seed = make([]byte, ed25519.SeedSize)
		rand.Read(seed)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	return &testCosigner{name: name, priv: priv, vkey: cosigVKey(name, priv.Public().(ed25519.PublicKey))}
}

// cosigVKey formats a cosignature/v1 verifier key.
func cosigVKey(name string, pub ed25519.PublicKey) string {
	typed := append([]byte{AlgCosignatureV1}, pub...)
	return fmt.Sprintf("%s+%08x+%s", name, keyID(name, typed), base64.StdEncoding.EncodeToString(typed))
}

// line returns the newline-terminated cosignature line of text at time ts.
func (c *testCosigner) line(text []byte, ts uint64) []byte {
	typed := append([]byte{AlgCosignatureV1}, c.priv.Public().(ed25519.PublicKey)...)
	sig := binary.BigEndian.AppendUint32(nil, keyID(c.name, typed))
	sig = binary.BigEndian.AppendUint64(sig, ts)
	sig = append(sig, ed25519.Sign(c.priv, cosignedMessage(ts, text))...)
	return fmt.Appendf(nil, "\u2014 %s %s\n", c.name, base64.StdEncoding.EncodeToString(sig))
}

// seedFor derives a fixed 32-byte seed from a label.
func seedFor(label string) []byte {
	h := sha256.Sum256([]byte(label))
	return h[:]
}

// fixedLogSigner returns a deterministic Ed25519 note signer named origin.
func fixedLogSigner(t testing.TB, origin, label string) (note.Signer, string) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(seedFor(label))
	pub := priv.Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		t.Fatal(err)
	}
	typed := append([]byte{algEd25519}, priv.Seed()...)
	h := keyID(origin, append([]byte{algEd25519}, pub...))
	s, err := note.NewSigner(fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", origin, h, base64.StdEncoding.EncodeToString(typed)))
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}
