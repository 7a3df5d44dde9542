// Package custostest runs a real Custos (SQLite ledger, sequencer, keys,
// security monitor, the /v1 API) on a loopback listener inside a test
// process, for the middleware's tests. It can be made unreachable (its
// listener closed: connections are refused) and brought back on the same
// address, and a hook can stand between the network and the API. Tests
// only: it imports the server's internal packages, which the middleware
// itself never does.
package custostest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/client"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/authn/password"
	"github.com/custos-audit/custos/internal/httpapi"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/monitor"
	"github.com/custos-audit/custos/internal/rules"
	"github.com/prometheus/client_golang/prometheus"
)

// AdminToken is the administrator credential of every test server.
const AdminToken = "custostest-admin-token-0123456789abcdef"

// Hook stands between the network and the API when set: it may serve the
// request itself, pass it to next, or drop the connection.
type Hook func(w http.ResponseWriter, r *http.Request, next http.Handler)

// Server is a running Custos.
type Server struct {
	URL   string
	Admin *client.Client

	tb   testing.TB
	dir0 string // removed by Close (MustRun)
	addr string
	l    *ledgertest.Ledger
	dir  *authn.Directory
	api  *httpapi.API
	mon  *monitor.Monitor
	h    http.Handler

	mu   sync.Mutex
	srv  *http.Server
	hook Hook
}

// Start runs a Custos for the test; it stops at the test's end.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := start(tb, tb.TempDir())
	tb.Cleanup(s.Close)
	return s
}

// MustRun runs a Custos outside a test (an Example) with its ledger in a
// new temporary directory; Close stops it and removes the directory. It
// panics on any failure.
func MustRun() *Server {
	dir, err := os.MkdirTemp("", "custostest")
	if err != nil {
		panic(err)
	}
	s := start(panicTB{}, dir)
	s.dir0 = dir
	return s
}

// Close stops the server and its ledger.
func (s *Server) Close() {
	s.Stop()
	s.api.Close()
	s.l.Close()
	if s.dir0 != "" {
		os.RemoveAll(s.dir0)
	}
}

// panicTB is the testing.TB of MustRun: every failure panics.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                   {}
func (panicTB) Fatal(args ...any)         { panic(fmt.Sprint(args...)) }
func (panicTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (panicTB) Log(args ...any)           {}
func (panicTB) Cleanup(func())            {}

func start(tb testing.TB, ledgerDir string) *Server {
	ctx := context.Background()
	l := ledgertest.Open(tb, ledgerDir, "custos.test/httpaudit", ledger.Config{})
	h, err := password.NewHasher(password.Config{Params: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		tb.Fatal(err)
	}
	feed := ledger.NewStateFeed(l.Store, l.Signer.VerifierKey())
	dir, err := authn.NewDirectory(ctx, l.Seq, feed, authn.Config{Hasher: h})
	if err != nil {
		tb.Fatal(err)
	}
	l.Seq.SetEnrich(dir.FlagEmergency)
	if _, err := dir.Bootstrap(ctx, AdminToken); err != nil {
		tb.Fatal(err)
	}
	mon, err := monitor.New(ctx, l.Store, l.Seq, feed, monitor.Config{Rules: rules.DefaultConfig()})
	if err != nil {
		tb.Fatal(err)
	}
	l.Seq.SetCommitted(mon.Committed) // as the server does
	api := httpapi.New(l.Seq, l.Store, dir, httpapi.Config{CursorKey: []byte("k"), Registry: prometheus.NewRegistry(), Monitor: mon})
	s := &Server{tb: tb, l: l, dir: dir, api: api, mon: mon, h: api.Handler()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.URL = "http://" + s.addr
	s.serve(ln)
	s.Admin = client.New(s.URL, AdminToken, nil)
	return s
}

func (s *Server) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(s.route), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.tb.Log("custostest: serve:", err)
		}
	}()
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		hook(w, r, s.h)
		return
	}
	s.h.ServeHTTP(w, r)
}

// SetHook sets (or, with nil, removes) the hook.
func (s *Server) SetHook(h Hook) {
	s.mu.Lock()
	s.hook = h
	s.mu.Unlock()
}

// Stop makes Custos unreachable: the listener and every connection close,
// so new connections are refused.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Restart listens again on the same address.
func (s *Server) Restart() {
	s.tb.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger a moment after Close
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.tb.Fatalf("custostest: listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// Key makes a service account key holding roles (default: the ingest
// service role, with events:write and blocks:check).
func (s *Server) Key(roles ...string) string {
	s.tb.Helper()
	if len(roles) == 0 {
		roles = []string{custos.RoleIngestService}
	}
	_, tok, err := s.dir.Create(context.Background(), nil, authn.KeySpec{Name: "httpaudit test", Roles: roles}, "")
	if err != nil {
		s.tb.Fatal(err)
	}
	return tok
}

// Events returns the client events in the ledger from source, in ledger
// order.
func (s *Server) Events(source string) []custos.Event {
	s.tb.Helper()
	var out []custos.Event
	err := s.l.Store.ScanEvents(context.Background(), 0, func(e custos.Event) error {
		if e.Kind == custos.KindClient && e.Source == source {
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		s.tb.Fatal(err)
	}
	return out
}

// Block blocks cidr for d, as an administrator.
func (s *Server) Block(cidr string, d time.Duration) {
	s.tb.Helper()
	if _, err := s.mon.AddBlock(context.Background(), "apikey:bootstrap", cidr, "httpaudit test", d); err != nil {
		s.tb.Fatal(err)
	}
}
