package proxy

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/custos-audit/custos/internal/fhir"
	"github.com/google/go-cmp/cmp"
)

func TestScanBundle(t *testing.T) {
	big := `"` + strings.Repeat("A", 2*maxToken) + `"`
	cases := []struct {
		name, body string
		max        int
		want       []string
		truncated  bool
		bundle     bool
		fails      bool
	}{
		{name: "patients", max: 10, bundle: true, want: []string{"p-1", "p-2"},
			body: `{"resourceType":"Bundle","type":"searchset","total":2,"entry":[
				{"fullUrl":"http://x/Patient/p-1","resource":{"resourceType":"Patient","id":"p-1","name":[{"family":"Doe"}]},"search":{"mode":"match"}},
				{"resource":{"resourceType":"Patient","id":"p-2","link":[{"other":{"reference":"Patient/p-9"}}]}}]}`},
		{name: "subjects and patients, absolute and versioned, deduplicated", max: 10, bundle: true, want: []string{"p-1", "p-3", "p-4"},
			body: `{"entry":[{"resource":{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p-1"}}},
				{"resource":{"resourceType":"Observation","id":"o2","subject":{"reference":"https://ehr.example/fhir/Patient/p-1/_history/3"}}},
				{"resource":{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/p-3","display":"x"}}},
				{"resource":{"resourceType":"Encounter","subject":{"reference":"http://h/Patient/p-4"}}},
				{"resource":{"resourceType":"Observation","subject":{"reference":"Group/g-1"}}},
				{"resource":{"resourceType":"Observation","subject":{"reference":"#contained"}}},
				{"resource":{"resourceType":"Observation","subject":{"reference":"x/Patient/p-5"}}}],
				"resourceType":"Bundle"}`},
		{name: "cap", max: 2, bundle: true, truncated: true, want: []string{"a", "b"},
			body: `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"a"}},{"resource":{"resourceType":"Patient","id":"a"}},
				{"resource":{"resourceType":"Patient","id":"b"}},{"resource":{"resourceType":"Patient","id":"c"}}]}`},
		{name: "not a bundle", max: 10, body: `{"resourceType":"Patient","id":"p-1"}`},
		{name: "operation outcome", max: 10, body: `{"resourceType":"OperationOutcome","issue":[]}`},
		{name: "truncated body keeps what came", max: 10, bundle: true, fails: true, want: []string{"p-1"},
			body: `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"p-1"}},{"resource":{"resourceType":"Pat`},
		{name: "malformed", max: 10, bundle: true, fails: true, body: `{"resourceType":"Bundle","entry":[}`},
		{name: "invalid ids are dropped", max: 10, bundle: true,
			body: `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"a b"}},{"resource":{"resourceType":"Patient","id":7}}]}`},
		{name: "odd shapes are skipped", max: 10, bundle: true, want: []string{"ok"},
			body: `{"resourceType":"Bundle","entry":{"x":1},"link":[[{"resource":{}}]],"meta":null}` + ``},
		{name: "a long token ends the walk", max: 10, bundle: true, fails: true, want: []string{"p-1"},
			body: `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"p-1"}},{"resource":{"resourceType":"Binary","data":` + big + `}}]}`},
	}
	cases[8].body = `{"resourceType":"Bundle","entry":[{"x":1},{"resource":[1]},{"resource":{"resourceType":"Patient","id":"ok","subject":"Patient/no"}}],"link":[[{"resource":{}}]],"meta":null}`
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, chunk := range []int{len(c.body), 7, 1} {
				if chunk == 1 && len(c.body) > 10_000 {
					continue
				}
				s := NewScanner(c.max)
				for i := 0; i < len(c.body); i += chunk {
					s.Write([]byte(c.body[i:min(i+chunk, len(c.body))]))
				}
				s.Close()
				got := s.Result()
				if diff := cmp.Diff(c.want, got.IDs); diff != "" {
					t.Errorf("chunks of %d: patients (-want +got):\n%s", chunk, diff)
				}
				if got.Truncated != c.truncated || got.Bundle != c.bundle || (got.Err != nil) != c.fails {
					t.Errorf("chunks of %d: truncated %v bundle %v err %v", chunk, got.Truncated, got.Bundle, got.Err)
				}
			}
		})
	}
}

func TestScanBundleTokenTooLong(t *testing.T) {
	body := `{"resourceType":"Bundle","entry":[{"resource":{"data":"` + strings.Repeat("x", 3*maxToken) + `"}}]}`
	if got := ScanBundle([]byte(body), 10); !errors.Is(got.Err, ErrTokenTooLong) {
		t.Fatalf("err = %v, want ErrTokenTooLong", got.Err)
	}
}

// TestScannerAbandoned: a walk that ended (malformed body) never blocks
// the writer that streams the rest of the body to the client.
func TestScannerAbandoned(t *testing.T) {
	s := NewScanner(10)
	s.Write([]byte(`[}`))
	for range 1000 {
		if n, err := s.Write([]byte(strings.Repeat("x", 4096))); n != 4096 || err != nil {
			t.Fatal(n, err)
		}
	}
	s.Close()
	if s.Result().Err == nil {
		t.Fatal("a malformed body gave no error")
	}
}

func TestPatientReference(t *testing.T) {
	for ref, want := range map[string]string{
		"Patient/p-1": "p-1", "Patient/p-1/_history/2": "p-1", "https://h/fhir/Patient/A.b": "A.b",
		"Patient/": "", "Patient/a/b": "", "Group/1": "", "#p": "", "urn:uuid:1": "", "a/Patient/x": "",
		"Patient/" + strings.Repeat("a", 65): "",
	} {
		got, ok := PatientReference(ref)
		if got != want || ok != (want != "") {
			t.Errorf("PatientReference(%q) = %q, %v; want %q", ref, got, ok, want)
		}
	}
}

// FuzzScanBundle: any body, in any chunking, gives the same patients,
// distinct, valid ids, within the cap, and never hangs or panics.
func FuzzScanBundle(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"p-1"}},{"resource":{"resourceType":"Observation","subject":{"reference":"Patient/p-2"}}}]}`), uint8(3))
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Encounter","patient":{"reference":"http://x/Patient/q/_history/1"}}}]}`), uint8(1))
	f.Add([]byte(`[{"entry":{}}]`), uint8(2))
	f.Fuzz(func(t *testing.T, body []byte, chunk uint8) {
		const max = 3
		whole := ScanBundle(body, max)
		s := NewScanner(max)
		step := int(chunk) + 1
		for i := 0; i < len(body); i += step {
			s.Write(body[i:min(i+step, len(body))])
		}
		s.Close()
		got := s.Result()
		if !slices.Equal(whole.IDs, got.IDs) || whole.Truncated != got.Truncated || whole.Bundle != got.Bundle {
			t.Fatalf("whole %+v, in chunks of %d %+v", whole, step, got)
		}
		if len(got.IDs) > max || (got.Truncated && len(got.IDs) != max) {
			t.Fatalf("cap: %+v", got)
		}
		seen := map[string]bool{}
		for _, id := range got.IDs {
			if !fhir.IsID(id) || seen[id] {
				t.Fatalf("id %q invalid or repeated in %v", id, got.IDs)
			}
			seen[id] = true
		}
		if !got.Bundle && len(got.IDs) > 0 {
			t.Fatalf("patients from a body that is not a Bundle: %+v", got)
		}
	})
}
