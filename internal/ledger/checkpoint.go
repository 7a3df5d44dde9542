package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// Signer signs checkpoints as C2SP signed notes with an Ed25519 key. The key
// name is the log's origin, as C2SP tlog-checkpoint recommends.
type Signer struct {
	signer note.Signer
	vkey   string
	seed   []byte // the Ed25519 seed, for DeriveSecret
}

// NewSigner parses a note private key ("PRIVATE+KEY+<origin>+<hash>+<key>").
func NewSigner(skey string) (*Signer, error) {
	s, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("ledger: parse signing key: %w", err)
	}
	vkey, seed, err := verifierKey(strings.TrimSpace(skey))
	if err != nil {
		return nil, err
	}
	return &Signer{signer: s, vkey: vkey, seed: seed}, nil
}

// verifierKey derives the public verifier key of a note private key and
// returns its seed.
func verifierKey(skey string) (string, []byte, error) {
	// PRIVATE+KEY+name+hash+base64(alg||seed)
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", nil, errors.New("ledger: malformed signing key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", nil, errors.New("ledger: signing key is not an Ed25519 note key")
	}
	seed := raw[1:]
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(parts[2], pub)
	return vkey, seed, err
}

// DeriveSecret returns a 32-byte secret for the given purpose, derived from
// the private key (HMAC-SHA256 keyed by the seed), so that every node holding
// the key derives the same one and nobody without it can.
func (s *Signer) DeriveSecret(purpose string) []byte {
	m := hmac.New(sha256.New, s.seed)
	m.Write([]byte("custos derived secret v1\x00" + purpose))
	return m.Sum(nil)
}

// Origin is the log's origin line: the key's name.
func (s *Signer) Origin() string { return s.signer.Name() }

// VerifierKey is the public key ("<origin>+<hash>+<key>") verifiers pin.
func (s *Signer) VerifierKey() string { return s.vkey }

// Sign returns the signed note of the checkpoint for a tree of the given size
// and root.
func (s *Signer) Sign(size uint64, root []byte) ([]byte, error) {
	body := log.Checkpoint{Origin: s.Origin(), Size: size, Hash: root}.Marshal()
	return note.Sign(&note.Note{Text: string(body)}, s.signer)
}

// OpenCheckpoint verifies a signed checkpoint note against the verifier key and
// returns its size and root.
func OpenCheckpoint(signed []byte, vkey string) (*log.Checkpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("ledger: parse verifier key: %w", err)
	}
	cp, _, _, err := log.ParseCheckpoint(signed, v.Name(), v)
	if err != nil {
		return nil, err
	}
	return cp, nil
}

// NewSignerFromFile reads a note private key from path.
func NewSignerFromFile(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ledger: read signing key: %w", err)
	}
	return NewSigner(string(b))
}

// KeyFileName is the signing key's file inside the data folder.
const KeyFileName = "checkpoint.key"

// LoadOrCreateKey reads the note private key at path, or, when the file does
// not exist, generates one named origin and writes it with mode 0600.
func LoadOrCreateKey(path, origin string) (*Signer, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s, err := NewSigner(string(b))
		return s, false, err
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("ledger: read signing key: %w", err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return nil, false, fmt.Errorf("ledger: generate signing key for origin %q: %w", origin, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("ledger: create key folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("ledger: write signing key: %w", err)
	}
	_, err = f.WriteString(skey + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("ledger: write signing key: %w", err)
	}
	s, err := NewSigner(skey)
	return s, true, err
}

// CheckpointOrigin returns the origin line of a signed checkpoint without
// verifying it.
func CheckpointOrigin(signed []byte) string {
	line, _, _ := bytes.Cut(signed, []byte("\n"))
	return string(line)
}
