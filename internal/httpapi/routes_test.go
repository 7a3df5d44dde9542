package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/httpapi"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// routesAPI is an API with no store behind it: enough to read its routes
// table and to see requests without a credential refused.
func routesAPI(t *testing.T) *httpapi.API {
	t.Helper()
	api := httpapi.New(nil, nil, nil, httpapi.Config{CursorKey: []byte("k"), Registry: prometheus.NewRegistry()})
	t.Cleanup(api.Close)
	return api
}

// TestEveryRouteDeclaresAPermission: each route of the table names one of
// Custos's permissions, except the routes that are open by design and those
// that need only a valid credential, which are listed here by name.
func TestEveryRouteDeclaresAPermission(t *testing.T) {
	open := map[string]bool{"GET /healthz": true, "GET /readyz": true, "/": true, "POST /v1/login": true,
		"GET /fhir/metadata": true} // the CapabilityStatement: no records, read before a FHIR client authenticates
	authenticated := map[string]bool{"POST /v1/logout": true, "GET /v1/me": true, "POST /v1/me/totp": true,
		"POST /v1/me/totp/confirm": true}
	seen := map[string]bool{}
	gotOpen, gotAuthenticated := map[string]bool{}, map[string]bool{}
	for _, r := range routesAPI(t).Routes() {
		if seen[r.Pattern] {
			t.Errorf("route %q is in the table twice", r.Pattern)
		}
		seen[r.Pattern] = true
		switch {
		case r.Perm == httpapi.PermOpen:
			gotOpen[r.Pattern] = true
			if !open[r.Pattern] {
				t.Errorf("route %q declares no permission and is not on the list of open routes", r.Pattern)
			}
		case r.Perm == httpapi.PermAuthenticated:
			gotAuthenticated[r.Pattern] = true
			if !authenticated[r.Pattern] {
				t.Errorf("route %q needs only a credential and is not on the list of such routes", r.Pattern)
			}
		case !slices.Contains(custos.Permissions, r.Perm):
			t.Errorf("route %q declares %q, which is not one of custos.Permissions", r.Pattern, r.Perm)
		}
	}
	if diff := cmp.Diff(open, gotOpen); diff != "" {
		t.Errorf("open routes (-listed +table):\n%s", diff)
	}
	if diff := cmp.Diff(authenticated, gotAuthenticated); diff != "" {
		t.Errorf("credential-only routes (-listed +table):\n%s", diff)
	}
}

// TestGuardedRoutesRefuseAnonymousRequests walks the router itself: every
// route that is not open answers 401 problem+json to a request without a
// credential, before its handler runs.
func TestGuardedRoutesRefuseAnonymousRequests(t *testing.T) {
	api := routesAPI(t)
	h := api.Handler()
	wildcard := regexp.MustCompile(`\{[^}]+\}`)
	for _, r := range api.Routes() {
		if r.Perm == httpapi.PermOpen {
			continue
		}
		method, path, ok := strings.Cut(r.Pattern, " ")
		if !ok {
			t.Errorf("guarded route %q has no method", r.Pattern)
			continue
		}
		path = wildcard.ReplaceAllString(path, "x")
		t.Run(r.Pattern, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader("{}")))
			want := "application/problem+json"
			if strings.HasPrefix(path, "/fhir") { // FHIR clients read an OperationOutcome
				want = "application/fhir+json"
			}
			if ct, _, _ := strings.Cut(rec.Header().Get("Content-Type"), ";"); rec.Code != http.StatusUnauthorized || ct != want {
				t.Errorf("%s %s without a credential: %d %s %s, want 401 %s", method, path, rec.Code, rec.Header().Get("Content-Type"), rec.Body, want)
			}
		})
	}
}
