package atna_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/atna"
	"github.com/custos-audit/custos/internal/atna/atnatest"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// rig is a receiver on a real ledger (SQLite in a temporary folder),
// listening for TLS on a free port.
type rig struct {
	pki  *atnatest.PKI
	led  *ledgertest.Ledger
	recv *atna.Receiver
	reg  *prometheus.Registry
	addr string
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newRig(tb testing.TB, cfg atna.Config) *rig {
	tb.Helper()
	dir := tb.TempDir()
	r := &rig{pki: atnatest.NewPKI(tb, tb.TempDir()), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	r.led = ledgertest.Open(tb, dir, "custos.test/atna", ledger.Config{})
	tlsCfg, err := atna.ServerTLS(r.pki.ServerCert, r.pki.ServerKey, r.pki.CA)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.TLS, cfg.Registry = tlsCfg, r.reg
	cfg.Logger = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.recv = atna.New(r.led.Seq, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r.addr = ln.Addr().String()
	go r.recv.ServeTLS(ln)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.recv.Close(ctx)
		r.led.Close()
	})
	return r
}

// dial opens a TLS connection with the client certificate.
func (r *rig) dial(tb testing.TB) *tls.Conn {
	tb.Helper()
	c, err := tls.Dial("tcp", r.addr, r.pki.ClientTLS(&r.pki.Client))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// size is the number of records in the ledger.
func (r *rig) size(tb testing.TB) uint64 {
	tb.Helper()
	h, err := r.led.Store.Head(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return h.Size
}

// waitSize waits until the ledger holds n records.
func (r *rig) waitSize(tb testing.TB, n uint64) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for r.size(tb) < n {
		if time.Now().After(deadline) {
			tb.Fatalf("the ledger holds %d records, want %d; log:\n%s", r.size(tb), n, r.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.size(tb); got != n {
		tb.Fatalf("the ledger holds %d records, want %d", got, n)
	}
}

// counter reads a metric of the registry by name and labels ("k=v").
func (r *rig) counter(tb testing.TB, name string, labels ...string) float64 {
	tb.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for _, kv := range labels {
				k, v, _ := strings.Cut(kv, "=")
				if have[k] != v {
					continue metric
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	tb.Fatalf("no metric %s %v", name, labels)
	return 0
}

// waitCounter waits until a counter reaches n.
func (r *rig) waitCounter(tb testing.TB, n float64, name string, labels ...string) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for r.counter(tb, name, labels...) < n {
		if time.Now().After(deadline) {
			tb.Fatalf("%s %v = %v, want %v; log:\n%s", name, labels, r.counter(tb, name, labels...), n, r.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syslogFrame wraps an audit message in a syslog frame.
func syslogFrame(msg []byte) []byte { return atnatest.Frame(msg) }

// find returns the stored events that the query q matches.
func (r *rig) find(tb testing.TB, q store.Query) []custos.Event {
	tb.Helper()
	q.Limit = store.MaxLimit
	es, err := r.led.Store.Events(context.Background(), q)
	if err != nil {
		tb.Fatal(err)
	}
	return es
}

func tlsDial(addr string, pki *atnatest.PKI) (*tls.Conn, error) {
	return tls.Dial("tcp", addr, pki.ClientTLS(&pki.Client))
}
