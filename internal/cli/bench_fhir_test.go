package cli

import (
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/fhir"
)

func TestFHIRBenchBodiesDecode(t *testing.T) {
	_, bundles, err := fhirBodies(1, 1, 20, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(bundles) != 1 {
		t.Fatal(len(bundles))
	}
	_ = custos.DefaultLimits
	_ = fhir.FormatJSON
}
