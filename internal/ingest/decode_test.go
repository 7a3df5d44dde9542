package ingest

import (
	"errors"
	goio "io"
	"net/http"
	"strings"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/google/go-cmp/cmp"
)

const good = `{"user":{"id":"dr.grey","name":"Meredith Grey","roles":["physician"]},"action":"READ",
	"resource_type":"Patient","resource_id":"p-123","patient_id":"p-123","ip_address":"::ffff:203.0.113.7",
	"changes":{ "a" : 1 },"status_code":200,"source":"ehr-web"}`

func TestDecodeShapes(t *testing.T) {
	for _, tc := range []struct {
		name, ct, body string
		n              int
	}{
		{"object", "application/json", good, 1},
		{"object with charset", "application/json; charset=utf-8", good, 1},
		{"array", "application/json", "[" + good + "," + good + "]", 2},
		{"ndjson", "application/x-ndjson", good + "\n\n" + strings.ReplaceAll(good, "\n", "") + "\n", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.ct == "application/x-ndjson" {
				body = strings.ReplaceAll(strings.ReplaceAll(good, "\n", ""), "\t", "") + "\n\n" + strings.ReplaceAll(strings.ReplaceAll(good, "\n", ""), "\t", "") + "\n"
			}
			evs, err := Decode(tc.ct, strings.NewReader(body), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != tc.n {
				t.Fatalf("decoded %d events, want %d", len(evs), tc.n)
			}
			e := evs[0]
			if e.IPAddress != "203.0.113.7" || string(e.Changes) != `{"a":1}` || e.Outcome != custos.OutcomeSuccess {
				t.Errorf("not normalised: ip %q changes %s outcome %q", e.IPAddress, e.Changes, e.Outcome)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	long := strings.Repeat("x", 51)
	for _, tc := range []struct {
		name, ct, body string
		kind           custos.Kind
		fields         []string
	}{
		{"wrong content type", "text/plain", good, custos.UnsupportedMedia, nil},
		{"malformed JSON", "application/json", `{"user":`, custos.Invalid, []string{""}},
		{"empty body", "application/json", ``, custos.Invalid, []string{""}},
		{"empty array", "application/json", `[]`, custos.Invalid, []string{""}},
		{"unknown action", "application/json", strings.Replace(good, `"READ"`, `"PEEK"`, 1), custos.Invalid, []string{"action"}},
		{"invalid address", "application/json", strings.Replace(good, `::ffff:203.0.113.7`, `203.0.113.999`, 1), custos.Invalid, []string{"ip_address"}},
		{"over-long field", "application/json", strings.Replace(good, `"p-123","patient_id"`, `"`+long+`","patient_id"`, 1), custos.Invalid, []string{"resource_id"}},
		{"unknown field", "application/json", strings.Replace(good, `"action"`, `"colour":"red","action"`, 1), custos.Invalid, []string{"colour"}},
		{"client index", "application/json", strings.Replace(good, `"action"`, `"index":4,"action"`, 1), custos.Invalid, []string{"index"}},
		{"client timestamp", "application/json", strings.Replace(good, `"action"`, `"timestamp":"2026-01-01T00:00:00Z","action"`, 1), custos.Invalid, []string{"timestamp"}},
		{"wrong type", "application/json", strings.Replace(good, `200`, `"200"`, 1), custos.Invalid, []string{"status_code"}},
		{"one bad in a batch", "application/json", "[" + good + "," + strings.Replace(good, `"READ"`, `"PEEK"`, 1) + "]", custos.Invalid, []string{"[1].action"}},
		{"unknown field in a batch", "application/json", "[" + good + "," + strings.Replace(good, `"action"`, `"x":1,"action"`, 1) + "]", custos.Invalid, []string{"[1].x"}},
		{"trailing data", "application/json", good + ` {}`, custos.Invalid, []string{""}},
		{"missing user and type", "application/json", `{"action":"READ"}`, custos.Invalid, []string{"user.id", "resource_type"}},
		{"break glass without reason", "application/json", strings.Replace(good, `"action"`, `"break_glass":true,"action"`, 1), custos.Invalid, []string{"break_glass_reason"}},
		{"NUL in a field", "application/json", strings.Replace(good, `ehr-web`, `ehr\u0000web`, 1), custos.Invalid, []string{"source"}},
		{"too many", "application/json", "[" + good + "," + good + "," + good + "]", custos.TooLarge, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.ct, strings.NewReader(tc.body), Options{MaxBatch: 2})
			var e *custos.Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode: %v, want a *custos.Error", err)
			}
			if e.Kind != tc.kind {
				t.Fatalf("kind %v, want %v (%v)", e.Kind, tc.kind, err)
			}
			if tc.fields != nil {
				var got []string
				for _, f := range e.Fields {
					got = append(got, f.Field)
				}
				if diff := cmp.Diff(tc.fields, got); diff != "" {
					t.Errorf("fields (-want +got):\n%s\n%v", diff, err)
				}
			}
		})
	}
}

func TestDecodeBodyTooLarge(t *testing.T) {
	line := strings.NewReplacer("\n", "", "\t", "").Replace(good)
	body := http.MaxBytesReader(nil, goio.NopCloser(strings.NewReader(strings.Repeat(line+"\n", 100))), 1000)
	_, err := Decode("application/x-ndjson", body, Options{})
	if custos.KindOf(err) != custos.TooLarge {
		t.Fatalf("over-sized body: %v, want too large", err)
	}
}

// FuzzDecode: no input panics, and whatever is accepted is valid.
func FuzzDecode(f *testing.F) {
	f.Add("application/json", good)
	f.Add("application/json", "["+good+"]")
	f.Add("application/x-ndjson", strings.ReplaceAll(good, "\n", ""))
	f.Add("application/json", `{"user":{"id":"a"},"action":"LOGIN","resource_type":"S","changes":[1,{"b":null}]}`)
	f.Fuzz(func(t *testing.T, ct, body string) {
		evs, err := Decode(ct, strings.NewReader(body), Options{MaxBatch: 50})
		if err != nil {
			if custos.KindOf(err) == custos.Internal {
				t.Fatalf("internal error for client input: %v", err)
			}
			return
		}
		for i := range evs {
			e := evs[i]
			if err := e.Normalize(custos.DefaultLimits, ""); err != nil {
				t.Fatalf("accepted event %d fails validation again: %v", i, err)
			}
		}
	})
}
