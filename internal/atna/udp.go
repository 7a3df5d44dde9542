package atna

import (
	"errors"
	"net"
	"time"
)

// ServeUDP receives syslog datagrams on pc (RFC 5426: one RFC 5424 message
// per datagram) until Close. UDP authenticates nobody: each message is
// submitted as "atna-udp:<source address>", which a sender can forge, and
// may be lost on the way; it is for senders that offer nothing else, and
// off unless the operator opts in.
func (r *Receiver) ServeUDP(pc net.PacketConn) error {
	if !r.track(nil, pc) {
		return ErrClosed
	}
	defer r.wg.Done()
	com := r.newCommitter(transportUDP)
	defer com.close()
	buf := make([]byte, r.cfg.MaxFrame+1)
	sp := newSyslogParser()
	logged, window := 0, time.Now()
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if r.isClosed() || errors.Is(err, net.ErrClosed) {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		by := "atna-udp:" + udpHost(from)
		err = r.datagram(sp, com, by, buf[:n])
		var rj *Rejection
		if !errors.As(err, &rj) {
			continue
		}
		r.m.rejected.WithLabelValues(transportUDP, string(rj.Reason)).Inc()
		if now := time.Now(); now.Sub(window) > time.Second {
			logged, window = 0, now
		}
		if logged++; logged <= maxLoggedRefusals {
			r.logRefusal(transportUDP, from, by, rj, nil)
		}
	}
}

func (r *Receiver) datagram(sp *syslogParser, com *committer, by string, b []byte) error {
	if len(b) > r.cfg.MaxFrame {
		return reject(ReasonFrameTooLarge, "a datagram over the frame limit")
	}
	body, err := sp.body(b)
	if err != nil {
		return err
	}
	e, err := Decode(body, r.cfg.Limits)
	if err != nil {
		return err
	}
	com.add(decoded{by: by, event: e})
	return nil
}

func udpHost(a net.Addr) string {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort().Addr().Unmap().String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
