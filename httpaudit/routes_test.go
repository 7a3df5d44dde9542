package httpaudit

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/custos-audit/custos"
)

// TestRouteMatching: routes match like a ServeMux (method, wildcards,
// the most specific pattern), and their wildcards name the resource.
func TestRouteMatching(t *testing.T) {
	rt, err := newRouteTable([]Route{
		{Pattern: "POST /login", Action: custos.ActionLogin},
		{Pattern: "GET /patients/{pid}/notes/{id}"},
		{Pattern: "GET /patients/{pid}/notes/latest", ResourceType: "Note", PatientParam: "pid"},
		{Pattern: "/admin/", Skip: true},
		{Pattern: "GET /orders/{order}/items/{item}", ResourceType: "OrderItem", IDParam: "item", PatientParam: "order"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path string
		want         string // the pattern matched, "" for none
		res          Resource
	}{
		{"POST", "/login", "POST /login", Resource{Type: "login"}},
		{"GET", "/login", "", Resource{}},
		{"GET", "/patients/p1/notes/n2", "GET /patients/{pid}/notes/{id}", Resource{Type: "notes", ID: "n2", PatientID: "p1"}},
		{"GET", "/patients/p1/notes/latest", "GET /patients/{pid}/notes/latest", Resource{Type: "Note", PatientID: "p1"}},
		{"HEAD", "/patients/p1/notes/n2", "GET /patients/{pid}/notes/{id}", Resource{Type: "notes", ID: "n2", PatientID: "p1"}},
		{"DELETE", "/admin/users/1", "/admin/", Resource{Type: "admin"}},
		{"GET", "/orders/o1/items/i2", "GET /orders/{order}/items/{item}", Resource{Type: "OrderItem", ID: "i2", PatientID: "o1"}},
		{"GET", "/elsewhere", "", Resource{}},
	} {
		r := httptest.NewRequest(c.method, c.path, nil)
		m := rt.match(r)
		got := ""
		if m.route != nil {
			got = m.route.Pattern
		}
		if got != c.want {
			t.Errorf("%s %s: matched %q, want %q", c.method, c.path, got, c.want)
			continue
		}
		if m.route != nil {
			if res := shapeResource(m.shape, m.req); res != c.res {
				t.Errorf("%s %s: %+v, want %+v", c.method, c.path, res, c.res)
			}
		}
		if r.Pattern != "" {
			t.Errorf("%s %s: matching changed the caller's request", c.method, c.path)
		}
	}
}

func TestBadRoutes(t *testing.T) {
	for _, c := range []struct {
		routes []Route
		want   string
	}{
		{[]Route{{Pattern: "GET /a/{x}"}, {Pattern: "GET /a/{y}"}}, "conflicts"},
		{[]Route{{Pattern: "GET /a/{x"}}, "bad wildcard"},
		{[]Route{{Pattern: "GET /a", Action: "PEEK"}}, "not a Custos action"},
	} {
		_, err := New(Config{Client: unreachable(), Routes: c.routes})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error saying %q", c.routes, err, c.want)
		}
	}
}
