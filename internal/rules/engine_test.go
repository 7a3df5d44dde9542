package rules_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/rules"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var equate = cmpopts.EquateComparable(netip.Prefix{})

// late is a failed login that occurred at t0+occurred.
func late(occurred time.Duration, ip string) custos.Event {
	ev := login("alice", ip, false)
	at := t0.Add(occurred)
	ev.OccurredAt = &at
	return ev
}

func TestOutOfOrderAndLateEvents(t *testing.T) {
	t.Run("late beyond the allowance counts but never raises", func(t *testing.T) {
		f := newFeed(t, rules.DefaultConfig())
		for _, s := range []int{0, 60, 120, 240} {
			f.at(time.Duration(s)*time.Second, login("alice", "203.0.113.1", false))
		}
		// Recorded at 4m10s, it occurred at 30s: 3m40s behind, but the
		// allowance is 2m and the window 5m... it is late: counted, silent.
		f.at(250*time.Second, late(30*time.Second, "203.0.113.1"))
		if n := len(of(f.outs, rules.Raise, rules.RuleBruteForce)); n != 0 {
			t.Fatalf("a late event raised:\n%s", summary(f.outs))
		}
		if f.e.Stats().Late != 1 {
			t.Errorf("late = %d", f.e.Stats().Late)
		}
		// The next on-time failure finds it in the window: 6 within 5m.
		f.at(251*time.Second, login("alice", "203.0.113.1", false))
		raised := of(f.outs, rules.Raise, rules.RuleBruteForce)
		if len(raised) != 1 || raised[0].Count != 6 || !raised[0].FirstSeen.Equal(t0) {
			t.Fatalf("want one alert counting the late event:\n%s", summary(f.outs))
		}
	})
	t.Run("out of order, on time", func(t *testing.T) {
		f := newFeed(t, only(rules.RuleBruteForce))
		for _, s := range []int{0, 60, 120, 180} {
			f.at(time.Duration(s)*time.Second, login("alice", "203.0.113.2", false))
		}
		// Recorded at 3m10s, it occurred at 1m30s: 1m40s behind the watermark.
		f.at(190*time.Second, late(90*time.Second, "203.0.113.2"))
		if n := len(of(f.outs, rules.Raise, rules.RuleBruteForce)); n != 1 {
			t.Fatalf("want the on-time late event to complete the burst:\n%s", summary(f.outs))
		}
	})
	t.Run("older than the window", func(t *testing.T) {
		f := newFeed(t, only(rules.RuleBruteForce))
		for _, s := range []int{600, 601, 602, 603} {
			f.at(time.Duration(s)*time.Second, login("alice", "203.0.113.3", false))
		}
		f.at(604*time.Second, late(0, "203.0.113.3")) // 10 minutes old: outside every window
		f.at(1200*time.Second, login("alice", "203.0.113.3", false))
		if n := len(of(f.outs, rules.Raise, rules.RuleBruteForce)); n != 0 {
			t.Fatalf("an event outside the window counted:\n%s", summary(f.outs))
		}
	})
	t.Run("a late event updates an open alert", func(t *testing.T) {
		f := newFeed(t, only(rules.RuleBruteForce))
		for s := range 5 {
			f.at(time.Duration(100+s)*time.Second, login("alice", "203.0.113.4", false))
		}
		f.at(300*time.Second, late(0, "203.0.113.4"))
		ups := of(f.outs, rules.Update, rules.RuleBruteForce)
		if len(ups) != 1 || ups[0].Count != 6 || !ups[0].FirstSeen.Equal(t0) {
			t.Errorf("updates:\n%s", summary(f.outs))
		}
	})
	t.Run("occurred_at after the ledger timestamp is clamped", func(t *testing.T) {
		f := newFeed(t, only(rules.RuleBruteForce))
		for s := range 5 { // each claims to occur an hour later: they are all at their ledger time
			f.at(time.Duration(s)*time.Second, late(time.Duration(s)*time.Second+time.Hour, "203.0.113.5"))
		}
		if raised := of(f.outs, rules.Raise, rules.RuleBruteForce); len(raised) != 1 || !raised[0].LastSeen.Equal(t0.Add(4*time.Second)) {
			t.Errorf("raised:\n%s", summary(f.outs))
		}
	})
}

// burst is n failed logins from one address, a second apart, from two
// users: the BRUTE_FORCE burst of the issue.
func burst(n int) []custos.Event {
	var evs []custos.Event
	for i := range n {
		ev := login(fmt.Sprintf("u%d", i%2), "203.0.113.99", false)
		ev.Index, ev.Timestamp = uint64(i+1), t0.Add(time.Duration(i)*time.Second)
		evs = append(evs, ev)
	}
	return evs
}

func TestRestartInTheMiddleOfABurst(t *testing.T) {
	evs := burst(100)
	clock := func() time.Time { return t0 }

	// One engine that never stops.
	whole := rules.New(rules.DefaultConfig(), clock)
	var want []rules.Outcome
	for _, ev := range evs {
		want = append(want, whole.Observe(ev)...)
	}

	// One that stops after 50 events, everything it decided recorded.
	first := rules.New(rules.DefaultConfig(), clock)
	ledger := map[string]bool{}
	var blocks []custos.Block
	for _, ev := range evs[:50] {
		for _, o := range first.Observe(ev) {
			ledger[o.SecurityEvent.ID] = true
			if o.Kind == rules.BlockAddress {
				ledger[o.Block.ID] = true
				blocks = append(blocks, o.Block)
			}
		}
	}
	for _, lostBlock := range []bool{false, true} {
		t.Run(fmt.Sprint("block lost ", lostBlock), func(t *testing.T) {
			recorded := func(id string) bool { return ledger[id] && !(lostBlock && id == blocks[0].ID) }
			restarted := rules.New(rules.DefaultConfig(), clock)
			if !lostBlock {
				for _, b := range blocks {
					if err := restarted.ApplyBlock(b); err != nil {
						t.Fatal(err)
					}
				}
			}
			missing := restarted.Rebuild(evs[:50], nil, recorded)
			if lostBlock {
				if len(missing) != 1 || missing[0].Kind != rules.BlockAddress || missing[0].Block != blocks[0] {
					t.Fatalf("rebuild should return the block the crash lost:\n%s", summary(missing))
				}
			} else if len(missing) != 0 {
				t.Fatalf("rebuild returned what the ledger has:\n%s", summary(missing))
			}
			var got []rules.Outcome
			for _, ev := range evs[50:] {
				got = append(got, restarted.Observe(ev)...)
			}
			var wantAfter []rules.Outcome
			for _, o := range want {
				if o.Cause > 50 {
					wantAfter = append(wantAfter, o)
				}
			}
			if d := cmp.Diff(wantAfter, got, equate); d != "" {
				t.Errorf("after the restart (-uninterrupted +restarted):\n%s", d)
			}
			if n := len(of(got, rules.Raise, rules.RuleBruteForce)); n != 0 {
				t.Errorf("a second BRUTE_FORCE after the restart")
			}
			if last := of(got, rules.Update, rules.RuleBruteForce); last[len(last)-1].Count != 100 {
				t.Errorf("the count did not go on: %d", last[len(last)-1].Count)
			}
		})
	}
}

// mixed is a random stream touching every rule.
func mixed(seed uint64, n int) []custos.Event {
	r := rand.New(rand.NewPCG(seed, 1))
	var evs []custos.Event
	at := t0
	for i := range n {
		at = at.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
		user := fmt.Sprintf("user%d", r.IntN(20))
		ip := fmt.Sprintf("203.0.113.%d", r.IntN(8))
		var ev custos.Event
		switch k := r.IntN(10); {
		case k < 3:
			ev = login(user, ip, false)
		case k < 4:
			ev = login(user, ip, true)
		case k < 5:
			ev = denied(user)
		case k < 6:
			ev = exportOf(user, r.IntN(500))
		default:
			ev = read(user, "nurse", fmt.Sprintf("p-%d", r.IntN(200)))
			ev.SessionID, ev.IPAddress = fmt.Sprintf("s-%d", r.IntN(30)), ip
		}
		ev.Index, ev.Timestamp = uint64(i+1), at
		if r.IntN(10) == 0 {
			o := at.Add(-time.Duration(r.IntN(400)) * time.Second)
			ev.OccurredAt = &o
		}
		evs = append(evs, ev)
	}
	return evs
}

func TestTwoEnginesAgree(t *testing.T) {
	evs := mixed(7, 10000)
	run := func() []rules.Outcome {
		e := rules.New(rules.DefaultConfig(), time.Now) // the wall clock must not matter
		var out []rules.Outcome
		for _, ev := range evs {
			out = append(out, e.Observe(ev)...)
		}
		return out
	}
	a, b := run(), run()
	if !reflect.DeepEqual(a, b) { // cmp.Diff takes seconds over this many outcomes: only on failure
		t.Fatalf("two engines disagree (-a +b):\n%s", cmp.Diff(a, b, equate))
	}
	kinds := map[string]int{}
	for _, o := range a {
		kinds[o.Kind.String()+" "+o.SecurityEvent.Rule]++
	}
	if len(kinds) < 8 {
		t.Errorf("the stream exercised too few rules: %v", kinds)
	}
	t.Logf("%d outcomes: %v", len(a), kinds)
}

func TestIdleKeysAreEvicted(t *testing.T) {
	f := newFeed(t, rules.DefaultConfig())
	for i := range 1000 {
		f.at(time.Duration(i)*time.Millisecond, login(fmt.Sprintf("u%d", i), fmt.Sprintf("10.1.%d.%d", i/256, i%256), false))
		f.at(time.Duration(i)*time.Millisecond, login("x", fmt.Sprintf("10.2.%d.%d", i/256, i%256), true))
	}
	if s := f.e.Stats(); s.Addresses != 1000 || s.Users != 1000 {
		t.Fatalf("stats %+v", s)
	}
	f.at(25*time.Hour, login("late", "192.0.2.1", true))
	if s := f.e.Stats(); s.Addresses != 0 || s.Users != 0 || s.OpenAlerts != 0 {
		t.Errorf("after 25 idle hours: %+v", s)
	}
}

func TestApplyBlock(t *testing.T) {
	e := rules.New(rules.DefaultConfig(), func() time.Time { return t0 })
	wide := custos.Block{ID: "m1", CIDR: netip.MustParsePrefix("10.0.0.0/8"), Reason: "oops", CreatedAt: t0,
		BlockedUntil: t0.Add(time.Hour), CreatedBy: "apikey:k"}
	if err := e.ApplyBlock(wide); custos.KindOf(err) != custos.Invalid {
		t.Errorf("a /8 block: %v", err)
	}
	wide.CIDR = netip.MustParsePrefix("::/0")
	if err := e.ApplyBlock(wide); custos.KindOf(err) != custos.Invalid {
		t.Errorf("a ::/0 block: %v", err)
	}
	r := wide
	r.CIDR, r.CreatedAt = netip.MustParsePrefix("198.51.100.0/24"), t0.Add(-time.Minute)
	if err := e.ApplyBlock(r); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Blocked("198.51.100.200"); !ok {
		t.Error("an address of a manual range is not blocked")
	}
	var outs []rules.Outcome
	for i := range 10 { // a key inside a blocked range raises nothing new
		ev := login("a", "198.51.100.9", false)
		ev.Index, ev.Timestamp = uint64(i+1), t0.Add(time.Duration(i)*time.Second)
		outs = append(outs, e.Observe(ev)...)
	}
	if n := len(of(outs, rules.Raise, rules.RuleBruteForce)); n != 0 {
		t.Errorf("a key inside a manual block raised %d", n)
	}
	e.Lift("m1", t0)
	if _, ok := e.Blocked("198.51.100.200"); ok {
		t.Error("a lifted block still blocks")
	}
}

// TestIDGolden pins the id derivation: nodes, and a node after an upgrade,
// must derive the ids already recorded.
func TestIDGolden(t *testing.T) {
	for _, tt := range []struct {
		kind, rule, key string
		cause           uint64
		want            string
	}{
		{"se", "brute_force", "203.0.113.7", 42, "se-528423a38b36a9ebe568ecf1b56faa56"},
		{"blk", "brute_force", "2001:db8:1:2::/64", 1, "blk-734d45d5d09465d990f8dc6f5b64dbcd"},
	} {
		got := rules.ID(tt.kind, tt.rule, tt.key, tt.cause)
		if got != tt.want {
			t.Errorf("ID(%q, %q, %q, %d) = %s, want %s", tt.kind, tt.rule, tt.key, tt.cause, got, tt.want)
		}
	}
}
