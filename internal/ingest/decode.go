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
	"reflect"
	"strings"
	"time"

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
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = ""
	}
	ndjson := mt == "application/x-ndjson" || mt == "application/jsonl" || mt == "application/ndjson"
	if mt != "application/json" && !ndjson || !utf8Charset(params) {
		return nil, custos.Errorf(op, custos.UnsupportedMedia,
			"content type %q is not accepted; send application/json (an event or an array) or application/x-ndjson, in UTF-8", contentType)
	}
	// Read the whole (size-limited) body first, so that a body cut off at
	// the limit is reported as too large, not as whatever JSON error the
	// cut makes.
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, readError(err)
	}
	var wire []wireEvent
	batch := true
	if ndjson {
		wire, err = decodeNDJSON(bytes.NewReader(raw), opt.MaxBatch)
	} else {
		// The strict scan first: what it refuses, the decoder would
		// read as something other than what the body says.
		var n int
		if n, err = scanBatch(raw, eventSchema, opt.MaxBatch); err != nil {
			return nil, err
		}
		wire, batch, err = decodeJSON(raw, opt.MaxBatch, n)
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
		events[i] = wire[i].event()
		var e *custos.Error
		if err := events[i].Normalize(opt.Limits, ""); errors.As(err, &e) {
			for _, f := range e.Fields {
				if batch {
					f.Field = fmt.Sprintf("[%d].", i) + f.Field // formatted only for an error
				}
				fields = append(fields, f)
			}
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

// wireEvent is an EventInput as decoded: its time decodes with an error
// of its own type, so that a bad time is told by type, not by message.
type wireEvent struct {
	custos.EventInput
	OccurredAt *wireTime `json:"occurred_at,omitempty"` // shadows EventInput's
}

// embeddedInput is the name encoding/json gives the embedded EventInput in
// field paths.
var embeddedInput = reflect.TypeFor[wireEvent]().Field(0).Name

func (w *wireEvent) event() custos.Event {
	w.EventInput.OccurredAt = (*time.Time)(w.OccurredAt)
	return w.EventInput.Event()
}

// wireTime is an RFC 3339 time in a JSON string.
type wireTime time.Time

var errTime = &fieldError{field: "occurred_at", msg: "must be an RFC 3339 time such as 2026-11-25T08:00:00Z, as a JSON string"}

func (t *wireTime) UnmarshalJSON(b []byte) error {
	// A JSON string: time.Time's own UnmarshalJSON does not unescape it.
	var s []byte
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' && bytes.IndexByte(b, '\\') < 0 {
		s = b[1 : len(b)-1]
	} else {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return errTime
		}
		s = []byte(str)
	}
	var tt time.Time
	if err := tt.UnmarshalText(s); err != nil {
		return errTime
	}
	*t = wireTime(tt)
	return nil
}

// fieldError is a decoding error about one field, relative to the record.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// eventSchema holds the exact names of an event's fields, as clients send
// them, and the names only the ledger assigns.
var eventSchema = func() *schema {
	s := buildSchema(reflect.TypeFor[custos.EventInput](), map[reflect.Type]*schema{})
	s.reserved = map[string]string{}
	for _, name := range []string{"index", "timestamp", "kind", "submitted_by"} {
		s.reserved[name] = "is assigned by the ledger; clients never send it"
	}
	return s
}()

// decodeJSON decodes one event or an array of them; n is the number of
// events the strict scan counted, a hint for the allocation.
func decodeJSON(raw []byte, max, n int) ([]wireEvent, bool, error) {
	t := bytes.TrimLeft(raw, " \t\r\n")
	if len(t) == 0 {
		return nil, false, invalid("", "the body is empty; send an event or an array of events")
	}
	first := t[0]
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.DisallowUnknownFields()
	if first != '[' {
		var w wireEvent
		if err := dec.Decode(&w); err != nil {
			return nil, false, decodeError("", err)
		}
		if err := expectEOF(dec, afterEvents); err != nil {
			return nil, false, err
		}
		return []wireEvent{w}, false, nil
	}
	if _, err := dec.Token(); err != nil { // the '['
		return nil, true, decodeError("", err)
	}
	out := make([]wireEvent, 0, min(n, max))
	for i := 0; dec.More(); i++ {
		if i >= max {
			return nil, true, tooMany(max)
		}
		out = append(out, wireEvent{})
		if err := dec.Decode(&out[i]); err != nil {
			return nil, true, decodeError(fmt.Sprintf("[%d]", i), err)
		}
	}
	if _, err := dec.Token(); err != nil { // the ']'
		return nil, true, decodeError("", err)
	}
	return out, true, expectEOF(dec, afterEvents)
}

func decodeNDJSON(body io.Reader, max int) ([]wireEvent, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<30) // the body limit bounds lines
	var out []wireEvent
	for line := 1; sc.Scan(); line++ {
		b := bytes.Trim(sc.Bytes(), " \t\r\n") // JSON white space only
		if len(b) == 0 {
			continue
		}
		if len(out) >= max {
			return nil, tooMany(max)
		}
		if err := scanOne(b, eventSchema, len(out)); err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var w wireEvent
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

const afterEvents = "unexpected data after the JSON value; send one event, an array, or NDJSON"

func expectEOF(dec *json.Decoder, msg string) error {
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return decodeError("", err)
		}
		return invalid("", msg)
	}
	return nil
}

// utf8Charset reports whether a media type's parameters declare UTF-8, or
// no charset: JSON is UTF-8 (RFC 8259).
func utf8Charset(params map[string]string) bool {
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
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

// decodeError names the field a JSON error is about. Errors are told apart
// by type, never by their message.
func decodeError(prefix string, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var fe *fieldError
	var mbe *http.MaxBytesError
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
	case errors.As(err, &fe):
		return invalid(join(fe.field), fe.msg)
	case errors.As(err, &syn):
		return invalid(prefix, fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, syn.Error()))
	case errors.As(err, &typ):
		// encoding/json names the embedded EventInput in a wireEvent's
		// field path; the client knows no such field.
		field := strings.TrimPrefix(typ.Field, embeddedInput+".")
		return invalid(join(field), fmt.Sprintf("must be a JSON %s", jsonKind(typ)))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return invalid(prefix, "the JSON ends too early")
	case errors.As(err, &mbe):
		return readError(err)
	}
	// The strict scan has refused unknown and case-variant keys before
	// decoding, so this is not expected; it is still the client's input.
	e := invalid(prefix, "the JSON does not fit the expected fields")
	e.Err = err
	return e
}

func jsonKind(typ *json.UnmarshalTypeError) string {
	if typ.Type == nil {
		return "value of another type (got " + typ.Value + ")"
	}
	switch typ.Type.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Pointer, reflect.Map:
		return "object"
	}
	return "value of another type (got " + typ.Value + ")"
}

// DecodeObject decodes a request body holding one JSON object into v, a
// pointer to a struct, as strictly as Decode reads events: only
// application/json in UTF-8; every key exactly one of v's field names (by
// their json tags), at most once, at every level that maps to a struct;
// no duplicate key anywhere; valid UTF-8 throughout; no DEL or C1 control
// character in a string (C0 controls are the caller's to judge); nothing
// after the object. Errors are *custos.Error: UnsupportedMedia, TooLarge
// (from an http.MaxBytesReader) or Invalid naming the field.
func DecodeObject(contentType string, body io.Reader, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return &custos.Error{Op: op, Kind: custos.Internal, Err: fmt.Errorf("DecodeObject into %T, not a pointer to a struct", v)}
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" || !utf8Charset(params) {
		return custos.Errorf(op, custos.UnsupportedMedia, "content type %q is not accepted; send application/json, in UTF-8", contentType)
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return readError(err)
	}
	t := bytes.TrimLeft(raw, " \t\r\n")
	if len(t) == 0 {
		return invalid("", "the body is empty; send a JSON object")
	}
	if t[0] != '{' {
		return invalid("", "the body must be one JSON object")
	}
	if err := scanOne(raw, schemaFor(rv.Type()), -1); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError("", err)
	}
	return expectEOF(dec, "unexpected data after the JSON object; send one object")
}
