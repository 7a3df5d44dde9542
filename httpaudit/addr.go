package httpaudit

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the address the request came from: the peer, or, when
// the peer is a trusted proxy, the rightmost address in Forwarded (or,
// without it, X-Forwarded-For) that is not a trusted proxy. Headers from
// any other peer are ignored: a client cannot name its own address. An
// unparsable hop where the walk stops gives the zero Addr (recorded as no
// address, never blocked).
func (a *Auditor) clientAddr(r *http.Request) netip.Addr {
	peer := remoteAddr(r.RemoteAddr)
	if !peer.IsValid() || !a.trusted(peer) {
		return peer
	}
	var hops []string
	if fw := r.Header.Values("Forwarded"); len(fw) > 0 {
		for _, h := range fw {
			hops = append(hops, parseForwarded(h)...)
		}
	} else {
		for _, h := range r.Header.Values("X-Forwarded-For") {
			for _, s := range strings.Split(h, ",") {
				hops = append(hops, strings.TrimSpace(s))
			}
		}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		addr := hopAddr(hops[i])
		if !addr.IsValid() {
			return netip.Addr{}
		}
		client = addr
		if !a.trusted(addr) {
			return addr
		}
	}
	return client // every hop is a trusted proxy: the farthest one
}

func (a *Auditor) trusted(ip netip.Addr) bool {
	for _, p := range a.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func remoteAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("") // a link-local peer's zone is this host's business
	}
	return hopAddr(s)
}

// hopAddr parses one hop: an address, with or without a port, IPv6 in
// brackets when it has one.
func hopAddr(s string) netip.Addr {
	if ip, err := netip.ParseAddr(s); err == nil && ip.Zone() == "" {
		return ip.Unmap()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil && ip.Zone() == "" {
			return ip.Unmap()
		}
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if ip, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && ip.Zone() == "" {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// parseForwarded returns the for= value of each element of one Forwarded
// header (RFC 7239), in order, unquoted. An element without for= gives
// "" (an unknown hop).
func parseForwarded(h string) []string {
	var out []string
	for _, elem := range splitOutsideQuotes(h, ',') {
		val := ""
		for _, pair := range splitOutsideQuotes(elem, ';') {
			k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(k), "for") {
				continue
			}
			v = strings.TrimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = strings.ReplaceAll(v[1:len(v)-1], `\`, "")
			}
			val = v
		}
		out = append(out, val)
	}
	return out
}

// splitOutsideQuotes splits s at sep where sep is not inside a quoted
// string.
func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
