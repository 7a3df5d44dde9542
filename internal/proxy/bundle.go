package proxy

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/custos-audit/custos/internal/fhir"
)

// maxToken bounds the bytes the Bundle walk holds at once: encoding/json
// buffers one whole token (a string, say an attachment's base64), so a
// longer token ends the walk rather than the proxy's memory.
const maxToken = 1 << 20

// Patients is what the walk of one response body found.
type Patients struct {
	Bundle    bool     // the body was a FHIR Bundle
	IDs       []string // the distinct patients referenced, in order of first appearance, at most the cap
	Truncated bool     // more distinct patients than the cap were referenced
	Err       error    // why the walk stopped before the end (malformed JSON, a token over 1 MiB)
}

// ErrTokenTooLong ends a walk whose body holds a JSON token over 1 MiB.
var ErrTokenTooLong = errors.New("a JSON token is longer than 1 MiB")

// Scanner extracts the patients a FHIR Bundle references from the bytes
// written to it, in whatever chunks they arrive, while they stream on to
// the client: its memory is bounded by one token, never the whole body.
// Write never fails and never blocks on a malformed body; Result waits for
// the walk to end, so call it after Close.
type Scanner struct {
	pw     *io.PipeWriter
	done   chan struct{}
	broken bool // the walk has ended: later writes are dropped
	res    Patients
}

// NewScanner starts a walk that keeps at most max distinct patients.
func NewScanner(max int) *Scanner { return newScanner(max, false, 0) }

// NewGzipScanner is NewScanner for a body sent with Content-Encoding: gzip:
// the walk reads it decompressed, at most maxInflated bytes of JSON.
func NewGzipScanner(max int) *Scanner { return newScanner(max, true, maxInflated) }

// maxInflated bounds the JSON a gzip body may inflate to for the walk (a
// small body of whitespace could otherwise keep it busy for long).
const maxInflated = 256 << 20

// ErrInflatedTooLarge ends the walk of a gzip body past maxInflated.
var ErrInflatedTooLarge = errors.New("the body inflates to more than 256 MiB")

func newScanner(max int, gzipped bool, inflateCap int64) *Scanner {
	pr, pw := io.Pipe()
	s := &Scanner{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		var r io.Reader = pr
		if gzipped {
			gz, err := gzip.NewReader(pr)
			if err != nil {
				s.res = Patients{Err: err}
				pr.CloseWithError(errWalkEnded)
				return
			}
			r = &capReader{r: gz, left: inflateCap}
		}
		s.res = walkBundle(r, max)
		pr.CloseWithError(errWalkEnded) // a writer still writing is told, not blocked
	}()
	return s
}

// capReader fails once more than left bytes were read.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, ErrInflatedTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

var errWalkEnded = errors.New("bundle walk ended")

// Write feeds the walk; it always reports len(p) written.
func (s *Scanner) Write(p []byte) (int, error) {
	if !s.broken {
		if _, err := s.pw.Write(p); err != nil {
			s.broken = true
		}
	}
	return len(p), nil
}

// Close ends the body; the walk sees io.EOF.
func (s *Scanner) Close() error { return s.pw.Close() }

// Abort ends the body early (the client or the upstream went away).
func (s *Scanner) Abort(err error) { s.pw.CloseWithError(err) }

// Result waits for the walk and returns what it found.
func (s *Scanner) Result() Patients {
	<-s.done
	return s.res
}

// ScanBundle walks a whole body held in memory; a convenience for tests and
// callers that already have the bytes.
func ScanBundle(body []byte, max int) Patients {
	return walkBundle(bytes.NewReader(body), max)
}

// walker is one walk over a Bundle.
type walker struct {
	dec  *json.Decoder
	max  int
	seen map[string]bool
	out  Patients
}

// boundedReader fails once the decoder holds more than maxToken unread
// bytes, which happens only inside one long token.
type boundedReader struct {
	r    io.Reader
	read int64
	dec  *json.Decoder
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.read-b.dec.InputOffset() > maxToken {
		return 0, ErrTokenTooLong
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	return n, err
}

func walkBundle(r io.Reader, max int) Patients {
	br := &boundedReader{r: r}
	w := &walker{dec: json.NewDecoder(br), max: max, seen: map[string]bool{}}
	br.dec = w.dec
	bundle := false
	err := w.object(func(key string) error {
		switch key {
		case "resourceType":
			s, err := w.str()
			bundle = s == "Bundle"
			return err
		case "entry":
			return w.array(w.entry)
		}
		return w.skip()
	})
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if !bundle {
		return Patients{Err: err} // a Bundle's patients only: an OperationOutcome or a Patient is not a search result
	}
	w.out.Bundle, w.out.Err = true, err
	return w.out
}

// entry walks one Bundle.entry element: only its resource matters.
func (w *walker) entry() error {
	return w.object(func(key string) error {
		if key == "resource" {
			return w.resource()
		}
		return w.skip()
	})
}

// resource walks one entry's resource: a Patient's id, and the subject or
// patient reference of any other resource.
func (w *walker) resource() error {
	var typ, id string
	var refs []string
	err := w.object(func(key string) error {
		var err error
		switch key {
		case "resourceType":
			typ, err = w.str()
		case "id":
			id, err = w.str()
		case "subject", "patient":
			var ref string
			if ref, err = w.reference(); ref != "" {
				refs = append(refs, ref)
			}
		default:
			err = w.skip()
		}
		return err
	})
	if err != nil {
		return err
	}
	if typ == "Patient" && fhir.IsID(id) {
		w.add(id)
	}
	for _, ref := range refs {
		if p, ok := PatientReference(ref); ok {
			w.add(p)
		}
	}
	return nil
}

// reference reads a Reference ({"reference": "Patient/x", …}); any other
// value is skipped and gives "".
func (w *walker) reference() (string, error) {
	tok, err := w.dec.Token()
	if err != nil {
		return "", err
	}
	if tok != json.Delim('{') {
		return "", w.skipRest(tok)
	}
	var ref string
	err = w.members(func(key string) error {
		if key != "reference" {
			return w.skip()
		}
		var serr error
		ref, serr = w.str()
		return serr
	})
	return ref, err
}

// add keeps a patient, unless seen or over the cap; the walk goes on past
// the cap either way, for the Bundle's resourceType may come last.
func (w *walker) add(id string) {
	switch {
	case w.seen[id]:
	case len(w.out.IDs) >= w.max:
		w.out.Truncated = true
	default:
		w.seen[id] = true
		w.out.IDs = append(w.out.IDs, id)
	}
}

// object reads an object, calling member for each key with the decoder
// before its value; member must consume the value. A value that is not an
// object is skipped.
func (w *walker) object(member func(key string) error) error {
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return w.skipRest(tok)
	}
	return w.members(member)
}

// members reads the members of an object whose '{' was read, and its '}'.
func (w *walker) members(member func(key string) error) error {
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("object key: unexpected %v", tok)
		}
		if err := member(key); err != nil {
			return err
		}
	}
	_, err := w.dec.Token() // '}'
	return err
}

// array reads an array, calling elem for each element; elem must consume
// it. A value that is not an array is skipped.
func (w *walker) array(elem func() error) error {
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('[') {
		return w.skipRest(tok)
	}
	for w.dec.More() {
		if err := elem(); err != nil {
			return err
		}
	}
	_, err = w.dec.Token() // ']'
	return err
}

// str reads a string value; any other value is skipped and gives "".
func (w *walker) str() (string, error) {
	tok, err := w.dec.Token()
	if err != nil {
		return "", err
	}
	if s, ok := tok.(string); ok {
		return s, nil
	}
	return "", w.skipRest(tok)
}

// skip reads and discards one value.
func (w *walker) skip() error {
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	return w.skipRest(tok)
}

// skipRest discards the rest of a value whose first token was tok.
func (w *walker) skipRest(tok json.Token) error {
	if tok != json.Delim('{') && tok != json.Delim('[') {
		return nil
	}
	for depth := 1; depth > 0; {
		t, err := w.dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

// PatientReference returns the patient id of a FHIR reference to a
// Patient: relative ("Patient/p-1"), versioned ("Patient/p-1/_history/2")
// or absolute ("https://ehr.example/fhir/Patient/p-1"). Contained ("#p1"),
// logical and other references give false.
func PatientReference(ref string) (string, bool) {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	rest, ok := strings.CutPrefix(ref, "Patient/")
	if !ok {
		i := strings.LastIndex(ref, "/Patient/")
		if i < 0 || !strings.Contains(ref[:i], "://") {
			return "", false
		}
		rest = ref[i+len("/Patient/"):]
	}
	if !fhir.IsID(rest) {
		return "", false
	}
	return rest, true
}
