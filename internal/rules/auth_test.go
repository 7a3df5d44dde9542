package rules_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/rules"
)

func TestBruteForceThreshold(t *testing.T) {
	tests := []struct {
		name     string
		failures int
		spacing  time.Duration
		fires    bool
	}{
		{"5 within 5 minutes", 5, 74 * time.Second, true}, // span 4m56s
		{"4 is just under", 4, time.Second, false},        // span 3s
		{"5 spanning exactly 5 minutes", 5, 75 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFeed(t, rules.DefaultConfig())
			for i := range tt.failures {
				f.at(time.Duration(i)*tt.spacing, login("alice", "203.0.113.7", false))
			}
			raised := of(f.outs, rules.Raise, rules.RuleBruteForce)
			blocks := of(f.outs, rules.BlockAddress, rules.RuleBruteForce)
			if got := len(raised) == 1 && len(blocks) == 1; got != tt.fires {
				t.Fatalf("fired = %v, want %v:\n%s", got, tt.fires, summary(f.outs))
			}
			if !tt.fires {
				return
			}
			se, b := raised[0].SecurityEvent, blocks[0].Block
			if se.EventType != custos.BruteForce || se.Severity != custos.SeverityHigh || se.IPAddress != "203.0.113.7" || raised[0].Count != 5 {
				t.Errorf("raised %+v (count %d)", se, raised[0].Count)
			}
			if b.CIDR != netip.MustParsePrefix("203.0.113.7/32") || b.BlockedUntil.Sub(b.CreatedAt) != 24*time.Hour || b.CreatedBy != "rule:brute_force" {
				t.Errorf("blocked %+v", b)
			}
			if err := b.Validate(custos.DefaultBlockLimits); err != nil {
				t.Errorf("the block is invalid: %v", err)
			}
			if err := se.Normalize(custos.DefaultLimits); err != nil {
				t.Errorf("the security event is invalid: %v", err)
			}
			if got := len(of(f.outs, rules.Raise, rules.RuleAuthFailure)); got != tt.failures {
				t.Errorf("%d AUTH_FAILURE raised, want one per failed login (%d)", got, tt.failures)
			}
		})
	}
}

func TestBurstOf100RaisesOneAlert(t *testing.T) {
	f := newFeed(t, rules.DefaultConfig())
	for i := range 100 {
		f.at(time.Duration(i)*time.Second, login(fmt.Sprintf("user%d", i%3), "203.0.113.7", false))
	}
	raised := of(f.outs, rules.Raise, rules.RuleBruteForce)
	updates := of(f.outs, rules.Update, rules.RuleBruteForce)
	if len(raised) != 1 || len(of(f.outs, rules.BlockAddress, rules.RuleBruteForce)) != 1 {
		t.Fatalf("want one BRUTE_FORCE and one block:\n%s", summary(of(f.outs, rules.Raise, rules.RuleBruteForce)))
	}
	last := updates[len(updates)-1]
	if last.Count != 100 || last.SecurityEvent.ID != raised[0].SecurityEvent.ID || !last.LastSeen.Equal(t0.Add(99*time.Second)) ||
		!last.FirstSeen.Equal(t0) {
		t.Errorf("last update: count %d, id %s, seen %s..%s", last.Count, last.SecurityEvent.ID, last.FirstSeen, last.LastSeen)
	}
	if n := len(of(f.outs, rules.Raise, rules.RuleSlowBruteForce)); n != 0 {
		t.Errorf("a blocked key raised %d slow brute force alerts", n)
	}
}

func TestBruteForceIPv6KeyIsTheSlash64(t *testing.T) {
	f := newFeed(t, rules.DefaultConfig())
	for i := range 5 {
		f.at(time.Duration(i)*time.Second, login("alice", fmt.Sprintf("2001:db8:1:2:%x:%x::%x", i*7919, i*31, i+1), false))
	}
	f.at(6*time.Second, login("alice", "2001:db8:1:3::1", false)) // the next /64: another key
	blocks := of(f.outs, rules.BlockAddress, rules.RuleBruteForce)
	if len(blocks) != 1 || blocks[0].Block.CIDR != netip.MustParsePrefix("2001:db8:1:2::/64") {
		t.Fatalf("blocks:\n%s", summary(blocks))
	}
	if se := of(f.outs, rules.Raise, rules.RuleBruteForce)[0].SecurityEvent; se.IPAddress != "2001:db8:1:2::/64" {
		t.Errorf("ip_address %q", se.IPAddress)
	}
	if b, ok := f.e.Blocked("2001:db8:1:2:ffff:ffff:ffff:ffff"); !ok || b.ID != blocks[0].Block.ID {
		t.Error("another address of the /64 is not blocked")
	}
	if _, ok := f.e.Blocked("2001:db8:1:3::1"); ok {
		t.Error("the next /64 is blocked")
	}
}

func TestAllowListedKeyIsReportedNeverBlocked(t *testing.T) {
	cfg := rules.DefaultConfig()
	cfg.AllowList = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:9::1/128")}
	f := newFeed(t, cfg)
	for i := range 30 {
		f.at(time.Duration(i)*time.Second, login(fmt.Sprintf("u%d", i), "198.51.100.20", false))
		f.at(time.Duration(i)*time.Second, login(fmt.Sprintf("u%d", i), fmt.Sprintf("2001:db8:9::%x", i+2), false))
	}
	raised := of(f.outs, rules.Raise, rules.RuleBruteForce)
	if len(raised) != 2 || !raised[0].AllowListed || !raised[1].AllowListed {
		t.Fatalf("want two allow-listed BRUTE_FORCE:\n%s", summary(raised))
	}
	for _, o := range f.outs {
		if o.Kind == rules.BlockAddress {
			t.Errorf("an allow-listed key was blocked: %v", o.Block.CIDR)
		}
	}
	if len(of(f.outs, rules.Raise, rules.RulePasswordSpraying)) != 2 {
		t.Errorf("spraying from allow-listed keys is still reported:\n%s", summary(f.outs))
	}
}

func TestSlowBruteForce(t *testing.T) {
	for _, n := range []int{19, 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := newFeed(t, rules.DefaultConfig())
			for i := range n { // one an hour (less 1s): never 5 in 5 minutes, 20 in 24 hours
				f.at(time.Duration(i)*(time.Hour-time.Second), login("alice", "203.0.113.9", false))
			}
			raised := of(f.outs, rules.Raise, rules.RuleSlowBruteForce)
			if want := n / 20; len(raised) != want || len(of(f.outs, rules.Raise, rules.RuleBruteForce)) != 0 {
				t.Fatalf("want %d slow brute force:\n%s", want, summary(raised))
			}
			if n == 20 && raised[0].SecurityEvent.Severity != custos.SeverityMedium {
				t.Errorf("severity %s", raised[0].SecurityEvent.Severity)
			}
			if len(of(f.outs, rules.BlockAddress, rules.RuleSlowBruteForce)) != 0 {
				t.Error("slow brute force blocks by default")
			}
		})
	}
}

func TestPasswordSpraying(t *testing.T) {
	for _, users := range []int{9, 10} {
		t.Run(fmt.Sprint(users), func(t *testing.T) {
			f := newFeed(t, only(rules.RulePasswordSpraying))
			for i := range 30 { // 30 failures in 9m40s over `users` distinct users
				f.at(time.Duration(i)*20*time.Second, login(fmt.Sprintf("user%d", i%users), "203.0.113.8", false))
			}
			raised := of(f.outs, rules.Raise, rules.RulePasswordSpraying)
			if want := users / 10; len(raised) != want {
				t.Fatalf("want %d spraying alerts:\n%s", want, summary(f.outs))
			}
			if users == 10 && len(of(f.outs, rules.BlockAddress, rules.RulePasswordSpraying)) != 1 {
				t.Error("spraying does not block the key")
			}
		})
	}
}

func TestAccountGuessing(t *testing.T) {
	for _, keys := range []int{2, 3} {
		t.Run(fmt.Sprint(keys), func(t *testing.T) {
			f := newFeed(t, rules.DefaultConfig())
			for i := range keys {
				f.at(time.Duration(i)*7*time.Minute, login("bob", fmt.Sprintf("203.0.113.%d", 20+i), false))
			}
			raised := of(f.outs, rules.Raise, rules.RuleAccountGuessing)
			if want := keys / 3; len(raised) != want {
				t.Fatalf("want %d account guessing alerts:\n%s", want, summary(f.outs))
			}
			for _, o := range f.outs {
				if o.Kind == rules.BlockAddress {
					t.Error("account guessing blocked an address")
				}
			}
			if keys == 3 && (raised[0].SecurityEvent.User != "bob" || raised[0].SecurityEvent.Severity != custos.SeverityHigh) {
				t.Errorf("raised %+v", raised[0].SecurityEvent)
			}
		})
	}
}

func TestFailuresThenSuccess(t *testing.T) {
	for _, failures := range []int{4, 5} {
		for _, by := range []string{"user", "key"} {
			t.Run(fmt.Sprint(failures, by), func(t *testing.T) {
				f := newFeed(t, rules.DefaultConfig())
				for i := range failures { // one every 6 minutes: no BRUTE_FORCE
					user, ip := "carol", fmt.Sprintf("203.0.113.%d", 50+i) // by user: from several keys
					if by == "key" {
						user, ip = fmt.Sprintf("user%d", i), "203.0.113.50"
					}
					f.at(time.Duration(i)*6*time.Minute, login(user, ip, false))
				}
				f.at(29*time.Minute, login("carol", "203.0.113.50", true))
				raised := of(f.outs, rules.Raise, rules.RuleFailuresThenSuccess)
				if want := failures / 5; len(raised) != want {
					t.Fatalf("want %d:\n%s", want, summary(f.outs))
				}
				if failures == 5 && raised[0].SecurityEvent.Severity != custos.SeverityCritical {
					t.Errorf("severity %s", raised[0].SecurityEvent.Severity)
				}
			})
		}
	}
}

func TestRepeatOffendersDoubleUpTo30Days(t *testing.T) {
	f := newFeed(t, rules.DefaultConfig())
	var at time.Duration
	var got []time.Duration
	for range 7 {
		for i := range 5 {
			f.at(at+time.Duration(i)*time.Second, login("alice", "203.0.113.66", false))
		}
		blocks := of(f.outs, rules.BlockAddress, rules.RuleBruteForce)
		b := blocks[len(blocks)-1].Block
		got = append(got, b.BlockedUntil.Sub(b.CreatedAt))
		at = b.BlockedUntil.Sub(t0) + time.Hour // the next attack, once the block is over
	}
	day := 24 * time.Hour
	want := []time.Duration{day, 2 * day, 4 * day, 8 * day, 16 * day, 30 * day, 30 * day}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("block durations %v, want %v", got, want)
	}
	if n := len(of(f.outs, rules.Raise, rules.RuleBruteForce)); n != 7 {
		t.Errorf("%d alerts, want one per attack (7)", n)
	}
}

func TestBlockedKeyRaisesNothingNew(t *testing.T) {
	f := newFeed(t, rules.DefaultConfig())
	for i := range 5 {
		f.at(time.Duration(i)*time.Second, login("alice", "203.0.113.70", false))
	}
	// The alert closes after 5 quiet minutes; the key stays blocked 24 h.
	for i := range 25 {
		f.at(time.Hour+time.Duration(i)*time.Second, login(fmt.Sprintf("u%d", i), "203.0.113.70", false))
	}
	for _, rule := range []string{rules.RuleBruteForce, rules.RuleSlowBruteForce, rules.RulePasswordSpraying} {
		want := 0
		if rule == rules.RuleBruteForce {
			want = 1
		}
		if n := len(of(f.outs, rules.Raise, rule)); n != want {
			t.Errorf("%s: %d raised, want %d", rule, n, want)
		}
	}
}

func TestReportedAuthFailures(t *testing.T) {
	e := rules.New(rules.DefaultConfig(), func() time.Time { return t0 })
	var outs []rules.Outcome
	for i := range 5 {
		se := custos.SecurityEvent{Index: uint64(i + 1), Timestamp: t0.Add(time.Duration(i) * time.Second),
			EventType: custos.AuthFailure, Severity: custos.SeverityLow, Description: "bad password", User: "dave", IPAddress: "203.0.113.80"}
		outs = append(outs, e.ObserveSecurityEvent(se)...)
		// The engine's own AUTH_FAILURE coming back through the ledger is not a second failure.
		se.Index, se.Rule = uint64(100+i), rules.RuleAuthFailure
		outs = append(outs, e.ObserveSecurityEvent(se)...)
	}
	if len(of(outs, rules.Raise, rules.RuleBruteForce)) != 1 || len(of(outs, rules.Raise, rules.RuleAuthFailure)) != 0 {
		t.Errorf("outcomes:\n%s", summary(outs))
	}
	if of(outs, rules.Raise, rules.RuleBruteForce)[0].Count != 5 {
		t.Error("the engine's own security events were counted")
	}
}
