package alert_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/alert"
)

// syslogMessage is an RFC 5424 message as a receiver reads it.
type syslogMessage struct {
	Pri                                   int
	Timestamp                             time.Time
	Hostname, AppName, ProcID, MsgID, Msg string
	SD                                    map[string]map[string]string
}

// parseSyslog reads one RFC 5424 message (RFC 5424 §6): the header, the
// structured data with its escapes, and the message.
func parseSyslog(s string) (syslogMessage, error) {
	var m syslogMessage
	end := strings.Index(s, ">1 ")
	if !strings.HasPrefix(s, "<") || end < 0 {
		return m, fmt.Errorf("no <PRI>1 in %q", s)
	}
	pri, err := strconv.Atoi(s[1:end])
	if err != nil {
		return m, err
	}
	m.Pri = pri
	f := strings.SplitN(s[end+3:], " ", 6)
	if len(f) < 6 {
		return m, fmt.Errorf("short header in %q", s)
	}
	if m.Timestamp, err = time.Parse(time.RFC3339Nano, f[0]); err != nil {
		return m, err
	}
	m.Hostname, m.AppName, m.ProcID, m.MsgID = f[1], f[2], f[3], f[4]
	m.SD, s, err = parseSD(f[5])
	if err != nil {
		return m, err
	}
	m.Msg = strings.TrimPrefix(s, " ")
	return m, nil
}

// parseSD reads the structured data at the start of s and returns the
// rest.
func parseSD(s string) (map[string]map[string]string, string, error) {
	sd := map[string]map[string]string{}
	if strings.HasPrefix(s, "-") {
		return sd, s[1:], nil
	}
	for strings.HasPrefix(s, "[") {
		i := strings.IndexAny(s, " ]")
		if i < 0 {
			return nil, "", fmt.Errorf("unterminated SD-ELEMENT")
		}
		params := map[string]string{}
		sd[s[1:i]] = params
		s = s[i:]
		for strings.HasPrefix(s, " ") {
			eq := strings.Index(s, `="`)
			if eq < 0 {
				return nil, "", fmt.Errorf("no value in %q", s)
			}
			name := s[1:eq]
			var v strings.Builder
			j := eq + 2
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) && strings.ContainsRune(`"\]`, rune(s[j+1])) {
					j++
				}
				v.WriteByte(s[j])
			}
			if j == len(s) {
				return nil, "", fmt.Errorf("unterminated value of %s", name)
			}
			params[name] = v.String()
			s = s[j+1:]
		}
		if !strings.HasPrefix(s, "]") {
			return nil, "", fmt.Errorf("SD-ELEMENT not closed: %q", s)
		}
		s = s[1:]
	}
	return sd, s, nil
}

// syslogAlerts are alerts that exercise the format: data, escapes,
// control characters, IPv6, a status change.
func syslogAlerts() []alert.Alert {
	a1 := newAlert(1)
	a2 := newAlert(2)
	a2.Kind = alert.Updated
	a2.SecurityEvent.EventType, a2.SecurityEvent.Severity = custos.SessionHijack, custos.SeverityCritical
	a2.SecurityEvent.Description = "line one\nline \"two\" ] \\ end — ünïcode"
	a2.SecurityEvent.User, a2.SecurityEvent.IPAddress = `u"]\x`, "2001:db8::/64"
	a3 := newAlert(3)
	a3.Kind = alert.Status
	a3.SecurityEvent.Status, a3.SecurityEvent.Severity = custos.StatusResolved, custos.SeverityLow
	a3.SecurityEvent.Rule, a3.SecurityEvent.AdditionalData = "", nil
	a3.At = a3.At.Add(123456789 * time.Nanosecond)
	return []alert.Alert{a1, a2, a3}
}

// wantSyslog is what a receiver must read for a.
func wantSyslog(a alert.Alert) syslogMessage {
	se := a.SecurityEvent
	sev := map[custos.Severity]int{custos.SeverityCritical: 2, custos.SeverityHigh: 3,
		custos.SeverityMedium: 4, custos.SeverityLow: 5}[se.Severity]
	if a.Kind == alert.Status {
		sev = 6
	}
	oneLine := strings.NewReplacer("\n", " ")
	p := map[string]string{"delivery_id": a.DeliveryID(), "id": a.ID, "index": strconv.FormatUint(a.Index, 10),
		"kind": string(a.Kind), "event_type": string(se.EventType), "severity": string(se.Severity),
		"status": string(se.Status), "rule": se.Rule, "user": se.User, "ip": se.IPAddress,
		"timestamp": se.Timestamp.UTC().Format("2006-01-02T15:04:05.000000Z07:00")}
	if len(se.AdditionalData) > 0 {
		p["data"] = string(se.AdditionalData)
	}
	return syslogMessage{Pri: 10*8 + sev, Timestamp: a.At.Truncate(time.Microsecond), Hostname: "custos-test",
		AppName: "custos", ProcID: "-", MsgID: string(se.EventType), Msg: oneLine.Replace(se.Description),
		SD: map[string]map[string]string{"custos@32473": p}}
}

// checkReceived parses what rsyslogd wrote and compares it with alerts.
func checkReceived(t *testing.T, lines []string, alerts []alert.Alert) {
	t.Helper()
	if len(lines) != len(alerts) {
		t.Fatalf("rsyslogd wrote %d messages, want %d:\n%s", len(lines), len(alerts), strings.Join(lines, "\n"))
	}
	for i, line := range lines {
		got, err := parseSyslog(line)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if diff := cmp.Diff(wantSyslog(alerts[i]), got); diff != "" {
			t.Errorf("message %d (-want +got):\n%s\n%s", i, diff, line)
		}
	}
}

func newSyslog(t *testing.T, addr string, tc *tls.Config) *alert.Syslog {
	t.Helper()
	s, err := alert.NewSyslog(alert.SyslogConfig{Addr: addr, TLS: tc, Hostname: "custos-test",
		DialTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSyslogRsyslog delivers alerts to a real rsyslogd over TCP and over
// mutual TLS, checks every field it parsed, then restarts it: the sink
// notices the closed connection and reconnects, losing nothing.
func TestSyslogRsyslog(t *testing.T) {
	for _, mode := range []string{"tcp", "tls"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			var tf *tlsFiles
			var tc *tls.Config
			if mode == "tls" {
				tf, tc = mutualTLS(t, "custos.test")
			}
			rs := startRsyslog(t, tf)
			sink := newSyslog(t, rs.addr, tc)
			alerts := syslogAlerts()
			if n, err := sink.Deliver(t.Context(), alerts); err != nil || n != len(alerts) {
				t.Fatalf("Deliver = %d, %v", n, err)
			}
			checkReceived(t, rs.lines(len(alerts)), alerts)

			rs.stop()
			rs.start()
			more := []alert.Alert{newAlert(4), newAlert(5)}
			if n, err := sink.Deliver(t.Context(), more); err != nil || n != len(more) {
				t.Fatalf("Deliver after the restart = %d, %v", n, err)
			}
			checkReceived(t, rs.lines(5), append(alerts, more...))
		})
	}
}

// mutualTLS returns rsyslog's TLS files, accepting the client name peer,
// and the sink's TLS configuration with a client certificate for
// custos.test.
func mutualTLS(t *testing.T, peer string) (*tlsFiles, *tls.Config) {
	t.Helper()
	pki := newTestPKI(t)
	// rsyslog's x509/name checks the CN and DNS SANs, never IP SANs.
	cert, key, _ := pki.issue(t, "syslog.test", true)
	_, _, client := pki.issue(t, "custos.test", false)
	tf := &tlsFiles{ca: pki.dir + "/ca.pem", cert: cert, key: key, permittedPeer: peer}
	return tf, &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{client}, MinVersion: tls.VersionTLS12}
}

// TestSyslogRsyslogRefusesClient: rsyslog completes the TLS handshake
// with a client whose certificate name it does not permit, then closes the
// connection; the sink sees it before writing (ErrRefused), so nothing is
// lost: the delivery fails, to be retried.
func TestSyslogRsyslogRefusesClient(t *testing.T) {
	t.Parallel()
	tf, tc := mutualTLS(t, "someone-else.test")
	rs := startRsyslog(t, tf)
	sink := newSyslog(t, rs.addr, tc)
	for range 2 {
		n, err := sink.Deliver(t.Context(), []alert.Alert{newAlert(1)})
		// ErrRefused, or an EOF in the handshake when rsyslog is quicker.
		if n != 0 || err == nil || alert.IsPermanent(err) {
			t.Fatalf("Deliver by a client not permitted = %d, %v; want 0 and a transient error", n, err)
		}
		t.Log(err)
	}
}

// TestSyslogReceiverDown: with no receiver, Deliver fails (transient) and
// delivers nothing; a sink that was never connected connects later.
func TestSyslogReceiverDown(t *testing.T) {
	sink := newSyslog(t, freeAddr(t), nil)
	n, err := sink.Deliver(t.Context(), []alert.Alert{newAlert(1)})
	if err == nil || n != 0 || alert.IsPermanent(err) {
		t.Fatalf("Deliver to no one = %d, %v; want 0 and a transient error", n, err)
	}
}

func TestNewSyslogRefusesBadConfig(t *testing.T) {
	for _, cfg := range []alert.SyslogConfig{{Addr: "no port"}, {Addr: "127.0.0.1:514", Facility: 24}} {
		if _, err := alert.NewSyslog(cfg); err == nil {
			t.Errorf("NewSyslog(%+v) accepted", cfg)
		}
	}
}

// FuzzSyslogMessage: whatever a security event holds, the message parses
// back to the same fields, on one line, within the size limit.
func FuzzSyslogMessage(f *testing.F) {
	f.Add("desc", "user", "rule", "203.0.113.7", `{"k":"v"}`, 300)
	f.Add("a\nb\"]\\", `"]\`, "r]", "::1", `null`, 100)
	f.Add(strings.Repeat("é", 400), "u", "", "", `{"big":"`+strings.Repeat("x", 500)+`"}`, 400)
	f.Fuzz(func(t *testing.T, desc, user, rule, ip, data string, max int) {
		max = 300 + max%2000
		a := newAlert(7)
		se := &a.SecurityEvent
		se.Description, se.User, se.Rule, se.IPAddress = desc, user, rule, ip
		se.AdditionalData = nil
		if json.Valid([]byte(data)) {
			se.AdditionalData = json.RawMessage(data)
		}
		b := alert.FormatSyslog(a, "host", 10, 32473, max)
		if len(b) > max && !strings.HasSuffix(string(b), "]") {
			t.Fatalf("message of %d bytes, limit %d, still has a description", len(b), max)
		}
		if strings.ContainsAny(string(b), "\n\r") {
			t.Fatalf("message on more than one line: %q", b)
		}
		m, err := parseSyslog(string(b))
		if err != nil {
			t.Fatalf("%v: %q", err, b)
		}
		p := m.SD["custos@32473"]
		clean := func(s string) string {
			return strings.Map(func(r rune) rune {
				if r < 32 || r == 127 || (r >= 0x80 && r < 0xa0) {
					return ' '
				}
				return r
			}, strings.ToValidUTF8(s, "\uFFFD"))
		}
		if p["user"] != clean(user) || p["rule"] != clean(rule) || p["ip"] != clean(ip) || p["delivery_id"] != a.DeliveryID() {
			t.Fatalf("fields changed: %q", b)
		}
		if !strings.HasPrefix(clean(desc), m.Msg) {
			t.Fatalf("description %q, sent %q", m.Msg, desc)
		}
	})
}
