package rules

import "github.com/custos-audit/custos"

// Rebuild restores the engine's state at start by replaying the stored
// window of records: the audit events and the security events of the last
// Horizon, each slice in ledger order (they are merged by index). recorded
// reports whether a security event or block id is already in the ledger.
//
// The replay takes every decision again, so open alerts, their counts and
// the blocks come back as they were; a restart in the middle of a burst
// forgets nothing, and the next hit updates the alert already recorded
// instead of raising a second one. Rebuild returns only what the ledger
// lacks: raises and blocks whose ids recorded does not know (decided before
// the crash, never written). Updates are not returned: the next live update
// carries the totals.
//
// Before Rebuild, apply the blocks still in force or ended less than
// Repeat.Within ago, lifts applied (ApplyBlock, Lift)
// and seed the PHI baseline (SeedBaseline). Call Rebuild on a fresh engine,
// before any Observe.
func (e *Engine) Rebuild(events []custos.Event, reported []custos.SecurityEvent, recorded func(id string) bool) []Outcome {
	e.mu.Lock()
	defer e.mu.Unlock()
	if recorded == nil {
		recorded = func(string) bool { return false }
	}
	e.recorded = recorded
	defer func() { e.recorded = nil }()
	var out []Outcome
	i, j := 0, 0
	for i < len(events) || j < len(reported) {
		if j >= len(reported) || i < len(events) && events[i].Index < reported[j].Index {
			out = append(out, e.observe(&events[i])...)
			i++
		} else {
			out = append(out, e.observeReported(&reported[j])...)
			j++
		}
	}
	return out
}
