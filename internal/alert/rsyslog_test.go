package alert_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rsyslogd is a private rsyslog instance started by a test: it listens on
// loopback and writes what it receives for the custos app to a file, one
// message a line, in RFC 5424 (its RSYSLOG_SyslogProtocol23Format).
type rsyslogd struct {
	t      *testing.T
	bin    string
	conf   string
	out    string
	addr   string
	cmd    *exec.Cmd
	stderr bytes.Buffer
}

// rsyslogBinary finds rsyslogd, or skips the test; with
// CUSTOS_TEST_RSYSLOG=1 (as CI sets) a missing rsyslogd fails it instead.
func rsyslogBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		bin = "/usr/sbin/rsyslogd"
		_, err = os.Stat(bin)
	}
	if err != nil {
		msg := "rsyslogd is not installed (apt-get install -y rsyslog rsyslog-gnutls); set CUSTOS_TEST_RSYSLOG=1 to make this a failure"
		if os.Getenv("CUSTOS_TEST_RSYSLOG") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// tlsFiles are the PEM files of an rsyslog TLS listener.
type tlsFiles struct{ ca, cert, key, permittedPeer string }

// startRsyslog starts rsyslogd listening on a free loopback port: plain
// TCP, or TLS checking its clients' certificates when tf is not nil.
func startRsyslog(t *testing.T, tf *tlsFiles) *rsyslogd {
	t.Helper()
	r := &rsyslogd{t: t, bin: rsyslogBinary(t)}
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	r.out, r.conf = filepath.Join(dir, "received.log"), filepath.Join(dir, "rsyslog.conf")
	r.addr = freeAddr(t)
	_, port, _ := net.SplitHostPort(r.addr)
	// The first global() sets the message size before any input exists;
	// no imuxsock/imklog/imjournal; internal messages stay in this
	// instance (processInternalMessages) and go to the default ruleset,
	// which writes nothing: the file holds only what the input received.
	conf := `global(maxMessageSize="64k" workDirectory="` + work + `" net.enableDNS="off"
  parser.escapeControlCharactersOnReceive="off" processInternalMessages="on"`
	if tf != nil {
		conf += ` defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile="` + tf.ca + `"
  defaultNetstreamDriverCertFile="` + tf.cert + `" defaultNetstreamDriverKeyFile="` + tf.key + `"`
	}
	conf += ")\n"
	if tf != nil {
		conf += `module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1"
  streamDriver.authMode="x509/name" permittedPeer=["` + tf.permittedPeer + `"])` + "\n"
	} else {
		conf += `module(load="imtcp")` + "\n"
	}
	conf += `input(type="imtcp" address="127.0.0.1" port="` + port + `" ruleset="received")
ruleset(name="received") {
  action(type="omfile" file="` + r.out + `" template="RSYSLOG_SyslogProtocol23Format")
}
`
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(r.bin, "-N1", "-f", r.conf).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1 refused the configuration: %v\n%s\n%s", err, out, conf)
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

// start runs rsyslogd in the foreground and waits until it listens.
func (r *rsyslogd) start() {
	r.t.Helper()
	pid := filepath.Join(filepath.Dir(r.conf), "rsyslogd.pid")
	r.stderr.Reset()
	r.cmd = exec.Command(r.bin, "-n", "-f", r.conf, "-i", pid)
	r.cmd.Stdout, r.cmd.Stderr = &r.stderr, &r.stderr
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start rsyslogd: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", r.addr, time.Second); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslogd does not listen on %s:\n%s", r.addr, r.stderr.String())
		}
	}
}

// stop ends rsyslogd (SIGTERM: it flushes and closes its connections).
func (r *rsyslogd) stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	r.cmd.Wait()
	r.cmd = nil
}

// lines waits until rsyslogd has written at least n messages, and
// returns them.
func (r *rsyslogd) lines(n int) []string {
	r.t.Helper()
	var got []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got = got[:0]
		if f, err := os.Open(r.out); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				got = append(got, sc.Text())
			}
			f.Close()
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslogd wrote %d messages, want %d:\n%s\nits output:\n%s", len(got), n,
				strings.Join(got, "\n"), r.stderr.String())
		}
	}
}

// freeAddr returns a loopback address no one listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// testPKI is a CA, rsyslog's server certificate (its name in the CN and a
// DNS SAN, 127.0.0.1 as an IP SAN) and client certificates, written as
// PEM files for rsyslog and as tls.Configs for the sink.
type testPKI struct {
	dir    string
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	pool   *x509.CertPool
	serial int64
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), pool: x509.NewCertPool()}
	p.caKey = newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Custos test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.caCert, _ = x509.ParseCertificate(der)
	p.pool.AddCert(p.caCert)
	p.serial = 1
	writePEM(t, filepath.Join(p.dir, "ca.pem"), "CERTIFICATE", der)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// issue writes a certificate and key for name, for a server or a client,
// and returns their paths and the tls.Certificate.
func (p *testPKI) issue(t *testing.T, name string, server bool) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	p.serial++
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(p.dir, name+"-"+strconv.FormatInt(p.serial, 10))
	certFile, keyFile = base+".pem", base+"-key.pem"
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", pk)
	return certFile, keyFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
