package fhir

import (
	"testing"

	"github.com/custos-audit/custos"
)

// For the tests of the routes (package fhir_test).

func Validate(tb testing.TB, typ string, b []byte) { validate(tb, typ, b) }

func Shapes() map[string]custos.Event { return shapes() }

func SampleResources(tb testing.TB) map[string][]byte { return examples(tb) }
