package fhir

import (
	"bytes"
	"os"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The official R4 JSON schema (testdata/fhir-r4/schema, see its
// SOURCES.md), compiled once per test binary.
var (
	schemaOnce sync.Once
	schemas    map[string]*jsonschema.Schema
	schemaErr  error
)

const schemaID = "http://hl7.org/fhir/json-schema/4.0"

// validate checks b, a JSON resource, against the R4 schema's definition
// of typ (AuditEvent, Bundle, OperationOutcome, CapabilityStatement).
func validate(tb testing.TB, typ string, b []byte) {
	tb.Helper()
	schemaOnce.Do(func() {
		f, err := os.Open("../../testdata/fhir-r4/schema/fhir.schema.json")
		if err != nil {
			schemaErr = err
			return
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			schemaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource(schemaID, doc); err != nil {
			schemaErr = err
			return
		}
		schemas = map[string]*jsonschema.Schema{}
		for _, t := range []string{"AuditEvent", "Bundle", "OperationOutcome", "CapabilityStatement"} {
			if schemas[t], schemaErr = c.Compile(schemaID + "#/definitions/" + t); schemaErr != nil {
				return
			}
		}
	})
	if schemaErr != nil {
		tb.Fatalf("R4 schema: %v", schemaErr)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		tb.Fatalf("served %s is not JSON: %v\n%s", typ, err, b)
	}
	if err := schemas[typ].Validate(inst); err != nil {
		tb.Errorf("served %s does not validate against the R4 schema: %v\n%s", typ, err, b)
	}
}
