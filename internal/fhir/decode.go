package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/ingest"
)

const opDecode = "fhir.decode"

// FormatJSON is the format of the originals this package stores: the
// resource as received, in FHIR's JSON.
const FormatJSON = "application/fhir+json"

// DecodeResource reads one AuditEvent in FHIR's JSON and returns it as a
// Custos event that carries the resource, compacted, as its Original. The
// resource is read as strictly as /v1/events reads events: one JSON
// object, keys that are exactly R4's element names and given once, valid
// UTF-8, no null; then checked against R4's rules (check.go) and mapped
// (mapping.go). path names the resource in errors: "AuditEvent", or
// "Bundle.entry[3].resource". Errors are *custos.Error of kind Invalid
// naming each element at fault; an error of a resource that is valid FHIR
// but that Custos cannot hold is also Unprocessable.
func DecodeResource(raw []byte, path string, lim custos.Limits) (custos.Event, error) {
	ae, err := decodeAuditEvent(raw, path)
	if err != nil {
		return custos.Event{}, err
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		return custos.Event{}, invalid(path, "is not valid JSON")
	}
	e, err := toEvent(ae, path, lim)
	if err != nil {
		return custos.Event{}, err
	}
	e.Original = &custos.Original{Format: FormatJSON, Data: buf.Bytes()}
	return e, nil
}

// decodeAuditEvent decodes and checks raw, an AuditEvent found at path.
func decodeAuditEvent(raw []byte, path string) (*auditEvent, error) {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, invalid(path, "must be a JSON object: a FHIR resource")
	}
	if err := nullOrEmpty(raw, path); err != nil {
		return nil, err
	}
	var ae auditEvent
	if err := ingest.DecodeObject("application/json", bytes.NewReader(raw), &ae); err != nil {
		if rt := resourceType(raw); rt != "AuditEvent" {
			return nil, wrongType(path, rt)
		}
		return nil, rebase(err, path)
	}
	if ae.ResourceType != "AuditEvent" {
		return nil, wrongType(path, ae.ResourceType)
	}
	var p problems
	walkStruct(reflect.ValueOf(&ae).Elem(), reflect.ValueOf(&ae), path, &p)
	if len(p.fields) > 0 {
		return nil, &custos.Error{Op: opDecode, Kind: custos.Invalid, Detail: "the AuditEvent is not valid FHIR R4", Fields: p.fields}
	}
	return &ae, nil
}

func wrongType(path, rt string) error {
	if rt == "" {
		return invalid(path+".resourceType", "is required: this endpoint takes an AuditEvent")
	}
	return invalid(path+".resourceType", "must be AuditEvent: this endpoint takes no other resource type (got "+quoteShort(rt)+")")
}

func quoteShort(s string) string {
	if len(s) > 40 || !printable(s) {
		return "another type"
	}
	return s
}

func printable(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// resourceType reads the resourceType of a JSON object, leniently: it is
// only used to say that a resource is of another type.
func resourceType(raw []byte) string {
	var probe struct {
		ResourceType json.RawMessage `json:"resourceType"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return "AuditEvent" // not JSON: the strict decoder's error says why
	}
	var s string
	if json.Unmarshal(probe.ResourceType, &s) != nil {
		return ""
	}
	return s
}

// rebase puts the path of the resource in front of every field of an
// error from the strict decoder, and says what an unknown field means here.
func rebase(err error, path string) error {
	var e *custos.Error
	if !errors.As(err, &e) {
		return err
	}
	out := *e
	out.Op = opDecode
	out.Fields = make([]custos.FieldError, len(e.Fields))
	for i, f := range e.Fields {
		if f.Field == "" {
			f.Field = path
		} else {
			f.Field = path + "." + f.Field
		}
		if strings.HasPrefix(f.Message, "unknown field") {
			f.Message = unknownElement(f.Field, f.Message)
		}
		out.Fields[i] = f
	}
	if out.Kind == custos.Invalid {
		out.Detail = "the resource is not a valid FHIR R4 AuditEvent"
	}
	return &out
}

// unknownElement explains a key the decoder did not know.
func unknownElement(field, msg string) string {
	last := field[strings.LastIndexByte(field, '.')+1:]
	switch {
	case last == "modifierExtension":
		return "is not supported: Custos does not accept modifier extensions, whose meaning it cannot know"
	case strings.HasPrefix(last, "_"):
		return "is not supported: Custos does not accept extensions on primitive values"
	case strings.HasPrefix(last, "value"):
		return "is not a value type Custos accepts in an extension (see the README, FHIR)"
	}
	return strings.Replace(msg, "unknown field", "is not an element of this FHIR R4 type", 1)
}

// nullOrEmpty refuses what FHIR's JSON never holds and a Go struct cannot
// tell from an absent element: null, and the empty string "".
func nullOrEmpty(raw []byte, path string) error {
	switch nullAt(raw) {
	case -1:
		return nil
	case -2:
		return invalid(path, `holds an empty string ""; FHIR leaves absent elements out`)
	}
	return invalid(path, "holds a JSON null; FHIR leaves absent elements out")
}

// nullAt returns the offset of the first null literal outside a string in
// a JSON text, -2 for an empty string, or -1 for neither.
func nullAt(b []byte) int {
	in := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case in && c == '\\':
			i++
		case c == '"':
			if !in && i+1 < len(b) && b[i+1] == '"' {
				return -2
			}
			in = !in
		case !in && c == 'n':
			return i
		}
	}
	return -1
}

func invalid(field, msg string) *custos.Error {
	return &custos.Error{Op: opDecode, Kind: custos.Invalid, Detail: "the resource is not a valid FHIR R4 AuditEvent",
		Fields: []custos.FieldError{{Field: field, Message: msg}}}
}
