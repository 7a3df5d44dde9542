package rules

import (
	"math"
	"sync"
	"time"

	"github.com/custos-audit/custos"
)

// OutcomeKind says what an Outcome asks the caller to record.
type OutcomeKind uint8

// The kinds of outcome.
const (
	// Raise: a new security event, to be recorded with its ID.
	Raise OutcomeKind = iota + 1
	// Update: an open alert saw another hit; Count, LastSeen and perhaps its
	// Severity changed. Count and LastSeen are totals, not increments, so
	// recording any later update supersedes every earlier one.
	Update
	// BlockAddress: block an address key, to be recorded with its ID.
	BlockAddress
)

func (k OutcomeKind) String() string {
	switch k {
	case Raise:
		return "raise"
	case Update:
		return "update"
	case BlockAddress:
		return "block"
	}
	return "unknown"
}

// Outcome is one thing the engine decided on seeing an event.
type Outcome struct {
	Kind OutcomeKind
	// SecurityEvent is the alert (Raise, Update). Its ID is derived from the
	// rule, the key and the ledger index of the event that crossed the
	// threshold; its Index and Timestamp are left to the ledger.
	SecurityEvent custos.SecurityEvent
	// Count is how many hits the alert has seen: the rule's measure when it
	// crossed (failures, distinct users or keys, denials in the window),
	// plus one for each later hit while it stayed open.
	Count               int
	FirstSeen, LastSeen time.Time
	// AllowListed (Raise): the key is in the allow-list, so the rule
	// reported it and did not block it.
	AllowListed bool
	// Block is the block to record (BlockAddress).
	Block custos.Block
	// Cause is the ledger index of the event that led to the outcome.
	Cause uint64
}

// Stats describe the engine's state: how many keys it holds and how many
// events arrived late.
type Stats struct {
	Addresses, Users, Sessions, OpenAlerts, Blocks int
	// Late counts events more than the late allowance behind the watermark:
	// counted where their windows still reach them, never raising.
	Late uint64
	// Stale counts events too old for any state the engine still holds, and
	// PHI accesses of a day already closed: ignored.
	Stale uint64
}

// Engine runs the rules over committed events, in ledger order. Its methods
// are safe for concurrent use, but the events must come from one tailer, in
// ledger order: that order is what makes the outcomes (ids included) the
// same on every node.
type Engine struct {
	mu  sync.Mutex
	cfg Config
	now func() time.Time

	mark      int64 // the watermark: the latest event time seen
	started   bool
	nextSweep int64
	allowance int64

	addrs    map[addrKey]*addrState
	users    map[string]*userState
	sessions map[string]*sessionState
	alerts   map[alertKey]*alert
	byID     map[string]alertKey
	blocks   map[addrKey]*blockState
	ranges   []*blockState // blocks of ranges other than one address key
	roles    map[string]*peers
	changes  map[string]bool

	// derived from cfg
	addrWindow, userWindow int64 // the longest window of the address and user failure lists
	addrCap                int
	day                    dayCache

	recorded func(id string) bool // set during Rebuild
	stats    Stats
}

// sweepEvery is how often, in event time, idle keys are evicted.
const sweepEvery = int64(time.Minute)

// New returns an engine running cfg. now is the wall clock, used only for
// Blocked and for an event that carries no ledger timestamp: every decision
// is taken in event time.
func New(cfg Config, now func() time.Time) *Engine {
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	e := &Engine{cfg: cfg, now: now, allowance: int64(cfg.LateAllowance),
		addrs: map[addrKey]*addrState{}, users: map[string]*userState{}, sessions: map[string]*sessionState{},
		alerts: map[alertKey]*alert{}, byID: map[string]alertKey{}, blocks: map[addrKey]*blockState{},
		roles: map[string]*peers{}, changes: map[string]bool{}}
	for _, t := range cfg.ConfigurationChange.ResourceTypes {
		e.changes[t] = true
	}
	for _, r := range []Threshold{cfg.BruteForce, cfg.SlowBruteForce, cfg.FailuresThenSuccess} {
		if r.Enabled {
			e.addrWindow = max(e.addrWindow, int64(r.Window))
			e.addrCap = max(e.addrCap, r.Threshold)
		}
	}
	if cfg.PasswordSpraying.Enabled {
		e.addrWindow = max(e.addrWindow, int64(cfg.PasswordSpraying.Window))
	}
	if cfg.FailuresThenSuccess.Enabled {
		e.userWindow = int64(cfg.FailuresThenSuccess.Window)
	}
	return e
}

// Config returns the configuration the engine runs.
func (e *Engine) Config() Config { return e.cfg }

// Horizon is how far back, from the newest stored event, a restart must
// replay events (Rebuild) for the windowed rules to forget nothing: the
// longest window or session lifetime, plus the late allowance. The PHI
// baseline's days are seeded separately (SeedBaseline).
func (e *Engine) Horizon() time.Duration {
	c := e.cfg
	h := max(c.BruteForce.Window, c.SlowBruteForce.Window, c.PasswordSpraying.Window, c.AccountGuessing.Window,
		c.FailuresThenSuccess.Window, c.UnauthorizedAccess.Window, c.SessionHijack.Lifetime, c.DataExport.Window)
	return h + c.LateAllowance
}

// cause is the event being observed: its ledger index and timestamp, its
// event time, and whether it is on time (may open alerts).
type cause struct {
	index  uint64
	ts, t  int64
	onTime bool
}

// begin computes the event time of a record and advances the watermark.
// The event time is occurred_at when given and not after the ledger
// timestamp, else the ledger timestamp.
func (e *Engine) begin(index uint64, ts time.Time, occurred *time.Time) cause {
	if ts.IsZero() {
		ts = e.now()
	}
	c := cause{index: index, ts: ts.UnixNano(), t: ts.UnixNano()}
	if occurred != nil && !occurred.IsZero() && occurred.Before(ts) {
		c.t = occurred.UnixNano()
	}
	if !e.started || c.t > e.mark {
		e.mark, e.started = c.t, true
	}
	c.onTime = c.t >= e.mark-e.allowance
	if !c.onTime {
		e.stats.Late++
	}
	if e.mark >= e.nextSweep {
		e.sweep()
		e.nextSweep = e.mark + sweepEvery
	}
	return c
}

// Observe runs the rules over one committed audit event and returns what
// they decided, usually nothing. Events must come in ledger order.
func (e *Engine) Observe(ev custos.Event) []Outcome {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.observe(&ev)
}

func (e *Engine) observe(ev *custos.Event) []Outcome {
	c := e.begin(ev.Index, ev.Timestamp, ev.OccurredAt)
	var out []Outcome
	failed := ev.Outcome == custos.OutcomeFailure
	if ev.Action == custos.ActionLogin {
		if failed {
			e.authFailure(&c, ev.User.ID, ev.IPAddress, true, &out)
		} else {
			e.loginSuccess(&c, ev.User.ID, ev.IPAddress, &out)
		}
	}
	if failed && (ev.StatusCode == 403 || ev.Kind == custos.KindServer && ev.ResourceType == "Authorization") {
		e.denial(&c, ev.User.ID, ev.IPAddress, &out)
	}
	if ev.SessionID != "" && e.cfg.SessionHijack.Enabled {
		e.session(&c, ev, &out)
	}
	if ev.Action == custos.ActionExport && e.cfg.DataExport.Enabled {
		e.export(&c, ev, &out)
	}
	if ev.Kind == custos.KindServer && !failed && e.cfg.ConfigurationChange.Enabled && e.changes[ev.ResourceType] {
		e.configChange(&c, ev, &out)
	}
	if ev.PatientID != "" && ev.Kind != custos.KindServer && !failed && e.cfg.UnusualPHIAccess.Enabled {
		e.phiAccess(&c, ev, &out)
	}
	return out
}

// ObserveSecurityEvent runs the rules over a committed security event that
// an application reported: an AUTH_FAILURE counts as a failed login, an
// UNAUTHORIZED_ACCESS as a denial. Security events a rule raised (Rule
// set) are the engine's own output and are ignored, so the caller may feed
// every security event record in ledger order, interleaved with Observe.
func (e *Engine) ObserveSecurityEvent(se custos.SecurityEvent) []Outcome {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.observeReported(&se)
}

func (e *Engine) observeReported(se *custos.SecurityEvent) []Outcome {
	if se.Rule != "" {
		return nil
	}
	c := e.begin(se.Index, se.Timestamp, nil)
	var out []Outcome
	switch se.EventType {
	case custos.AuthFailure:
		e.authFailure(&c, se.User, se.IPAddress, false, &out)
	case custos.UnauthorizedAccess:
		e.denial(&c, se.User, se.IPAddress, &out)
	}
	return out
}

// Stats reports the size of the engine's state.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Addresses, s.Users, s.Sessions, s.OpenAlerts = len(e.addrs), len(e.users), len(e.sessions), len(e.alerts)
	s.Blocks = len(e.blocks) + len(e.ranges)
	return s
}

// sweep evicts, by event time, every key idle for longer than any window
// that could still need it (plus the late allowance), closed alerts and
// blocks past both their end and the repeat-offender memory.
func (e *Engine) sweep() {
	m := e.mark - e.allowance
	for k, s := range e.addrs {
		if s.last <= m-e.addrWindow {
			delete(e.addrs, k)
		}
	}
	userIdle := e.userHorizon()
	for k, s := range e.users {
		idle := userIdle
		if s.phi != nil {
			idle = max(idle, int64(e.cfg.UnusualPHIAccess.HistoryDays)*int64(24*time.Hour))
		}
		if s.last <= m-idle {
			delete(e.users, k)
		}
	}
	for k, s := range e.sessions {
		if s.last <= m-int64(e.cfg.SessionHijack.Lifetime) {
			delete(e.sessions, k)
		}
	}
	for k, a := range e.alerts {
		if a.last <= m-a.window {
			delete(e.alerts, k)
			delete(e.byID, a.se.ID)
		}
	}
	within := int64(e.cfg.Repeat.Within)
	for k, b := range e.blocks {
		if b.until <= e.mark-within {
			delete(e.blocks, k)
		}
	}
	kept := e.ranges[:0]
	for _, b := range e.ranges {
		if b.until > e.mark {
			kept = append(kept, b)
		}
	}
	clear(e.ranges[len(kept):])
	e.ranges = kept
}

// userHorizon is how long a user's failure, denial and export lists matter.
func (e *Engine) userHorizon() int64 {
	c := e.cfg
	return int64(max(c.FailuresThenSuccess.Window, c.AccountGuessing.Window, c.UnauthorizedAccess.Window, c.DataExport.Window))
}

func unix(ns int64) time.Time {
	if ns == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
