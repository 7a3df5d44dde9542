package custos_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPublicPackagesStayLight: the packages other programs import never pull
// in a database driver, Prometheus or the server.
func TestPublicPackagesStayLight(t *testing.T) {
	forbidden := []string{"modernc.org/sqlite", "github.com/jackc/pgx", "github.com/prometheus/",
		"/internal/store/sqlite", "/internal/store/postgres", "/internal/httpapi", "/internal/cli", "database/sql"}
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
