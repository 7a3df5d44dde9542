package report_test

import (
	"context"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/report"
	"github.com/google/go-cmp/cmp"
)

// TestTotalsMatchRawEvents: every total and breakdown the HIPAA report
// computes in the store equals a count made here by walking every raw
// event of the ledger in Go, on both stores.
func TestTotalsMatchRawEvents(t *testing.T) {
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) {
			s := newScenario(t, kind)
			ctx := context.Background()
			// A period that cuts a day in half, so that its bounds matter.
			from, to := periodFrom.Add(33*time.Hour), periodTo.Add(-10*time.Hour)
			r, err := s.builder(report.Config{TopN: 1000}).HIPAA(ctx, report.Request{From: from, To: to})
			if err != nil {
				t.Fatal(err)
			}
			want := walk(t, s, from, to, r.Checkpoint.Size)
			got := map[string]any{
				"total_events": r.AccessSummary.TotalEvents, "failures": r.AccessSummary.Failures,
				"by_action": asMap(r.AccessSummary.ByAction), "by_resource_type": asMap(r.AccessSummary.ByResourceType),
				"by_role": asMap(r.AccessSummary.ByRole), "by_user": asMap(r.AccessSummary.ByUser),
				"by_source": asMap(r.AccessSummary.BySource), "by_day": asMap(r.AccessSummary.ByDay),
				"users_total": r.AccessSummary.UsersTotal, "top_accessors": asMap(r.AccessSummary.TopAccessors),
				"login_successes": r.LoginMonitoring.Successes, "login_failures": r.LoginMonitoring.Failures,
				"logouts":          r.LoginMonitoring.Logouts,
				"failures_by_user": asMap(r.LoginMonitoring.FailuresByUser), "failures_by_ip": asMap(r.LoginMonitoring.FailuresByIP),
				"failures_by_day":  asMap(r.LoginMonitoring.FailuresByDay),
				"total_phi_access": r.DataAccess.TotalPHIAccess, "distinct_patients": r.DataAccess.DistinctPatients,
				"access_by_role": asMap(r.DataAccess.AccessByRole), "access_by_action": asMap(r.DataAccess.AccessByAction),
				"exports": r.DataAccess.Exports.Total, "exports_by_user": asMap(r.DataAccess.Exports.ByUser),
				"disclosures": int64(len(r.DataAccess.Exports.Disclosures)),
				"flagged":     r.EmergencyAccess.FlaggedEvents, "flagged_by_user": asMap(r.EmergencyAccess.FlaggedByUser),
				"uses":        int64(len(r.EmergencyAccess.Uses)),
				"first_index": int64(*r.Integrity.FirstIndex), "last_index": int64(*r.Integrity.LastIndex),
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("report totals (-walk +report):\n%s", diff)
			}
			if want["total_events"].(int64) == 0 {
				t.Fatal("the period holds no event: the comparison proves nothing")
			}
		})
	}
}

// walk counts, from every raw event of the ledger read in order, what the
// report must say for [from, to) below size.
func walk(t *testing.T, s *scenario, from, to time.Time, size uint64) map[string]any {
	t.Helper()
	n := func() map[string]int64 { return map[string]int64{} }
	byAction, byType, byRole, byUser, bySource, byDay := n(), n(), n(), n(), n(), n()
	phiByUser, failUser, failIP, failDay, phiRole, phiAction, expUser, flagUser := n(), n(), n(), n(), n(), n(), n(), n()
	users, patients := map[string]bool{}, map[string]bool{}
	var total, failures, logins, loginFails, logouts, phi, exports, disclosures, flagged int64
	first, last := int64(-1), int64(-1)
	for d := from.Truncate(24 * time.Hour); d.Before(to); d = d.Add(24 * time.Hour) {
		byDay[d.Format(time.DateOnly)], failDay[d.Format(time.DateOnly)] = 0, 0
	}
	err := s.st.ScanEvents(context.Background(), 0, func(e custos.Event) error {
		if e.Index >= size || e.Timestamp.Before(from) || !e.Timestamp.Before(to) {
			return nil
		}
		if first < 0 {
			first = int64(e.Index)
		}
		last = int64(e.Index)
		total++
		a := string(e.Action)
		byAction[a]++
		byType[e.ResourceType]++
		byUser[e.User.ID]++
		users[e.User.ID] = true
		bySource[e.Source]++
		byDay[e.Timestamp.UTC().Format(time.DateOnly)]++
		roles := e.User.Roles
		if len(roles) == 0 {
			roles = []string{"(none)"}
		}
		for _, r := range roles {
			byRole[r]++
		}
		if e.Outcome == custos.OutcomeFailure {
			failures++
		}
		if e.Action == custos.ActionLogin && e.Outcome == custos.OutcomeSuccess {
			logins++
		}
		if e.Action == custos.ActionLogin && e.Outcome == custos.OutcomeFailure {
			loginFails++
			failUser[e.User.ID]++
			failIP[e.IPAddress]++
			failDay[e.Timestamp.UTC().Format(time.DateOnly)]++
		}
		if e.Action == custos.ActionLogout {
			logouts++
		}
		if e.PatientID != "" {
			phi++
			phiByUser[e.User.ID]++
			patients[e.PatientID] = true
			phiAction[a]++
			for _, r := range roles {
				phiRole[r]++
			}
		}
		if e.Action == custos.ActionExport {
			exports++
			expUser[e.User.ID]++
			if e.Disclosure != nil && e.Disclosure.Recipient != "" {
				disclosures++
			}
		}
		if e.BreakGlass {
			flagged++
			flagUser[e.User.ID]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"total_events": total, "failures": failures, "by_action": byAction, "by_resource_type": byType,
		"by_role": byRole, "by_user": byUser, "by_source": bySource, "by_day": byDay, "users_total": int64(len(users)),
		"top_accessors": phiByUser, "login_successes": logins, "login_failures": loginFails, "logouts": logouts,
		"failures_by_user": failUser, "failures_by_ip": failIP, "failures_by_day": failDay,
		"total_phi_access": phi, "distinct_patients": int64(len(patients)), "access_by_role": phiRole,
		"access_by_action": phiAction, "exports": exports, "exports_by_user": expUser, "disclosures": disclosures,
		"flagged": flagged, "flagged_by_user": flagUser, "uses": flagged, "first_index": first, "last_index": last,
	}
}

// asMap turns a breakdown into key → count.
func asMap(cs []report.Count) map[string]int64 {
	m := map[string]int64{}
	for _, c := range cs {
		m[c.Key] = c.Count
	}
	return m
}
