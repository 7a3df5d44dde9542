package atna_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/atna"
	"github.com/custos-audit/custos/internal/atna/atnatest"
	"github.com/custos-audit/custos/internal/store"
)

// rsyslogd finds Debian's rsyslogd, or skips the test; with
// CUSTOS_TEST_RSYSLOG set (CI installs rsyslog and rsyslog-gnutls) a
// missing rsyslogd fails it.
func rsyslogd(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"rsyslogd", "/usr/sbin/rsyslogd"} {
		if path, err := exec.LookPath(p); err == nil && gtlsPresent() {
			return path
		}
	}
	if os.Getenv("CUSTOS_TEST_RSYSLOG") != "" {
		t.Fatal("CUSTOS_TEST_RSYSLOG is set but rsyslogd with the gtls driver is not installed (apt-get install rsyslog rsyslog-gnutls)")
	}
	t.Skip("rsyslogd with the gtls driver is not installed (apt-get install rsyslog rsyslog-gnutls); set CUSTOS_TEST_RSYSLOG to require it")
	return ""
}

// gtlsPresent looks for rsyslog's GnuTLS stream driver wherever the
// architecture put it.
func gtlsPresent() bool {
	m, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so")
	n, _ := filepath.Glob("/usr/lib/rsyslog/lmnsd_gtls.so")
	return len(m)+len(n) > 0
}

// rsyslogConf is a private rsyslog instance: a plain TCP input on portIn
// (octet-counted frames) forwarding to Custos over mutual TLS with
// octet-counted framing, as ../shared/notes/peers.md found to work.
const rsyslogConf = `global(maxMessageSize="64k" workDirectory="%[1]s" net.enableDNS="off"
  parser.escapeControlCharactersOnReceive="off" processInternalMessages="on")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="%[2]d" ruleset="fwd")
ruleset(name="fwd") {
 action(type="omfwd" target="127.0.0.1" port="%[3]s" protocol="tcp"
  template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted"
  StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
  StreamDriverPermittedPeers="127.0.0.1"
  StreamDriver.CAFile="%[4]s" StreamDriver.CertFile="%[5]s" StreamDriver.KeyFile="%[6]s"
  queue.type="LinkedList" action.resumeRetryCount="-1" action.resumeInterval="1")
}
`

// startRsyslog runs rsyslogd with its own configuration, forwarding to
// addr with the client certificate certFile/keyFile, and returns the
// address of its TCP input.
func startRsyslog(t *testing.T, bin, addr, caFile, certFile, keyFile string) string {
	t.Helper()
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	portIn := freePort(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, rsyslogConf, work, portIn, port, caFile, certFile, keyFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-N1", "-f", conf).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1: %v\n%s", err, out)
	}
	var out syncBuffer
	cmd := exec.Command(bin, "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("rsyslogd output:\n%s", out.String())
		}
	})
	in := fmt.Sprintf("127.0.0.1:%d", portIn)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", in)
		if err == nil {
			c.Close()
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd does not listen on %s: %v\n%s", in, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// sendPlain writes frames to rsyslog's plain TCP input.
func sendPlain(t *testing.T, addr string, frames []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(frames); err != nil {
		t.Fatal(err)
	}
}

// TestRsyslogPeer: Debian's rsyslog forwards the 21 DICOM messages over
// mutual TLS with octet-counted framing (gtls); each is stored whole, under
// rsyslog's certificate, and found by a search with its patient, user,
// action and outcome.
func TestRsyslogPeer(t *testing.T) {
	bin := rsyslogd(t)
	r := newRig(t, atna.Config{})
	in := startRsyslog(t, bin, r.addr, r.pki.CA, r.pki.ClientCert, r.pki.ClientKey)
	msgs := readCorpus(t)
	var frames bytes.Buffer
	for _, xml := range msgs {
		frames.Write(syslogFrame(xml))
	}
	sendPlain(t, in, frames.Bytes())
	r.waitSize(t, 21)
	for name, xml := range msgs {
		w := corpus[name]
		q := store.Query{User: w.user, Source: w.source}
		sent := bytes.TrimSuffix(xml, []byte("\n"))
		e, ok := r.findEventually(t, q, func(e custos.Event) bool { return bytes.Equal(e.Original.Data, sent) })
		if !ok {
			t.Errorf("%s: not stored as sent", name)
			continue
		}
		t.Run(name, func(t *testing.T) { w.check(t, e) })
		if e.SubmittedBy != "atna:pacs-1" {
			t.Errorf("%s: submitted_by %q", name, e.SubmittedBy)
		}
	}
}

// TestRsyslogRefusedCertificate: rsyslog with a certificate from another CA
// is refused at the handshake, counted, and nothing is stored.
func TestRsyslogRefusedCertificate(t *testing.T) {
	bin := rsyslogd(t)
	r := newRig(t, atna.Config{})
	other := atnatest.NewPKI(t, t.TempDir())
	in := startRsyslog(t, bin, r.addr, r.pki.CA, other.ClientCert, other.ClientKey)
	sendPlain(t, in, syslogFrame(good()))
	r.waitCounter(t, 1, "custos_atna_rejected_total", "transport=tls", "reason=tls_handshake")
	if got := r.size(t); got != 0 {
		t.Errorf("the ledger holds %d records", got)
	}
}
