package rules_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/rules"
	"github.com/google/go-cmp/cmp"
)

var cmpConfig = cmp.Comparer(func(a, b *time.Location) bool { return a.String() == b.String() })

func TestDefaultYAMLIsDefaultConfig(t *testing.T) {
	got, err := rules.ParseConfig(rules.DefaultYAML)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(rules.DefaultConfig(), got, cmpConfig, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("default.yaml and DefaultConfig differ (-go +yaml):\n%s", d)
	}
}

func TestParseConfigOverlay(t *testing.T) {
	got, err := rules.ParseConfig([]byte(`
rules:
  brute_force:
    threshold: 3
    block: 1h
allow_list: [192.0.2.0/24, "2001:db8::1"]
timezone: Europe/Paris
`))
	if err != nil {
		t.Fatal(err)
	}
	want := rules.DefaultConfig()
	want.BruteForce.Threshold, want.BruteForce.Block = 3, time.Hour
	want.AllowList = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::1/128")}
	want.Location, _ = time.LoadLocation("Europe/Paris")
	if d := cmp.Diff(want, got, cmpConfig, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if empty, err := rules.ParseConfig(nil); err != nil || empty.BruteForce != want.BruteForce && empty.BruteForce.Threshold != 5 {
		t.Errorf("an empty file: %v, %+v", err, empty.BruteForce)
	}
}

func TestParseConfigRefuses(t *testing.T) {
	tests := []struct {
		name, yaml string
		line       int
		field, why string
	}{
		{"unknown rule", "rules:\n  brute_force:\n    threshold: 5\n  port_scan:\n    threshold: 2\n", 4, "rules.port_scan", "unknown rule"},
		{"unknown field", "rules:\n  brute_force:\n    treshold: 5\n", 3, "rules.brute_force.treshold", "unknown field"},
		{"unknown top-level field", "verison: 1\n", 1, "verison", "unknown field"},
		{"negative window", "rules:\n  brute_force:\n    window: -5m\n", 3, "rules.brute_force.window", "negative"},
		{"zero window", "rules:\n  slow_brute_force:\n    window: 0s\n", 3, "rules.slow_brute_force.window", "positive"},
		{"zero threshold", "rules:\n  password_spraying:\n    threshold: 0\n", 3, "rules.password_spraying.threshold", "at least 1"},
		{"duplicate rule", "rules:\n  brute_force:\n    threshold: 5\n  brute_force:\n    threshold: 6\n", 4, "rules.brute_force", "duplicate name (first set at line 2)"},
		{"duplicate field", "rules:\n  brute_force:\n    threshold: 5\n    threshold: 6\n", 4, "rules.brute_force.threshold", "duplicate name"},
		{"bad cidr", "allow_list:\n  - 10.0.0.0/8\n  - 10.0.0.0/33\n", 3, "allow_list[1]", "not an IP address or CIDR"},
		{"duplicate range", "allow_list: [10.0.0.0/8, 10.0.0.0/8]\n", 1, "allow_list[1]", "duplicate range"},
		{"allow everything", "allow_list: [0.0.0.0/0]\n", 1, "allow_list", "allows every address"},
		{"bad severity", "rules:\n  session_hijack:\n    severity: SEVERE\n", 3, "rules.session_hijack.severity", "not a severity"},
		{"lower-case severity", "rules:\n  auth_failure:\n    severity: low\n", 3, "rules.auth_failure.severity", "not a severity"},
		{"block on a rule that never blocks", "rules:\n  account_guessing:\n    block: 1h\n", 3, "rules.account_guessing.block", "unknown field"},
		{"levels that fall", "rules:\n  unauthorized_access:\n    levels:\n      - {threshold: 50, severity: HIGH}\n      - {threshold: 10, severity: MEDIUM}\n", 5, "rules.unauthorized_access.levels[1]", "must rise"},
		{"no levels", "rules:\n  unauthorized_access:\n    levels: []\n", 3, "rules.unauthorized_access.levels", "at least one level"},
		{"key wider than blocks allow", "ipv6_prefix: 16\n", 1, "ipv6_prefix", "wider than the widest block"},
		{"bad duration", "late_allowance: soon\n", 1, "late_allowance", "not a duration"},
		{"bad day", "rules:\n  data_export:\n    working_hours:\n      days: [Mon, Funday]\n", 4, "rules.data_export.working_hours.days[1]", "not a day"},
		{"hours backwards", "rules:\n  data_export:\n    working_hours:\n      start: \"19:00\"\n      end: \"07:00\"\n", 5, "rules.data_export.working_hours.end", "after start"},
		{"bad time zone", "timezone: Mars/Olympus\n", 1, "timezone", "time zone"},
		{"alias", "rules:\n  brute_force: &b\n    threshold: 5\n  slow_brute_force: *b\n", 2, "rules.brute_force", "anchors and aliases"},
		{"not a mapping", "rules: [brute_force]\n", 1, "rules", "must be a mapping"},
		{"syntax", "rules:\n  brute_force:\n threshold: 5\n  x: [\n", 2, "", "not valid YAML"},
		{"wrong version", "version: 2\n", 1, "version", "must be 1"},
		{"history shorter than its minimum", "rules:\n  unusual_phi_access:\n    history_days: 5\n", 0, "rules.unusual_phi_access.min_history_days", "history_days"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rules.ParseConfig([]byte(tt.yaml))
			var ce *rules.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ConfigError", err)
			}
			if ce.Line != tt.line || ce.Field != tt.field || !strings.Contains(ce.Reason, tt.why) {
				t.Errorf("got line %d, field %q, reason %q; want line %d, field %q, reason containing %q",
					ce.Line, ce.Field, ce.Reason, tt.line, tt.field, tt.why)
			}
			if tt.line > 0 && !strings.Contains(err.Error(), "line ") {
				t.Errorf("the message %q names no line", err)
			}
		})
	}
}

func TestWorkingHours(t *testing.T) {
	wh := rules.DefaultConfig().DataExport.WorkingHours
	for ts, want := range map[string]bool{
		"2026-03-02T07:00:00Z": true,  // Monday, opening
		"2026-03-02T06:59:59Z": false, // Monday, before
		"2026-03-06T18:59:59Z": true,  // Friday, before closing
		"2026-03-06T19:00:00Z": false, // Friday, closing
		"2026-03-07T12:00:00Z": false, // Saturday
	} {
		at, _ := time.Parse(time.RFC3339, ts)
		if got := wh.Contains(at, time.UTC); got != want {
			t.Errorf("%s: %v, want %v", ts, got, want)
		}
	}
	_ = custos.SeverityLow
}
