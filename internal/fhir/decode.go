package fhir

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"

	"github.com/custos-audit/custos"
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
	e, err := toEvent(ae, path, lim)
	if err != nil {
		return custos.Event{}, err
	}
	// The bytes as received, but for the whitespace around the object.
	e.Original = &custos.Original{Format: FormatJSON, Data: bytes.Clone(bytes.TrimSpace(raw))}
	return e, nil
}

// decodeAuditEvent decodes and checks raw, an AuditEvent found at path.
func decodeAuditEvent(raw []byte, path string) (*auditEvent, error) {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, invalid(path, "must be a JSON object: a FHIR resource")
	}
	var ae auditEvent
	if pr := decodeJSON(raw, &ae); pr != nil {
		if rt := resourceType(raw); rt != "AuditEvent" {
			return nil, wrongType(path, rt)
		}
		return nil, invalid(joinPath(path, pr.path), pr.msg)
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

// join appends a path below a resource's path.
func joinPath(path, below string) string {
	if below == "" {
		return path
	}
	return path + "." + below
}

func invalid(field, msg string) *custos.Error {
	return &custos.Error{Op: opDecode, Kind: custos.Invalid, Detail: "the resource is not a valid FHIR R4 AuditEvent",
		Fields: []custos.FieldError{{Field: field, Message: msg}}}
}
