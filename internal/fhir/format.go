package fhir

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	"github.com/custos-audit/custos"
)

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// mediaType is the type of the answer: application/json when the client
// asked for it by _format or Accept, else application/fhir+json.
func mediaType(r *http.Request) string {
	switch f := r.URL.Query().Get("_format"); f {
	case "application/json":
		return "application/json"
	case "":
	default:
		return "application/fhir+json"
	}
	accept := r.Header.Get("Accept")
	if strings.Contains(accept, "application/json") && !strings.Contains(accept, "application/fhir+json") {
		return "application/json"
	}
	return "application/fhir+json"
}

// checkFormat refuses _format values and Accept headers that ask for a
// format Custos does not write (FHIR's XML, RDF): 406, as FHIR says.
func checkFormat(r *http.Request) error {
	q := r.URL.Query()
	if vs := q["_format"]; len(vs) > 0 {
		if len(vs) > 1 {
			return invalidParam("_format", "given more than once")
		}
		switch vs[0] {
		case "json", "application/json", "application/fhir+json", "application/json+fhir":
		case "xml", "text/xml", "application/xml", "application/fhir+xml", "application/xml+fhir", "ttl", "text/turtle":
			return &notAcceptable{custos.Errorf("fhir.format", custos.Invalid, "_format %s is not served: Custos answers FHIR in JSON only (_format=json)", vs[0])}
		default:
			return invalidParam("_format", "must be json, application/json or application/fhir+json")
		}
	}
	if vs := q["_pretty"]; len(vs) > 0 && (len(vs) > 1 || (vs[0] != "true" && vs[0] != "false")) {
		return invalidParam("_pretty", "must be true or false, once")
	}
	accept := r.Header.Get("Accept")
	if accept == "" {
		return nil
	}
	for part := range strings.SplitSeq(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/fhir+json", "application/json", "application/json+fhir", "*/*", "application/*":
			return nil
		}
	}
	return &notAcceptable{custos.Errorf("fhir.format", custos.Invalid, "Custos answers FHIR in JSON only: accept application/fhir+json")}
}

// checkContentType accepts FHIR's JSON media types in UTF-8 (and the
// fhirVersion parameter for R4).
func checkContentType(ct string) error {
	mt, params, err := mime.ParseMediaType(ct)
	ok := err == nil && (mt == "application/fhir+json" || mt == "application/json" || mt == "application/json+fhir")
	if cs, has := params["charset"]; has && !strings.EqualFold(cs, "utf-8") {
		ok = false
	}
	if v, has := params["fhirversion"]; has && v != "4.0" && v != "4.0.1" {
		ok = false
	}
	if !ok {
		return custos.Errorf(opDecode, custos.UnsupportedMedia,
			"content type %q is not accepted; send application/fhir+json (FHIR R4 in JSON, UTF-8)", ct)
	}
	return nil
}

func invalidParam(name, msg string) *custos.Error {
	return &custos.Error{Op: "fhir.params", Kind: custos.Invalid, Detail: "a search parameter is invalid",
		Fields: []custos.FieldError{{Field: name, Message: msg}}}
}
