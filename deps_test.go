package custos_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPublicPackagesStayLight: the packages other programs import never pull
// in a database driver, Prometheus, the server, the ledger's writer or the
// stores: the offline verifier an auditor reads is the leaf encoding, the
// hashes and the signature checks, nothing more.
func TestPublicPackagesStayLight(t *testing.T) {
	forbidden := []string{"modernc.org/sqlite", "github.com/jackc/pgx", "github.com/prometheus/",
		"/internal/store", "/internal/ledger", "/internal/httpapi", "/internal/cli", "database/sql"}
	for _, pkg := range []string{".", "./client", "./verify", "./httpaudit"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.Contains(dep, f) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}

// TestMiddlewareImportsOnlyTheClient: httpaudit goes into other programs'
// binaries, so beyond the standard library it may import Custos's root
// package and its client, nothing else of this module and nothing outside
// it.
func TestMiddlewareImportsOnlyTheClient(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./httpaudit").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	allowed := map[string]bool{"github.com/custos-audit/custos": true, "github.com/custos-audit/custos/client": true,
		"github.com/custos-audit/custos/httpaudit": true}
	for _, dep := range strings.Fields(string(out)) {
		if !allowed[dep] {
			t.Errorf("httpaudit depends on %s", dep)
		}
	}
}
