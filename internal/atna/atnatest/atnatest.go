// Package atnatest makes what tests of the ATNA receiver need: a test CA
// with server and client certificates, and syslog frames.
package atnatest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a test CA with a server certificate (for 127.0.0.1, in the CN as
// rsyslog's x509/name wants it and as an IP SAN as Go wants it) and a
// client certificate "pacs-1", written as PEM files in Dir.
type PKI struct {
	Dir                       string
	CA, ServerCert, ServerKey string // file names
	ClientCert, ClientKey     string
	ca                        *x509.Certificate
	caKey                     *ecdsa.PrivateKey
	Client                    tls.Certificate // the client certificate, "pacs-1"
	Pool                      *x509.CertPool  // holds the CA
}

// NewPKI creates the CA and certificates in dir.
func NewPKI(tb testing.TB, dir string) *PKI {
	tb.Helper()
	p := &PKI{Dir: dir}
	p.ca, p.caKey = selfSigned(tb, "Custos test CA")
	p.CA = p.write(tb, "ca.crt", pemCert(p.ca.Raw))
	p.Pool = x509.NewCertPool()
	p.Pool.AddCert(p.ca)
	p.ServerCert, p.ServerKey = p.issue(tb, "server", "127.0.0.1", x509.ExtKeyUsageServerAuth)
	p.ClientCert, p.ClientKey = p.issue(tb, "client", "pacs-1", x509.ExtKeyUsageClientAuth)
	var err error
	if p.Client, err = tls.LoadX509KeyPair(p.ClientCert, p.ClientKey); err != nil {
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
func (p *PKI) issue(tb testing.TB, name, cn string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
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

func (p *PKI) write(tb testing.TB, name string, b []byte) string {
	tb.Helper()
	f := filepath.Join(p.Dir, name)
	if err := os.WriteFile(f, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return f
}

// ClientTLS is a client configuration that trusts the CA, presenting cert
// (none when nil).
func (p *PKI) ClientTLS(cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{RootCAs: p.Pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// Frame wraps an audit message in an RFC 5424 message and an RFC 5425
// frame, as an ATNA sender writes it.
func Frame(msg []byte) []byte {
	body := fmt.Sprintf("<85>1 2026-11-26T10:00:00.000Z pacs-1 dicom-audit 42 IHE+RFC-3881 - %s", msg)
	return []byte(fmt.Sprintf("%d %s", len(body), body))
}
