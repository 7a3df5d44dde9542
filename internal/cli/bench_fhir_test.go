package cli

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/fhir"
)

// The bench's Bundles carry the same events as its JSON bodies, and each
// resource is one Custos accepts, mapped to the same patient and user.
func TestFHIRBenchBodies(t *testing.T) {
	jsonBodies, bundles, err := fhirBodies(1, 2, 20, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i := range bundles {
		var evs []custos.EventInput
		if err := json.Unmarshal(jsonBodies[i], &evs); err != nil {
			t.Fatal(err)
		}
		var b struct {
			Type  string
			Entry []struct{ Resource json.RawMessage }
		}
		if err := json.Unmarshal(bundles[i], &b); err != nil {
			t.Fatal(err)
		}
		if b.Type != "batch" || len(b.Entry) != len(evs) {
			t.Fatalf("bundle %d: type %s, %d entries for %d events", i, b.Type, len(b.Entry), len(evs))
		}
		for j, en := range b.Entry {
			e, err := fhir.DecodeResource(en.Resource, fmt.Sprintf("Bundle.entry[%d].resource", j), custos.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			if e.PatientID != evs[j].PatientID || e.User.ID != evs[j].User.ID || e.Action != evs[j].Action {
				t.Errorf("entry %d maps to %s/%s/%s, the JSON event is %s/%s/%s", j, e.PatientID, e.User.ID, e.Action,
					evs[j].PatientID, evs[j].User.ID, evs[j].Action)
			}
		}
	}
}
