// Package witness owns Custos's side of C2SP transparency-log witnessing: the
// configuration of a witness (its URL and cosignature/v1 verifier key), the
// tlog-witness add-checkpoint client that asks a witness to cosign a
// checkpoint, and the verification and merging of tlog-cosignature
// cosignatures on signed checkpoint notes.
//
// Only Ed25519 cosignatures (c2sp.org/tlog-cosignature, cosignature/v1,
// signature type 0x04) are supported. The package depends on the standard
// library, golang.org/x/mod/sumdb/note and transparency-dev/formats/log only,
// so that verifiers can import it.
package witness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// AlgCosignatureV1 is the signed-note signature type byte of Ed25519
// cosignature/v1 keys (c2sp.org/signed-note).
const AlgCosignatureV1 = 0x04

// algEd25519 is the signature type byte of plain Ed25519 note keys, such as
// the log's own key.
const algEd25519 = 0x01

// Witness is a witness Custos asks for cosignatures.
type Witness struct {
	// URL is the witness's submission prefix: add-checkpoint is URL +
	// "/add-checkpoint".
	URL string
	// VKey is the witness's cosignature/v1 verifier key
	// ("<name>+<key ID>+<base64(0x04 || Ed25519 public key)>"), as
	// litewitness logs it as vkey=.
	VKey string
	// Name is the key name of VKey, which names the witness in cosignature
	// lines.
	Name string
}

// Parse parses a witness flag value "URL,VKEY", for example
// "https://witness.example/w1,witness.example/w1+1a2b3c4d+BASE64": the text
// up to the first comma is the URL, which must be http or https with a host
// and no query or fragment; the rest is VKEY, which must be an Ed25519
// cosignature/v1 verifier key (signature type 0x04).
func Parse(spec string) (*Witness, error) {
	rawURL, vkey, ok := strings.Cut(strings.TrimSpace(spec), ",")
	if !ok {
		return nil, fmt.Errorf("witness: parse %q: want URL,VKEY", spec)
	}
	u, err := parseURL(strings.TrimSpace(rawURL))
	if err != nil {
		return nil, fmt.Errorf("witness: parse %q: %w", spec, err)
	}
	vkey = strings.TrimSpace(vkey)
	v, err := parseVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("witness: parse %q: %w", spec, err)
	}
	return &Witness{URL: u, VKey: vkey, Name: v.Name()}, nil
}

// parseURL checks a witness URL and returns it without a trailing slash.
func parseURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("URL is empty")
	}
	if !strings.Contains(raw, "://") {
		return "", fmt.Errorf("URL %q: no scheme, want http:// or https://", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("bad URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("URL %q: scheme must be http or https", raw)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("URL %q: no host", raw)
	case u.RawQuery != "" || u.ForceQuery:
		return "", fmt.Errorf("URL %q: must not have a query", raw)
	case u.Fragment != "":
		return "", fmt.Errorf("URL %q: must not have a fragment", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return "", fmt.Errorf("URL %q: bad port %q", raw, p)
		}
	}
	return strings.TrimRight(raw, "/"), nil
}

// NewVerifier parses an Ed25519 cosignature/v1 verifier key
// ("<name>+<key ID>+<base64(0x04 || 32-byte public key)>") and returns a
// note.Verifier of the cosignatures it makes, for note.Open.
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := parseVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	return v, nil
}

// cosigVerifier verifies Ed25519 cosignature/v1 signatures
// (c2sp.org/tlog-cosignature).
type cosigVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

// parseVerifier parses and checks a cosignature/v1 verifier key.
func parseVerifier(vkey string) (*cosigVerifier, error) {
	if vkey == "" {
		return nil, errors.New("verifier key is empty")
	}
	name, rest, ok1 := strings.Cut(vkey, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("verifier key %q: want <name>+<key ID>+<base64 key>", vkey)
	}
	if !isValidName(name) {
		return nil, fmt.Errorf("verifier key %q: bad key name %q", vkey, name)
	}
	hb, err := hex.DecodeString(hash16)
	if err != nil || len(hb) != 4 {
		return nil, fmt.Errorf("verifier key %q: key ID %q is not 8 hex digits", vkey, hash16)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(key64)
	if err != nil {
		return nil, fmt.Errorf("verifier key %q: key is not base64: %w", vkey, err)
	}
	switch {
	case len(key) > 0 && key[0] == algEd25519:
		return nil, fmt.Errorf("verifier key %q: is a plain Ed25519 note key (type 0x01), "+
			"not a cosignature/v1 witness key (type 0x04)", vkey)
	case len(key) > 0 && key[0] != AlgCosignatureV1:
		return nil, fmt.Errorf("verifier key %q: signature type 0x%02x is not cosignature/v1 (0x04)", vkey, key[0])
	case len(key) != 1+ed25519.PublicKeySize:
		return nil, fmt.Errorf("verifier key %q: key is %d bytes, want %d", vkey, len(key), 1+ed25519.PublicKeySize)
	}
	v := &cosigVerifier{name: name, hash: keyID(name, key), key: ed25519.PublicKey(key[1:])}
	if want := binary.BigEndian.Uint32(hb); v.hash != want {
		return nil, fmt.Errorf("verifier key %q: key ID %s does not match the key (want %08x)", vkey, hash16, v.hash)
	}
	return v, nil
}

// keyID is the signed-note key ID: the first four bytes of
// SHA-256(name || "\n" || type || public key).
func keyID(name string, typedKey []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write(typedKey)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// isValidName reports whether name is a valid signed-note key name: non-empty
// UTF-8 without Unicode spaces or pluses.
func isValidName(name string) bool {
	return name != "" && utf8.ValidString(name) &&
		strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

// Name returns the key name.
func (v *cosigVerifier) Name() string { return v.name }

// KeyHash returns the key ID.
func (v *cosigVerifier) KeyHash() uint32 { return v.hash }

// Verify reports whether sig (timestamp || Ed25519 signature, the key ID
// already stripped) is a cosignature/v1 of the note text msg.
func (v *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t > math.MaxInt64 {
		return false
	}
	return ed25519.Verify(v.key, cosignedMessage(t, msg), sig[8:])
}

// cosignedMessage is the message a cosignature/v1 signs.
func cosignedMessage(t uint64, text []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "cosignature/v1\ntime %d\n", t)
	b.Write(text)
	return b.Bytes()
}
