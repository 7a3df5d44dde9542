package custos

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// SecurityEventType names what a security event is about. The set is
// append-only: a type may be added, never renamed or removed, because
// stored records and clients' filters name it.
type SecurityEventType string

// The security event types: the seed's six, then the ones added since.
const (
	AuthFailure         SecurityEventType = "AUTH_FAILURE"
	BruteForce          SecurityEventType = "BRUTE_FORCE"
	UnauthorizedAccess  SecurityEventType = "UNAUTHORIZED_ACCESS"
	SessionHijack       SecurityEventType = "SESSION_HIJACK"
	DataExport          SecurityEventType = "DATA_EXPORT"
	ConfigurationChange SecurityEventType = "CONFIGURATION_CHANGE"
	// UnusualPHIAccess: a user touched far more distinct patients in a day
	// than their own (or their role's) baseline.
	UnusualPHIAccess SecurityEventType = "UNUSUAL_PHI_ACCESS"
)

// SecurityEventTypes lists every valid type in a fixed order.
var SecurityEventTypes = []SecurityEventType{AuthFailure, BruteForce, UnauthorizedAccess,
	SessionHijack, DataExport, ConfigurationChange, UnusualPHIAccess}

// Valid reports whether t is one of SecurityEventTypes.
func (t SecurityEventType) Valid() bool {
	for _, v := range SecurityEventTypes {
		if t == v {
			return true
		}
	}
	return false
}

// Severity ranks a security event. The set is append-only.
type Severity string

// The four severities, from least to most severe.
const (
	SeverityLow      Severity = "LOW"
	SeverityMedium   Severity = "MEDIUM"
	SeverityHigh     Severity = "HIGH"
	SeverityCritical Severity = "CRITICAL"
)

// Severities lists every severity from least to most severe.
var Severities = []Severity{SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}

// Valid reports whether s is one of Severities.
func (s Severity) Valid() bool { return s.Rank() > 0 }

// Rank orders severities: 1 for LOW up to 4 for CRITICAL, 0 for an invalid
// severity.
func (s Severity) Rank() int {
	for i, v := range Severities {
		if s == v {
			return i + 1
		}
	}
	return 0
}

// SecurityEventStatus is where a security event stands in its handling. A
// change of status is a new ledger record, never an update in place.
type SecurityEventStatus string

// The statuses of a security event. A new one is open.
const (
	StatusOpen         SecurityEventStatus = "open"
	StatusAcknowledged SecurityEventStatus = "acknowledged"
	StatusResolved     SecurityEventStatus = "resolved"
)

// Valid reports whether s is open, acknowledged or resolved.
func (s SecurityEventStatus) Valid() bool {
	return s == StatusOpen || s == StatusAcknowledged || s == StatusResolved
}

// SecurityEvent is a security event: one raised by a detection rule, or one
// an application reported. Index and Timestamp are assigned by the ledger
// when the record is sequenced, as for an Event.
type SecurityEvent struct {
	ID             string              `json:"id"`
	Index          uint64              `json:"index"`
	Timestamp      time.Time           `json:"timestamp"`
	EventType      SecurityEventType   `json:"event_type"`
	Severity       Severity            `json:"severity"`
	Description    string              `json:"description"`
	User           string              `json:"user"`       // the user id concerned, if any
	IPAddress      string              `json:"ip_address"` // an address or, for an address key, a CIDR
	AdditionalData json.RawMessage     `json:"additional_data"`
	Rule           string              `json:"rule"` // the rule that raised it; "" when reported
	Status         SecurityEventStatus `json:"status"`
}

// Field limits of a security event, in characters.
const (
	maxDescription = 1000
	maxRuleName    = 64
	maxSecurityID  = 64
)

// Normalize validates se in place and brings it to its stored form: status
// open when absent, the address in canonical text, the additional data
// compacted. It returns an *Error of kind Invalid naming every field at
// fault.
func (se *SecurityEvent) Normalize(lim Limits) error {
	v := validator{}
	if !se.EventType.Valid() {
		v.add("event_type", "must be one of "+joinTypes())
	}
	if !se.Severity.Valid() {
		v.add("severity", "must be one of LOW, MEDIUM, HIGH, CRITICAL")
	}
	if se.Status == "" {
		se.Status = StatusOpen
	}
	if !se.Status.Valid() {
		v.add("status", `must be "open", "acknowledged" or "resolved"`)
	}
	v.text("id", se.ID, maxSecurityID, false)
	v.text("description", se.Description, maxDescription, true)
	v.text("user", se.User, maxUserID, false)
	v.text("rule", se.Rule, maxRuleName, false)
	if se.IPAddress != "" {
		if s, ok := canonicalAddress(se.IPAddress); ok {
			se.IPAddress = s
		} else {
			v.add("ip_address", "must be an IPv4 or IPv6 address or CIDR range")
		}
	}
	se.AdditionalData = v.changes("additional_data", se.AdditionalData, lim.MaxChanges)
	if v.err() != nil {
		return &Error{Op: "security_event.validate", Kind: Invalid, Detail: "the security event is invalid", Fields: v.fields}
	}
	return nil
}

// canonicalAddress returns an address or a CIDR range in canonical text.
func canonicalAddress(s string) (string, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return "", false
		}
		return p.Masked().String(), true
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return "", false
	}
	return ip.Unmap().String(), true
}

func joinTypes() string {
	s := make([]string, len(SecurityEventTypes))
	for i, t := range SecurityEventTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// LogValue keeps PHI and user identities out of operational logs.
func (se SecurityEvent) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", se.ID), slog.String("event_type", string(se.EventType)),
		slog.String("severity", string(se.Severity)), slog.String("rule", se.Rule))
}

// Block is a blocked address range: requests from inside CIDR are refused
// until BlockedUntil. CreatedBy names who blocked it: "rule:<name>" for a
// detection rule, else the credential. A lift is a new record, never a
// change to this one.
type Block struct {
	ID           string       `json:"id"`
	CIDR         netip.Prefix `json:"cidr"`
	Reason       string       `json:"reason"`
	CreatedAt    time.Time    `json:"created_at"`
	BlockedUntil time.Time    `json:"blocked_until"`
	CreatedBy    string       `json:"created_by"`
}

// BlockLimits bound how wide a block may be: the shortest prefix length
// accepted for each family, so that a typo (0.0.0.0/0, ::/0) cannot cut
// everyone off.
type BlockLimits struct {
	MinBitsIPv4 int // default 16: a /8 is refused
	MinBitsIPv6 int // default 32: ::/0 and a /16 are refused
}

// DefaultBlockLimits are the limits a server starts with.
var DefaultBlockLimits = BlockLimits{MinBitsIPv4: 16, MinBitsIPv6: 32}

// Allows reports whether a block of p is narrow enough.
func (l BlockLimits) Allows(p netip.Prefix) bool {
	if p.Addr().Is4() {
		return p.Bits() >= l.MinBitsIPv4
	}
	return p.Bits() >= l.MinBitsIPv6
}

// ParseBlockTarget reads what a block names: an address ("203.0.113.7",
// blocked as a single-address range) or a CIDR range ("2001:db8::/48"),
// returned masked. IPv4-mapped IPv6 addresses are read as IPv4.
func ParseBlockTarget(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR range", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address", s)
	}
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// Validate checks b against lim: a valid, masked range no wider than the
// limits allow, a reason, a creator and an end after its start. It returns
// an *Error of kind Invalid naming every field at fault.
func (b Block) Validate(lim BlockLimits) error {
	v := validator{}
	switch {
	case !b.CIDR.IsValid():
		v.add("cidr", "must be an IP address or CIDR range")
	case b.CIDR != b.CIDR.Masked():
		v.add("cidr", "must have no bits set after the prefix")
	case !lim.Allows(b.CIDR):
		min := lim.MinBitsIPv4
		if !b.CIDR.Addr().Is4() {
			min = lim.MinBitsIPv6
		}
		v.add("cidr", fmt.Sprintf("is wider than the widest block allowed (/%d)", min))
	}
	v.text("id", b.ID, maxSecurityID, false)
	v.text("reason", b.Reason, maxReason, true)
	v.text("created_by", b.CreatedBy, maxUserID, true)
	switch {
	case b.BlockedUntil.IsZero():
		v.add("blocked_until", "is required")
	case !b.CreatedAt.IsZero() && !b.BlockedUntil.After(b.CreatedAt):
		v.add("blocked_until", "must be after created_at: the duration must be positive")
	}
	if v.err() != nil {
		return &Error{Op: "block.validate", Kind: Invalid, Detail: "the block is invalid", Fields: v.fields}
	}
	return nil
}

// Contains reports whether the block covers ip at time t.
func (b Block) Contains(ip netip.Addr, t time.Time) bool {
	return t.Before(b.BlockedUntil) && b.CIDR.Contains(ip.Unmap())
}
