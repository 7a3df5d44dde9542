package rules

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/custos-audit/custos"
)

// alertKey is (rule, key): an address key or a name (a user or session id).
type alertKey struct {
	rule string
	addr addrKey
	name string
}

// alert is an open alert: one per (rule, key). It closes when its key has
// had no hit for window (a new hit after that opens a new alert), or when
// Resolve closes it.
type alert struct {
	se          custos.SecurityEvent
	count       int
	first, last int64
	window      int64
}

// text is the key as it feeds the ids and the security event.
func (e *Engine) text(k alertKey) string {
	if k.name != "" {
		return k.name
	}
	return e.keyText(k.addr)
}

// open returns the open alert of k, closing it first if it has been quiet
// for its window by the time of c.
func (e *Engine) open(k alertKey, c *cause) *alert {
	a := e.alerts[k]
	if a != nil && c.t-a.last >= a.window {
		delete(e.alerts, k)
		delete(e.byID, a.se.ID)
		return nil
	}
	return a
}

// update counts one more hit on an open alert, raising its severity to sev
// if sev is higher.
func (e *Engine) update(a *alert, c *cause, sev custos.Severity, out *[]Outcome) {
	a.count++
	a.first = min(a.first, c.t)
	a.last = max(a.last, c.t)
	if sev.Rank() > a.se.Severity.Rank() {
		a.se.Severity = sev
	}
	if e.recorded != nil {
		return // replaying: the next live update carries the totals
	}
	*out = append(*out, Outcome{Kind: Update, SecurityEvent: a.se, Count: a.count,
		FirstSeen: unix(a.first), LastSeen: unix(a.last), Cause: c.index})
}

// raise opens an alert for k (kept open for window; 0 for a rule that
// raises once per event) and emits it, unless it was already recorded.
func (e *Engine) raise(k alertKey, c *cause, se custos.SecurityEvent, count int, first int64, window time.Duration,
	details map[string]any, allowListed bool, out *[]Outcome) {
	key := e.text(k)
	se.ID = ID("se", k.rule, key, c.index)
	se.Rule, se.Status = k.rule, custos.StatusOpen
	if details == nil {
		details = map[string]any{}
	}
	details["key"], details["count"], details["cause_index"] = key, count, c.index
	details["first_seen"], details["last_seen"] = unix(first), unix(c.t)
	if allowListed {
		details["allow_listed"] = true
	}
	se.AdditionalData, _ = json.Marshal(details)
	if window > 0 {
		e.alerts[k] = &alert{se: se, count: count, first: first, last: c.t, window: int64(window)}
		e.byID[se.ID] = k
	}
	if e.recorded != nil && e.recorded(se.ID) {
		return
	}
	*out = append(*out, Outcome{Kind: Raise, SecurityEvent: se, Count: count, FirstSeen: unix(first),
		LastSeen: unix(c.t), AllowListed: allowListed, Cause: c.index})
}

// Resolve closes the open alert id, if it is open: the next hit of its rule
// and key is judged afresh. Call it, in ledger order, when a status record
// resolving the alert commits.
func (e *Engine) Resolve(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if k, ok := e.byID[id]; ok {
		delete(e.alerts, k)
		delete(e.byID, id)
	}
}

// blockState is a block the engine knows of.
type blockState struct {
	b       custos.Block
	created int64
	until   int64
	dur     time.Duration
	cause   uint64 // the index of the event that caused it, when derived here; 0 when applied from a record
}

// inForce reports whether a block of k (or a range covering it) applies to
// the event c: a derived block applies from the event after its cause, an
// applied one from after its creation time.
func (e *Engine) inForce(k addrKey, c *cause) bool {
	applies := func(b *blockState) bool {
		if c.t >= b.until {
			return false
		}
		if b.cause > 0 {
			return c.index > b.cause
		}
		return b.created < c.ts
	}
	if b := e.blocks[k]; b != nil && applies(b) {
		return true
	}
	if len(e.ranges) > 0 {
		p := e.prefix(k)
		for _, b := range e.ranges {
			if b.b.CIDR.Overlaps(p) && b.b.CIDR.Bits() <= p.Bits() && applies(b) {
				return true
			}
		}
	}
	return false
}

// block blocks k for rule: base long, or longer for a repeat offender.
func (e *Engine) block(k addrKey, rule string, base time.Duration, c *cause, reason string, out *[]Outcome) {
	id := ID("blk", rule, e.keyText(k), c.index)
	prev := e.blocks[k]
	if prev != nil && prev.b.ID == id { // re-derived while replaying: the block already applied
		prev.cause = c.index
		return
	}
	dur := base
	if r := e.cfg.Repeat; prev != nil && c.ts-prev.until <= int64(r.Within) {
		dur = min(max(base, prev.dur*time.Duration(r.Factor)), r.Max)
	}
	p := e.prefix(k)
	if !e.cfg.BlockLimits.Allows(p) {
		return
	}
	at := unix(c.ts)
	b := custos.Block{ID: id, CIDR: p, Reason: reason, CreatedAt: at, BlockedUntil: at.Add(dur), CreatedBy: "rule:" + rule}
	e.blocks[k] = &blockState{b: b, created: c.ts, until: c.ts + int64(dur), dur: dur, cause: c.index}
	if e.recorded != nil && e.recorded(id) {
		return
	}
	*out = append(*out, Outcome{Kind: BlockAddress, Block: b, Cause: c.index})
}

// ApplyBlock tells the engine of a block recorded in the ledger: a manual
// one as it commits, or at a restart (before Rebuild) every block still in
// force or ended less than Repeat.Within ago, so that keys already blocked
// raise nothing new and repeat offenders are remembered.
// A block the engine derived itself is recognised by its id and changes
// nothing. It refuses a block wider than the limits.
func (e *Engine) ApplyBlock(b custos.Block) error {
	if err := b.Validate(e.cfg.BlockLimits); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s := &blockState{b: b, created: b.CreatedAt.UnixNano(), until: b.BlockedUntil.UnixNano(),
		dur: b.BlockedUntil.Sub(b.CreatedAt)}
	if b.CreatedAt.IsZero() {
		s.created, s.dur = s.until, 0
	}
	if k, ok := e.addrKeyOf(b.CIDR.Addr().String()); ok && e.prefix(k) == b.CIDR {
		if prev := e.blocks[k]; prev != nil && (prev.b.ID == b.ID || prev.created > s.created) {
			return nil
		}
		e.blocks[k] = s
		return nil
	}
	for _, r := range e.ranges {
		if r.b.ID == b.ID {
			return nil
		}
	}
	e.ranges = append(e.ranges, s)
	return nil
}

// Lift ends the block id at the given time (a lift record). The key is
// still remembered as a repeat offender.
func (e *Engine) Lift(id string, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	end := at.UnixNano()
	for _, b := range e.blocks {
		if b.b.ID == id && end < b.until {
			b.until, b.b.BlockedUntil = end, at
		}
	}
	for _, b := range e.ranges {
		if b.b.ID == id && end < b.until {
			b.until, b.b.BlockedUntil = end, at
		}
	}
}

// Blocked reports the block in force now (by the engine's clock) that
// covers ip, if any: blocks the engine derived and blocks applied to it.
func (e *Engine) Blocked(ip string) (custos.Block, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k, ok := e.addrKeyOf(ip)
	if !ok {
		return custos.Block{}, false
	}
	now := e.now()
	if b := e.blocks[k]; b != nil && now.Before(b.b.BlockedUntil) {
		return b.b, true
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		addr = e.prefix(k).Addr() // a reported range: its first address
	}
	for _, b := range e.ranges {
		if b.b.Contains(addr, now) {
			return b.b, true
		}
	}
	return custos.Block{}, false
}

func describe(format string, args ...any) string { return fmt.Sprintf(format, args...) }
