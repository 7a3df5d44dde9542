package report

import (
	"context"
	"fmt"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// HIPAA computes the HIPAA report of [req.From, req.To) from the ledger as
// the latest signed checkpoint has it. The period must pass CheckPeriod. A
// ledger that fails the integrity checks still gets its report, with the
// failure in Integrity.
func (b *Builder) HIPAA(ctx context.Context, req Request) (*HIPAA, error) {
	if err := b.CheckPeriod(req.From, req.To); err != nil {
		return nil, err
	}
	h, err := b.header(ctx, KindHIPAA, "HIPAA compliance report", req.From, req.To, req.GeneratedBy)
	if err != nil {
		return nil, err
	}
	r := &HIPAA{Header: h}
	r.init(b.cfg)
	from, to := r.Period.From, r.Period.To
	w, inPeriod, err := b.src.EventWindow(ctx, from, to, h.Checkpoint.Size)
	if err != nil {
		return nil, err
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"integrity", func() (err error) { r.Integrity, err = b.integrity(ctx, &r.Header, w, inPeriod); return err }},
		{"access summary", func() error { return b.eventCounts(ctx, r, w, inPeriod) }},
		{"unusual PHI access", func() error { return b.unusual(ctx, r) }},
		{"disclosures", func() error { return b.exports(ctx, r, w, inPeriod) }},
		{"emergency access", func() error { return b.emergency(ctx, r, w, inPeriod) }},
		{"security events", func() error { return b.securityEvents(ctx, r) }},
		{"system changes and workforce", func() error { return b.changes(ctx, r) }},
	}
	for i, s := range steps {
		if req.Progress != nil {
			req.Progress(i+1, len(steps), s.name)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.run(); err != nil {
			return nil, fmt.Errorf("report: %s: %w", s.name, err)
		}
	}
	if !r.Integrity.OK {
		r.Warning = r.Integrity.Summary
	}
	return r, nil
}

// init gives every section its title and regulation and every list its
// empty value.
func (r *HIPAA) init(cfg Config) {
	r.Scope = Scope{SectionInfo: SectionInfo{"Period and scope", RegScope}, Sources: []string{},
		RetentionDays: int(cfg.Retention / (24 * time.Hour)), MaxPeriodDays: int(cfg.MaxPeriod / (24 * time.Hour)), IncludesServer: true}
	for _, a := range custos.Actions {
		r.Scope.Actions = append(r.Scope.Actions, string(a))
	}
	for _, t := range custos.SecurityEventTypes {
		r.Scope.SecurityTypes = append(r.Scope.SecurityTypes, string(t))
	}
	r.AccessSummary = AccessSummary{SectionInfo: SectionInfo{"Information system activity review", RegReview}, TopN: cfg.TopN}
	r.LoginMonitoring = LoginMonitoring{SectionInfo: SectionInfo{"Log-in monitoring", RegLogin},
		Blocks: []Block{}, InactiveLogins: []InactiveLogin{}}
	r.SecurityEvents = SecurityEvents{SectionInfo: SectionInfo{"Security incidents and response", RegIncidents},
		OpenHighOrCritical: []SecurityEvent{}, Events: []SecurityEvent{}}
	r.DataAccess = DataAccess{SectionInfo: SectionInfo{"Access to protected health information", RegMinimumNec},
		UnusualPatterns: []UnusualPattern{}, Exports: Exports{Disclosures: []Disclosure{}}}
	r.EmergencyAccess = EmergencyAccess{SectionInfo: SectionInfo{"Emergency (break-the-glass) access", RegEmergency},
		Grants: []Grant{}, Uses: []EmergencyUse{}}
	r.SystemChanges = SystemChanges{SectionInfo: SectionInfo{"System, role and permission changes", RegAccessMgmt}, Changes: []Change{}}
	r.Workforce = Workforce{SectionInfo: SectionInfo{"Workforce security: suspensions and terminations", RegTermination},
		Suspended: []AccountChange{}, Terminated: []AccountChange{}, Reinstated: []AccountChange{}, ActivityAfterTermination: []InactiveLogin{}}
}

// eventCounts fills every count of the audit events: the access summary,
// log-in monitoring's counts and the PHI access review, with one GROUP BY
// per dimension in the store.
func (b *Builder) eventCounts(ctx context.Context, r *HIPAA, w store.Window, inPeriod bool) error {
	as, lm, da := &r.AccessSummary, &r.LoginMonitoring, &r.DataAccess
	empty := []Count{}
	as.ByAction, as.ByResourceType, as.ByRole, as.ByUser, as.BySource, as.TopAccessors = empty, empty, empty, empty, empty, empty
	lm.FailuresByUser, lm.FailuresByIP = empty, empty
	da.AccessByRole, da.AccessByUser, da.AccessByAction, da.Exports.ByUser = empty, empty, empty, empty
	as.ByDay, lm.FailuresByDay = everyDay(r.Period.From, r.Period.To, nil), everyDay(r.Period.From, r.Period.To, nil)
	if !inPeriod {
		return nil
	}
	n := b.cfg.TopN
	byAction, phiByAction, byType, bySource, byRole, phiByRole, days, failDays := tally{}, tally{}, tally{}, tally{}, tally{}, tally{}, tally{}, tally{}
	events, phi, exports, flagged, failures, ips := newTop(n), newTop(n), newTop(n), newTop(n), newTop(n), newTop(n)
	dims := []store.Dimension{store.ByAction, store.ByResourceType, store.BySource, store.ByRoles, store.ByUser, store.ByDay, store.ByIP, store.ByPatient}
	// One read of the window: every breakdown at once. The per-user and
	// per-address groups (as many as there are) stream into top-N heaps;
	// the per-patient groups are only counted.
	err := b.src.CountEvents(ctx, w, dims, store.EventFilter{}, func(d store.Dimension, k string, m store.Measures) error {
		switch d {
		case store.ByAction:
			byAction.add(k, m.Events)
			phiByAction.add(k, m.PHI)
			as.TotalEvents += m.Events
			as.Failures += m.Failures
			lm.Successes += m.LoginSuccess
			lm.Failures += m.LoginFailure
			lm.Logouts += m.Logouts
			da.TotalPHIAccess += m.PHI
			da.Exports.Total += m.Exports
			r.EmergencyAccess.FlaggedEvents += m.BreakGlass
		case store.ByResourceType:
			byType.add(k, m.Events)
		case store.BySource:
			bySource.add(k, m.Events)
		case store.ByRoles:
			for _, role := range roleKeys(k) {
				byRole.add(role, m.Events)
				phiByRole.add(role, m.PHI)
			}
		case store.ByUser:
			as.UsersTotal++
			events.add(k, m.Events)
			phi.add(k, m.PHI)
			exports.add(k, m.Exports)
			flagged.add(k, m.BreakGlass)
			failures.add(k, m.LoginFailure)
		case store.ByDay:
			days.add(dayKey(k), m.Events)
			failDays.add(dayKey(k), m.LoginFailure)
		case store.ByIP:
			ips.add(k, m.LoginFailure)
		case store.ByPatient: // counted, never kept
			if k != "" && m.PHI > 0 {
				da.DistinctPatients++
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	as.ByAction, da.AccessByAction, as.ByResourceType, as.BySource = byAction.counts(), phiByAction.counts(), byType.counts(), bySource.counts()
	for _, c := range as.BySource {
		r.Scope.Sources = append(r.Scope.Sources, c.Key)
	}
	as.ByRole, da.AccessByRole = byRole.counts(), phiByRole.counts()
	as.ByUser, as.TopAccessors, da.AccessByUser = events.counts(), phi.counts(), phi.counts()
	da.Exports.ByUser, r.EmergencyAccess.FlaggedByUser, lm.FailuresByUser = exports.counts(), flagged.counts(), failures.counts()
	as.ByDay, lm.FailuresByDay = everyDay(r.Period.From, r.Period.To, days), everyDay(r.Period.From, r.Period.To, failDays)
	lm.FailuresByIP = ips.counts()
	return nil
}

// exports lists the period's disclosures: EXPORT events that carry a
// recipient.
func (b *Builder) exports(ctx context.Context, r *HIPAA, w store.Window, inPeriod bool) error {
	if !inPeriod {
		return nil
	}
	ex := &r.DataAccess.Exports
	return b.pageWindow(ctx, w, store.EventFilter{Action: custos.ActionExport, Extended: true}, func(e *custos.Event) bool {
		if e.Disclosure == nil || e.Disclosure.Recipient == "" {
			return true
		}
		if len(ex.Disclosures) == b.cfg.MaxListed {
			ex.Truncated = true
			return false
		}
		ex.Disclosures = append(ex.Disclosures, disclosureOf(e))
		return true
	})
}

// pageWindow calls fn with the window's events matching f, oldest first,
// a page at a time, until fn returns false.
func (b *Builder) pageWindow(ctx context.Context, w store.Window, f store.EventFilter, fn func(*custos.Event) bool) error {
	const page = 2000
	for after := int64(-1); ; {
		evs, err := b.src.WindowEvents(ctx, w, f, after, page)
		if err != nil {
			return err
		}
		for i := range evs {
			if !fn(&evs[i]) {
				return nil
			}
		}
		if len(evs) < page {
			return nil
		}
		after = int64(evs[len(evs)-1].Index)
	}
}

// disclosureOf is the accounting entry of an EXPORT event with a recipient.
func disclosureOf(e *custos.Event) Disclosure {
	desc := e.ResourceType
	if e.ResourceID != "" {
		desc += " " + e.ResourceID
	}
	if e.RequestPath != "" && desc == "" {
		desc = e.RequestPath
	}
	d := Disclosure{Index: e.Index, Date: e.Timestamp.UTC(), PatientID: e.PatientID, UserID: e.User.ID, Description: desc}
	if e.Disclosure != nil {
		d.Recipient, d.Address, d.Purpose = e.Disclosure.Recipient, e.Disclosure.Address, e.Disclosure.Purpose
	}
	if d.Purpose == "" {
		d.Purpose = e.PurposeOfUse
	}
	return d
}
