package atna

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ServerTLS returns the TLS configuration of the ATNA listener: the
// server's certificate and key, TLS 1.2 or later, and a client certificate
// required and verified against the CA certificates in clientCAFile (ATNA
// node authentication).
func ServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" || clientCAFile == "" {
		return nil, errors.New("atna: TLS needs a certificate, its key and the CA of client certificates")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("atna: load certificate: %w", err)
	}
	pem, err := os.ReadFile(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("atna: read client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("atna: %s holds no PEM certificate", clientCAFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// Submitter names the node that sent over a verified connection, for the
// ledger's submitted_by: "atna:" and the client certificate's subject
// common name, else its first DNS name, else its SHA-256 fingerprint.
func Submitter(cert *x509.Certificate) string {
	name := text(cert.Subject.CommonName, 200)
	if name == "" && len(cert.DNSNames) > 0 {
		name = text(cert.DNSNames[0], 200)
	}
	if name == "" {
		sum := sha256.Sum256(cert.Raw)
		name = "sha256:" + hex.EncodeToString(sum[:16])
	}
	return "atna:" + strings.TrimSpace(name)
}
