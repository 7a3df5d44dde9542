package custos_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/google/go-cmp/cmp"
)

func fieldsOf(err error) []string {
	e, ok := err.(*custos.Error)
	if !ok {
		return nil
	}
	var out []string
	for _, f := range e.Fields {
		out = append(out, f.Field)
	}
	return out
}

func TestSecurityEventNormalize(t *testing.T) {
	good := custos.SecurityEvent{EventType: custos.AuthFailure, Severity: custos.SeverityLow,
		Description: "failed login", User: "dr.grey", IPAddress: "::ffff:203.0.113.7",
		AdditionalData: []byte(`{ "a" : 1 }`)}
	if err := good.Normalize(custos.DefaultLimits); err != nil {
		t.Fatal(err)
	}
	if good.Status != custos.StatusOpen || good.IPAddress != "203.0.113.7" || string(good.AdditionalData) != `{"a":1}` {
		t.Errorf("normalized to %+v", good)
	}
	tests := []struct {
		name string
		se   custos.SecurityEvent
		want []string
	}{
		{"unknown type", custos.SecurityEvent{EventType: "PORT_SCAN", Severity: custos.SeverityLow, Description: "x"}, []string{"event_type"}},
		{"unknown severity", custos.SecurityEvent{EventType: custos.BruteForce, Severity: "URGENT", Description: "x"}, []string{"severity"}},
		{"lower-case severity", custos.SecurityEvent{EventType: custos.BruteForce, Severity: "high", Description: "x"}, []string{"severity"}},
		{"bad status", custos.SecurityEvent{EventType: custos.BruteForce, Severity: custos.SeverityHigh, Description: "x", Status: "closed"}, []string{"status"}},
		{"no description, bad address", custos.SecurityEvent{EventType: custos.BruteForce, Severity: custos.SeverityHigh, IPAddress: "10.0.0.300"}, []string{"description", "ip_address"}},
		{"bad json", custos.SecurityEvent{EventType: custos.BruteForce, Severity: custos.SeverityHigh, Description: "x", AdditionalData: []byte("{")}, []string{"additional_data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.se.Normalize(custos.DefaultLimits)
			if custos.KindOf(err) != custos.Invalid {
				t.Fatalf("err = %v, want Invalid", err)
			}
			if d := cmp.Diff(tt.want, fieldsOf(err)); d != "" {
				t.Errorf("fields (-want +got):\n%s", d)
			}
		})
	}
}

func TestSeverityRank(t *testing.T) {
	for i, s := range custos.Severities {
		if s.Rank() != i+1 || !s.Valid() {
			t.Errorf("%s: rank %d", s, s.Rank())
		}
	}
	if custos.Severity("low").Valid() {
		t.Error("severities are upper case")
	}
}

func TestBlockValidate(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	mk := func(target string, d time.Duration) custos.Block {
		p, _ := custos.ParseBlockTarget(target)
		return custos.Block{CIDR: p, Reason: "test", CreatedBy: "apikey:k1", CreatedAt: at, BlockedUntil: at.Add(d)}
	}
	tests := []struct {
		name string
		b    custos.Block
		want []string
	}{
		{"an address", mk("203.0.113.7", time.Hour), nil},
		{"a mapped address", mk("::ffff:203.0.113.7", time.Hour), nil},
		{"a /16", mk("10.1.0.0/16", time.Hour), nil},
		{"an IPv6 /64", mk("2001:db8:1:2::/64", time.Hour), nil},
		{"a /8 is too wide", mk("10.0.0.0/8", time.Hour), []string{"cidr"}},
		{"everything v4", mk("0.0.0.0/0", time.Hour), []string{"cidr"}},
		{"::/0 by mistake", mk("::/0", time.Hour), []string{"cidr"}},
		{"invalid cidr", mk("10.0.0.0/33", time.Hour), []string{"cidr"}},
		{"zero duration", mk("203.0.113.7", 0), []string{"blocked_until"}},
		{"negative duration", mk("203.0.113.7", -time.Hour), []string{"blocked_until"}},
		{"unmasked", custos.Block{CIDR: netip.MustParsePrefix("10.1.2.3/16"), Reason: "r", CreatedBy: "x", BlockedUntil: at}, []string{"cidr"}},
		{"no reason", custos.Block{CIDR: netip.MustParsePrefix("10.1.2.3/32"), CreatedBy: "x", BlockedUntil: at}, []string{"reason"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.b.Validate(custos.DefaultBlockLimits)
			if d := cmp.Diff(tt.want, fieldsOf(err)); d != "" {
				t.Errorf("fields (-want +got):\n%s (err %v)", d, err)
			}
		})
	}
}

func TestParseBlockTarget(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":         "203.0.113.7/32",
		"::ffff:203.0.113.7":  "203.0.113.7/32",
		"2001:db8::1":         "2001:db8::1/128",
		"2001:db8:1:2:3::/64": "2001:db8:1:2::/64",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
		"203.0.113.7/24":      "203.0.113.0/24",
	} {
		p, err := custos.ParseBlockTarget(in)
		if err != nil || p.String() != want {
			t.Errorf("ParseBlockTarget(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "nope", "10.0.0.1/40", "fe80::1%eth0"} {
		if _, err := custos.ParseBlockTarget(bad); err == nil {
			t.Errorf("ParseBlockTarget(%q) accepted", bad)
		}
	}
}

func TestBlockContains(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := custos.Block{CIDR: netip.MustParsePrefix("2001:db8:1:2::/64"), BlockedUntil: at}
	if !b.Contains(netip.MustParseAddr("2001:db8:1:2:dead:beef::1"), at.Add(-time.Second)) {
		t.Error("an address in the /64 is not blocked")
	}
	if b.Contains(netip.MustParseAddr("2001:db8:1:3::1"), at.Add(-time.Second)) {
		t.Error("the next /64 is blocked")
	}
	if b.Contains(netip.MustParseAddr("2001:db8:1:2::1"), at) {
		t.Error("a block outlives blocked_until")
	}
}
