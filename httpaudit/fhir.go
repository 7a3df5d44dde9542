package httpaudit

import (
	"net/url"
	"strings"

	"github.com/custos-audit/custos"
)

// fhirRequest is what a FHIR RESTful path says (FHIR R4 "RESTful API"):
// the resource, whether it is a search, and the action an operation
// implies ($export is EXPORT, $import is IMPORT; "" otherwise).
type fhirRequest struct {
	Resource
	action custos.Action
}

// parseFHIR reads path (below the FHIR base) and query. It accepts:
//
//	Type                     search (GET) or create (POST)
//	Type/_search             search (POST)
//	Type/_history            history of a type (a search)
//	Type/id                  read, update, delete
//	Type/id/_history[/vid]   history, vread
//	Type/id/Compartment      a compartment search (Patient/123/Observation)
//	[Type/[id/]]$operation   an operation
//
// Anything else, and types or ids outside FHIR's syntax, is not FHIR.
func parseFHIR(path string, query url.Values) (fhirRequest, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	var fr fhirRequest
	if len(segs) == 0 || len(segs) > 4 || segs[0] == "" {
		return fr, false
	}
	if op, ok := operation(segs[0]); ok && len(segs) == 1 { // system operation
		fr.Type, fr.action = "System", op
		fr.PatientID = patientParam(query)
		return fr, true
	}
	if !fhirType(segs[0]) {
		return fr, false
	}
	fr.Type = segs[0]
	switch len(segs) {
	case 1:
		fr.Search = true
	case 2:
		switch op, isOp := operation(segs[1]); {
		case isOp:
			fr.action = op
		case segs[1] == "_search", segs[1] == "_history":
			fr.Search = true
		case fhirID(segs[1]):
			fr.ID = segs[1]
		default:
			return fr, false
		}
	case 3:
		if !fhirID(segs[1]) {
			return fr, false
		}
		fr.ID = segs[1]
		switch op, isOp := operation(segs[2]); {
		case isOp:
			fr.action = op
		case segs[2] == "_history":
		case fhirType(segs[2]): // compartment search
			if fr.Type == "Patient" {
				fr.PatientID = fr.ID
			}
			fr.Type, fr.ID, fr.Search = segs[2], "", true
		default:
			return fr, false
		}
	case 4:
		if !fhirID(segs[1]) || segs[2] != "_history" || !fhirID(segs[3]) {
			return fr, false
		}
		fr.ID = segs[1]
	}
	switch {
	case fr.Type == "Patient" && fr.ID != "":
		fr.PatientID = fr.ID
	case fr.PatientID == "":
		fr.PatientID = patientParam(query)
	}
	return fr, true
}

// operation reports a $operation segment and the action it implies.
func operation(seg string) (custos.Action, bool) {
	if len(seg) < 2 || seg[0] != '$' || !fhirName(seg[1:]) {
		return "", false
	}
	switch seg {
	case "$export":
		return custos.ActionExport, true
	case "$import":
		return custos.ActionImport, true
	}
	return "", true
}

// patientParam is the patient a search names: patient=123,
// patient=Patient/123, subject=Patient/123.
func patientParam(q url.Values) string {
	if v := q.Get("patient"); v != "" {
		id := strings.TrimPrefix(v, "Patient/")
		if fhirID(id) {
			return id
		}
	}
	if v, ok := strings.CutPrefix(q.Get("subject"), "Patient/"); ok && fhirID(v) {
		return v
	}
	return ""
}

// fhirType: a resource type name, [A-Z][A-Za-z]{0,63}.
func fhirType(s string) bool {
	return s != "" && len(s) <= 64 && s[0] >= 'A' && s[0] <= 'Z' && fhirName(s)
}

func fhirName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
			return false
		}
	}
	return s != ""
}

// fhirID: [A-Za-z0-9\-\.]{1,64}.
func fhirID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
