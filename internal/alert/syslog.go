package alert

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// SyslogConfig configures a Syslog sink.
type SyslogConfig struct {
	// Name names the sink (its progress is stored under it); "syslog"
	// when empty.
	Name string
	// Addr is the receiver's host:port.
	Addr string
	// TLS, when set, makes it syslog over TLS (RFC 5425); plain TCP when
	// nil. Give it RootCAs, and Certificates for a receiver that checks
	// its clients.
	TLS *tls.Config
	// Hostname is the HOSTNAME field; os.Hostname() when empty.
	Hostname string
	// Facility is the syslog facility; 10 (authpriv: security messages
	// that may name users) when zero.
	Facility int
	// EnterpriseNumber is the IANA Private Enterprise Number in the
	// SD-ID "custos@<PEN>"; 32473 (reserved for documentation) when zero.
	EnterpriseNumber int
	// DialTimeout bounds a connection, handshake included; WriteTimeout
	// one message. 10 s each when zero.
	DialTimeout, WriteTimeout time.Duration
	// Settle is how long a new connection is watched, before the first
	// write, for the receiver closing it at once, as rsyslog does to a
	// client whose certificate name it does not permit (after a
	// handshake that succeeded, so that writes would succeed and be
	// lost); 250 ms when zero.
	Settle time.Duration
	// MaxMessageSize caps a message (without its frame length); 8192,
	// rsyslog's default, when zero. A longer one loses its data
	// parameter, then the end of its description.
	MaxMessageSize int
}

// Syslog is a Sink that writes each alert as one RFC 5424 message over TCP
// with octet-counting framing (RFC 6587 §3.4.1), or over TLS (RFC 5425,
// which frames the same way). It keeps one connection, checks before each
// batch that the receiver has not closed it, and reconnects after any
// failure. Plain syslog has no acknowledgement: a message is delivered
// once written to the connection, so one written as the receiver dies is
// lost (see the package comment).
type Syslog struct {
	cfg    SyslogConfig
	format formatter

	mu   sync.Mutex
	conn net.Conn
}

var _ Sink = (*Syslog)(nil)

// NewSyslog checks cfg and returns the sink. It connects on the first
// delivery.
func NewSyslog(cfg SyslogConfig) (*Syslog, error) {
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("alert.syslog: address %q: %w", cfg.Addr, err)
	}
	if cfg.Facility < 0 || cfg.Facility > 23 {
		return nil, fmt.Errorf("alert.syslog: facility %d is not in 0..23", cfg.Facility)
	}
	if cfg.Name == "" {
		cfg.Name = "syslog"
	}
	if cfg.Facility == 0 {
		cfg.Facility = 10
	}
	if cfg.EnterpriseNumber <= 0 {
		cfg.EnterpriseNumber = 32473
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 250 * time.Millisecond
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 8192
	}
	host := cfg.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	return &Syslog{cfg: cfg, format: formatter{
		facility: cfg.Facility, sdID: "custos@" + strconv.Itoa(cfg.EnterpriseNumber),
		hostname: header(host, 255), max: cfg.MaxMessageSize,
	}}, nil
}

// Name implements Sink.
func (s *Syslog) Name() string { return s.cfg.Name }

// Deliver implements Sink: one message per alert, in order; an alert is
// delivered when its message is written.
func (s *Syslog) Deliver(ctx context.Context, alerts []Alert) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, a := range alerts {
		if err := ctx.Err(); err != nil {
			return i, err
		}
		if err := s.connect(ctx, i == 0); err != nil {
			return i, err
		}
		if err := s.write(s.format.frame(a)); err != nil {
			s.drop()
			return i, fmt.Errorf("alert.syslog: write %s: %w", a.DeliveryID(), err)
		}
	}
	return len(alerts), nil
}

// Close closes the connection, if any. The sink stays usable: the next
// delivery reconnects.
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// connect dials unless connected; with probe, it first drops a connection
// the receiver has closed.
func (s *Syslog) connect(ctx context.Context, probe bool) error {
	if s.conn != nil && probe && !alive(s.conn, time.Millisecond) {
		s.drop()
	}
	if s.conn != nil {
		return nil
	}
	nd := &net.Dialer{Timeout: s.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	var conn net.Conn
	var err error
	if s.cfg.TLS != nil {
		conn, err = (&tls.Dialer{NetDialer: nd, Config: s.cfg.TLS}).DialContext(ctx, "tcp", s.cfg.Addr)
	} else {
		conn, err = nd.DialContext(ctx, "tcp", s.cfg.Addr)
	}
	if err != nil {
		return fmt.Errorf("alert.syslog: connect to %s: %w", s.cfg.Addr, err)
	}
	if !alive(conn, s.cfg.Settle) {
		conn.Close()
		return fmt.Errorf("alert.syslog: %s closed the connection at once: %w", s.cfg.Addr, ErrRefused)
	}
	s.conn = conn
	return nil
}

func (s *Syslog) write(b []byte) error {
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil {
		return err
	}
	_, err := s.conn.Write(b)
	return err
}

func (s *Syslog) drop() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// ErrRefused: the syslog receiver closed a new connection before any
// message was written, as rsyslog does to a TLS client whose certificate
// name it does not permit. It is transient (the outbox retries, and
// Stats.LastError shows it) since the fix is on the receiver's side.
var ErrRefused = errors.New("alert: the receiver refused the connection (does it permit this client's certificate?)")

// alive reports whether the receiver leaves conn open for d: a syslog
// receiver never writes, so a read that neither times out nor returns
// data means it closed or reset the connection. Before each batch d is a
// millisecond.
func alive(conn net.Conn, d time.Duration) bool {
	if err := conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		return false
	}
	var b [1]byte
	_, err := conn.Read(b[:])
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		return true
	}
	return false
}
