package report

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
)

// The state entities reports read (frozen names: internal/authn,
// internal/monitor and internal/ledger own them). The report decodes only
// the fields it shows; never a secret (a key's hash, a password, a TOTP
// secret).
const (
	entityKey           = "api_key"
	entityRole          = "role"
	entityUser          = "user"
	entityGrant         = "grant"
	entityApproval      = "approval"
	entityBlock         = "block"
	entityLog           = "log"
	entitySecurityEvent = "security_event"
)

// configEntities are the state entities whose changes are system changes.
var configEntities = []string{entityKey, entityRole, entityUser, entityGrant, entityApproval, entityBlock, entityLog}

type userDoc struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Roles        []string `json:"roles"`
	Status       string   `json:"status"`
	StatusReason string   `json:"status_reason"`
	SuspendedAt  string   `json:"suspended_at"`
	TerminatedAt string   `json:"terminated_at"`
}

type roleDoc struct {
	Permissions []string `json:"permissions"`
	ParentRole  string   `json:"parent_role"`
}

type keyDoc struct {
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	RevokedAt string   `json:"revoked_at"`
	Roles     []string `json:"roles"`
}

type grantDoc struct {
	ID         string `json:"id"`
	UserID     string `json:"user_id"`
	Reason     string `json:"reason"`
	PatientID  string `json:"patient_id"`
	OpenedAt   string `json:"opened_at"`
	OpenedBy   string `json:"opened_by"`
	ExpiresAt  string `json:"expires_at"`
	Review     string `json:"review"`
	ReviewedBy string `json:"reviewed_by"`
	ReviewedAt string `json:"reviewed_at"`
	ReviewNote string `json:"review_note"`
}

type blockDoc struct {
	ID           string `json:"id"`
	CIDR         string `json:"cidr"`
	Reason       string `json:"reason"`
	CreatedAt    string `json:"created_at"`
	BlockedUntil string `json:"blocked_until"`
	CreatedBy    string `json:"created_by"`
	LiftedAt     string `json:"lifted_at"`
}

type statusChange struct {
	Status string `json:"status"`
	Note   string `json:"note"`
	By     string `json:"by"`
	At     string `json:"at"`
}

type securityDoc struct {
	ID          string         `json:"id"`
	EventType   string         `json:"event_type"`
	Severity    string         `json:"severity"`
	Description string         `json:"description"`
	User        string         `json:"user"`
	IPAddress   string         `json:"ip_address"`
	Rule        string         `json:"rule"`
	Status      string         `json:"status"`
	Count       int64          `json:"count"`
	History     []statusChange `json:"history"`
	// AdditionalData of the unusual PHI access rule: the day judged and
	// the threshold it exceeded.
	AdditionalData struct {
		Threshold float64 `json:"threshold"`
		Day       string  `json:"day"`
		Count     int64   `json:"count"`
	} `json:"additional_data"`
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t.UTC()
}

func timePtr(s string) *time.Time {
	if s == "" {
		return nil
	}
	t := parseTime(s)
	return &t
}

func in(t, from, to time.Time) bool { return !t.Before(from) && t.Before(to) }

// securityEvents covers the security events raised in the period, each as
// of the checkpoint: the records of security events from the period's
// start on, below the checkpoint.
func (b *Builder) securityEvents(ctx context.Context, r *HIPAA) error {
	recs, err := b.src.StateRecordsOf(ctx, []string{entitySecurityEvent}, r.Period.From, time.Time{}, r.Checkpoint.Size)
	if err != nil {
		return err
	}
	type raised struct {
		index uint64
		at    time.Time
		doc   securityDoc
	}
	byID := map[string]*raised{} // the period's security events: bounded by the rules' de-duplication
	var order []*raised
	for i := range recs {
		rec := &recs[i]
		x := byID[rec.ID]
		if x == nil {
			if rec.Op != leaf.OpCreate || !rec.Timestamp.Before(r.Period.To) {
				continue // raised before the period (or after it)
			}
			x = &raised{index: rec.Index, at: rec.Timestamp.UTC()}
			byID[rec.ID] = x
			order = append(order, x)
		}
		if rec.Op.Puts() {
			json.Unmarshal(rec.Doc, &x.doc)
		}
	}
	se := &r.SecurityEvents
	types, sevs, statuses, ruleT := tally{}, tally{}, tally{}, tally{}
	var acks []float64
	for i := len(order) - 1; i >= 0; i-- { // newest first
		x := order[i]
		d := x.doc
		v := SecurityEvent{ID: d.ID, Index: x.index, Timestamp: x.at, EventType: d.EventType, Severity: d.Severity,
			Description: d.Description, User: d.User, IPAddress: d.IPAddress, Rule: d.Rule, Status: d.Status}
		for _, h := range d.History {
			at := timePtr(h.At)
			if v.AcknowledgedAt == nil && (h.Status == string(custos.StatusAcknowledged) || h.Status == string(custos.StatusResolved)) {
				v.AcknowledgedAt = at
				if at != nil {
					acks = append(acks, at.Sub(x.at).Seconds())
				}
			}
			if h.Status == string(custos.StatusResolved) {
				v.ResolvedAt = at
			}
			if h.Note != "" {
				v.Response = h.Note
			}
		}
		se.Total++
		types.add(d.EventType, 1)
		sevs.add(d.Severity, 1)
		statuses.add(d.Status, 1)
		ruleT.add(cmp.Or(d.Rule, "(reported)"), 1)
		if d.Status == string(custos.StatusOpen) && custos.Severity(d.Severity).Rank() >= custos.SeverityHigh.Rank() {
			se.OpenHighOrCritical = append(se.OpenHighOrCritical, v)
		}
		if d.EventType == string(custos.UnusualPHIAccess) {
			ad := d.AdditionalData
			r.DataAccess.UnusualPatterns = append(r.DataAccess.UnusualPatterns, UnusualPattern{UserID: d.User,
				Day: cmp.Or(ad.Day, x.at.Format(time.DateOnly)), Patients: max(d.Count, ad.Count), Threshold: ad.Threshold,
				Source: "rule", SecurityEventID: d.ID, Severity: d.Severity})
		}
		if d.EventType == string(custos.BruteForce) {
			r.LoginMonitoring.BruteForce++
		}
		if d.EventType == string(custos.AuthFailure) {
			r.LoginMonitoring.AuthFailureSecs++
		}
		if len(se.Events) < b.cfg.MaxListed {
			se.Events = append(se.Events, v)
		} else {
			se.Truncated = true
		}
	}
	se.ByType, se.ByRule = types.counts(), ruleT.counts()
	se.BySeverity = []Count{}
	for _, s := range custos.Severities {
		se.BySeverity = append(se.BySeverity, Count{Key: string(s), Count: sevs[string(s)]})
	}
	se.ByStatus = []Count{}
	for _, s := range []custos.SecurityEventStatus{custos.StatusOpen, custos.StatusAcknowledged, custos.StatusResolved} {
		se.ByStatus = append(se.ByStatus, Count{Key: string(s), Count: statuses[string(s)]})
	}
	se.TimeToAcknowledge = durations(acks)
	sortUnusual(r.DataAccess.UnusualPatterns)
	return nil
}

// durations summarises seconds.
func durations(xs []float64) Durations {
	if len(xs) == 0 {
		return Durations{}
	}
	s := slices.Sorted(slices.Values(xs))
	var sum float64
	for _, x := range s {
		sum += x
	}
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Durations{Count: int64(len(s)), Mean: sum / float64(len(s)), Median: med, Max: s[len(s)-1]}
}

// changes fills the system changes, the blocks of log-in monitoring, and
// the workforce section from the state records of configuration entities:
// their whole history below the checkpoint (administrative records,
// bounded by what administrators do, not by the events).
func (b *Builder) changes(ctx context.Context, r *HIPAA) error {
	recs, err := b.src.StateRecordsOf(ctx, configEntities, time.Time{}, r.Period.To, r.Checkpoint.Size)
	if err != nil {
		return err
	}
	from, to := r.Period.From, r.Period.To
	seen := map[leaf.StateKey]bool{}
	users := map[string]*userTimeline{}
	entities := tally{}
	sc := &r.SystemChanges
	for i := range recs {
		rec := &recs[i]
		first := !seen[rec.Key()]
		seen[rec.Key()] = true
		if rec.Entity == entityUser && rec.Op.Puts() {
			var u userDoc
			json.Unmarshal(rec.Doc, &u)
			b.userRecord(r, users, rec, u)
		}
		if !in(rec.Timestamp, from, to) {
			continue
		}
		if rec.Entity == entityBlock && rec.Op.Puts() {
			b.blockRecord(r, rec)
		}
		op := "update"
		switch {
		case rec.Op == leaf.OpDelete:
			op = "delete"
		case rec.Op == leaf.OpCreate || first:
			op = "create"
		}
		sc.Total++
		entities.add(rec.Entity, 1)
		if len(sc.Changes) == b.cfg.MaxListed {
			sc.Truncated = true
			continue
		}
		sc.Changes = append(sc.Changes, Change{Index: rec.Index, Timestamp: rec.Timestamp.UTC(), Entity: rec.Entity,
			ID: rec.ID, Op: op, By: rec.SubmittedBy, Summary: summary(rec)})
	}
	sc.ByEntity = entities.counts()
	if err := b.afterTermination(ctx, r, users); err != nil {
		return err
	}
	byIndex := func(a, b InactiveLogin) int { return cmp.Compare(a.Index, b.Index) }
	slices.SortFunc(r.Workforce.ActivityAfterTermination, byIndex)
	slices.SortFunc(r.LoginMonitoring.InactiveLogins, byIndex)
	return nil
}

// summary says in a few words what a configuration record set, never a
// secret.
func summary(rec *leaf.StateRecord) string {
	if !rec.Op.Puts() {
		return "removed"
	}
	switch rec.Entity {
	case entityUser:
		var u userDoc
		json.Unmarshal(rec.Doc, &u)
		s := fmt.Sprintf("status %s; roles %s", u.Status, strings.Join(u.Roles, ", "))
		if u.StatusReason != "" {
			s += "; reason: " + u.StatusReason
		}
		return s
	case entityRole:
		var d roleDoc
		json.Unmarshal(rec.Doc, &d)
		s := "permissions " + strings.Join(d.Permissions, ", ")
		if d.ParentRole != "" {
			s += "; parent " + d.ParentRole
		}
		return s
	case entityKey:
		var d keyDoc
		json.Unmarshal(rec.Doc, &d)
		if d.RevokedAt != "" {
			return fmt.Sprintf("key %q revoked", d.Name)
		}
		return fmt.Sprintf("key %q, scopes %s", d.Name, strings.Join(append(d.Scopes, d.Roles...), ", "))
	case entityGrant:
		var g grantDoc
		json.Unmarshal(rec.Doc, &g)
		return fmt.Sprintf("emergency grant for %s, review %s", g.UserID, g.Review)
	case entityBlock:
		var d blockDoc
		json.Unmarshal(rec.Doc, &d)
		if d.LiftedAt != "" {
			return "block of " + d.CIDR + " lifted"
		}
		return "block of " + d.CIDR + " until " + d.BlockedUntil
	}
	return ""
}

// blockRecord notes a block placed or lifted in the period.
func (b *Builder) blockRecord(r *HIPAA, rec *leaf.StateRecord) {
	var d blockDoc
	json.Unmarshal(rec.Doc, &d)
	lm := &r.LoginMonitoring
	if d.LiftedAt != "" {
		lm.Lifted++
		for i := range lm.Blocks {
			if lm.Blocks[i].ID == d.ID {
				lm.Blocks[i].Lifted = true
			}
		}
		return
	}
	if len(lm.Blocks) < b.cfg.MaxListed {
		lm.Blocks = append(lm.Blocks, Block{ID: d.ID, CIDR: d.CIDR, Reason: d.Reason, CreatedAt: parseTime(d.CreatedAt),
			CreatedBy: d.CreatedBy, BlockedUntil: parseTime(d.BlockedUntil)})
	}
}

// userTimeline is when a user's account was not active: the intervals
// [start, end) during which they were suspended or terminated.
type userTimeline struct {
	status   string
	since    time.Time
	inactive []inactive
}

type inactive struct {
	status     string
	start, end time.Time // end zero: still
}

// userRecord follows a user's status through their records, and notes the
// period's status changes.
func (b *Builder) userRecord(r *HIPAA, users map[string]*userTimeline, rec *leaf.StateRecord, u userDoc) {
	t := users[rec.ID]
	if t == nil {
		t = &userTimeline{status: StatusActive}
		users[rec.ID] = t
	}
	if u.Status == t.status {
		return
	}
	at := rec.Timestamp.UTC()
	if t.status != StatusActive && len(t.inactive) > 0 {
		t.inactive[len(t.inactive)-1].end = at
	}
	if u.Status != StatusActive {
		t.inactive = append(t.inactive, inactive{status: u.Status, start: at})
	}
	old := t.status
	t.status = u.Status
	if !in(at, r.Period.From, r.Period.To) {
		return
	}
	c := AccountChange{Index: rec.Index, Timestamp: at, UserID: rec.ID, Status: u.Status, Reason: u.StatusReason, By: rec.SubmittedBy}
	wf := &r.Workforce
	switch {
	case u.Status == StatusSuspended:
		wf.Suspended = append(wf.Suspended, c)
	case u.Status == StatusTerminated:
		wf.Terminated = append(wf.Terminated, c)
	case u.Status == StatusActive && old == StatusSuspended:
		wf.Reinstated = append(wf.Reinstated, c)
	}
}

// The statuses of a user account (internal/authn).
const (
	StatusActive     = "active"
	StatusSuspended  = "suspended"
	StatusTerminated = "terminated"
)

// afterTermination finds the audit events by users while their accounts
// were suspended or terminated, within the period: one indexed search per
// such interval.
func (b *Builder) afterTermination(ctx context.Context, r *HIPAA, users map[string]*userTimeline) error {
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range users {
			if !yield(id) {
				return
			}
		}
	})
	wf, lm := &r.Workforce, &r.LoginMonitoring
	for _, id := range ids {
		for _, iv := range users[id].inactive {
			from, to := maxTime(iv.start, r.Period.From), r.Period.To
			if !iv.end.IsZero() && iv.end.Before(to) {
				to = iv.end
			}
			if !from.Before(to) {
				continue
			}
			err := b.searchUser(ctx, id, from, to, r.Checkpoint.Size, func(e *custos.Event) bool {
				a := InactiveLogin{Index: e.Index, Timestamp: e.Timestamp.UTC(), UserID: id, Status: iv.status,
					Action: string(e.Action), IPAddress: e.IPAddress, Source: e.Source}
				if e.Action == custos.ActionLogin && e.Outcome == custos.OutcomeSuccess && len(lm.InactiveLogins) < b.cfg.MaxListed {
					lm.InactiveLogins = append(lm.InactiveLogins, a)
				}
				if len(wf.ActivityAfterTermination) == b.cfg.MaxListed {
					wf.Truncated = true
					return false
				}
				wf.ActivityAfterTermination = append(wf.ActivityAfterTermination, a)
				return true
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// searchUser calls fn with a user's events in [from, to) below size, newest
// first, until fn returns false.
func (b *Builder) searchUser(ctx context.Context, user string, from, to time.Time, size uint64, fn func(*custos.Event) bool) error {
	return b.search(ctx, store.Query{User: user, From: from, To: to.Add(-time.Microsecond)}, size, fn)
}

// search pages through an indexed query, newest first, skipping events at
// or beyond the checkpoint, until fn returns false.
func (b *Builder) search(ctx context.Context, q store.Query, size uint64, fn func(*custos.Event) bool) error {
	q.Limit = store.MaxLimit
	for {
		evs, err := b.src.Events(ctx, q)
		if err != nil {
			return err
		}
		for i := range evs {
			if evs[i].Index >= size {
				continue
			}
			if !fn(&evs[i]) {
				return nil
			}
		}
		if len(evs) < q.Limit {
			return nil
		}
		last := evs[len(evs)-1]
		q.After = &store.Cursor{Timestamp: last.Timestamp, Index: last.Index}
	}
}

// emergency lists the emergency grants opened in the period, as of the
// checkpoint, and the events flagged break-the-glass.
func (b *Builder) emergency(ctx context.Context, r *HIPAA, w store.Window, inPeriod bool) error {
	ea := &r.EmergencyAccess
	recs, err := b.src.StateRecordsOf(ctx, []string{entityGrant}, r.Period.From, time.Time{}, r.Checkpoint.Size)
	if err != nil {
		return err
	}
	latest := map[string]grantDoc{}
	var ids []string
	for _, rec := range recs {
		if !rec.Op.Puts() {
			continue
		}
		var g grantDoc
		json.Unmarshal(rec.Doc, &g)
		if _, ok := latest[g.ID]; !ok {
			ids = append(ids, g.ID)
		}
		latest[g.ID] = g
	}
	for _, id := range ids {
		g := latest[id]
		opened := parseTime(g.OpenedAt)
		if !in(opened, r.Period.From, r.Period.To) {
			continue
		}
		v := Grant{ID: g.ID, UserID: g.UserID, PatientID: g.PatientID, Reason: g.Reason, OpenedAt: opened, OpenedBy: g.OpenedBy,
			ExpiresAt: parseTime(g.ExpiresAt), Review: g.Review, ReviewedBy: g.ReviewedBy, ReviewedAt: timePtr(g.ReviewedAt), ReviewNote: g.ReviewNote}
		err := b.searchUser(ctx, g.UserID, v.OpenedAt, v.ExpiresAt, r.Checkpoint.Size, func(e *custos.Event) bool {
			if e.BreakGlass {
				v.Events++
			}
			return true
		})
		if err != nil {
			return err
		}
		if g.Review == "closed" {
			ea.ReviewsClosed++
		} else {
			ea.ReviewsOpen++
		}
		ea.Grants = append(ea.Grants, v)
	}
	if !inPeriod {
		return nil
	}
	var uses []EmergencyUse
	err = b.pageWindow(ctx, w, store.EventFilter{BreakGlass: true}, func(e *custos.Event) bool {
		if len(uses) == b.cfg.MaxListed {
			ea.Truncated = true
			return false
		}
		uses = append(uses, EmergencyUse{Index: e.Index, Timestamp: e.Timestamp.UTC(), UserID: e.User.ID, Action: string(e.Action),
			ResourceType: e.ResourceType, ResourceID: e.ResourceID, PatientID: e.PatientID, Reason: e.BreakGlassReason})
		return true
	})
	slices.Reverse(uses) // newest first
	ea.Uses = nonNil(uses)
	return err
}
