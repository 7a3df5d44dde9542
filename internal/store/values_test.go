package store

import (
	"database/sql/driver"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/custos-audit/custos"
)

// plainStrings must give exactly what json.Unmarshal gives, or defer to it.
func FuzzPlainStrings(f *testing.F) {
	for _, s := range []string{`[]`, `["physician"]`, `["a","b"]`, `[""]`, `["a",]`, `["a""b"]`, `[ "a"]`, `["a\"b"]`,
		`["\u00e9"]`, `["é"]`, "[\"\xff\"]", "[\"a\x01\"]", `null`, `[`, `]`, `["a"`, `["a","b","c"]`, `[1]`, `["a",1]`, `["\ufffd"]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := plainStrings(s)
		if !ok {
			return
		}
		var want []string
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatalf("plainStrings(%q) = %q, but json.Unmarshal fails: %v", s, got, err)
		}
		if !reflect.DeepEqual(got, want) || (got == nil) != (want == nil) {
			t.Fatalf("plainStrings(%q) = %#v, json.Unmarshal gives %#v", s, got, want)
		}
	})
}

// EventFromValues decodes a row as ScanEvent does through database/sql.
func TestEventFromValues(t *testing.T) {
	ts := time.Date(2026, 11, 25, 10, 0, 0, 123000, time.UTC)
	row := []driver.Value{int64(7), ts.UnixMicro(), nil, "u-1", "Dr One", `["physician","admin"]`, "READ", "Observation",
		"obs-1", "p-1", nil, "ua", "GET", "/x", `{"a":1}`, "success", int64(200), "ehr", "req-1", "s-1", "TREAT",
		int64(1), "why", int64(2), int64(3), "key-1", []byte(nil)}
	e, err := EventFromValues(row)
	if err != nil {
		t.Fatal(err)
	}
	want := custos.Event{Index: 7, Timestamp: ts, Kind: custos.KindServer, SubmittedBy: "key-1",
		User: custos.User{ID: "u-1", Name: "Dr One", Roles: []string{"physician", "admin"}}, Action: "READ",
		ResourceType: "Observation", ResourceID: "obs-1", PatientID: "p-1", UserAgent: "ua", RequestMethod: "GET",
		RequestPath: "/x", Changes: json.RawMessage(`{"a":1}`), Outcome: "success", StatusCode: 200, Source: "ehr",
		RequestID: "req-1", SessionID: "s-1", PurposeOfUse: "TREAT", BreakGlass: true, BreakGlassReason: "why", LeafVersion: 2}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("got %+v\nwant %+v", e, want)
	}
	// Values of another type convert as database/sql's Scan converts them.
	row[3], row[16], row[7] = []byte("u-2"), "404", int64(5)
	if e, err = EventFromValues(row); err != nil || e.User.ID != "u-2" || e.StatusCode != 404 || e.ResourceType != "5" {
		t.Fatalf("converted: %+v, %v", e, err)
	}
	for i, bad := range map[int]driver.Value{3: nil, 16: "two hundred", 21: int64(2), 1: 1.5} {
		r := append([]driver.Value(nil), row...)
		r[i] = bad
		if _, err := EventFromValues(r); err == nil {
			t.Errorf("column %d = %#v: no error", i, bad)
		}
	}
}
