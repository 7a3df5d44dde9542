// Package pgtest gives tests a real PostgreSQL: an empty schema of their own
// on the server named by CUSTOS_TEST_POSTGRES (or the local one).
package pgtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// ServerURL is the PostgreSQL the tests use: CUSTOS_TEST_POSTGRES, or the
// local server. When the variable is unset and the local server does not
// answer, the tests are skipped; when it is set (as .ci/run does), they fail.
func ServerURL(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("CUSTOS_TEST_POSTGRES"); u != "" {
		return u
	}
	u := "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	conn, err := pgx.Connect(context.Background(), u)
	if err != nil {
		t.Skipf("no PostgreSQL at %s (set CUSTOS_TEST_POSTGRES): %v", u, err)
	}
	conn.Close(context.Background())
	return u
}

// FreshSchema creates an empty schema, dropped when the test ends, and
// returns a URL whose connections use it.
func FreshSchema(t *testing.T) string {
	t.Helper()
	base := ServerURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := fmt.Sprintf("custos_test_%d", rand.Uint64()>>1)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
