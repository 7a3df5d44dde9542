package atna

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// Appender is what the receiver needs of the ledger's sequencer: the same
// Append as HTTP ingest, with its validation and group commit.
type Appender interface {
	Append(ctx context.Context, by string, events []custos.Event, states ...leaf.StateRecord) ([]custos.Receipt, error)
}

// Config tunes the receiver. Zero fields take the defaults.
type Config struct {
	TLS      *tls.Config // the listener's configuration (ServerTLS); required for ServeTLS
	MaxFrame int         // bytes of a syslog frame or datagram (default DefaultMaxFrame)
	Limits   Limits      // of the DICOM XML
	// MaxBatch bounds the messages of one connection in one append
	// (default 256). A connection holds at most 2 × MaxBatch messages that
	// were read and not yet committed: one batch being committed, one
	// gathering.
	MaxBatch int
	MaxConns int // open TLS connections at most (default 256)
	// MemoryBudget bounds the bytes of messages read and not yet committed,
	// all connections together (default 64 MiB, never less than MaxFrame);
	// past it, readers wait, and TCP pushes back on the senders.
	MemoryBudget     int64
	HandshakeTimeout time.Duration // default 10 s
	IdleTimeout      time.Duration // a connection silent this long is closed (default 10 min)
	Logger           *slog.Logger
	Registry         prometheus.Registerer // where metrics register; nil for none
}

func (c Config) withDefaults() Config {
	if c.MaxFrame <= 0 {
		c.MaxFrame = DefaultMaxFrame
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 256
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 256
	}
	if c.MemoryBudget <= 0 {
		c.MemoryBudget = 64 << 20
	}
	c.MemoryBudget = max(c.MemoryBudget, int64(c.MaxFrame))
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Receiver is the ATNA syslog receiver. Syslog has no acknowledgement: a
// message counts as received when it is durably appended, and the sender
// never learns of it. Each connection's messages go to the ledger in group
// commits of up to MaxBatch, the next batch gathering while one commits, so
// a message waits in memory at most about two commits.
type Receiver struct {
	app Appender
	cfg Config
	log *slog.Logger
	m   *metrics

	slots chan struct{}       // one per open TLS connection
	mem   *semaphore.Weighted // bytes of messages read, not yet committed

	mu        sync.Mutex
	closed    bool
	listeners []net.Listener
	packets   []net.PacketConn
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup // connection and datagram loops
	abandon   chan struct{}  // closed when Close gives up on retrying commits
}

// New returns a receiver that appends to app.
func New(app Appender, cfg Config) *Receiver {
	cfg = cfg.withDefaults()
	return &Receiver{app: app, cfg: cfg, log: cfg.Logger, m: newMetrics(cfg.Registry),
		slots: make(chan struct{}, cfg.MaxConns), mem: semaphore.NewWeighted(cfg.MemoryBudget), conns: map[net.Conn]struct{}{}, abandon: make(chan struct{})}
}

// ErrClosed is returned by ServeTLS and ServeUDP after Close.
var ErrClosed = errors.New("atna: receiver closed")

// ServeTLS accepts syslog-over-TLS connections on ln (RFC 5425) until Close.
func (r *Receiver) ServeTLS(ln net.Listener) error {
	if r.cfg.TLS == nil {
		return errors.New("atna: ServeTLS needs Config.TLS")
	}
	if !r.track(ln, nil) {
		return ErrClosed
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if r.isClosed() {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		select {
		case r.slots <- struct{}{}:
		default:
			r.refuse(transportTLS, c.RemoteAddr(), "", reject(ReasonOverload, "too many open connections"), nil)
			c.Close()
			continue
		}
		if !r.addConn(c) {
			<-r.slots
			c.Close()
			return ErrClosed
		}
		go func() {
			defer r.wg.Done()
			defer func() { <-r.slots }()
			defer r.dropConn(c)
			r.serveConn(c)
		}()
	}
}

// track records a listener or packet connection so Close can close it.
func (r *Receiver) track(ln net.Listener, pc net.PacketConn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	if ln != nil {
		r.listeners = append(r.listeners, ln)
	}
	if pc != nil {
		r.packets = append(r.packets, pc)
		r.wg.Add(1)
	}
	return true
}

func (r *Receiver) addConn(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	r.wg.Add(1)
	r.m.conns.Inc()
	return true
}

func (r *Receiver) dropConn(c net.Conn) {
	c.Close()
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	r.m.conns.Dec()
}

func (r *Receiver) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Close stops accepting, closes every connection, and waits until the
// messages already read are committed. If ctx ends first, commits that are
// being retried (the ledger is unavailable) are given up, their messages
// logged as lost, and Close returns ctx's error.
func (r *Receiver) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		for _, ln := range r.listeners {
			ln.Close()
		}
		for _, pc := range r.packets {
			pc.Close()
		}
		for c := range r.conns {
			c.Close()
		}
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		r.giveUp()
		<-done
		return ctx.Err()
	}
}

func (r *Receiver) giveUp() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.abandon:
	default:
		close(r.abandon)
	}
}

// refuse logs and counts a refusal. The log names the reason, the peer and
// the sender's certificate, never the message.
func (r *Receiver) refuse(transport string, remote net.Addr, by string, rj *Rejection, err error) {
	r.m.rejected.WithLabelValues(transport, string(rj.Reason)).Inc()
	r.logRefusal(transport, remote, by, rj, err)
}

func (r *Receiver) logRefusal(transport string, remote net.Addr, by string, rj *Rejection, err error) {
	attrs := []any{"transport", transport, "reason", string(rj.Reason), "detail", rj.Detail, "remote", addrString(remote)}
	if by != "" {
		attrs = append(attrs, "client", by)
	}
	if rj.Line > 0 {
		attrs = append(attrs, "line", rj.Line)
	}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	r.log.Warn("atna: refused", attrs...)
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
