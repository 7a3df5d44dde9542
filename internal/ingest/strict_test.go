package ingest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/custos-audit/custos"
)

// oneLine is the good event on one line, for NDJSON.
var oneLine = strings.NewReplacer("\n", "", "\t", "").Replace(good)

// with returns the good event with old replaced by new once.
func with(old, new string) string {
	if !strings.Contains(good, old) {
		panic("with: " + old + " not in the good event")
	}
	return strings.Replace(good, old, new, 1)
}

// TestDecodeStrictRejects: input that encoding/json accepts but reads as
// something other than what it says (a duplicate key, a key in another case,
// invalid UTF-8 replaced or stored raw, a control character) is refused, and
// the field at fault is named.
func TestDecodeStrictRejects(t *testing.T) {
	const ct = "application/json"
	many := func(n int, dupAt int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			k := i
			if i == dupAt {
				k = 3
			}
			fmt.Fprintf(&b, `"k%d":%d`, k, i)
		}
		b.WriteString("}")
		return b.String()
	}
	for _, tc := range []struct {
		name, ct, body string
		field, msg     string
	}{
		// Duplicate keys, at every level that maps to the record.
		{"duplicate action", ct, with(`"action":"READ"`, `"action":"READ","action":"DELETE"`), "action", "given twice"},
		{"duplicate action in a batch", ct, "[" + good + "," + with(`"source":"ehr-web"`, `"source":"ehr-web","action":"DELETE"`) + "]", "[1].action", "given twice"},
		{"duplicate user", ct, with(`"action"`, `"user":{"id":"x"},"action"`), "user", "given twice"},
		{"duplicate user.id", ct, with(`"id":"dr.grey"`, `"id":"dr.grey","id":"dr.evil"`), "user.id", "given twice"},
		{"duplicate by escape", ct, with(`"action":"READ"`, `"action":"READ","\u0061ction":"DELETE"`), "action", "given twice"},
		{"duplicate null", ct, with(`"source":"ehr-web"`, `"source":null,"source":"ehr-web"`), "source", "given twice"},
		{"duplicate changes", ct, with(`"status_code"`, `"changes":null,"status_code"`), "changes", "given twice"},
		// Keys that differ from a field only in case are unknown fields.
		{"ACTION", ct, with(`"action":"READ"`, `"ACTION":"READ"`), "ACTION", "unknown field"},
		{"Patient_ID", ct, with(`"patient_id"`, `"Patient_ID"`), "Patient_ID", "unknown field"},
		{"User", ct, with(`"user"`, `"User"`), "User", "unknown field"},
		{"user.ID", ct, with(`"id":"dr.grey"`, `"ID":"dr.grey"`), "user.ID", "unknown field"},
		{"long s folds to s", ct, with(`"source"`, `"ſource"`), "ſource", "unknown field"},
		{"ledger's kind", ct, `{"user":{"id":"a"},"action":"READ","resource_type":"P","changes":{},"kind":"server"}`, "kind", "assigned by the ledger"},
		{"case variant in a batch", ct, "[" + good + "," + with(`"source"`, `"SOURCE"`) + "]", "[1].SOURCE", "unknown field"},
		{"ledger's submitted_by", ct, with(`"action"`, `"submitted_by":"apikey:x","action"`), "submitted_by", "assigned by the ledger"},
		// Inside changes, duplicate keys at any depth.
		{"duplicate in changes", ct, with(`{ "a" : 1 }`, `{"a":1,"a":2}`), "changes", "given twice"},
		{"duplicate deep in changes", ct, with(`{ "a" : 1 }`, `{"a":[{"b":{"c":1,"d":2,"c":3}}]}`), "changes", "given twice"},
		{"duplicate by escape in changes", ct, with(`{ "a" : 1 }`, `{"é":1,"\u00e9":2}`), "changes", "given twice"},
		{"duplicate among many in changes", ct, with(`{ "a" : 1 }`, many(40, 37)), "changes", "given twice"},
		// Invalid UTF-8 anywhere.
		{"invalid UTF-8 in source", ct, with(`ehr-web`, "ehr\xffweb"), "source", "UTF-8"},
		{"invalid UTF-8 in user.name", ct, with(`Meredith`, "Mer\xc3dith"), "user.name", "UTF-8"},
		{"invalid UTF-8 in a role", ct, with(`"physician"`, `"nurse","phys`+"\xe2\x82"+`ician"`), "user.roles[1]", "UTF-8"},
		{"invalid UTF-8 in changes value", ct, with(`{ "a" : 1 }`, "{\"a\":\"\xc0\xaf\"}"), "changes", "UTF-8"},
		{"invalid UTF-8 in changes key", ct, with(`{ "a" : 1 }`, "{\"\xfe\":1}"), "changes", "UTF-8"},
		{"UTF-8 encoded surrogate", ct, with(`ehr-web`, "ehr\xed\xa0\x80web"), "source", "UTF-8"},
		{"lone high surrogate escape", ct, with(`ehr-web`, `ehr\ud800web`), "source", "UTF-8"},
		{"lone low surrogate escape", ct, with(`{ "a" : 1 }`, `{"a":"\udc00"}`), "changes", "UTF-8"},
		{"high surrogate then not low", ct, with(`{ "a" : 1 }`, `{"a":"\ud83d\u0041"}`), "changes", "UTF-8"},
		{"invalid UTF-8 in an unknown key", ct, with(`"action"`, "\"x\xff\":1,\"action\""), "", "UTF-8"},
		{"invalid UTF-8 in a batch", ct, "[" + good + "," + with(`ehr-web`, "\xff") + "]", "[1].source", "UTF-8"},
		// Control characters validate.go does not refuse.
		{"control character in changes", ct, with(`{ "a" : 1 }`, `{"a":"x\u0007y"}`), "changes", "control characters"},
		{"control character in a changes key", ct, with(`{ "a" : 1 }`, `{"a\u001b[2J":1}`), "changes", "control characters"},
		{"NUL in changes", ct, with(`{ "a" : 1 }`, `{"a":"\u0000"}`), "changes", "NUL"},
		{"DEL in source", ct, with(`ehr-web`, `ehr\u007fweb`), "source", "control characters"},
		{"C1 CSI in user agent", ct, with(`"action"`, `"user_agent":"x`+"\u009b"+`31m","action"`), "user_agent", "control characters"},
		{"escaped C1 in user.id", ct, with(`dr.grey`, `dr\u0085grey`), "user.id", "control characters"},
		// Times: errors classified by type, not by message.
		{"time not RFC 3339", ct, with(`"action"`, `"occurred_at":"yesterday","action"`), "occurred_at", "RFC 3339"},
		{"time a number", ct, with(`"action"`, `"occurred_at":1767225600,"action"`), "occurred_at", "RFC 3339"},
		{"time an object", ct, with(`"action"`, `"occurred_at":{},"action"`), "occurred_at", "RFC 3339"},
		// NDJSON goes through the same checks.
		{"NDJSON duplicate", "application/x-ndjson", oneLine + "\n" + strings.Replace(oneLine, `"source"`, `"action":"DELETE","source"`, 1) + "\n", "[1].action", "given twice"},
		{"NDJSON case variant", "application/x-ndjson", strings.Replace(oneLine, `"action"`, `"Action"`, 1) + "\n", "[0].Action", "unknown field"},
		{"NDJSON invalid UTF-8 in changes", "application/x-ndjson", oneLine + "\n" + strings.Replace(oneLine, `"a" : 1`, "\"a\":\"\xff\"", 1), "[1].changes", "UTF-8"},
		{"NDJSON lone surrogate", "application/x-ndjson", strings.Replace(oneLine, `ehr-web`, `\udfff`, 1), "[0].source", "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.ct, strings.NewReader(tc.body), Options{})
			var e *custos.Error
			if !errors.As(err, &e) || e.Kind != custos.Invalid {
				t.Fatalf("Decode: %v, want an invalid-input error", err)
			}
			if len(e.Fields) == 0 || e.Fields[0].Field != tc.field || !strings.Contains(e.Fields[0].Message, tc.msg) {
				t.Fatalf("fields %q, want %q first with %q in its message", e.Fields, tc.field, tc.msg)
			}
		})
	}
}

// TestDecodeStrictAccepts: strictness refuses only what is ambiguous; the
// same JSON written another legal way still means the same event.
func TestDecodeStrictAccepts(t *testing.T) {
	many := `{`
	for i := range 40 {
		if i > 0 {
			many += ","
		}
		many += fmt.Sprintf(`"k%d":%d`, i, i)
	}
	many += `}`
	for _, tc := range []struct {
		name, body string
		check      func(e custos.Event) bool
	}{
		{"escaped key", with(`"action":"READ"`, `"\u0061ction":"READ"`), func(e custos.Event) bool { return e.Action == custos.ActionRead }},
		{"surrogate pair", with(`ehr-web`, `ehr\ud83d\ude00`), func(e custos.Event) bool { return e.Source == "ehr😀" }},
		{"multi-byte text", with(`Meredith Grey`, `Zoë Ålund 緑`), func(e custos.Event) bool { return e.User.Name == "Zoë Ålund 緑" }},
		{"tab, newline, return in changes", with(`{ "a" : 1 }`, `{"note":"a\tb\nc\r\n"}`), func(e custos.Event) bool { return string(e.Changes) == `{"note":"a\tb\nc\r\n"}` }},
		{"keys differing in case in changes", with(`{ "a" : 1 }`, `{"a":1,"A":2}`), func(e custos.Event) bool { return string(e.Changes) == `{"a":1,"A":2}` }},
		{"same key in sibling objects", with(`{ "a" : 1 }`, `{"x":{"a":1},"y":{"a":1},"z":[{"a":1},{"a":2}]}`), func(e custos.Event) bool { return len(e.Changes) > 0 }},
		{"many keys in changes", with(`{ "a" : 1 }`, many), func(e custos.Event) bool { return len(e.Changes) > 0 }},
		{"escaped time", with(`"action"`, `"occurred_at":"2026-01-01T00:00:00\u005a","action"`), func(e custos.Event) bool {
			return e.OccurredAt != nil && e.OccurredAt.Year() == 2026
		}},
		{"null time", with(`"action"`, `"occurred_at":null,"action"`), func(e custos.Event) bool { return e.OccurredAt == nil }},
		{"U+FFFD sent as such", with(`ehr-web`, "ehr\uFFFDweb"), func(e custos.Event) bool { return e.Source == "ehr\uFFFDweb" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := Decode("application/json", strings.NewReader(tc.body), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(evs[0]) {
				t.Fatalf("decoded %+v", evs[0])
			}
		})
	}
}

// TestDecodeErrorByTypeNotMessage: a decoding error is classified by its
// type; an error that merely reads like one of encoding/json's is not
// mistaken for it.
func TestDecodeErrorByTypeNotMessage(t *testing.T) {
	for _, err := range []error{
		errors.New(`json: unknown field "action"`),
		errors.New(`parsing time "x" as "2006": cannot parse`),
	} {
		e := decodeError("[2]", err).(*custos.Error)
		if e.Kind != custos.Invalid || len(e.Fields) != 1 || e.Fields[0].Field != "[2]" {
			t.Errorf("%v classified as %v", err, e)
		}
	}
	wrapped := fmt.Errorf("context: %w", &fieldError{field: "occurred_at", msg: "must be an RFC 3339 time"})
	if e := decodeError("[1]", wrapped).(*custos.Error); e.Fields[0].Field != "[1].occurred_at" {
		t.Errorf("wrapped field error classified as %v", e)
	}
}

type keyRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

func TestDecodeObject(t *testing.T) {
	const ct = "application/json"
	for _, tc := range []struct {
		name, ct, body string
		kind           custos.Kind
		field          string
	}{
		{"form encoded", "application/x-www-form-urlencoded", `{"name":"a","scopes":["read"]}`, custos.UnsupportedMedia, ""},
		{"no content type", "", `{"name":"a","scopes":["read"]}`, custos.UnsupportedMedia, ""},
		{"other charset", "application/json; charset=latin1", `{"name":"a","scopes":["read"]}`, custos.UnsupportedMedia, ""},
		{"duplicate name", ct, `{"name":"a","scopes":["read"],"name":"b"}`, custos.Invalid, "name"},
		{"case variant", ct, `{"Name":"a","scopes":["read"]}`, custos.Invalid, "Name"},
		{"unknown field", ct, `{"name":"a","scopes":["read"],"admin":true}`, custos.Invalid, "admin"},
		{"invalid UTF-8", ct, "{\"name\":\"a\xff\",\"scopes\":[\"read\"]}", custos.Invalid, "name"},
		{"invalid UTF-8 scope", ct, "{\"name\":\"a\",\"scopes\":[\"read\",\"\xff\"]}", custos.Invalid, "scopes[1]"},
		{"lone surrogate", ct, `{"name":"\ud800","scopes":["read"]}`, custos.Invalid, "name"},
		{"an array", ct, `[{"name":"a","scopes":["read"]}]`, custos.Invalid, ""},
		{"null", ct, `null`, custos.Invalid, ""},
		{"trailing data", ct, `{"name":"a","scopes":["read"]} {}`, custos.Invalid, ""},
		{"malformed", ct, `{"name":"a",`, custos.Invalid, ""},
		{"wrong type", ct, `{"name":1,"scopes":["read"]}`, custos.Invalid, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v keyRequest
			err := DecodeObject(tc.ct, strings.NewReader(tc.body), &v)
			var e *custos.Error
			if !errors.As(err, &e) || e.Kind != tc.kind {
				t.Fatalf("DecodeObject: %v, want kind %v", err, tc.kind)
			}
			if tc.kind == custos.Invalid && (len(e.Fields) == 0 || e.Fields[0].Field != tc.field) {
				t.Fatalf("fields %q, want %q first", e.Fields, tc.field)
			}
		})
	}
	var v keyRequest
	if err := DecodeObject("application/json; charset=UTF-8", strings.NewReader(`{"name":"é","scopes":["read"]}`), &v); err != nil || v.Name != "é" {
		t.Fatalf("a good body: %v %+v", err, v)
	}
}

// TestPlain8 checks the eight-byte test against the byte table: each byte
// in each position of a plain word, and random words.
func TestPlain8(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 1_000_000 {
		x := r.Uint64()
		if r.IntN(2) == 0 {
			x &= 0x7F7F7F7F7F7F7F7F
		}
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], x)
		want := true
		for _, c := range b {
			want = want && plain[c]
		}
		if got := plain8(x); got != want {
			t.Fatalf("%q: plain8 %v, want %v", b, got, want)
		}
	}
	for c := range 256 {
		for pos := range 8 {
			b := []byte("abcdefgh")
			b[pos] = byte(c)
			if got, want := plain8(binary.LittleEndian.Uint64(b)), plain[c]; got != want {
				t.Fatalf("byte %#x at %d: plain8 %v, want %v", c, pos, got, want)
			}
		}
	}
}

// FuzzDecodeObject: no input panics; an accepted key request says one
// thing and re-encodes to itself. Seeds: below and in
// testdata/fuzz/FuzzDecodeObject.
func FuzzDecodeObject(f *testing.F) {
	f.Add(`{"name":"ehr","scopes":["ingest"]}`)
	f.Add(`{"name":"ehr","scopes":["ingest"],"name":"admin"}`)
	f.Add(`{"Name":"ehr","scopes":["ingest"]}`)
	f.Add(`{"name":"\u0065hr","scopes":["ingest","read"]}`)
	f.Add("{\"name\":\"e\xffhr\",\"scopes\":[]}")
	f.Add(`{"name":"\udbff\udfff","scopes":null}`)
	f.Fuzz(func(t *testing.T, body string) {
		var v keyRequest
		err := DecodeObject("application/json", strings.NewReader(body), &v)
		if err != nil {
			if k := custos.KindOf(err); k != custos.Invalid {
				t.Fatalf("kind %v for client input: %v", k, err)
			}
			return
		}
		if !utf8.ValidString(body) {
			t.Fatal("accepted a body that is not valid UTF-8")
		}
		if err := saysOneThing([]byte(body)); err != nil && !strings.Contains(err.Error(), "exact name") {
			t.Fatalf("accepted %q: %v", body, err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("accepted a body that is not an object: %v", err)
		}
		for k := range m {
			if k != "name" && k != "scopes" {
				t.Fatalf("accepted the key %q", k)
			}
		}
		b, _ := json.Marshal(v)
		var again keyRequest
		if err := DecodeObject("application/json", bytes.NewReader(b), &again); err != nil {
			t.Fatalf("re-encoded %s: %v", b, err)
		}
		if !reflect.DeepEqual(v, again) {
			t.Fatalf("re-encoded %+v as %+v", v, again)
		}
	})
}
