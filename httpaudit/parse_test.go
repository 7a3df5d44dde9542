package httpaudit

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/google/go-cmp/cmp"
)

func TestMethodAction(t *testing.T) {
	for method, want := range map[string]custos.Action{
		"GET": custos.ActionRead, "HEAD": custos.ActionRead, "POST": custos.ActionCreate, "PUT": custos.ActionUpdate,
		"PATCH": custos.ActionUpdate, "DELETE": custos.ActionDelete, "TRACE": custos.ActionRead,
	} {
		if got := methodAction(method); got != want {
			t.Errorf("%s: %s, want %s", method, got, want)
		}
	}
}

func TestParseFHIR(t *testing.T) {
	for _, c := range []struct {
		path, query string
		want        fhirRequest
		ok          bool
	}{
		{"/Patient/123", "", fhirRequest{Resource: Resource{Type: "Patient", ID: "123", PatientID: "123"}}, true},
		{"/Observation/9/_history/2", "", fhirRequest{Resource: Resource{Type: "Observation", ID: "9"}}, true},
		{"/Observation/9/_history", "", fhirRequest{Resource: Resource{Type: "Observation", ID: "9"}}, true},
		{"/Patient", "name=smith", fhirRequest{Resource: Resource{Type: "Patient", Search: true}}, true},
		{"/Observation", "patient=Patient/42&code=x", fhirRequest{Resource: Resource{Type: "Observation", PatientID: "42", Search: true}}, true},
		{"/Observation", "subject=Patient/42", fhirRequest{Resource: Resource{Type: "Observation", PatientID: "42", Search: true}}, true},
		{"/Observation", "subject=Group/42", fhirRequest{Resource: Resource{Type: "Observation", Search: true}}, true},
		{"/Observation/_search", "", fhirRequest{Resource: Resource{Type: "Observation", Search: true}}, true},
		{"/Patient/_history", "", fhirRequest{Resource: Resource{Type: "Patient", Search: true}}, true},
		{"/Patient/123/Observation", "", fhirRequest{Resource: Resource{Type: "Observation", PatientID: "123", Search: true}}, true},
		{"/Patient/123/$everything", "", fhirRequest{Resource: Resource{Type: "Patient", ID: "123", PatientID: "123"}}, true},
		{"/Patient/$export", "", fhirRequest{Resource: Resource{Type: "Patient"}, action: custos.ActionExport}, true},
		{"/Group/g1/$export", "", fhirRequest{Resource: Resource{Type: "Group", ID: "g1"}, action: custos.ActionExport}, true},
		{"/$export", "", fhirRequest{Resource: Resource{Type: "System"}, action: custos.ActionExport}, true},
		{"/$import", "", fhirRequest{Resource: Resource{Type: "System"}, action: custos.ActionImport}, true},
		{"/Patient/a.b-C", "", fhirRequest{Resource: Resource{Type: "Patient", ID: "a.b-C", PatientID: "a.b-C"}}, true},
		// Malformed.
		{"/", "", fhirRequest{}, false},
		{"/patient/123", "", fhirRequest{}, false},
		{"/Patient/12_3", "", fhirRequest{}, false},
		{"/Patient/" + string(make([]byte, 65)), "", fhirRequest{}, false},
		{"/Patient/1/_history/2/3", "", fhirRequest{}, false},
		{"/Patient/1/bogus", "", fhirRequest{}, false},
		{"/Patient/1/_history/x_y", "", fhirRequest{}, false},
		{"/Patient/$", "", fhirRequest{}, false},
		{"/Pat ient", "", fhirRequest{}, false},
	} {
		q, _ := url.ParseQuery(c.query)
		got, ok := parseFHIR(c.path, q)
		if ok != c.ok {
			t.Errorf("%s?%s: ok %v, want %v", c.path, c.query, ok, c.ok)
			continue
		}
		if ok {
			if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(fhirRequest{})); diff != "" {
				t.Errorf("%s?%s (-want +got):\n%s", c.path, c.query, diff)
			}
		}
	}
}

func TestDeriveShape(t *testing.T) {
	for pattern, want := range map[string]shape{
		"GET /patients/{id}":                {typ: "patients", idParam: "id", patientParam: "id"},
		"/patients/{pid}/notes/{id}":        {typ: "notes", idParam: "id", patientParam: "pid"},
		"POST /patients/{patient_id}/notes": {typ: "notes", patientParam: "patient_id"},
		"GET /Patient/{id}/$export":         {typ: "Patient", idParam: "id", patientParam: "id"},
		"POST /login":                       {typ: "login"},
		"GET /files/{path...}":              {typ: "files", idParam: "path"},
		"GET /{$}":                          {},
		"GET example.com/orders/{id}":       {typ: "orders", idParam: "id"},
	} {
		if got := deriveShape(pattern); got != want {
			t.Errorf("%q: %+v, want %+v", pattern, got, want)
		}
	}
}

func TestClientAddr(t *testing.T) {
	a := &Auditor{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}}
	for _, c := range []struct {
		name, peer string
		header     http.Header
		want       string
	}{
		{"no proxy", "203.0.113.7:5000", nil, "203.0.113.7"},
		{"spoofed XFF from an untrusted peer", "203.0.113.7:5000", http.Header{"X-Forwarded-For": {"198.51.100.1"}}, "203.0.113.7"},
		{"spoofed Forwarded from an untrusted peer", "203.0.113.7:5000", http.Header{"Forwarded": {"for=198.51.100.1"}}, "203.0.113.7"},
		{"XFF from a trusted proxy", "10.0.0.2:80", http.Header{"X-Forwarded-For": {"198.51.100.1"}}, "198.51.100.1"},
		{"rightmost untrusted hop", "10.0.0.2:80", http.Header{"X-Forwarded-For": {"6.6.6.6, 198.51.100.1, 10.0.0.9"}}, "198.51.100.1"},
		{"XFF over several lines", "10.0.0.2:80", http.Header{"X-Forwarded-For": {"6.6.6.6", "198.51.100.1"}}, "198.51.100.1"},
		{"all hops trusted", "10.0.0.2:80", http.Header{"X-Forwarded-For": {"10.1.1.1, 10.0.0.9"}}, "10.1.1.1"},
		{"Forwarded over XFF", "10.0.0.2:80", http.Header{"Forwarded": {`for=198.51.100.2;proto=https`}, "X-Forwarded-For": {"198.51.100.1"}}, "198.51.100.2"},
		{"Forwarded IPv6 with port", "10.0.0.2:80", http.Header{"Forwarded": {`for="[2001:db8::1]:4711", for=10.0.0.5`}}, "2001:db8::1"},
		{"Forwarded quoted IPv4", "10.0.0.2:80", http.Header{"Forwarded": {`For="198.51.100.3:80"`}}, "198.51.100.3"},
		{"IPv6 peer trusted", "[fd00::1]:80", http.Header{"X-Forwarded-For": {"2001:db8::7"}}, "2001:db8::7"},
		{"IPv6 peer untrusted", "[2001:db8::9]:80", http.Header{"X-Forwarded-For": {"2001:db8::7"}}, "2001:db8::9"},
		{"mapped IPv4 peer", "[::ffff:203.0.113.7]:80", nil, "203.0.113.7"},
		{"unknown hop", "10.0.0.2:80", http.Header{"Forwarded": {"for=unknown"}}, "invalid IP"},
		{"obfuscated hop", "10.0.0.2:80", http.Header{"Forwarded": {"for=_hidden, for=198.51.100.1"}}, "198.51.100.1"},
		{"garbage XFF", "10.0.0.2:80", http.Header{"X-Forwarded-For": {"not an address"}}, "invalid IP"},
		{"no header from a trusted proxy", "10.0.0.2:80", nil, "10.0.0.2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.peer
			for k, v := range c.header {
				r.Header[k] = v
			}
			if got := a.clientAddr(r).String(); got != c.want {
				t.Errorf("%s, want %s", got, c.want)
			}
		})
	}
}

func TestParseForwarded(t *testing.T) {
	got := parseForwarded(`for=192.0.2.43, for="[2001:db8:cafe::17]";proto=http;by=203.0.113.43, proto=https, for="a,b"`)
	want := []string{"192.0.2.43", "[2001:db8:cafe::17]", "", "a,b"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
