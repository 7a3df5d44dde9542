package report_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/report"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var signed = regexp.MustCompile(`"(note|root_hash|verifier_key)": "[^"]*"`)

// golden compares got with testdata/name, after normalising what differs
// between runs; -update rewrites the file.
func golden(t *testing.T, s *scenario, name string, r report.Report) {
	t.Helper()
	var buf bytes.Buffer
	if err := report.JSON().Render(context.Background(), &buf, r); err != nil {
		t.Fatal(err)
	}
	got := signed.ReplaceAll(s.normalize(buf.Bytes()), []byte(`"$1": "<$1>"`))
	path := filepath.Join("testdata", name)
	if *update && s.kind == "sqlite" {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s on %s (-golden +got):\n%s", name, s.kind, diff)
	}
}

// TestGolden: the JSON of each report of the fixed scenario, identical on
// both stores.
func TestGolden(t *testing.T) {
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) {
			s := newScenario(t, kind)
			b := s.builder(report.Config{})
			ctx := context.Background()
			h, err := b.HIPAA(ctx, report.Request{From: periodFrom, To: periodTo, GeneratedBy: "auditor"})
			if err != nil {
				t.Fatal(err)
			}
			if !h.Integrity.OK {
				t.Errorf("integrity of an untouched ledger: %s", h.Integrity.Summary)
			}
			golden(t, s, "hipaa.golden", h)
			pa, err := b.PatientAccess(ctx, report.PatientRequest{PatientID: "p-1", GeneratedBy: "privacy-officer"})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, s, "patient_access.golden", pa)
			d, err := b.Disclosures(ctx, report.PatientRequest{PatientID: "p-1", GeneratedBy: "privacy-officer"})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, s, "disclosures.golden", d)
		})
	}
}

// TestUnknownPatient: a patient no event names has an empty report, not an
// error, so that a report never says whether a patient exists.
func TestUnknownPatient(t *testing.T) {
	s := newScenario(t, "sqlite")
	b := s.builder(report.Config{})
	pa, err := b.PatientAccess(context.Background(), report.PatientRequest{PatientID: "nobody"})
	if err != nil || pa.Total != 0 || len(pa.Accesses) != 0 {
		t.Fatalf("unknown patient: %+v, %v", pa, err)
	}
	d, err := b.Disclosures(context.Background(), report.PatientRequest{PatientID: "nobody"})
	if err != nil || d.Total != 0 || len(d.Disclosures) != 0 {
		t.Fatalf("unknown patient's disclosures: %+v, %v", d, err)
	}
}

// TestBadPeriod: from after to, a period beyond the maximum, a missing
// bound, a bad patient id: Invalid errors naming the field.
func TestBadPeriod(t *testing.T) {
	s := newScenario(t, "sqlite")
	b := s.builder(report.Config{})
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		req   report.Request
		field string
	}{
		{"from after to", report.Request{From: periodTo, To: periodFrom}, "from"},
		{"empty", report.Request{From: periodFrom, To: periodFrom}, "from"},
		{"too long", report.Request{From: periodFrom, To: periodFrom.AddDate(2, 0, 0)}, "to"},
		{"no from", report.Request{To: periodTo}, "from"},
		{"no to", report.Request{From: periodFrom}, "to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.HIPAA(ctx, tc.req)
			checkInvalid(t, err, tc.field)
		})
	}
	for _, id := range []string{"", "a\x00b", string(bytes.Repeat([]byte("x"), 257))} {
		_, err := b.PatientAccess(ctx, report.PatientRequest{PatientID: id})
		checkInvalid(t, err, "patient_id")
	}
	_, err := b.Disclosures(ctx, report.PatientRequest{PatientID: "p-1", From: periodFrom.AddDate(-7, 0, 0), To: periodTo})
	checkInvalid(t, err, "from")
}

func checkInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var e *custos.Error
	if !errors.As(err, &e) || e.Kind != custos.Invalid {
		t.Fatalf("error %v, want Invalid", err)
	}
	for _, f := range e.Fields {
		if f.Field == field {
			return
		}
	}
	t.Fatalf("error %v does not name %s", err, field)
}
