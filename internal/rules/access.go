package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/custos-audit/custos"
)

// sessionState is what SESSION_HIJACK keeps per session id: the address key
// and user agent it was first seen with.
type sessionState struct {
	addr           addrKey
	ua             uint64
	hasAddr, hasUA bool
	last           int64
}

// session checks one use of a session id against its first address key and
// user agent.
func (e *Engine) session(c *cause, ev *custos.Event, out *[]Outcome) {
	r := e.cfg.SessionHijack
	k, hasAddr := e.addrKeyOf(ev.IPAddress)
	var ua uint64
	if ev.UserAgent != "" {
		ua = hash(ev.UserAgent)
	}
	s := e.sessions[ev.SessionID]
	if s == nil || c.t-s.last >= int64(r.Lifetime) {
		if s == nil {
			s = &sessionState{}
			e.sessions[string([]byte(ev.SessionID))] = s
		}
		*s = sessionState{addr: k, hasAddr: hasAddr, ua: ua, hasUA: ev.UserAgent != "", last: c.t}
		return
	}
	newAddr := r.Addresses && hasAddr && s.hasAddr && s.addr != k
	newUA := r.UserAgents && ev.UserAgent != "" && s.hasUA && s.ua != ua
	if !s.hasAddr && hasAddr {
		s.addr, s.hasAddr = k, true
	}
	if !s.hasUA && ev.UserAgent != "" {
		s.ua, s.hasUA = ua, true
	}
	first := s.addr
	s.last = max(s.last, c.t)
	if !newAddr && !newUA {
		return
	}
	ak := alertKey{rule: RuleSessionHijack, name: ev.SessionID}
	if a := e.open(ak, c); a != nil {
		e.update(a, c, "", out)
		return
	}
	if !c.onTime {
		return
	}
	what := "another user agent"
	if newAddr {
		what = "another network (" + e.keyText(k) + ", first " + e.keyText(first) + ")"
	}
	sum := sha256.Sum256([]byte(ev.SessionID))
	se := custos.SecurityEvent{EventType: custos.SessionHijack, Severity: r.Severity, User: ev.User.ID, IPAddress: ev.IPAddress,
		Description: "one session used from " + what}
	e.raise(ak, c, se, 2, c.t, r.Lifetime, map[string]any{"session_sha256": hex.EncodeToString(sum[:8]),
		"new_address": newAddr, "new_user_agent": newUA}, false, out)
}

// export is one EXPORT's size and time, for a user's sliding sum.
type export struct {
	t, n int64
}

// maxExports bounds the exports kept per user: beyond it the two oldest are
// merged at the later time, which can only make the sum larger, never hide
// a bulk export.
const maxExports = 256

// export raises DATA_EXPORT for every EXPORT, at BulkSeverity when the
// user's records in the window pass MaxRecords or the export is outside
// working hours.
func (e *Engine) export(c *cause, ev *custos.Event, out *[]Outcome) {
	r := e.cfg.DataExport
	n := recordCount(ev.Changes, r.RecordCountField)
	u := e.user(ev.User.ID, c.t)
	h := e.horizon(r.Window)
	kept := u.exports[:0]
	for _, x := range u.exports {
		if x.t > h {
			kept = append(kept, x)
		}
	}
	u.exports = append(kept, export{t: c.t, n: n})
	if len(u.exports) > maxExports {
		u.exports[1].n += u.exports[0].n
		u.exports = u.exports[1:]
	}
	var sum int64
	for _, x := range u.exports {
		if x.t > c.t-int64(r.Window) && x.t <= c.t {
			sum += x.n
		}
	}
	bulk := sum > int64(r.MaxRecords)
	offHours := !r.WorkingHours.Contains(unix(c.t), e.cfg.Location)
	sev, desc := r.Severity, "export of "+strconv.FormatInt(n, 10)+" records"
	if bulk || offHours {
		sev = r.BulkSeverity
	}
	if bulk {
		desc += "; " + strconv.FormatInt(sum, 10) + " records by this user within " + r.Window.String()
	}
	if offHours {
		desc += "; outside working hours"
	}
	se := custos.SecurityEvent{EventType: custos.DataExport, Severity: sev, User: ev.User.ID, IPAddress: ev.IPAddress, Description: desc}
	e.raise(alertKey{rule: RuleDataExport, name: "export:" + ev.User.ID}, c, se, 1, c.t, 0, map[string]any{
		"records": n, "records_in_window": sum, "bulk": bulk, "outside_working_hours": offHours,
		"resource_type": ev.ResourceType}, false, out)
}

// recordCount reads the positive integer member field of an export's
// changes object; 1 when absent or not a positive integer.
func recordCount(changes json.RawMessage, field string) int64 {
	if len(changes) == 0 || field == "" {
		return 1
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(changes, &m) != nil {
		return 1
	}
	v, err := strconv.ParseInt(string(m[field]), 10, 64)
	if err != nil || v < 1 {
		return 1
	}
	return min(v, 1<<40)
}

// configChange raises CONFIGURATION_CHANGE for a change Custos recorded.
func (e *Engine) configChange(c *cause, ev *custos.Event, out *[]Outcome) {
	r := e.cfg.ConfigurationChange
	se := custos.SecurityEvent{EventType: custos.ConfigurationChange, Severity: r.Severity, User: ev.User.ID,
		IPAddress: ev.IPAddress, Description: string(ev.Action) + " " + ev.ResourceType + " " + ev.ResourceID}
	e.raise(alertKey{rule: RuleConfigurationChange, name: ev.ResourceType + ":" + ev.ResourceID}, c, se, 1, c.t, 0,
		map[string]any{"resource_type": ev.ResourceType, "resource_id": ev.ResourceID, "action": ev.Action}, false, out)
}
