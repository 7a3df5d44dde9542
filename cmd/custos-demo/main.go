// Command custos-demo is a small FHIR-like application of fictitious
// patients, audited through the httpaudit middleware (--custos-url) or
// plain, for use behind custos proxy.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
