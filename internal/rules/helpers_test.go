package rules_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/rules"
)

// t0 is a Monday, 10:00 UTC: inside the default working hours.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// feed drives an engine the way the tailer will: events in ledger order,
// each stamped with the next index and a ledger timestamp t0+at.
type feed struct {
	tb   testing.TB
	e    *rules.Engine
	idx  uint64
	evs  []custos.Event
	outs []rules.Outcome
}

func newFeed(tb testing.TB, cfg rules.Config) *feed {
	tb.Helper()
	return &feed{tb: tb, e: rules.New(cfg, func() time.Time { return t0 })}
}

// at observes ev as recorded at t0+at and returns its outcomes.
func (f *feed) at(at time.Duration, ev custos.Event) []rules.Outcome {
	f.idx++
	ev.Index, ev.Timestamp = f.idx, t0.Add(at)
	f.evs = append(f.evs, ev)
	out := f.e.Observe(ev)
	f.outs = append(f.outs, out...)
	return out
}

func login(user, ip string, ok bool) custos.Event {
	ev := custos.Event{Kind: custos.KindServer, User: custos.User{ID: user}, Action: custos.ActionLogin,
		ResourceType: "Session", IPAddress: ip, Outcome: custos.OutcomeSuccess, StatusCode: 200}
	if !ok {
		ev.Outcome, ev.StatusCode = custos.OutcomeFailure, 401
	}
	return ev
}

func read(user, role, patient string) custos.Event {
	return custos.Event{Kind: custos.KindClient, User: custos.User{ID: user, Roles: []string{role}}, Action: custos.ActionRead,
		ResourceType: "Patient", ResourceID: patient, PatientID: patient, IPAddress: "192.0.2.10", Outcome: custos.OutcomeSuccess, StatusCode: 200}
}

// of keeps the outcomes of one kind and rule.
func of(outs []rules.Outcome, kind rules.OutcomeKind, rule string) []rules.Outcome {
	var keep []rules.Outcome
	for _, o := range outs {
		r := o.SecurityEvent.Rule
		if o.Kind == rules.BlockAddress {
			r = o.Block.CreatedBy[len("rule:"):]
		}
		if o.Kind == kind && r == rule {
			keep = append(keep, o)
		}
	}
	return keep
}

// only returns the config with every rule disabled except those named.
func only(names ...string) rules.Config {
	c := rules.DefaultConfig()
	on := map[string]bool{}
	for _, n := range names {
		on[n] = true
	}
	c.AuthFailure.Enabled = on[rules.RuleAuthFailure]
	c.BruteForce.Enabled = on[rules.RuleBruteForce]
	c.SlowBruteForce.Enabled = on[rules.RuleSlowBruteForce]
	c.PasswordSpraying.Enabled = on[rules.RulePasswordSpraying]
	c.AccountGuessing.Enabled = on[rules.RuleAccountGuessing]
	c.FailuresThenSuccess.Enabled = on[rules.RuleFailuresThenSuccess]
	c.UnauthorizedAccess.Enabled = on[rules.RuleUnauthorizedAccess]
	c.SessionHijack.Enabled = on[rules.RuleSessionHijack]
	c.DataExport.Enabled = on[rules.RuleDataExport]
	c.ConfigurationChange.Enabled = on[rules.RuleConfigurationChange]
	c.UnusualPHIAccess.Enabled = on[rules.RuleUnusualPHIAccess]
	return c
}

func summary(outs []rules.Outcome) string {
	s := ""
	for _, o := range outs {
		s += fmt.Sprintf("%s %s %s count=%d %s\n", o.Kind, o.SecurityEvent.Rule, o.SecurityEvent.Severity, o.Count, o.Block.CIDR)
	}
	return s
}
