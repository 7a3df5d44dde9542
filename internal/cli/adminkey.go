package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/sqlite"
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
	signer, err := ledger.NewSignerFromFile(cfg.keyPath())
	if err != nil {
		return fail(err)
	}
	log := slog.New(slog.DiscardHandler)
	var st store.Store
	if cfg.db != "" {
		st, err = postgres.Open(ctx, cfg.db, postgres.Options{Exclusive: true, Logger: log})
	} else {
		st, err = sqlite.Open(ctx, cfg.data, sqlite.Options{Logger: log, MustExist: true})
	}
	if err != nil {
		return fail(err)
	}
	lcfg := ledger.Config{Logger: log}
	if err := checkBeforeStart(ctx, st, lcfg); err != nil {
		st.Close()
		return fail(err)
	}
	seq, err := ledger.Open(ctx, st, st, st, signer, lcfg)
	if err != nil {
		st.Close()
		return fail(err)
	}
	defer func() { seq.Close(); st.Close() }()
	if err := recordLogKey(ctx, st, seq, signer); err != nil {
		return fail(err)
	}
	keys, err := authn.NewDirectory(ctx, seq, ledger.NewStateFeed(st, signer.VerifierKey()), authn.Config{})
	if err != nil {
		return fail(err)
	}
	key, token, err := keys.Create(ctx, nil, authn.KeySpec{Name: *name, Roles: []string{custos.RoleAdministrator}}, "")
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(stderr, "created administrator key %s (%q), recorded in the ledger; the token is shown once:\n", key.ID, key.Name)
	fmt.Fprintln(stdout, token)
	return exitOK
}
