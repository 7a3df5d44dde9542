package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/client"
	"github.com/custos-audit/custos/httpaudit"
	"github.com/custos-audit/custos/internal/demo"
)

// userHeader names the demo's user. A real application takes the user from
// its own session; the demo trusts this header so the tour can act as
// different people.
const userHeader = "X-Demo-User"

// run runs custos-demo with args and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("custos-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8082", "address to listen on")
	base := fs.String("base", "/fhir", "path prefix of the FHIR API")
	custosURL := fs.String("custos-url", "", "audit through the middleware into this Custos server (default: no auditing, for use behind custos proxy)")
	token := fs.String("token", os.Getenv("CUSTOS_TOKEN"), "Custos key with events:write (default $CUSTOS_TOKEN)")
	source := fs.String("source", "custos-demo", "the events' source")
	spool := fs.String("spool", "", "spool folder for events while Custos does not answer (default: a temporary folder)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 64
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	h := demo.Handler(*base)
	var aud *httpaudit.Auditor
	if *custosURL != "" {
		if *spool == "" {
			dir, err := os.MkdirTemp("", "custos-demo-spool-")
			if err != nil {
				fmt.Fprintln(stderr, "custos-demo:", err)
				return 2
			}
			defer os.RemoveAll(dir)
			*spool = dir
		}
		var err error
		aud, err = httpaudit.New(httpaudit.Config{Client: client.New(*custosURL, *token, nil), Source: *source,
			SpoolDir: *spool, User: headerUser, FHIRBase: *base, Logger: log})
		if err != nil {
			fmt.Fprintln(stderr, "custos-demo:", err)
			return 2
		}
		h = aud.Handler(h)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(stderr, "custos-demo:", err)
		return 2
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("custos-demo listening", "addr", ln.Addr().String(), "base", *base, "audited", aud != nil)
	select {
	case <-ctx.Done():
	case err := <-done:
		fmt.Fprintln(stderr, "custos-demo:", err)
		return 2
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if aud != nil {
		if err := aud.Close(sctx); err != nil {
			fmt.Fprintln(stderr, "custos-demo: sending the last events:", err)
			return 2
		}
	}
	return 0
}

// headerUser is the demo's notion of a session: the X-Demo-User header,
// "id" or "id;role,role".
func headerUser(r *http.Request) (custos.User, bool) {
	v := r.Header.Get(userHeader)
	if v == "" {
		return custos.User{}, false
	}
	id, roles, _ := strings.Cut(v, ";")
	u := custos.User{ID: id, Name: id, Roles: []string{}}
	for role := range strings.SplitSeq(roles, ",") {
		if role = strings.TrimSpace(role); role != "" {
			u.Roles = append(u.Roles, role)
		}
	}
	return u, true
}
