package rules_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/rules"
)

func denied(user string) custos.Event {
	return custos.Event{Kind: custos.KindClient, User: custos.User{ID: user}, Action: custos.ActionRead, ResourceType: "Patient",
		PatientID: "p-1", IPAddress: "192.0.2.44", Outcome: custos.OutcomeFailure, StatusCode: 403}
}

func authzDenied(user string) custos.Event {
	return custos.Event{Kind: custos.KindServer, User: custos.User{ID: user}, Action: custos.ActionRead, ResourceType: "Authorization",
		ResourceID: "patient:read", Outcome: custos.OutcomeFailure, StatusCode: 403, Source: "custos"}
}

func TestUnauthorizedAccess(t *testing.T) {
	for _, n := range []int{9, 10, 49, 50} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := newFeed(t, rules.DefaultConfig())
			for i := range n { // within 10 minutes, half of them Custos's own denied authorizations
				ev := denied("eve")
				if i%2 == 1 {
					ev = authzDenied("eve")
				}
				f.at(time.Duration(i)*10*time.Second, ev)
			}
			raised := of(f.outs, rules.Raise, rules.RuleUnauthorizedAccess)
			if want := min(n/10, 1); len(raised) != want {
				t.Fatalf("want %d alerts:\n%s", want, summary(f.outs))
			}
			if n < 10 {
				return
			}
			if raised[0].SecurityEvent.Severity != custos.SeverityMedium || raised[0].SecurityEvent.EventType != custos.UnauthorizedAccess {
				t.Errorf("raised %+v", raised[0].SecurityEvent)
			}
			updates := append(raised, of(f.outs, rules.Update, rules.RuleUnauthorizedAccess)...)
			want := custos.SeverityMedium
			if n >= 50 {
				want = custos.SeverityHigh
			}
			if last := updates[len(updates)-1]; last.SecurityEvent.Severity != want || last.Count != n {
				t.Errorf("last update: %s, count %d; want %s, %d", last.SecurityEvent.Severity, last.Count, want, n)
			}
		})
	}
	t.Run("over more than the window", func(t *testing.T) {
		f := newFeed(t, rules.DefaultConfig())
		for i := range 30 { // one a minute and a bit: never 10 in 10 minutes
			f.at(time.Duration(i)*67*time.Second, denied("eve"))
		}
		if n := len(of(f.outs, rules.Raise, rules.RuleUnauthorizedAccess)); n != 0 {
			t.Errorf("%d raised", n)
		}
	})
}

func TestSessionHijack(t *testing.T) {
	use := func(ip, ua string) custos.Event {
		ev := read("frank", "physician", "p-9")
		ev.SessionID, ev.IPAddress, ev.UserAgent = "s-123", ip, ua
		return ev
	}
	tests := []struct {
		name   string
		second custos.Event
		after  time.Duration
		fires  bool
	}{
		{"another network", use("198.51.100.7", "Firefox"), time.Minute, true},
		{"another user agent", use("203.0.113.5", "curl/8"), time.Minute, true},
		{"same everything", use("203.0.113.5", "Firefox"), time.Minute, false},
		{"same IPv6 /64", use("2001:db8:1:2::99", "Firefox"), time.Minute, false},
		{"after the lifetime", use("198.51.100.7", "Firefox"), 12 * time.Hour, false},
		{"no user agent", use("203.0.113.5", ""), time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFeed(t, rules.DefaultConfig())
			first := use("203.0.113.5", "Firefox")
			if tt.name == "same IPv6 /64" {
				first.IPAddress = "2001:db8:1:2::1"
			}
			f.at(0, first)
			f.at(tt.after, tt.second)
			f.at(tt.after+time.Second, tt.second) // once more: an update, never a second alert
			raised := of(f.outs, rules.Raise, rules.RuleSessionHijack)
			if got := len(raised) == 1; got != tt.fires || len(raised) > 1 {
				t.Fatalf("fired %d, want %v:\n%s", len(raised), tt.fires, summary(f.outs))
			}
			if tt.fires && (raised[0].SecurityEvent.Severity != custos.SeverityCritical || len(of(f.outs, rules.Update, rules.RuleSessionHijack)) != 1) {
				t.Errorf("raised %+v; updates %d", raised[0].SecurityEvent, len(of(f.outs, rules.Update, rules.RuleSessionHijack)))
			}
		})
	}
}

func exportOf(user string, records int) custos.Event {
	ev := custos.Event{Kind: custos.KindClient, User: custos.User{ID: user}, Action: custos.ActionExport, ResourceType: "Patient",
		IPAddress: "192.0.2.1", Outcome: custos.OutcomeSuccess, StatusCode: 200}
	if records > 0 {
		ev.Changes, _ = json.Marshal(map[string]any{"record_count": records, "format": "csv"})
	}
	return ev
}

func TestDataExport(t *testing.T) {
	tests := []struct {
		name    string
		at      []time.Duration
		records []int
		want    []custos.Severity
	}{
		{"one export in working hours", []time.Duration{0}, []int{0}, []custos.Severity{custos.SeverityLow}},
		{"at night", []time.Duration{12 * time.Hour}, []int{0}, []custos.Severity{custos.SeverityHigh}},
		{"on Saturday", []time.Duration{5 * 24 * time.Hour}, []int{10}, []custos.Severity{custos.SeverityHigh}},
		{"1000 records in an hour: not more than the limit", []time.Duration{0, 59 * time.Minute}, []int{600, 400},
			[]custos.Severity{custos.SeverityLow, custos.SeverityLow}},
		{"1001 records in an hour", []time.Duration{0, 59 * time.Minute}, []int{600, 401},
			[]custos.Severity{custos.SeverityLow, custos.SeverityHigh}},
		{"1001 records in more than an hour", []time.Duration{0, time.Hour}, []int{600, 401},
			[]custos.Severity{custos.SeverityLow, custos.SeverityLow}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFeed(t, rules.DefaultConfig())
			for i, at := range tt.at {
				f.at(at, exportOf("grace", tt.records[i]))
			}
			var got []custos.Severity
			for _, o := range of(f.outs, rules.Raise, rules.RuleDataExport) {
				got = append(got, o.SecurityEvent.Severity)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("severities %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConfigurationChange(t *testing.T) {
	f := newFeed(t, rules.DefaultConfig())
	change := func(kind custos.RecordKind, rt string, outcome custos.Outcome) custos.Event {
		return custos.Event{Kind: kind, User: custos.User{ID: "admin"}, Action: custos.ActionUpdate, ResourceType: rt,
			ResourceID: "nurse", Outcome: outcome, StatusCode: 200, Source: "custos"}
	}
	f.at(0, change(custos.KindServer, "Role", custos.OutcomeSuccess))
	f.at(time.Second, change(custos.KindServer, "Role", custos.OutcomeSuccess)) // the same again: no dedupe
	f.at(2*time.Second, change(custos.KindServer, "ApiKey", custos.OutcomeSuccess))
	f.at(3*time.Second, change(custos.KindClient, "Role", custos.OutcomeSuccess)) // a client's: not Custos's configuration
	f.at(4*time.Second, change(custos.KindServer, "AuditEvent", custos.OutcomeSuccess))
	raised := of(f.outs, rules.Raise, rules.RuleConfigurationChange)
	if len(raised) != 3 || raised[0].SecurityEvent.ID == raised[1].SecurityEvent.ID {
		t.Fatalf("want three changes:\n%s", summary(f.outs))
	}
	if se := raised[0].SecurityEvent; se.Severity != custos.SeverityLow || se.EventType != custos.ConfigurationChange || se.User != "admin" {
		t.Errorf("raised %+v", se)
	}
}

func TestUnusualPHIAccess(t *testing.T) {
	day := 24 * time.Hour
	// Ten days of about ten patients a day: median 10, MAD 1 raised to the
	// floor of 2, so the threshold is 10 + 3.5 × 1.4826 × 2 = 20.38.
	history := func(f *feed, user, role string) {
		for d := range 10 {
			for p := range 9 + d%3 {
				f.at(time.Duration(d)*day+time.Duration(p)*time.Minute, read(user, role, fmt.Sprintf("p-%d", p)))
			}
		}
	}
	for _, patients := range []int{20, 21} {
		t.Run(fmt.Sprint("own baseline ", patients), func(t *testing.T) {
			f := newFeed(t, rules.DefaultConfig())
			history(f, "hank", "nurse")
			for p := range patients {
				f.at(10*day+time.Duration(p)*time.Minute, read("hank", "nurse", fmt.Sprintf("q-%d", p)))
				f.at(10*day+time.Duration(p)*time.Minute, read("hank", "nurse", fmt.Sprintf("q-%d", p))) // twice: distinct patients count
			}
			raised := of(f.outs, rules.Raise, rules.RuleUnusualPHIAccess)
			if want := patients - 20; len(raised) != want {
				t.Fatalf("want %d:\n%s", want, summary(f.outs))
			}
			if patients == 21 && (raised[0].Count != 21 || raised[0].SecurityEvent.User != "hank") {
				t.Errorf("raised %+v count %d", raised[0].SecurityEvent, raised[0].Count)
			}
			for _, o := range f.outs {
				if o.Kind == rules.BlockAddress {
					t.Error("unusual PHI access blocked an address")
				}
			}
		})
	}
	t.Run("a new user against the peers of the role", func(t *testing.T) {
		f := newFeed(t, rules.DefaultConfig())
		for u := range 3 { // 3 nurses × 10 days: 30 peer user-days
			history(f, fmt.Sprintf("nurse%d", u), "nurse")
		}
		for p := range 40 {
			f.at(10*day+time.Duration(p)*time.Minute, read("newbie", "nurse", fmt.Sprintf("q-%d", p)))
		}
		raised := of(f.outs, rules.Raise, rules.RuleUnusualPHIAccess)
		if len(raised) != 1 || raised[0].Count != 21 {
			t.Fatalf("want one alert at the 21st patient:\n%s", summary(f.outs))
		}
	})
	t.Run("no baseline, no alert", func(t *testing.T) {
		f := newFeed(t, rules.DefaultConfig())
		for p := range 500 {
			f.at(time.Duration(p)*time.Second, read("solo", "auditor", fmt.Sprintf("q-%d", p)))
		}
		if n := len(of(f.outs, rules.Raise, rules.RuleUnusualPHIAccess)); n != 0 {
			t.Errorf("%d raised without a baseline", n)
		}
	})
	t.Run("seeded after a restart", func(t *testing.T) {
		f := newFeed(t, rules.DefaultConfig())
		for d := range 10 {
			f.e.SeedBaseline("ivy", []string{"nurse"}, t0.Add(time.Duration(d-10)*day), 10)
		}
		for p := range 25 {
			f.at(time.Duration(p)*time.Minute, read("ivy", "nurse", fmt.Sprintf("q-%d", p)))
		}
		if raised := of(f.outs, rules.Raise, rules.RuleUnusualPHIAccess); len(raised) != 1 || raised[0].Count != 21 {
			t.Errorf("want one alert at the 21st patient:\n%s", summary(f.outs))
		}
	})
}
