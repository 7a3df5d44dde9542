package totp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// The sealed-secret format, frozen: stored secrets must keep opening.
// golden vectors in seal_test.go pin it.
//
//	sealed = version (1 byte, 0x01) || nonce (12 bytes) || AES-256-GCM ciphertext and tag
//	key    = HKDF-SHA256(ikm = server secret, salt = none, info = sealInfo, 32 bytes)
//	ad     = version || user id
const (
	sealVersion   byte = 0x01
	sealInfo           = "custos totp secret seal v1"
	minServerKey       = 32 // bytes of server secret
	sealNonceSize      = 12
)

// errSealed is why a sealed secret does not open: the wrong server secret,
// the wrong user, or tampered bytes. The three are indistinguishable.
var errSealed = errors.New("sealed TOTP secret does not open")

// sealer encrypts TOTP secrets for one user each.
type sealer struct {
	aead cipher.AEAD
}

func newSealer(serverSecret []byte) (*sealer, error) {
	if len(serverSecret) < minServerKey {
		return nil, fmt.Errorf("server secret is %d bytes, want at least %d", len(serverSecret), minServerKey)
	}
	key, err := hkdf.Key(sha256.New, serverSecret, nil, sealInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// additionalData binds a sealed secret to its user and format version.
func additionalData(userID string) []byte {
	return append([]byte{sealVersion}, userID...)
}

// seal encrypts secret for userID under a fresh random nonce.
func (s *sealer) seal(userID string, secret []byte) []byte {
	out := make([]byte, 1+sealNonceSize, 1+sealNonceSize+len(secret)+s.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:]) // never fails (Go 1.24 and later)
	return s.aead.Seal(out, out[1:], secret, additionalData(userID))
}

// open decrypts a sealed secret of userID.
func (s *sealer) open(userID string, sealed []byte) ([]byte, error) {
	if len(sealed) < 1+sealNonceSize+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errSealed
	}
	nonce, ciphertext := sealed[1:1+sealNonceSize], sealed[1+sealNonceSize:]
	secret, err := s.aead.Open(nil, nonce, ciphertext, additionalData(userID))
	if err != nil {
		return nil, errSealed
	}
	return secret, nil
}
