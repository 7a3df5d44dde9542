package fhir

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/custos-audit/custos"
)

// examples returns the official R4 and IHE BALP AuditEvent examples, by
// file name.
func examples(tb testing.TB) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	for _, glob := range []string{"../../testdata/fhir-r4/examples/json/*.json", "../../testdata/fhir-r4/balp/example/AuditEvent-*.json"} {
		files, err := filepath.Glob(glob)
		if err != nil || len(files) == 0 {
			tb.Fatalf("no examples at %s: %v", glob, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			out[filepath.Base(f)] = b
		}
	}
	return out
}

func TestDecodeExamples(t *testing.T) {
	for name, raw := range examples(t) {
		t.Run(name, func(t *testing.T) {
			e, err := DecodeResource(raw, "AuditEvent", custos.DefaultLimits)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			t.Logf("%s user=%q ip=%q patient=%q action=%s outcome=%s res=%s/%s source=%q purpose=%q", name, e.User.ID, e.IPAddress, e.PatientID, e.Action, e.Outcome, e.ResourceType, e.ResourceID, e.Source, e.PurposeOfUse)
		})
	}
}
