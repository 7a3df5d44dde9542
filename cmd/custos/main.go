// Command custos is the Custos audit trail: server, verifier, benchmark.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/custos-audit/custos/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
