// Package ingest turns request bodies into validated, normalised audit events:
// one JSON object, a JSON array, or NDJSON. A batch is accepted whole or not at
// all: any invalid event rejects the batch with every field at fault named.
package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/custos-audit/custos"
)

// Options bound what Decode accepts.
type Options struct {
	MaxBatch int           // events per request (default 10,000)
	Limits   custos.Limits // field limits
}

const op = "ingest.decode"

// Decode reads the body according to its content type and returns the
// normalised events, or an *custos.Error: UnsupportedMedia, TooLarge (batch
// over MaxBatch) or Invalid (naming the fields).
func Decode(contentType string, body io.Reader, opt Options) ([]custos.Event, error) {
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 10_000
	}
	if opt.Limits.MaxChanges <= 0 {
		opt.Limits = custos.DefaultLimits
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = ""
	}
	ndjson := mt == "application/x-ndjson" || mt == "application/jsonl" || mt == "application/ndjson"
	if mt != "application/json" && !ndjson {
		return nil, custos.Errorf(op, custos.UnsupportedMedia,
			"content type %q is not accepted; send application/json (an event or an array) or application/x-ndjson", contentType)
	}
	// Read the whole (size-limited) body first, so that a body cut off at
	// the limit is reported as too large, not as whatever JSON error the
	// cut makes.
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, readError(err)
	}
	var wire []custos.EventInput
	batch := true
	if ndjson {
		wire, err = decodeNDJSON(bytes.NewReader(raw), opt.MaxBatch)
	} else {
		wire, batch, err = decodeJSON(bytes.NewReader(raw), opt.MaxBatch)
	}
	if err != nil {
		return nil, err
	}
	if len(wire) == 0 {
		return nil, &custos.Error{Op: op, Kind: custos.Invalid, Detail: "the batch holds no events",
			Fields: []custos.FieldError{{Field: "", Message: "at least one event is required"}}}
	}
	events := make([]custos.Event, len(wire))
	var fields []custos.FieldError
	for i := range wire {
		events[i] = wire[i].Event()
		prefix := ""
		if batch {
			prefix = fmt.Sprintf("[%d].", i)
		}
		var e *custos.Error
		if err := events[i].Normalize(opt.Limits, prefix); errors.As(err, &e) {
			fields = append(fields, e.Fields...)
		}
	}
	if len(fields) > 0 {
		detail := "the event is invalid"
		if batch {
			detail = "the batch has invalid events; nothing was stored"
		}
		return nil, &custos.Error{Op: op, Kind: custos.Invalid, Detail: detail, Fields: fields}
	}
	return events, nil
}

func decodeJSON(body io.Reader, max int) ([]custos.EventInput, bool, error) {
	br := bufio.NewReader(body)
	first, err := peekNonSpace(br)
	if err != nil {
		return nil, false, invalid("", "the body is empty; send an event or an array of events")
	}
	dec := json.NewDecoder(br)
	dec.DisallowUnknownFields()
	if first != '[' {
		var w custos.EventInput
		if err := dec.Decode(&w); err != nil {
			return nil, false, decodeError("", err)
		}
		if err := expectEOF(dec); err != nil {
			return nil, false, err
		}
		return []custos.EventInput{w}, false, nil
	}
	if _, err := dec.Token(); err != nil { // the '['
		return nil, true, decodeError("", err)
	}
	var out []custos.EventInput
	for i := 0; dec.More(); i++ {
		if i >= max {
			return nil, true, tooMany(max)
		}
		var w custos.EventInput
		if err := dec.Decode(&w); err != nil {
			return nil, true, decodeError(fmt.Sprintf("[%d]", i), err)
		}
		out = append(out, w)
	}
	if _, err := dec.Token(); err != nil { // the ']'
		return nil, true, decodeError("", err)
	}
	return out, true, expectEOF(dec)
}

func decodeNDJSON(body io.Reader, max int) ([]custos.EventInput, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<30) // the body limit bounds lines
	var out []custos.EventInput
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if len(out) >= max {
			return nil, tooMany(max)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var w custos.EventInput
		prefix := fmt.Sprintf("[%d]", len(out))
		if err := dec.Decode(&w); err != nil {
			return nil, decodeError(prefix, err)
		}
		if dec.More() {
			return nil, invalid(prefix, fmt.Sprintf("line %d holds more than one JSON value", line))
		}
		out = append(out, w)
	}
	if err := sc.Err(); err != nil {
		return nil, readError(err)
	}
	return out, nil
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if !strings.ContainsRune(" \t\r\n", rune(c)) {
			return c, br.UnreadByte()
		}
	}
}

func expectEOF(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return decodeError("", err)
		}
		return invalid("", "unexpected data after the JSON value; send one event, an array, or NDJSON")
	}
	return nil
}

func invalid(field, msg string) *custos.Error {
	return &custos.Error{Op: op, Kind: custos.Invalid, Detail: "the request body is not valid",
		Fields: []custos.FieldError{{Field: field, Message: msg}}}
}

func tooMany(max int) *custos.Error {
	return custos.Errorf(op, custos.TooLarge, "a batch may hold at most %d events; nothing was stored", max)
}

// readError passes a body-size error on as TooLarge and anything else as
// Invalid.
func readError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &custos.Error{Op: op, Kind: custos.TooLarge, Detail: "the request body is too large; nothing was stored", Err: err}
	}
	return &custos.Error{Op: op, Kind: custos.Invalid, Detail: "the request body could not be read", Err: err}
}

// decodeError names the field a JSON error is about.
func decodeError(prefix string, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	join := func(f string) string {
		if prefix == "" {
			return f
		}
		if f == "" {
			return prefix
		}
		return prefix + "." + f
	}
	switch {
	case errors.As(err, &syn):
		return invalid(prefix, fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, syn.Error()))
	case errors.As(err, &typ):
		return invalid(join(typ.Field), fmt.Sprintf("must be a JSON %s", jsonKind(typ)))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return invalid(prefix, "the JSON ends too early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		msg := "unknown field"
		if name == "index" || name == "timestamp" {
			msg = "is assigned by the ledger; clients never send it"
		}
		return invalid(join(name), msg)
	case strings.Contains(err.Error(), "parsing time"):
		return invalid(join("occurred_at"), "must be an RFC 3339 time")
	}
	return readError(err)
}

func jsonKind(typ *json.UnmarshalTypeError) string {
	switch typ.Type.Kind().String() {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "int", "int64", "uint64":
		return "integer"
	case "slice":
		return "array"
	case "struct", "ptr":
		return "object"
	}
	return "value of another type (got " + typ.Value + ")"
}
