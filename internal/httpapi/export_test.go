package httpapi

import "github.com/custos-audit/custos"

// Route is one row of the routes table, as the tests in package
// httpapi_test see it.
type Route struct {
	Pattern string
	Perm    custos.Permission
}

// The two route guards that are not a permission.
const (
	PermOpen          = permOpen
	PermAuthenticated = permAuthenticated
)

// Routes returns the routes table.
func (a *API) Routes() []Route {
	var out []Route
	for _, r := range a.routes() {
		out = append(out, Route{Pattern: r.pattern, Perm: r.perm})
	}
	return out
}
