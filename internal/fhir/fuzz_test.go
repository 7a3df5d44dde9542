package fhir

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// FuzzDecodeResource feeds the FHIR resource decoder arbitrary bytes (seeds
// in testdata/fuzz/FuzzDecodeResource: the R4 and BALP examples and bad
// inputs). What it accepts is a valid event that carries the resource, and
// is served as JSON that the decoder accepts again, mapped the same way.
func FuzzDecodeResource(f *testing.F) {
	for _, raw := range examples(f) {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := DecodeResource(raw, "AuditEvent", custos.DefaultLimits)
		if err != nil {
			if custos.KindOf(err) != custos.Invalid {
				t.Fatalf("error of kind %v: %v", custos.KindOf(err), err)
			}
			return
		}
		if e.Original == nil || e.Original.Format != FormatJSON || !json.Valid(e.Original.Data) {
			t.Fatalf("accepted without a valid original")
		}
		if err := e.Normalize(custos.DefaultLimits, ""); err != nil {
			t.Fatalf("accepted an event that does not validate: %v", err)
		}
		e.Index = 3
		b, err := Render(&e)
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		again, err := DecodeResource(b, "AuditEvent", custos.DefaultLimits)
		if err != nil {
			t.Fatalf("served resource refused: %v\n%s", err, b)
		}
		again.Original, e.Original = nil, nil
		e.Index = 0
		if a, b := mustJSON(t, e), mustJSON(t, again); a != b {
			t.Fatalf("mapped differently once served:\n%s\n%s", a, b)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fuzzHost answers cursors for the search parser.
type fuzzHost struct{}

func (fuzzHost) Submitter(*http.Request) string { return "" }
func (fuzzHost) RecordRead(*http.Request, string, string, map[string]any) error {
	return nil
}
func (fuzzHost) EncodeCursor(store.Cursor) string { return "c" }
func (fuzzHost) DecodeCursor(string) (*store.Cursor, error) {
	return nil, custos.Errorf("x", custos.Invalid, "no")
}
func (fuzzHost) Status(custos.Kind) int { return 400 }

// FuzzSearchParams feeds the search parser arbitrary query strings: it
// refuses with Invalid or plans store queries that the store accepts
// (bounded), never panics.
func FuzzSearchParams(f *testing.F) {
	for _, s := range []string{"patient=p-1", "patient=a,b&date=ge2026-01&date=lt2026-02-01T00:00:00Z", "agent=u&type=rest&subtype=x|read",
		"address=10.0.0.1,::1", "entity=List/l,Patient/p", "outcome=0,4&source=s&patient=p", "_count=0&patient=x", "date=2026&type=a"} {
		f.Add(s)
	}
	h := New(Config{Host: fuzzHost{}})
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		s, err := parseSearch(v, false, h)
		if err != nil {
			if custos.KindOf(err) != custos.Invalid {
				t.Fatalf("error of kind %v: %v", custos.KindOf(err), err)
			}
			return
		}
		for _, q := range s.queries {
			if err := store.CheckQueryBounded(q); err != nil {
				t.Fatalf("planned an unbounded query for %q: %v", raw, err)
			}
			if len(s.filters) > 0 && !bounded(q) {
				t.Fatalf("matches on candidates of an unbounded query for %q", raw)
			}
		}
	})
}
