// Package cli is the composition root of the custos binary: it parses flags
// (each also read from CUSTOS_<FLAG>), wires the stores, the ledger and the
// servers together, and runs the subcommands. Nothing else wires.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit codes.
const (
	exitOK       = 0
	exitProblem  = 1 // verify found tampering
	exitError    = 2 // the command could not run
	exitUsageErr = 64
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the server (embedded SQLite under --data)", serve},
		{"verify", "check the whole ledger; exit 0 intact, 1 naming the first bad thing, 2 could not run", verify},
		{"proxy", "reverse proxy that audits every request to --upstream (an EHR, a FHIR server)", proxyCmd},
		{"bench", "load generator and benchmark (HTTP ingest, raw store baseline, queries)", benchCmd},
		{"public-key", "print the checkpoint verifier key that auditors pin", publicKey},
		{"admin-key", "create an administrator key on a stopped store, recorded in the ledger", adminKey},
		{"user", "manage users: add, passwd, disable, enable, list (on the store, or --server)", userCmd},
		{"report", "compliance reports: the HIPAA report of a period, a patient's access report or accounting of disclosures", reportCmd},
		{"role", "manage roles: add, set, delete, list (on the store, or --server)", roleCmd},
		{"version", "print the release and the leaf encodings it reads and writes", version},
	}
}

// Main runs the custos command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsageErr
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "custos: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsageErr
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Custos: a tamper-evident audit trail for protected health information.")
	fmt.Fprintln(w, "\nUsage: custos <command> [flags]   (every flag also reads CUSTOS_<FLAG>)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'custos <command> -h' for its flags.")
}

// parse parses args into fs, then fills every flag not given on the command
// line from the environment variable CUSTOS_<FLAG> (upper case, '-' → '_').
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) (ok bool, code int) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, exitOK
		}
		return false, exitUsageErr
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "custos %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return false, exitUsageErr
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var bad error
	fs.VisitAll(func(f *flag.Flag) {
		env := "CUSTOS_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, found := os.LookupEnv(env); found && !set[f.Name] && bad == nil {
			if err := fs.Set(f.Name, v); err != nil {
				bad = fmt.Errorf("%s=%q: %v", env, v, err)
			}
		}
	})
	if bad != nil {
		fmt.Fprintf(stderr, "custos %s: %v\n", fs.Name(), bad)
		return false, exitUsageErr
	}
	return true, 0
}
