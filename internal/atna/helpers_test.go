package atna_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/atna"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// pki is a test CA with a server certificate (for 127.0.0.1, in the CN as
// rsyslog's x509/name wants it and as an IP SAN as Go wants it) and a
// client certificate "pacs-1", written as PEM files in Dir.
type pki struct {
	Dir                       string
	CA, ServerCert, ServerKey string // file names
	ClientCert, ClientKey     string
	ca                        *x509.Certificate
	caKey                     *ecdsa.PrivateKey
	client                    tls.Certificate
	pool                      *x509.CertPool
}

func newPKI(tb testing.TB, dir string) *pki {
	tb.Helper()
	p := &pki{Dir: dir}
	p.ca, p.caKey = selfSigned(tb, "Custos test CA")
	p.CA = p.write(tb, "ca.crt", pemCert(p.ca.Raw))
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.ca)
	p.ServerCert, p.ServerKey = p.issue(tb, "server", "127.0.0.1", x509.ExtKeyUsageServerAuth)
	p.ClientCert, p.ClientKey = p.issue(tb, "client", "pacs-1", x509.ExtKeyUsageClientAuth)
	var err error
	if p.client, err = tls.LoadX509KeyPair(p.ClientCert, p.ClientKey); err != nil {
		tb.Fatal(err)
	}
	return p
}

func selfSigned(tb testing.TB, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	tb.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

// issue writes a certificate for cn signed by the CA, and its key.
func (p *pki) issue(tb testing.TB, name, cn string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	tb.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	if ip := net.ParseIP(cn); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
		tmpl.DNSNames = []string{cn}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		tb.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return p.write(tb, name+".crt", pemCert(der)),
		p.write(tb, name+".key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func (p *pki) write(tb testing.TB, name string, b []byte) string {
	tb.Helper()
	f := filepath.Join(p.Dir, name)
	if err := os.WriteFile(f, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return f
}

// clientTLS is a client configuration that trusts the CA, presenting cert
// (none when nil).
func (p *pki) clientTLS(cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{RootCAs: p.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// rig is a receiver on a real ledger (SQLite in a temporary folder),
// listening for TLS on a free port.
type rig struct {
	pki  *pki
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
	r := &rig{pki: newPKI(tb, tb.TempDir()), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
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
	c, err := tls.Dial("tcp", r.addr, r.pki.clientTLS(&r.pki.client))
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

// syslogFrame wraps an audit message in an RFC 5424 message and an RFC 5425
// frame, as an ATNA sender writes it.
func syslogFrame(msg []byte) []byte {
	body := fmt.Sprintf("<85>1 2026-11-26T10:00:00.000Z pacs-1 dicom-audit 42 IHE+RFC-3881 - %s", msg)
	return []byte(fmt.Sprintf("%d %s", len(body), body))
}

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
