package rules

import (
	"math"
	"slices"
	"time"

	"github.com/custos-audit/custos"
)

// maxPatientsPerDay bounds the distinct patients remembered per user-day;
// beyond it every access counts as a new patient (the alert has long fired).
const maxPatientsPerDay = 1 << 16

// maxPeerSamples bounds the user-days remembered per role.
const maxPeerSamples = 1024

// dayCount is one user-day: the day number and its distinct patients.
type dayCount struct {
	day int32
	n   int32
}

// phiState is the PHI baseline of one user: today's distinct patients and
// the counts of past active days.
type phiState struct {
	day       int32
	patients  map[uint64]struct{}
	n         int
	threshold float64 // today's; 0 while unknown, -1 when no baseline
	alerted   bool
	history   []dayCount // the last HistoryDays active days, oldest first
	roles     []string
}

// peers is the user-days of one role's users, for users with a short
// history; the threshold is cached per day.
type peers struct {
	samples   []dayCount
	next      int
	day       int32
	threshold float64
}

// dayCache is the current day of the configured zone, so that most events
// find their day without a time zone conversion.
type dayCache struct {
	start, end int64
	day        int32
}

// dayOf is the day number (days since 1970-01-01 in the configured zone) of
// the event time t.
func (e *Engine) dayOf(t int64) int32 {
	if t >= e.day.start && t < e.day.end {
		return e.day.day
	}
	y, m, d := unix(t).In(e.cfg.Location).Date()
	start := time.Date(y, m, d, 0, 0, 0, 0, e.cfg.Location)
	day := int32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
	e.day = dayCache{start: start.UnixNano(), end: start.AddDate(0, 0, 1).UnixNano(), day: day}
	return day
}

// phiAccess counts a successful access to a patient's data against the
// user's baseline.
func (e *Engine) phiAccess(c *cause, ev *custos.Event, out *[]Outcome) {
	r := e.cfg.UnusualPHIAccess
	u := e.user(ev.User.ID, c.t)
	day := e.dayOf(c.t)
	p := u.phi
	if p == nil {
		p = &phiState{day: day, patients: map[uint64]struct{}{}}
		u.phi = p
	}
	switch {
	case day < p.day:
		e.stats.Stale++ // a day already closed for this user
		return
	case day > p.day:
		e.closeDay(p)
		p.day, p.n, p.threshold, p.alerted = day, 0, 0, false
	}
	if len(ev.User.Roles) > 0 && !slices.Equal(p.roles, ev.User.Roles) {
		p.roles = slices.Clone(ev.User.Roles)
	}
	h := hash(ev.PatientID)
	if _, seen := p.patients[h]; seen {
		return
	}
	if len(p.patients) < maxPatientsPerDay {
		p.patients[h] = struct{}{}
	}
	p.n++
	if p.alerted || !c.onTime || p.n <= r.MinPatients {
		return
	}
	if p.threshold == 0 {
		p.threshold = e.phiThreshold(p)
	}
	if p.threshold < 0 || float64(p.n) <= p.threshold {
		return
	}
	p.alerted = true
	se := custos.SecurityEvent{EventType: custos.UnusualPHIAccess, Severity: r.Severity, User: ev.User.ID, IPAddress: ev.IPAddress,
		Description: describe("%d distinct patients today, above this user's baseline of %.1f", p.n, p.threshold)}
	e.raise(alertKey{rule: RuleUnusualPHIAccess, name: ev.User.ID}, c, se, p.n, e.day.start, 0,
		map[string]any{"threshold": p.threshold, "day": unix(e.day.start).Format(time.DateOnly)}, false, out)
}

// closeDay moves a finished day into the user's history and the peers of
// their roles.
func (e *Engine) closeDay(p *phiState) {
	if p.n == 0 {
		return
	}
	dc := dayCount{day: p.day, n: int32(min(p.n, math.MaxInt32))}
	e.remember(p, dc)
	clear(p.patients)
}

func (e *Engine) remember(p *phiState, dc dayCount) {
	p.history = append(p.history, dc)
	if keep := e.cfg.UnusualPHIAccess.HistoryDays; len(p.history) > keep {
		p.history = p.history[:copy(p.history, p.history[len(p.history)-keep:])]
	}
	for _, role := range p.roles {
		g := e.roles[role]
		if g == nil {
			g = &peers{day: -1}
			e.roles[role] = g
		}
		if len(g.samples) < maxPeerSamples {
			g.samples = append(g.samples, dc)
		} else {
			g.samples[g.next] = dc
			g.next = (g.next + 1) % maxPeerSamples
		}
	}
}

// phiThreshold is the count above which today is unusual for the user: from
// their own history when long enough, else the most lenient of their roles'
// peer thresholds; -1 when there is no baseline yet.
func (e *Engine) phiThreshold(p *phiState) float64 {
	r := e.cfg.UnusualPHIAccess
	from := p.day - int32(r.HistoryDays)
	own := make([]float64, 0, len(p.history))
	for _, d := range p.history {
		if d.day >= from && d.day < p.day {
			own = append(own, float64(d.n))
		}
	}
	if len(own) >= r.MinHistoryDays {
		return e.robust(own)
	}
	best := -1.0
	for _, role := range p.roles {
		g := e.roles[role]
		if g == nil {
			continue
		}
		if g.day != p.day {
			var xs []float64
			for _, d := range g.samples {
				if d.day >= from && d.day < p.day {
					xs = append(xs, float64(d.n))
				}
			}
			g.day, g.threshold = p.day, -1
			if len(xs) >= r.MinPeerSamples {
				g.threshold = e.robust(xs)
			}
		}
		best = max(best, g.threshold)
	}
	return best
}

// robust is median + z × 1.4826 × max(MAD, floor), at least MinPatients.
func (e *Engine) robust(xs []float64) float64 { return e.cfg.UnusualPHIAccess.Threshold(xs) }

// Threshold is the count of distinct patients in a day above which a day
// is unusual against the history xs (past days' counts): median + ZScore ×
// 1.4826 × max(MAD, MADFloor), at least MinPatients. Reports judge past
// days with it as the rule judges the current one.
func (r Baseline) Threshold(xs []float64) float64 {
	med := median(xs)
	dev := make([]float64, len(xs))
	for i, x := range xs {
		dev[i] = math.Abs(x - med)
	}
	mad := max(median(dev), r.MADFloor)
	return max(float64(r.MinPatients), med+r.ZScore*1.4826*mad)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// SeedBaseline adds one past day of a user's PHI access (distinct patients
// on day, in the configured zone) to their baseline and their roles'
// peers. At a restart, call it for the days before the replayed events,
// oldest first, from the store's counts: the baseline spans weeks, longer
// than Rebuild replays.
func (e *Engine) SeedBaseline(userID string, roles []string, day time.Time, patients int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if patients <= 0 {
		return
	}
	y, m, d := day.In(e.cfg.Location).Date()
	dn := int32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
	u := e.user(userID, day.UnixNano())
	if u.phi == nil {
		u.phi = &phiState{day: dn, patients: map[uint64]struct{}{}}
	}
	if len(roles) > 0 {
		u.phi.roles = slices.Clone(roles)
	}
	e.remember(u.phi, dayCount{day: dn, n: int32(min(patients, math.MaxInt32))})
	if dn >= u.phi.day {
		u.phi.day, u.phi.threshold = dn+1, 0
	}
}
