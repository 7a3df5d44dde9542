package report

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
)

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
