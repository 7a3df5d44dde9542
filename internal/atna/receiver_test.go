package atna_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/atna"
	"github.com/custos-audit/custos/internal/atna/atnatest"
	"github.com/custos-audit/custos/internal/store"
)

// TestCorpusOverTLS sends the 21 DICOM messages over one mutually
// authenticated TLS connection and finds each through a search of the
// store, with its patient, user, action, outcome and the XML as sent.
func TestCorpusOverTLS(t *testing.T) {
	r := newRig(t, atna.Config{})
	msgs := readCorpus(t)
	c := r.dial(t)
	var buf bytes.Buffer
	for _, xml := range msgs {
		buf.Write(syslogFrame(xml))
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	r.waitSize(t, 21)
	for name, xml := range msgs {
		t.Run(name, func(t *testing.T) {
			w := corpus[name]
			q := store.Query{User: w.user}
			if w.patient != "" {
				q = store.Query{PatientID: w.patient} // searched by patient, as an auditor asks
			}
			// A syslog message's one trailing line feed is the sender's
			// terminator, not part of the message.
			sent := bytes.TrimSuffix(xml, []byte("\n"))
			e, ok := r.findEventually(t, q, func(e custos.Event) bool { return bytes.Equal(e.Original.Data, sent) })
			if !ok {
				t.Fatalf("not found by %+v", q)
			}
			w.check(t, e)
			if e.SubmittedBy != "atna:pacs-1" || e.Original.Format != atna.Format {
				t.Errorf("submitted_by, format = %q, %q", e.SubmittedBy, e.Original.Format)
			}
		})
	}
	if got := r.counter(t, "custos_atna_messages_total", "transport=tls"); got != 21 {
		t.Errorf("custos_atna_messages_total = %v, want 21", got)
	}
}

// findEventually searches until an event matching ok is found: the search
// indexes follow the ledger asynchronously.
func (r *rig) findEventually(t *testing.T, q store.Query, ok func(custos.Event) bool) (custos.Event, bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, e := range r.find(t, q) {
			if e.Original != nil && ok(e) {
				return e, true
			}
		}
		if time.Now().After(deadline) {
			return custos.Event{}, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const patientSecret = "PHI-patient-4711"

// good is a valid message whose patient is patientSecret.
func good() []byte {
	return bytes.Replace(message("110110", "ITI-8", "C", "0"), []byte("p-123^^^&amp;1.2.3&amp;ISO"), []byte(patientSecret), 1)
}

// TestRefusedMessages: each bad message is refused, logged and counted,
// nothing is stored, the log never shows the message, and the connection
// stays open when the frame boundary is known (a good message after it is
// stored) and is closed when it is lost.
func TestRefusedMessages(t *testing.T) {
	deep := "<AuditMessage>" + strings.Repeat("<a>", 20) + strings.Repeat("</a>", 20) + "</AuditMessage>"
	huge := bytes.Replace(good(), []byte("</AuditMessage>"), []byte("<!--"+strings.Repeat("x", 50<<10)+"--></AuditMessage>"), 1)
	frame := func(b []byte) []byte { return syslogFrame(b) }
	// recount gives a frame a wrong octet count, off by delta.
	recount := func(b []byte, delta int) []byte {
		f := frame(b)
		sp := bytes.IndexByte(f, ' ')
		return append([]byte(strconv.Itoa(len(f)-sp-1+delta)), f[sp:]...)
	}
	bare := []byte("<85>1 2026-11-26T10:00:00.000Z pacs-1 dicom-audit 42 ID47 -")
	cases := []struct {
		name   string
		data   []byte
		reason atna.Reason
		closed bool
	}{
		{"malformed XML", frame([]byte("<AuditMessage><EventIdentification></AuditMessage>")), atna.ReasonXML, false},
		{"not XML", frame([]byte(patientSecret)), atna.ReasonXML, false},
		{"DOCTYPE with an external entity", frame([]byte(`<?xml version="1.0"?><!DOCTYPE AuditMessage [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><AuditMessage>&xxe;</AuditMessage>`)), atna.ReasonDoctype, false},
		{"undeclared entity", frame(bytes.Replace(good(), []byte(patientSecret), []byte("&xxe;"), 1)), atna.ReasonXML, false},
		{"another encoding", frame(bytes.Replace(good(), []byte(`encoding="UTF-8"`), []byte(`encoding="ISO-8859-1"`), 1)), atna.ReasonXML, false},
		{"too deep", frame([]byte(deep)), atna.ReasonTooDeep, false},
		{"over the size limit", frame(huge), atna.ReasonTooLarge, false},
		{"another root", frame([]byte("<Bundle/>")), atna.ReasonInvalid, false},
		{"bad outcome", frame(message("110110", "ITI-8", "C", "3")), atna.ReasonInvalid, false},
		{"no syslog body", append([]byte(strconv.Itoa(len(bare))+" "), bare...), atna.ReasonInvalid, false},
		{"not syslog", []byte("11 hello world"), atna.ReasonSyslog, true},
		{"octet count too large", append(recount(good(), 40), frame(good())...), atna.ReasonXML, true},
		{"octet count too small", append(recount(good(), -40), frame(good())...), atna.ReasonXML, true},
		{"octet count not a number", append([]byte("x"), frame(good())...), atna.ReasonFrame, true},
		{"frame over the limit", []byte("70000 <85>1 - - - - - -"), atna.ReasonFrameTooLarge, true},
	}
	r := newRig(t, atna.Config{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := r.size(t)
			n := r.counter(t, "custos_atna_rejected_total", "transport=tls", "reason="+string(c.reason))
			conn := r.dial(t)
			if _, err := conn.Write(c.data); err != nil {
				t.Fatal(err)
			}
			r.waitCounter(t, n+1, "custos_atna_rejected_total", "transport=tls", "reason="+string(c.reason))
			if c.closed {
				expectClosed(t, conn)
			} else {
				// The frame boundary is known: the connection goes on.
				if _, err := conn.Write(syslogFrame(good())); err != nil {
					t.Fatal(err)
				}
				r.waitSize(t, before+1)
				before++
			}
			if got := r.size(t); got != before {
				t.Errorf("the ledger grew by %d records", got-before)
			}
			if !strings.Contains(r.logs.String(), "reason="+string(c.reason)) {
				t.Errorf("the refusal is not logged")
			}
		})
	}
	if strings.Contains(r.logs.String(), patientSecret) || strings.Contains(r.logs.String(), "passwd") {
		t.Errorf("the log shows message content:\n%s", r.logs)
	}
}

// expectClosed waits for the server to close conn.
func expectClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := conn.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("the connection is still open (read: %v)", err)
	}
}

// TestRefusedConnections: a client without a certificate, one with a
// certificate of another CA, and plain TCP on the TLS port are refused,
// logged and counted, and store nothing.
func TestRefusedConnections(t *testing.T) {
	r := newRig(t, atna.Config{})
	other := atnatest.NewPKI(t, t.TempDir()) // another CA, whose client is "pacs-1" too
	cases := []struct {
		name   string
		dial   func() (net.Conn, error)
		reason atna.Reason
	}{
		{"no client certificate", func() (net.Conn, error) {
			return tls.Dial("tcp", r.addr, r.pki.ClientTLS(nil))
		}, atna.ReasonTLS},
		{"certificate of another CA", func() (net.Conn, error) {
			cfg := r.pki.ClientTLS(&other.Client)
			return tls.Dial("tcp", r.addr, cfg)
		}, atna.ReasonTLS},
		{"certificate of another CA, TLS 1.2", func() (net.Conn, error) {
			cfg := r.pki.ClientTLS(&other.Client)
			cfg.MaxVersion = tls.VersionTLS12
			return tls.Dial("tcp", r.addr, cfg)
		}, atna.ReasonTLS},
		{"TLS 1.1", func() (net.Conn, error) {
			cfg := r.pki.ClientTLS(&r.pki.Client)
			cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
			return tls.Dial("tcp", r.addr, cfg)
		}, atna.ReasonTLS},
		{"plain TCP", func() (net.Conn, error) {
			return net.Dial("tcp", r.addr)
		}, atna.ReasonPlainTCP},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := r.counter(t, "custos_atna_rejected_total", "transport=tls", "reason="+string(c.reason))
			conn, err := c.dial()
			if err == nil {
				// TLS 1.3 (and plain TCP) learn of the refusal on first use.
				defer conn.Close()
				conn.Write(syslogFrame(good()))
				expectClosed(t, conn)
			}
			r.waitCounter(t, n+1, "custos_atna_rejected_total", "transport=tls", "reason="+string(c.reason))
			if got := r.size(t); got != 0 {
				t.Errorf("the ledger holds %d records", got)
			}
		})
	}
	if !strings.Contains(r.logs.String(), "reason=tls_handshake") || !strings.Contains(r.logs.String(), "reason=plain_tcp") {
		t.Errorf("refusals not logged:\n%s", r.logs)
	}
}

// TestBatchesPerConnection: many messages on several connections are all
// stored, with a memory budget of a few messages making readers wait.
func TestBatchesPerConnection(t *testing.T) {
	r := newRig(t, atna.Config{MaxBatch: 16, MaxFrame: 4096, MemoryBudget: 4096})
	const conns, each = 4, 300
	done := make(chan error, conns)
	for i := 0; i < conns; i++ {
		c := r.dial(t)
		go func() {
			var buf bytes.Buffer
			for j := 0; j < each; j++ {
				buf.Write(syslogFrame(good()))
			}
			_, err := c.Write(buf.Bytes())
			done <- err
		}()
	}
	for i := 0; i < conns; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	r.waitSize(t, conns*each)
	if got := len(r.find(t, store.Query{Source: "ehr-1"})); got != store.MaxLimit {
		t.Errorf("a search found %d, want a full page", got)
	}
}

// TestUDP: RFC 5426 datagrams are stored under the sender's address; a bad
// one is refused and counted.
func TestUDP(t *testing.T) {
	r := newRig(t, atna.Config{})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go r.recv.ServeUDP(pc)
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := syslogFrame(good())
	body := frame[bytes.IndexByte(frame, ' ')+1:] // a datagram carries no octet count
	c.Write([]byte("<85>1 - - - - - - <AuditMessage>"))
	c.Write(body)
	r.waitSize(t, 1)
	r.waitCounter(t, 1, "custos_atna_rejected_total", "transport=udp", "reason=xml")
	e, ok := r.findEventually(t, store.Query{PatientID: patientSecret}, func(custos.Event) bool { return true })
	if !ok || e.SubmittedBy != "atna-udp:127.0.0.1" {
		t.Fatalf("found %v, submitted_by %q", ok, e.SubmittedBy)
	}
}

var _ io.Reader = (*tls.Conn)(nil)
