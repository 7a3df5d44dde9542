// Command testapp is a small application audited by httpaudit with a
// durable spool, for the tests that kill it with SIGKILL and start it
// again. It reads CUSTOS_URL, CUSTOS_TOKEN and SPOOL_DIR, serves on a free
// loopback port and prints "serving <url>" once it does. GET /stats
// (not audited) answers the Auditor's Stats as JSON.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/custos-audit/custos/client"
	"github.com/custos-audit/custos/httpaudit"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := httpaudit.New(httpaudit.Config{
		Client:   client.New(os.Getenv("CUSTOS_URL"), os.Getenv("CUSTOS_TOKEN"), nil),
		Source:   "testapp",
		SpoolDir: os.Getenv("SPOOL_DIR"),
		Routes:   []httpaudit.Route{{Pattern: "GET /stats", Skip: true}},
		// Small batches and short waits: the tests see several batches
		// and a quick recovery.
		BatchSize: 3, FlushInterval: 20 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /patients/{pid}/notes/{id}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "a note")
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(a.Stats())
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("serving http://%s\n", ln.Addr())
	srv := &http.Server{Handler: a.Handler(mux), ReadHeaderTimeout: 5 * time.Second}
	return srv.Serve(ln)
}
