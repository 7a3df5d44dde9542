package cli

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestVerifyPostgres: verify --db passes on an intact PostgreSQL ledger and
// names the first bad record after an edit made with SQL.
func TestVerifyPostgres(t *testing.T) {
	ctx := context.Background()
	db := pgtest.FreshSchema(t)
	st, err := postgres.Open(ctx, db, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), ledger.KeyFileName)
	sig, _, err := ledger.LoadOrCreateKey(keyFile, "custos.test/pg")
	if err != nil {
		t.Fatal(err)
	}
	seq, err := ledger.Open(ctx, st, st, st, sig, ledger.Config{CheckpointEvery: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i += 3 {
		var evs []custos.Event
		for j := i; j < i+3; j++ {
			evs = append(evs, custos.Event{User: custos.User{ID: fmt.Sprintf("user-%d", j), Roles: []string{}},
				Action: custos.ActionRead, ResourceType: "Patient", PatientID: "p-1", Outcome: custos.OutcomeSuccess})
		}
		if _, err := seq.Append(ctx, "apikey:test", evs); err != nil {
			t.Fatal(err)
		}
	}
	seq.Close()
	st.Close()
	run := func() (int, string) {
		var out bytes.Buffer
		code := Main(ctx, []string{"verify", "--db", db, "--key-file", keyFile, "--quiet"}, &out, &out)
		return code, out.String()
	}
	if code, out := run(); code != exitOK || !strings.Contains(out, "OK: 30 records") {
		t.Fatalf("verify --db of an intact ledger: %d\n%s", code, out)
	}
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE events SET patient_id = 'p-2' WHERE idx = 13`); err != nil {
		t.Fatal(err)
	}
	if code, out := run(); code != exitProblem || !strings.Contains(out, "record 13: content does not match") {
		t.Fatalf("verify --db after an edit: %d\n%s", code, out)
	}
}

// TestServeUnreachableDatabase: serve --db with a database that does not
// answer exits non-zero with a clear error.
func TestServeUnreachableDatabase(t *testing.T) {
	var out bytes.Buffer
	code := Main(context.Background(), []string{"serve", "--data", t.TempDir(), "--addr", "127.0.0.1:0",
		"--db", "postgres://nobody@127.0.0.1:1/custos?connect_timeout=2"}, &out, &out)
	if code != exitError || !strings.Contains(out.String(), "cannot reach nobody@127.0.0.1:1/custos") {
		t.Fatalf("serve with an unreachable database: exit %d\n%s", code, out.String())
	}
}
