package totp

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// testServerSecret is the server secret of the golden vector: bytes 0..31.
func testServerSecret() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

// goldenSealed is the RFC 6238 test secret "12345678901234567890" sealed
// for user "user-1" under testServerSecret. It was checked independently
// (Python cryptography: HKDF-SHA256 with info "custos totp secret seal v1",
// AES-GCM with associated data 0x01 || "user-1"). THIS MUST NEVER CHANGE:
// stored secrets would stop opening.
const goldenSealed = "01c9cd09c7587d5712ab489e5829755c754616125871fa884a14fffc9fe127d48c0a858f2a1a0ceb045c884513d75472b5"

func newTestSealer(tb testing.TB) *sealer {
	tb.Helper()
	s, err := newSealer(testServerSecret())
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestGoldenSealed(t *testing.T) {
	sealed, _ := hex.DecodeString(goldenSealed)
	got, err := newTestSealer(t).open("user-1", sealed)
	if err != nil {
		t.Fatalf("open(golden) = %v", err)
	}
	if string(got) != "12345678901234567890" {
		t.Errorf("open(golden) = %q", got)
	}
}

func TestSealRoundTrip(t *testing.T) {
	s := newTestSealer(t)
	secret := []byte("a twenty byte secret")
	a, b := s.seal("u", secret), s.seal("u", secret)
	if bytes.Equal(a, b) {
		t.Error("two seals of one secret are equal: the nonce is not fresh")
	}
	got, err := s.open("u", a)
	if err != nil || !bytes.Equal(got, secret) {
		t.Errorf("open(seal(x)) = %q, %v", got, err)
	}
}

func TestNewSealerRefusesShortSecret(t *testing.T) {
	if _, err := newSealer(make([]byte, 31)); err == nil {
		t.Error("newSealer(31 bytes) succeeded")
	}
}
