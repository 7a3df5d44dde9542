package fhir

import "testing"

// The validator is not a no-op: it refuses what R4 refuses.
func TestSchemaRefusesInvalid(t *testing.T) {
	for _, b := range []string{
		`{"resourceType":"AuditEvent","type":{"code":"x"},"recorded":"2026-01-01T00:00:00Z","agent":[{"requestor":true}],"source":{"observer":{"display":"x"}},"action":"X"}`,
		`{"resourceType":"AuditEvent","type":{"code":"x"},"recorded":"yesterday","agent":[{"requestor":true}],"source":{"observer":{"display":"x"}}}`,
		`{"resourceType":"AuditEvent","type":{"code":"x"},"recorded":"2026-01-01T00:00:00Z","agent":[{"requestor":true}],"source":{"observer":{"display":"x"}},"bogus":1}`,
	} {
		ft := &fakeTB{TB: t}
		validate(ft, "AuditEvent", []byte(b))
		if !ft.failed {
			t.Errorf("schema accepted %s", b)
		}
	}
}

type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Errorf(string, ...any) { f.failed = true }
func (f *fakeTB) Helper()               {}
