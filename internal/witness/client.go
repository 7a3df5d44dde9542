package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/transparency-dev/formats/log"
)

// MaxResponseSize bounds how much of a witness's answer AddCheckpoint reads.
const MaxResponseSize = 64 << 10

// maxProofHashes is the most consistency proof lines c2sp.org/tlog-witness
// lets a client send.
const maxProofHashes = 63

// Errors of AddCheckpoint, for errors.Is. The status errors come wrapped in a
// *StatusError (or a *ConflictError for a 409 that carries the witness's
// size).
var (
	// ErrBadRequest is a 400: the witness found the request malformed, or
	// the old size above the checkpoint's size (a rollback).
	ErrBadRequest = errors.New("bad request")
	// ErrForbidden is a 403: no log signature on the checkpoint verifies
	// with a key the witness trusts for its origin. litewitness also answers
	// 403 for an origin it does not know.
	ErrForbidden = errors.New("log signature not accepted")
	// ErrUnknownLog is a 404: the witness does not know the checkpoint's
	// origin.
	ErrUnknownLog = errors.New("unknown log")
	// ErrConflict is a 409: the old size is not the witness's size (see
	// ConflictError), or, at equal sizes, the root hashes differ.
	ErrConflict = errors.New("conflict")
	// ErrInconsistent is a 422: the consistency proof does not verify, so
	// the log forked or went back, or the proof is wrong. litewitness also
	// answers 422 for a different root at the witness's own size.
	ErrInconsistent = errors.New("consistency proof rejected")
	// ErrUnexpectedStatus is any other status but 200: the witness is
	// failing (a 5xx), or is not a tlog-witness.
	ErrUnexpectedStatus = errors.New("unexpected status")
	// ErrUnreachable wraps network and transport errors: the request got no
	// answer (the underlying error, such as context.DeadlineExceeded, is
	// wrapped too).
	ErrUnreachable = errors.New("witness unreachable")
	// ErrBadResponse is a 200 (or 409) answer that is not what the protocol
	// says: too large, malformed, or without a valid cosignature by the
	// witness's key.
	ErrBadResponse = errors.New("bad response")
)

// StatusError is an answer other than 200 from a witness. It unwraps to the
// sentinel error of its status code: ErrBadRequest, ErrForbidden,
// ErrUnknownLog, ErrConflict, ErrInconsistent, or else ErrUnexpectedStatus.
type StatusError struct {
	// StatusCode is the HTTP status code.
	StatusCode int
	// Body is the start of the answer's body, for diagnostics.
	Body string
}

// Error describes the status and the body.
func (e *StatusError) Error() string {
	msg := fmt.Sprintf("HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if s := e.Unwrap(); s != ErrUnexpectedStatus {
		msg += " (" + s.Error() + ")"
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Unwrap returns the sentinel error of the status code.
func (e *StatusError) Unwrap() error {
	switch e.StatusCode {
	case http.StatusBadRequest:
		return ErrBadRequest
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusNotFound:
		return ErrUnknownLog
	case http.StatusConflict:
		return ErrConflict
	case http.StatusUnprocessableEntity:
		return ErrInconsistent
	}
	return ErrUnexpectedStatus
}

// ConflictError is a 409 answer with Content-Type text/x.tlog.size: the old
// size sent is not the size of the latest checkpoint the witness cosigned for
// the log. Retry with Size as the old size (and a proof from it), or, when
// Size is above the log's size, or the log cannot prove consistency from it,
// report a rollback or fork. It unwraps to ErrConflict.
type ConflictError struct {
	// Size is the witness's size of the log.
	Size uint64
}

// Error reports the witness's size.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("HTTP 409 Conflict: the witness has the log at size %d", e.Size)
}

// Unwrap returns ErrConflict.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// AddCheckpoint asks the witness to cosign signedCheckpoint (a signed
// checkpoint note, possibly with cosignatures already), given the size of the
// checkpoint it cosigned last and an RFC 6962 consistency proof from that
// size (empty for old size 0): C2SP tlog-witness POST <URL>/add-checkpoint.
//
// It returns the witness's newline-terminated cosignature lines, each checked
// to be a valid cosignature/v1 by w.VKey over the checkpoint; lines by other
// keys are dropped, as the protocol says, and an answer with no valid line by
// w.VKey is an error (ErrBadResponse). Append the lines with MergeSignatures.
// Other outcomes are errors: *ConflictError, *StatusError (see the Err
// variables), or ErrUnreachable. A nil hc means http.DefaultClient; bound the
// call with ctx.
func (w *Witness) AddCheckpoint(ctx context.Context, hc *http.Client, oldSize uint64, proof [][]byte, signedCheckpoint []byte) ([]byte, error) {
	cosigs, err := w.addCheckpoint(ctx, hc, oldSize, proof, signedCheckpoint)
	if err != nil {
		return nil, fmt.Errorf("witness: add-checkpoint to %s: %w", w.URL, err)
	}
	return cosigs, nil
}

// addCheckpoint is AddCheckpoint without the operation in its errors.
func (w *Witness) addCheckpoint(ctx context.Context, hc *http.Client, oldSize uint64, proof [][]byte, signedCheckpoint []byte) ([]byte, error) {
	v, err := parseVerifier(w.VKey)
	if err != nil {
		return nil, err
	}
	text, err := checkpointText(signedCheckpoint)
	if err != nil {
		return nil, err
	}
	body, err := requestBody(oldSize, proof, signedCheckpoint)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		strings.TrimRight(w.URL, "/")+"/add-checkpoint", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read answer (HTTP %d): %w", ErrUnreachable, resp.StatusCode, err)
	}
	if len(answer) > MaxResponseSize {
		return nil, fmt.Errorf("%w: HTTP %d answer larger than %d bytes", ErrBadResponse, resp.StatusCode, MaxResponseSize)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return verifiedCosignatures(v, text, answer)
	case http.StatusConflict:
		if isSizeAnswer(resp.Header.Get("Content-Type")) {
			size, err := parseSizeAnswer(answer)
			if err != nil {
				return nil, err
			}
			return nil, &ConflictError{Size: size}
		}
	}
	return nil, &StatusError{StatusCode: resp.StatusCode, Body: excerpt(answer)}
}

// checkpointText returns the text of a signed checkpoint note, checking that
// it is a checkpoint.
func checkpointText(signed []byte) ([]byte, error) {
	text, _, err := splitNote(signed)
	if err != nil {
		return nil, fmt.Errorf("signed checkpoint: %w", err)
	}
	var cp log.Checkpoint
	if _, err := cp.Unmarshal(text); err != nil {
		return nil, fmt.Errorf("signed checkpoint: %w", err)
	}
	return text, nil
}

// requestBody formats an add-checkpoint request body.
func requestBody(oldSize uint64, proof [][]byte, signedCheckpoint []byte) ([]byte, error) {
	if oldSize == 0 && len(proof) > 0 {
		return nil, errors.New("a consistency proof from size 0 must be empty")
	}
	if len(proof) > maxProofHashes {
		return nil, fmt.Errorf("consistency proof of %d hashes, at most %d allowed", len(proof), maxProofHashes)
	}
	b := strconv.AppendUint([]byte("old "), oldSize, 10)
	b = append(b, '\n')
	for i, h := range proof {
		if len(h) != 32 {
			return nil, fmt.Errorf("consistency proof hash %d is %d bytes, want 32", i, len(h))
		}
		b = base64.StdEncoding.AppendEncode(b, h)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return append(b, signedCheckpoint...), nil
}

// verifiedCosignatures checks a 200 answer: newline-terminated signature
// lines, those by v valid cosignatures of text. It returns the lines by v.
func verifiedCosignatures(v *cosigVerifier, text, answer []byte) ([]byte, error) {
	sigs, err := splitSigBlock(answer)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	var out []byte
	for _, s := range sigs {
		if s.name != v.name || s.id != v.hash {
			continue // another key: ignored, as c2sp.org/tlog-witness says
		}
		if !v.Verify(text, s.sig) {
			return nil, fmt.Errorf("%w: cosignature %.80q does not verify with %s", ErrBadResponse, s.line, v.name)
		}
		out = append(append(out, s.line...), '\n')
	}
	if out == nil {
		return nil, fmt.Errorf("%w: no cosignature by %s+%08x in %.200q", ErrBadResponse, v.name, v.hash, answer)
	}
	return out, nil
}

// isSizeAnswer reports whether a Content-Type is text/x.tlog.size.
func isSizeAnswer(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "text/x.tlog.size"
}

// parseSizeAnswer parses a text/x.tlog.size body: a decimal size with no
// leading zeros, and a newline.
func parseSizeAnswer(b []byte) (uint64, error) {
	s, ok := strings.CutSuffix(string(b), "\n")
	if !ok || s == "" || len(s) > 1 && s[0] == '0' || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%w: HTTP 409 text/x.tlog.size body %.40q is not a size", ErrBadResponse, b)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: HTTP 409 text/x.tlog.size body %.40q: %w", ErrBadResponse, b, err)
	}
	return n, nil
}

// excerpt returns the start of an error answer as a printable string.
func excerpt(b []byte) string {
	const maxLen = 200
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
	if len(s) > maxLen {
		s = strings.ToValidUTF8(s[:maxLen], "") + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
