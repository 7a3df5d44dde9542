package rules

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
)

// addrKey is an address key in 16 bytes: an IPv4 address in its
// IPv4-mapped form, or an IPv6 address masked to the configured prefix. The
// two never collide: an IPv4-mapped IPv6 address is read as IPv4.
type addrKey [16]byte

// addrKeyOf returns the address key of an address in text.
func (e *Engine) addrKeyOf(s string) (addrKey, bool) {
	if s == "" {
		return addrKey{}, false
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		if p, perr := netip.ParsePrefix(s); perr == nil { // a reported range: its first address
			ip, err = p.Masked().Addr(), nil
		}
	}
	if err != nil {
		return addrKey{}, false
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		ip = netip.PrefixFrom(ip, e.cfg.IPv6Prefix).Masked().Addr()
	}
	return addrKey(ip.As16()), true
}

// prefix is the range an address key stands for.
func (e *Engine) prefix(k addrKey) netip.Prefix {
	ip := netip.AddrFrom16(k)
	if ip.Is4In6() {
		return netip.PrefixFrom(ip.Unmap(), 32)
	}
	return netip.PrefixFrom(ip, e.cfg.IPv6Prefix)
}

// keyText is an address key as shown in security events: the address for
// an IPv4 key, the CIDR range for an IPv6 one.
func (e *Engine) keyText(k addrKey) string {
	p := e.prefix(k)
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

// allowListed reports whether a block of k would touch an allow-listed
// range.
func (e *Engine) allowListed(k addrKey) bool {
	p := e.prefix(k)
	for _, a := range e.cfg.AllowList {
		if a.Overlaps(p) {
			return true
		}
	}
	return false
}

// idVersion prefixes what the ids hash. It must never change: nodes, and a
// node after a restart, recognise an alert already recorded by its id.
const idVersion = "custos.rules.id.v1"

// ID returns the deterministic id of what rule raised for key when the
// event at ledger index cause crossed its threshold: "se-" (a security
// event) or "blk-" (a block), then 32 hex digits of SHA-256 over the
// version, the kind, the rule, the key and the index. Any node that runs
// the same rules over the same ledger derives the same id.
func ID(kind, rule, key string, cause uint64) string {
	h := sha256.New()
	var n [8]byte
	for _, s := range []string{idVersion, kind, rule, key} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	binary.BigEndian.PutUint64(n[:], cause)
	h.Write(n[:])
	return kind + "-" + hex.EncodeToString(h.Sum(nil)[:16])
}
