package cli

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/ledger"
)

// adminKey creates an administrator key on a stopped store: the way back in
// for an administrator who revoked their own key. It is no back door: the
// key is a state record of the ledger like every other (its server event
// names this command), and it runs only while no server writes to the store.
func adminKey(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("admin-key", flag.ContinueOnError)
	var cfg serverConfig
	fs.StringVar(&cfg.data, "data", "./custos-data", "data folder of the embedded SQLite store")
	fs.StringVar(&cfg.db, "db", "", "PostgreSQL URL (postgres://…) instead of the embedded store")
	fs.StringVar(&cfg.keyFile, "key-file", "", "checkpoint signing key (default <data>/"+ledger.KeyFileName+")")
	name := fs.String("name", "recovery administrator", "the new key's name")
	if ok, code := parse(fs, args, stderr); !ok {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "custos admin-key:", err)
		return exitError
	}
	off, err := openOffline(ctx, cfg, true)
	if err != nil {
		return fail(err)
	}
	defer off.close()
	keys := off.dir
	key, token, err := keys.Create(ctx, nil, authn.KeySpec{Name: *name, Roles: []string{custos.RoleAdministrator}}, "")
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(stderr, "created administrator key %s (%q), recorded in the ledger; the token is shown once:\n", key.ID, key.Name)
	fmt.Fprintln(stdout, token)
	return exitOK
}
