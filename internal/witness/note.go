package witness

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// maxSignatures is the most signature lines a note may carry: the limit of
// note.Open, well above the 16 c2sp.org/signed-note requires verifiers to
// accept.
const maxSignatures = 100

// sigPrefix starts every signature line: an em dash and a space.
var sigPrefix = []byte("\u2014 ")

// keyRef names a signing key as a signature line does: key name and key ID.
type keyRef struct {
	name string
	id   uint32
}

// sigLine is a parsed signature line.
type sigLine struct {
	keyRef
	sig  []byte // the signature after the key ID
	line []byte // the line as parsed, without its newline
}

// VerifyCosignatures verifies a signed checkpoint note and returns the names
// of the witnesses, among witnessVKeys (cosignature/v1 verifier keys), whose
// valid cosignature it carries, in the order of witnessVKeys and each name
// once. The log's own signature must verify with logVKey (a note verifier key
// whose name is the checkpoint's origin), and the note text must be a
// checkpoint.
//
// Signatures by keys not listed are ignored. As c2sp.org/signed-note
// recommends, a signature by a listed key that does not verify rejects the
// whole note: the error wraps a *note.InvalidSignatureError.
func VerifyCosignatures(signedNote []byte, logVKey string, witnessVKeys []string) (names []string, err error) {
	logV, err := note.NewVerifier(logVKey)
	if err != nil {
		return nil, fmt.Errorf("witness: verify cosignatures: log key: %w", err)
	}
	logRef := keyRef{logV.Name(), logV.KeyHash()}
	keys := map[keyRef]string{logRef: logVKey}
	verifiers := []note.Verifier{logV}
	var witnesses []*cosigVerifier
	for _, k := range witnessVKeys {
		v, err := parseVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("witness: verify cosignatures: %w", err)
		}
		ref := keyRef{v.name, v.hash}
		if prev, ok := keys[ref]; ok {
			if prev == k && ref != logRef {
				continue // the same witness key listed twice
			}
			return nil, fmt.Errorf("witness: verify cosignatures: keys %q and %q have the same name and key ID", prev, k)
		}
		keys[ref] = k
		verifiers = append(verifiers, v)
		witnesses = append(witnesses, v)
	}
	n, err := note.Open(signedNote, note.VerifierList(verifiers...))
	if err != nil {
		return nil, fmt.Errorf("witness: verify cosignatures: %w", err)
	}
	valid := make(map[keyRef]bool, len(n.Sigs))
	for _, s := range n.Sigs {
		valid[keyRef{s.Name, s.Hash}] = true
	}
	if !valid[logRef] {
		return nil, fmt.Errorf("witness: verify cosignatures: no signature by the log key %s", logVKey)
	}
	var cp log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return nil, fmt.Errorf("witness: verify cosignatures: note is not a checkpoint: %w", err)
	}
	if cp.Origin != logV.Name() {
		return nil, fmt.Errorf("witness: verify cosignatures: checkpoint origin %q is not the log key name %q", cp.Origin, logV.Name())
	}
	seen := make(map[string]bool)
	for _, w := range witnesses {
		if valid[keyRef{w.name, w.hash}] && !seen[w.name] {
			seen[w.name] = true
			names = append(names, w.name)
		}
	}
	return names, nil
}

// MergeSignatures returns signedNote with the signature lines in lines (each
// element one or more newline-terminated "— name base64" lines, as
// AddCheckpoint returns them) appended, so that the result can be served as a
// checkpoint with cosignatures. The note's own lines are kept as they are; a
// line is not appended when the note, or an earlier line, already has a
// signature by the same key (name and key ID). MergeSignatures checks the
// format only: verify the lines first (AddCheckpoint does).
func MergeSignatures(signedNote []byte, lines ...[]byte) ([]byte, error) {
	_, sigs, err := splitNote(signedNote)
	if err != nil {
		return nil, fmt.Errorf("witness: merge signatures: %w", err)
	}
	seen := make(map[keyRef]bool, len(sigs))
	for _, s := range sigs {
		seen[s.keyRef] = true
	}
	out := bytes.Clone(signedNote)
	count := len(sigs)
	for _, block := range lines {
		if len(block) == 0 {
			continue
		}
		add, err := splitSigBlock(block)
		if err != nil {
			return nil, fmt.Errorf("witness: merge signatures: %w", err)
		}
		for _, s := range add {
			if seen[s.keyRef] {
				continue
			}
			seen[s.keyRef] = true
			if count++; count > maxSignatures {
				return nil, fmt.Errorf("witness: merge signatures: more than %d signatures", maxSignatures)
			}
			out = append(append(out, s.line...), '\n')
		}
	}
	return out, nil
}

// splitNote splits a signed note into its text, with its final newline, and
// its parsed signature lines, checking the c2sp.org/signed-note format.
func splitNote(msg []byte) (text []byte, sigs []sigLine, err error) {
	if err := checkChars(msg); err != nil {
		return nil, nil, err
	}
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return nil, nil, errors.New("malformed note: no blank line before the signatures")
	}
	sigs, err = parseSigBlock(msg[i+2:])
	if err != nil {
		return nil, nil, err
	}
	return msg[:i+1], sigs, nil
}

// splitSigBlock parses a block of signature lines outside a note.
func splitSigBlock(block []byte) ([]sigLine, error) {
	if err := checkChars(block); err != nil {
		return nil, err
	}
	return parseSigBlock(block)
}

// checkChars checks that b is UTF-8 with no ASCII control character other
// than newline, as notes must be.
func checkChars(b []byte) error {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r < 0x20 && r != '\n' || r == utf8.RuneError && n == 1 {
			return fmt.Errorf("malformed note: invalid UTF-8 or control character at byte %d", i)
		}
		i += n
	}
	return nil
}

// parseSigBlock parses one or more newline-terminated signature lines.
func parseSigBlock(block []byte) ([]sigLine, error) {
	if len(block) == 0 {
		return nil, errors.New("malformed note: no signature lines")
	}
	if block[len(block)-1] != '\n' {
		return nil, errors.New("malformed note: the last signature line does not end in a newline")
	}
	var sigs []sigLine
	for len(block) > 0 {
		line, rest, _ := bytes.Cut(block, []byte("\n"))
		block = rest
		if len(sigs) == maxSignatures {
			return nil, fmt.Errorf("malformed note: more than %d signature lines", maxSignatures)
		}
		s, err := parseSigLine(line)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, s)
	}
	return sigs, nil
}

// parseSigLine parses a signature line "— <name> <base64(key ID || sig)>"
// without its newline.
func parseSigLine(line []byte) (sigLine, error) {
	rest, ok := bytes.CutPrefix(line, sigPrefix)
	if !ok {
		return sigLine{}, fmt.Errorf("malformed signature line %.80q: does not start with an em dash and a space", line)
	}
	name, b64, ok := strings.Cut(string(rest), " ")
	if !ok || !isValidName(name) {
		return sigLine{}, fmt.Errorf("malformed signature line %.80q: bad key name", line)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) < 5 {
		return sigLine{}, fmt.Errorf("malformed signature line %.80q: bad base64 signature", line)
	}
	return sigLine{keyRef: keyRef{name, binary.BigEndian.Uint32(raw)}, sig: raw[4:], line: line}, nil
}
