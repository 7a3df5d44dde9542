package httpaudit

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func testAuditor(redact ...string) *Auditor {
	return &Auditor{cfg: Config{MaxBody: 256}, redact: redactSet(redact)}
}

func jsonOf(t *testing.T, raw []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return v
}

func TestChangesFromBody(t *testing.T) {
	a := testAuditor("mrn")
	for _, c := range []struct {
		name, ctype, body, want string
	}{
		{"redacted at any depth", "application/json",
			`{"name":"Ann","Password":"x","contact":{"SSN":"123","phones":[{"api-key":"k","n":"1"}]},"mrn":"m1","userPassword":"p"}`,
			`{"name":"Ann","Password":"[REDACTED]","contact":{"SSN":"[REDACTED]","phones":[{"api-key":"[REDACTED]","n":"1"}]},"mrn":"[REDACTED]","userPassword":"[REDACTED]"}`},
		{"FHIR JSON", "application/fhir+json; charset=utf-8", `{"resourceType":"Patient","id":"1"}`, `{"resourceType":"Patient","id":"1"}`},
		{"JSON without a content type", "", `[1,2]`, `[1,2]`},
		{"big numbers stay exact", "application/json", `{"n":12345678901234567890}`, `{"n":12345678901234567890}`},
		{"not JSON", "application/x-www-form-urlencoded", `password=x&name=y`, `{"body":"not JSON","bytes":17,"content_type":"application/x-www-form-urlencoded"}`},
		{"malformed JSON", "application/json", `{"password":"x"`, `{"body":"malformed JSON","bytes":15,"content_type":"application/json"}`},
		{"two documents", "application/json", `{} {}`, `{"body":"malformed JSON","bytes":5,"content_type":"application/json"}`},
		{"oversized", "application/json", `{"password":"` + strings.Repeat("x", 300) + `"}`, `{"body":"truncated","bytes_captured":256,"content_type":"application/json"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/x", strings.NewReader(c.body))
			if c.ctype != "" {
				r.Header.Set("Content-Type", c.ctype)
			}
			b := a.capture(r)
			var rest bytes.Buffer
			rest.ReadFrom(r.Body)
			if rest.String() != c.body {
				t.Errorf("the handler read %q, want the whole body", rest.String())
			}
			got := a.changesFor(&notes{}, b, "POST")
			if diff := cmp.Diff(jsonOf(t, []byte(c.want)), jsonOf(t, got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if strings.Contains(string(got), `"x"`) || strings.Contains(string(got), `"p"`) {
				t.Errorf("a secret left in %s", got)
			}
		})
	}
}

func TestChangesDiff(t *testing.T) {
	a := testAuditor()
	a.cfg.MaxBody = 1 << 10
	for _, c := range []struct {
		name, method, ctype, prev, body, current, want string
	}{
		{"replace, add, remove, nested, arrays", "PUT", "application/json",
			`{"name":{"given":"Ann","family":"Lee"},"tags":["a","b"],"old":1,"password":"p1"}`,
			`{"name":{"given":"Anne","family":"Lee"},"tags":["a","c"],"new":2,"password":"p2"}`, "",
			`[{"op":"replace","path":"/name/given","old":"Ann","value":"Anne"},{"op":"add","path":"/new","value":2},{"op":"remove","path":"/old","old":1},{"op":"replace","path":"/password","old":"[REDACTED]","value":"[REDACTED]"},{"op":"replace","path":"/tags/1","old":"b","value":"c"}]`},
		{"redacted inside a replaced value", "PUT", "application/json",
			`{"contact":null}`, `{"contact":{"phone":"1","ssn":"9"}}`, "",
			`[{"op":"replace","path":"/contact","old":null,"value":{"phone":"1","ssn":"[REDACTED]"}}]`},
		{"nothing changed", "PUT", "application/json", `{"a":1}`, `{"a":1}`, "", `[]`},
		{"merge patch", "PATCH", "application/merge-patch+json", `{"a":1,"b":2}`, `{"b":null,"c":3}`, "",
			`[{"op":"remove","path":"/b","old":2},{"op":"add","path":"/c","value":3}]`},
		{"current from the handler", "PATCH", "application/json-patch+json", `{"a":1}`, `[{"op":"replace","path":"/a","value":2}]`, `{"a":2}`,
			`[{"op":"replace","path":"/a","old":1,"value":2}]`},
		{"delete", "DELETE", "", `{"a":1,"ssn":"9"}`, "", "", `[{"op":"remove","path":"","old":{"a":1,"ssn":"[REDACTED]"}}]`},
		{"escaped pointer", "PUT", "application/json", `{"a/b~c":1}`, `{"a/b~c":2}`, "", `[{"op":"replace","path":"/a~1b~0c","old":1,"value":2}]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			ann := &notes{previous: []byte(c.prev)}
			if c.current != "" {
				ann.current = []byte(c.current)
			}
			var b *body
			if c.body != "" {
				b = &body{data: []byte(c.body), ctype: c.ctype}
			}
			got := a.changesFor(ann, b, c.method)
			if diff := cmp.Diff(jsonOf(t, []byte(c.want)), jsonOf(t, got)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", got, diff)
			}
		})
	}
}

func TestChangesFromTheApplication(t *testing.T) {
	a := testAuditor()
	got := a.changesFor(&notes{changes: []byte(`{"token":"t","field":"v"}`)}, nil, "POST")
	if string(got) != `{"field":"v","token":"[REDACTED]"}` {
		t.Errorf("%s", got)
	}
	got = a.changesFor(&notes{changes: []byte(`{nope`)}, nil, "POST")
	if !strings.Contains(string(got), "malformed") {
		t.Errorf("malformed changes from the application: %s", got)
	}
}

func TestRedactQuery(t *testing.T) {
	a := testAuditor()
	if got := a.redactQuery("name=smith&access_token=abc"); got != "access_token=%5BREDACTED%5D&name=smith" {
		t.Errorf("%s", got)
	}
	if got := a.redactQuery("name=smith&b=1"); got != "name=smith&b=1" {
		t.Errorf("an untouched query changed: %s", got)
	}
}
