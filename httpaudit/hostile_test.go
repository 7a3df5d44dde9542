package httpaudit

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/custos-audit/custos"
)

// TestHostileInputStillRecorded: control characters in the path, a link-
// local peer with a zone, a NUL in a JSON body, a handler naming a user without an id, empty or
// too many roles, an unknown action or break-glass without a reason: every
// request is still recorded, as an event Custos accepts, none dropped.
func TestHostileInputStillRecorded(t *testing.T) {
	a, err := newAuditor(Config{Client: unreachable(), Source: "test\x00app", FHIRBase: "/fhir",
		User: func(r *http.Request) (custos.User, bool) {
			return custos.User{ID: "u\x01", Roles: append([]string{"", "a\nb"}, strings.Split(strings.Repeat("r,", 40), ",")...)}, true
		}}, never)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(canceled())
	h := a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ann := Annotate(r.Context())
		switch r.URL.Query().Get("case") {
		case "user":
			ann.SetUser(custos.User{})
		case "action":
			ann.SetAction("PEEK")
		case "glass":
			ann.SetBreakGlass(" ")
		case "resource":
			ann.SetResource("", "x\x00y")
			ann.SetPatient(strings.Repeat("p", 100))
		}
	}))
	reqs := []*http.Request{
		httptest.NewRequest("GET", "/notes/%00%0A?case=plain", nil),
		httptest.NewRequest("GET", "/fhir/Patient/1?case=user", nil),
		httptest.NewRequest("DELETE", "/fhir/Patient/1?case=action", nil),
		httptest.NewRequest("GET", "/fhir/Patient/1?case=glass", nil),
		httptest.NewRequest("GET", "/?case=resource", nil),
		httptest.NewRequest("GET", "/"+strings.Repeat("x", 300), nil),
		httptest.NewRequest("POST", "/fhir/Observation", strings.NewReader(`{"note":"a\u0000b"}`)),
	}
	reqs[0].RemoteAddr = "[fe80::1%eth0]:80"
	reqs[1].Header.Set("User-Agent", strings.Repeat("é", 600))
	for _, r := range reqs {
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	if err := a.sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.Spooled != uint64(len(reqs)) || st.Dropped != 0 {
		t.Fatalf("stats: %+v", st)
	}
	if held := a.held.Load(); held != 0 {
		t.Errorf("%d body bytes still held after the writer took everything", held)
	}
	b, err := a.q.next()
	if err != nil || b == nil {
		t.Fatalf("the batch: %v", err)
	}
	for i, rec := range b.recs {
		var in custos.EventInput
		if err := json.Unmarshal(rec, &in); err != nil {
			t.Fatal(err)
		}
		e := in.Event()
		if err := e.Normalize(custos.DefaultLimits, ""); err != nil {
			t.Errorf("event %d is invalid: %v\n%s", i, err, rec)
		}
	}
	var first custos.EventInput
	json.Unmarshal(b.recs[0], &first)
	if first.RequestPath != "/notes/%00%0A?case=plain" || first.IPAddress != "fe80::1" {
		t.Errorf("the first event: path %q, address %q", first.RequestPath, first.IPAddress)
	}
	var third custos.EventInput
	json.Unmarshal(b.recs[2], &third)
	if third.Action != custos.ActionDelete {
		t.Errorf("an unknown action from the handler: %s, want DELETE", third.Action)
	}
}
