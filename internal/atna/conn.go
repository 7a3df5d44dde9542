package atna

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"
)

// maxLoggedRefusals bounds the refusals logged per connection (or, for UDP,
// per second); the rest are counted, and summed up in one line.
const maxLoggedRefusals = 10

// serveConn runs one TLS connection: handshake, then frames until the peer
// closes, the framing is lost, or the receiver closes.
func (r *Receiver) serveConn(raw net.Conn) {
	c := tls.Server(raw, r.cfg.TLS)
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.HandshakeTimeout)
	err := c.HandshakeContext(ctx)
	cancel()
	if err != nil {
		if r.isClosed() {
			return
		}
		rj := reject(ReasonTLS, "TLS handshake failed")
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) {
			rj = reject(ReasonPlainTCP, "not TLS: this port takes syslog over TLS only")
		}
		r.refuse(transportTLS, raw.RemoteAddr(), "", rj, err)
		return
	}
	by := Submitter(c.ConnectionState().PeerCertificates[0])
	r.log.Debug("atna: connection", "remote", addrString(raw.RemoteAddr()), "client", by)
	com := r.newCommitter(transportTLS)
	defer com.close()
	refused := 0
	defer func() {
		if refused > maxLoggedRefusals {
			r.log.Warn("atna: refused more messages on this connection than were logged",
				"remote", addrString(raw.RemoteAddr()), "client", by, "refused", refused)
		}
	}()
	fr := NewFrameReader(c, r.cfg.MaxFrame)
	sp := newSyslogParser()
	for {
		c.SetReadDeadline(time.Now().Add(r.cfg.IdleTimeout))
		frame, err := fr.Next()
		if err == nil {
			var body []byte
			if body, err = sp.body(frame); err == nil {
				var e = decoded{by: by}
				if e.event, err = Decode(body, r.cfg.Limits); err == nil {
					com.add(e)
					continue
				}
			}
		}
		var rj *Rejection
		if !errors.As(err, &rj) {
			if !errors.Is(err, io.EOF) && !r.isClosed() && !errors.Is(err, net.ErrClosed) {
				r.log.Info("atna: connection ended", "remote", addrString(raw.RemoteAddr()), "client", by, "err", err.Error())
			}
			return
		}
		refused++
		r.m.rejected.WithLabelValues(transportTLS, string(rj.Reason)).Inc()
		if refused <= maxLoggedRefusals {
			r.logRefusal(transportTLS, raw.RemoteAddr(), by, rj, nil)
		}
		if boundaryLost(rj.Reason) {
			return // the next frame's first byte is unknown: close
		}
	}
}

// boundaryLost reports whether a refusal leaves the stream at an unknown
// offset. A frame that is not syslog is taken as a sign of a wrong count.
func boundaryLost(r Reason) bool {
	return r == ReasonFrame || r == ReasonFrameTooLarge || r == ReasonSyslog
}
