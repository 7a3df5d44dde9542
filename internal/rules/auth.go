package rules

import (
	"time"

	"github.com/custos-audit/custos"
)

// addrState is what the rules keep per address key.
type addrState struct {
	fails times    // failed logins, the newest addrCap
	users distinct // distinct users failing from this key (password spraying)
	last  int64    // latest event time: idle keys are evicted
}

// userState is what the rules keep per user id.
type userState struct {
	fails   times    // failed logins (failures then success)
	keys    distinct // distinct address keys failing for this user (account guessing)
	denials times    // denials (unauthorized access)
	exports []export // exports within the window (data export)
	phi     *phiState
	last    int64
}

func (e *Engine) addr(k addrKey, t int64) *addrState {
	s := e.addrs[k]
	if s == nil {
		s = &addrState{}
		e.addrs[k] = s
	}
	s.last = max(s.last, t)
	return s
}

func (e *Engine) user(id string, t int64) *userState {
	s := e.users[id]
	if s == nil {
		s = &userState{}
		e.users[string([]byte(id))] = s // a copy: never pin the caller's buffer
	}
	s.last = max(s.last, t)
	return s
}

// horizon is the time at or before which a window of w no longer matters
// to any event that may still open an alert.
func (e *Engine) horizon(w time.Duration) int64 { return e.mark - e.allowance - int64(w) }

// authFailure handles a failed login (each: raise it as an AUTH_FAILURE)
// or a reported AUTH_FAILURE.
func (e *Engine) authFailure(c *cause, user, ip string, each bool, out *[]Outcome) {
	cfg := &e.cfg
	k, hasKey := e.addrKeyOf(ip)
	if each && cfg.AuthFailure.Enabled {
		se := custos.SecurityEvent{EventType: custos.AuthFailure, Severity: cfg.AuthFailure.Severity,
			Description: "failed login", User: user, IPAddress: ip}
		e.raise(alertKey{rule: RuleAuthFailure, name: "login:" + user + "@" + ip}, c, se, 1, c.t, 0, nil, false, out)
	}
	if hasKey {
		s := e.addr(k, c.t)
		pos := s.fails.add(c.t, e.mark-e.allowance-e.addrWindow, e.addrCap)
		e.addrRule(RuleBruteForce, cfg.BruteForce, k, c, s.fails, pos, "failed logins", out)
		e.addrRule(RuleSlowBruteForce, cfg.SlowBruteForce, k, c, s.fails, pos, "failed logins", out)
		if sp := cfg.PasswordSpraying; sp.Enabled && user != "" {
			s.users.touch(hash(user), c.t, e.horizon(sp.Window), sp.Threshold)
			w := int64(sp.Window)
			n := max(s.users.count(c.t, w), s.users.count(s.users.newest(c.t), w))
			e.hit(RulePasswordSpraying, sp, k, c, n >= sp.Threshold, n, s.users.first(c.t, w), "users with failed logins", out)
		}
	}
	if user == "" {
		return
	}
	u := e.user(user, c.t)
	if r := cfg.FailuresThenSuccess; r.Enabled {
		u.fails.add(c.t, e.horizon(r.Window), r.Threshold)
	}
	if r := cfg.AccountGuessing; r.Enabled && hasKey {
		u.keys.touch(hashKey(k), c.t, e.horizon(r.Window), r.Threshold)
		n := u.keys.count(c.t, int64(r.Window))
		ak := alertKey{rule: RuleAccountGuessing, name: user}
		if a := e.open(ak, c); a != nil {
			e.update(a, c, "", out)
		} else if n >= r.Threshold && c.onTime {
			se := custos.SecurityEvent{EventType: custos.BruteForce, Severity: r.Severity, User: user,
				Description: describe("failed logins for one user from %d address keys within %s", n, r.Window)}
			e.raise(ak, c, se, n, u.keys.first(c.t, int64(r.Window)), r.Window, map[string]any{"window": r.Window.String(),
				"threshold": r.Threshold}, false, out)
		}
	}
}

// addrRule handles a failure for a threshold rule over the failure times
// of an address key.
func (e *Engine) addrRule(rule string, r Threshold, k addrKey, c *cause, fails times, pos int, what string, out *[]Outcome) {
	if !r.Enabled {
		return
	}
	w := int64(r.Window)
	n := max(fails.count(c.t, w), r.Threshold)
	e.hit(rule, r, k, c, fails.crossed(pos, r.Threshold, w), n, fails.first(c.t, w), what, out)
}

// hit is one hit of an address-keyed threshold rule: it updates the open
// alert of (rule, key), or raises one if the hit crossed the threshold, is
// on time and the key is not blocked already; then blocks the key unless it
// is allow-listed.
func (e *Engine) hit(rule string, r Threshold, k addrKey, c *cause, crossed bool, n int, first int64, what string, out *[]Outcome) {
	ak := alertKey{rule: rule, addr: k}
	if a := e.open(ak, c); a != nil {
		e.update(a, c, "", out)
		return
	}
	if !crossed || !c.onTime || e.inForce(k, c) {
		return
	}
	allow := e.allowListed(k)
	key := e.keyText(k)
	desc := describe("%d %s from %s within %s", n, what, key, r.Window)
	se := custos.SecurityEvent{EventType: custos.BruteForce, Severity: r.Severity, Description: desc, IPAddress: key}
	e.raise(ak, c, se, n, first, r.Window, map[string]any{"window": r.Window.String(), "threshold": r.Threshold}, allow, out)
	if r.Block > 0 && !allow {
		e.block(k, rule, r.Block, c, desc, out)
	}
}

// loginSuccess raises failures_then_success for a successful login whose
// user, or else whose address key, had enough failures just before. It is
// raised even from a blocked key: a success there means the block was not
// enforced by whoever sent the event.
func (e *Engine) loginSuccess(c *cause, user, ip string, out *[]Outcome) {
	r := e.cfg.FailuresThenSuccess
	if !r.Enabled {
		return
	}
	w := int64(r.Window)
	var ak alertKey
	n, first := 0, c.t
	if u := e.users[user]; user != "" && u != nil {
		n, first, ak = u.fails.count(c.t, w), u.fails.first(c.t, w), alertKey{rule: RuleFailuresThenSuccess, name: user}
	}
	k, hasKey := e.addrKeyOf(ip)
	if n < r.Threshold && hasKey {
		if s := e.addrs[k]; s != nil {
			n, first, ak = s.fails.count(c.t, w), s.fails.first(c.t, w), alertKey{rule: RuleFailuresThenSuccess, addr: k}
		}
	}
	if n < r.Threshold {
		return
	}
	if a := e.open(ak, c); a != nil {
		e.update(a, c, "", out)
		return
	}
	if !c.onTime {
		return
	}
	se := custos.SecurityEvent{EventType: custos.BruteForce, Severity: r.Severity, User: user, IPAddress: ip,
		Description: describe("successful login after %d failed logins within %s", n, r.Window)}
	e.raise(ak, c, se, n, first, r.Window, map[string]any{"window": r.Window.String(), "threshold": r.Threshold}, false, out)
}

// denial counts a denied request or authorization of user.
func (e *Engine) denial(c *cause, user, ip string, out *[]Outcome) {
	r := e.cfg.UnauthorizedAccess
	if !r.Enabled || user == "" || len(r.Levels) == 0 {
		return
	}
	u := e.user(user, c.t)
	w := int64(r.Window)
	pos := u.denials.add(c.t, e.horizon(r.Window), r.Levels[len(r.Levels)-1].Threshold)
	var sev custos.Severity
	if c.onTime {
		for _, l := range r.Levels {
			if u.denials.crossed(pos, l.Threshold, w) {
				sev = l.Severity
			}
		}
	}
	ak := alertKey{rule: RuleUnauthorizedAccess, name: user}
	if a := e.open(ak, c); a != nil {
		e.update(a, c, sev, out)
		return
	}
	if sev == "" {
		return
	}
	n := u.denials.count(c.t, w)
	se := custos.SecurityEvent{EventType: custos.UnauthorizedAccess, Severity: sev, User: user, IPAddress: ip,
		Description: describe("%d denied requests or authorizations within %s", n, r.Window)}
	e.raise(ak, c, se, n, u.denials.first(c.t, w), r.Window, map[string]any{"window": r.Window.String()}, false, out)
}

// hashKey is an address key's 64-bit FNV-1a hash.
func hashKey(k addrKey) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range k {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return h
}
