package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	goio "io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

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

// FuzzDecode: no input panics; whatever is accepted is valid, says one
// thing (valid UTF-8, no key twice in an object, no lone surrogate, every
// record key exactly a field's name) and re-encodes to the same events.
// Seeds: below and in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add("application/json", good)
	f.Add("application/json", "["+good+"]")
	f.Add("application/x-ndjson", strings.ReplaceAll(good, "\n", ""))
	f.Add("application/json", `{"user":{"id":"a"},"action":"LOGIN","resource_type":"S","changes":[1,{"b":null}]}`)
	f.Add("application/json", strings.Replace(good, `"source"`, `"action":"DELETE","source"`, 1))
	f.Add("application/json", strings.Replace(good, `"action"`, `"ACTION"`, 1))
	f.Add("application/json", strings.Replace(good, `{ "a" : 1 }`, `{"a":1,"\u0061":2}`, 1))
	f.Add("application/json", strings.Replace(good, `ehr-web`, "ehr\xffweb", 1))
	f.Add("application/json", strings.Replace(good, `ehr-web`, `\ud800`, 1))
	f.Add("application/json", strings.Replace(good, `{ "a" : 1 }`, `{"a":"\ud83d\ude00\u0001"}`, 1))
	f.Add("application/x-ndjson", oneLine+"\n"+strings.Replace(oneLine, `"id"`, `"ID"`, 1))
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
		if !utf8.ValidString(body) {
			t.Fatalf("accepted a body that is not valid UTF-8")
		}
		texts := []string{body}
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" {
			texts = strings.Split(body, "\n")
		}
		for _, text := range texts {
			if err := saysOneThing([]byte(text)); err != nil {
				t.Fatalf("accepted %q: %v", text, err)
			}
		}
		// Re-encoded as a client would send them, the events decode to
		// themselves.
		var again []any
		for _, e := range evs {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.Encode(e)
			b := buf.Bytes()
			var m map[string]json.RawMessage // values as encoded, changes as stored
			json.Unmarshal(b, &m)
			for _, k := range []string{"index", "timestamp", "kind", "submitted_by"} {
				delete(m, k)
			}
			again = append(again, m)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // as the API writes JSON
		enc.Encode(again)
		b := buf.Bytes()
		evs2, err := Decode("application/json", bytes.NewReader(b), Options{MaxBatch: 50})
		if err != nil {
			t.Fatalf("accepted events do not decode again: %v\n%s", err, b)
		}
		if diff := cmp.Diff(evs, evs2); diff != "" {
			t.Fatalf("re-encoded events differ (-first +again):\n%s", diff)
		}
	})
}

// saysOneThing checks a JSON text the decoder accepted with encoding/json's
// own tokenizer, independently of the strict scan: no key twice in one
// object, no key of an event or its user other than a field's exact name,
// and no U+FFFD but one the text spells out (a lone surrogate or invalid
// UTF-8 would have been replaced by one).
func saysOneThing(text []byte) error {
	if len(bytes.TrimSpace(text)) == 0 {
		return nil
	}
	literalFFFD := bytes.Contains(text, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(text), []byte(`\ufffd`))
	eventKeys := map[string]bool{}
	for i := range reflect.TypeFor[custos.EventInput]().NumField() {
		name, _, _ := strings.Cut(reflect.TypeFor[custos.EventInput]().Field(i).Tag.Get("json"), ",")
		eventKeys[name] = true
	}
	userKeys := map[string]bool{"id": true, "name": true, "roles": true}
	type frame struct {
		obj, wantKey bool
		keys         map[string]bool
		known        map[string]bool // the exact names allowed, or nil
		key          string          // the key whose value is being read
	}
	var st []*frame
	dec := json.NewDecoder(bytes.NewReader(text))
	batch := bytes.HasPrefix(bytes.TrimSpace(text), []byte("["))
	done := func() {
		if len(st) > 0 && st[len(st)-1].obj {
			st[len(st)-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF; an error cannot happen in accepted text
		}
		if s, ok := tok.(string); ok && strings.ContainsRune(s, utf8.RuneError) && !literalFFFD {
			return fmt.Errorf("the string %q was read with a replacement character", s)
		}
		if n := len(st); n > 0 && st[n-1].obj && st[n-1].wantKey {
			top := st[n-1]
			if tok == json.Delim('}') {
				st = st[:n-1]
				done()
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				return fmt.Errorf("the key %q is given twice", k)
			}
			if top.known != nil && !top.known[k] {
				return fmt.Errorf("the key %q is not a field's exact name", k)
			}
			top.keys[k], top.key, top.wantKey = true, k, false
			continue
		}
		switch tok {
		case json.Delim('{'):
			var known map[string]bool
			switch n := len(st); {
			case n == 0 && !batch, n == 1 && batch:
				known = eventKeys
			case n >= 1 && st[n-1].obj && st[n-1].key == "user" && st[n-1].known != nil && st[n-1].known["action"]:
				known = userKeys
			}
			st = append(st, &frame{obj: true, wantKey: true, keys: map[string]bool{}, known: known})
		case json.Delim('['):
			st = append(st, &frame{})
		case json.Delim(']'):
			st = st[:len(st)-1]
			done()
		default:
			done()
		}
	}
}
