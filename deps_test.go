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
	for _, pkg := range []string{".", "./client", "./verify"} {
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
