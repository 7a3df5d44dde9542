package report

// The sections of each report as rendered, in the order the issue lists
// them: scope, integrity, access summary, log-in monitoring, security
// events, data access, emergency access, system changes, workforce. A
// section's title and regulation come from the model's SectionInfo; the
// defaults here only stand in when a model leaves them empty.

import (
	"errors"
	"fmt"
	"html/template"
)

// ErrUnsupportedReport is returned by the renderers for a Report that is
// none of *HIPAA, *PatientAccess and *Disclosures.
var ErrUnsupportedReport = errors.New("report: unsupported kind of report")

// documentOf builds the view of any of the three reports.
func documentOf(r Report) (document, error) {
	switch r := r.(type) {
	case *HIPAA:
		return hipaaDocument(r), nil
	case *PatientAccess:
		return accessDocument(r), nil
	case *Disclosures:
		return disclosuresDocument(r), nil
	}
	return document{}, fmt.Errorf("%w: %T", ErrUnsupportedReport, r)
}

func hipaaDocument(r *HIPAA) document {
	d := newDocument(&r.Header, "HIPAA compliance report")
	if !r.Integrity.OK || r.Warning != "" {
		d.IntegrityFailed = true
		d.Integrity = orDefault(r.Warning, orDefault(r.Integrity.Summary, "The ledger did not verify."))
		d.Problems = r.Integrity.Problems
	}
	d.Sections = []section{
		scopeSection(r), integritySection(r), accessSummarySection(&r.AccessSummary),
		loginSection(&r.LoginMonitoring), securitySection(&r.SecurityEvents),
		dataAccessSection(&r.DataAccess), emergencySection(&r.EmergencyAccess),
		changesSection(&r.SystemChanges), workforceSection(&r.Workforce),
	}
	return d
}

// newSection starts a section from the model's SectionInfo.
func newSection(id string, info SectionInfo, title, regulation string) section {
	return section{ID: id, Title: orDefault(info.Title, title), Regulation: orDefault(info.Regulation, regulation)}
}

func scopeSection(r *HIPAA) section {
	s := newSection("scope", r.Scope.SectionInfo, "Period and scope", RegScope)
	sc := &r.Scope
	s.Facts = []fact{
		{"Period from", ts(r.Period.From)},
		{"Period to (exclusive)", ts(r.Period.To)},
		{"Sources", list(sc.Sources)},
		{"Actions counted", list(sc.Actions)},
		{"Security event types counted", list(sc.SecurityTypes)},
		{"Retention (days)", fmt.Sprint(sc.RetentionDays)},
		{"Longest period a report may cover (days)", fmt.Sprint(sc.MaxPeriodDays)},
		{"Custos's own audit events counted", yesNo(sc.IncludesServer)},
	}
	return s
}

func integritySection(r *HIPAA) section {
	in := &r.Integrity
	s := newSection("integrity", in.SectionInfo, "Integrity of the audit trail", RegIntegrity)
	s.Alert = !in.OK
	s.Lead = in.Summary
	cp := &r.Checkpoint
	result := "verified"
	if !in.OK {
		result = "FAILED"
	}
	s.Facts = []fact{
		{"Result", result},
		{"Ledger records in the period's range", itoa(in.Records)},
		{"First event index", uptr(in.FirstIndex)},
		{"Last event index", uptr(in.LastIndex)},
		{"Checkpoint", checkpointLine(*cp)},
		{"Checkpoint signed at", ts(cp.SignedAt)},
		{"Verifier key", cp.VerifierKey},
		{"Witnesses", list(cp.Witnesses)},
	}
	s.Tables = []table{
		{Name: "integrity_checks", Caption: "Checks performed",
			Cols: []column{{Title: "Check"}, {Title: "Result"}, {Title: "Detail"}},
			Rows: rowsOf(in.Checks, func(c Check) []string {
				return []string{c.Name, map[bool]string{true: "passed", false: "FAILED"}[c.OK], c.Detail}
			}),
			Empty: "No check was performed."},
		{Name: "integrity_problems", Caption: "Problems found",
			Cols:  []column{{Title: "Problem"}},
			Rows:  rowsOf(in.Problems, func(p string) []string { return []string{p} }),
			Empty: "None."},
	}
	s.Pre = cp.Note
	return s
}

func accessSummarySection(a *AccessSummary) section {
	s := newSection("access_summary", a.SectionInfo, "Information system activity review", RegReview)
	s.Facts = []fact{
		{"Audit events", itoa(a.TotalEvents)},
		{"Failed", itoa(a.Failures)},
		{"Distinct users", itoa(a.UsersTotal)},
	}
	s.Charts = charts(
		timeSeries("Audit events per day (UTC)", a.ByDay, barColour),
		barChart("By action", a.ByAction),
		barChart("By role", a.ByRole),
		barChart(fmt.Sprintf("By user (top %d)", a.TopN), a.ByUser),
		barChart("By resource type", a.ByResourceType),
	)
	s.Tables = []table{
		countTable("access_by_action", "Events by action", "Action", a.ByAction),
		countTable("access_by_resource_type", "Events by resource type", "Resource type", a.ByResourceType),
		countTable("access_by_role", "Events by role (an event with several roles counts under each)", "Role", a.ByRole),
		countTable("access_by_user", fmt.Sprintf("Events by user (top %d of %d)", a.TopN, a.UsersTotal), "User", a.ByUser),
		countTable("access_by_source", "Events by source", "Source", a.BySource),
		countTable("access_top_phi_accessors", "Users with the most accesses to PHI", "User", a.TopAccessors),
		countTable("access_by_day", "Events per day (UTC)", "Day", a.ByDay),
	}
	return s
}

func loginSection(l *LoginMonitoring) section {
	s := newSection("login_monitoring", l.SectionInfo, "Log-in monitoring", RegLogin)
	s.Facts = []fact{
		{"Successful log-ins", itoa(l.Successes)},
		{"Failed log-ins", itoa(l.Failures)},
		{"Log-outs", itoa(l.Logouts)},
		{"AUTH_FAILURE security events", itoa(l.AuthFailureSecs)},
		{"BRUTE_FORCE security events", itoa(l.BruteForce)},
		{"Address blocks placed", fmt.Sprint(len(l.Blocks))},
		{"Blocks lifted", itoa(l.Lifted)},
		{"Log-ins by inactive accounts", fmt.Sprint(len(l.InactiveLogins))},
	}
	s.Charts = charts(
		timeSeries("Failed log-ins per day (UTC)", l.FailuresByDay, failColour),
		barChart("Failed log-ins by user", l.FailuresByUser),
		barChart("Failed log-ins by address", l.FailuresByIP),
	)
	s.Tables = []table{
		countTable("login_failures_by_user", "Failed log-ins by user", "User", l.FailuresByUser),
		countTable("login_failures_by_ip", "Failed log-ins by address", "IP address", l.FailuresByIP),
		countTable("login_failures_by_day", "Failed log-ins per day (UTC)", "Day", l.FailuresByDay),
		blocksTable(l.Blocks),
		inactiveTable("login_inactive_accounts", "Successful log-ins by suspended or terminated accounts", l.InactiveLogins, false),
	}
	return s
}

func blocksTable(bs []Block) table {
	return table{Name: "login_blocks", Caption: "Address blocks placed in the period",
		Cols: []column{{Title: "Address or range"}, {Title: "Reason"}, {Title: "Placed"}, {Title: "By"},
			{Title: "Until"}, {Title: "Lifted"}, {Title: "Id"}},
		Rows: rowsOf(bs, func(b Block) []string {
			return []string{b.CIDR, b.Reason, ts(b.CreatedAt), b.CreatedBy, ts(b.BlockedUntil), yesNo(b.Lifted), b.ID}
		}),
		Empty: "No address was blocked."}
}

func inactiveTable(name, caption string, ls []InactiveLogin, truncated bool) table {
	return table{Name: name, Caption: caption, Truncated: truncated,
		Cols: []column{{Title: "Time"}, {Title: "User"}, {Title: "Account status"}, {Title: "Action"},
			{Title: "IP address"}, {Title: "Source"}, {Title: "Index", Num: true}},
		Rows: rowsOf(ls, func(l InactiveLogin) []string {
			return []string{ts(l.Timestamp), l.UserID, l.Status, l.Action, l.IPAddress, l.Source, utoa(l.Index)}
		}),
		Empty: "None."}
}

// charts drops the charts of empty breakdowns.
func charts(cs ...template.HTML) []template.HTML {
	out := cs[:0]
	for _, c := range cs {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

func securitySection(se *SecurityEvents) section {
	s := newSection("security_events", se.SectionInfo, "Security incidents and response", RegIncidents)
	t := &se.TimeToAcknowledge
	s.Facts = []fact{
		{"Security events", itoa(se.Total)},
		{"Open HIGH or CRITICAL at the checkpoint", fmt.Sprint(len(se.OpenHighOrCritical))},
		{"Acknowledged or resolved", itoa(t.Count)},
		{"Time to acknowledge: mean", seconds(t.Mean)},
		{"Time to acknowledge: median", seconds(t.Median)},
		{"Time to acknowledge: longest", seconds(t.Max)},
	}
	s.Charts = charts(barChart("By severity", se.BySeverity), barChart("By type", se.ByType))
	s.Tables = []table{
		countTable("security_by_type", "By type", "Event type", se.ByType),
		countTable("security_by_severity", "By severity", "Severity", se.BySeverity),
		countTable("security_by_status", "By status at the checkpoint", "Status", se.ByStatus),
		countTable("security_by_rule", "By rule (none: reported by an application)", "Rule", se.ByRule),
		securityTable("security_open_high_critical", "HIGH or CRITICAL events still open", se.OpenHighOrCritical, false),
		securityTable("security_events", "Security events of the period, newest first", se.Events, se.Truncated),
	}
	return s
}

func securityTable(name, caption string, es []SecurityEvent, truncated bool) table {
	return table{Name: name, Caption: caption, Truncated: truncated,
		Cols: []column{{Title: "Raised"}, {Title: "Type"}, {Title: "Severity"}, {Title: "Description"},
			{Title: "User"}, {Title: "IP address"}, {Title: "Rule"}, {Title: "Status"},
			{Title: "Acknowledged"}, {Title: "Resolved"}, {Title: "Response"}, {Title: "Id"}, {Title: "Index", Num: true}},
		Rows: rowsOf(es, func(e SecurityEvent) []string {
			return []string{ts(e.Timestamp), e.EventType, e.Severity, e.Description, e.User, e.IPAddress,
				e.Rule, e.Status, tsp(e.AcknowledgedAt), tsp(e.ResolvedAt), e.Response, e.ID, utoa(e.Index)}
		}),
		Empty: "None."}
}

func dataAccessSection(da *DataAccess) section {
	s := newSection("data_access", da.SectionInfo, "Access to protected health information", RegMinimumNec)
	s.Facts = []fact{
		{"Accesses to PHI (events naming a patient)", itoa(da.TotalPHIAccess)},
		{"Distinct patients", itoa(da.DistinctPatients)},
		{"Unusual patterns", fmt.Sprint(len(da.UnusualPatterns))},
		{"Exports", itoa(da.Exports.Total)},
		{"Disclosures (exports to a recipient)", fmt.Sprint(len(da.Exports.Disclosures))},
	}
	s.Charts = charts(
		barChart("PHI access by role", da.AccessByRole),
		barChart("PHI access by user", da.AccessByUser),
		barChart("PHI access by action", da.AccessByAction),
	)
	s.Tables = []table{
		countTable("data_access_by_role", "PHI access by role", "Role", da.AccessByRole),
		countTable("data_access_by_user", "PHI access by user", "User", da.AccessByUser),
		countTable("data_access_by_action", "PHI access by action", "Action", da.AccessByAction),
		{Name: "data_access_unusual_patterns", Caption: "Unusual patterns: user-days above the baseline",
			Cols: []column{{Title: "User"}, {Title: "Day"}, {Title: "Patients", Num: true}, {Title: "Baseline", Num: true},
				{Title: "Threshold", Num: true}, {Title: "Found by"}, {Title: "Security event"}, {Title: "Severity"}},
			Rows: rowsOf(da.UnusualPatterns, func(u UnusualPattern) []string {
				return []string{u.UserID, u.Day, itoa(u.Patients), decimal(u.Baseline), decimal(u.Threshold),
					u.Source, u.SecurityEventID, u.Severity}
			}),
			Empty: "None found."},
		countTable("data_access_exports_by_user", "Exports by user", "User", da.Exports.ByUser),
		disclosureTable("data_access_disclosures", "Disclosures of the period", da.Exports.Disclosures, da.Exports.Truncated, true),
	}
	return s
}

// disclosureTable lists disclosures; withPatient adds the patient column
// (the per-patient accounting leaves it out: it is that patient's).
func disclosureTable(name, caption string, ds []Disclosure, truncated, withPatient bool) table {
	cols := []column{{Title: "Date"}, {Title: "Recipient"}, {Title: "Recipient's address"},
		{Title: "Description"}, {Title: "Purpose"}, {Title: "Disclosed by"}, {Title: "Index", Num: true}}
	if withPatient {
		cols = append(cols[:1:1], append([]column{{Title: "Patient"}}, cols[1:]...)...)
	}
	return table{Name: name, Caption: caption, Truncated: truncated, Cols: cols,
		Rows: rowsOf(ds, func(d Disclosure) []string {
			row := []string{ts(d.Date), d.Recipient, d.Address, d.Description, d.Purpose, d.UserID, utoa(d.Index)}
			if withPatient {
				row = append(row[:1:1], append([]string{d.PatientID}, row[1:]...)...)
			}
			return row
		}),
		Empty: "No disclosure."}
}

func emergencySection(e *EmergencyAccess) section {
	s := newSection("emergency_access", e.SectionInfo, "Emergency (break-the-glass) access", RegEmergency)
	s.Facts = []fact{
		{"Emergency grants opened", fmt.Sprint(len(e.Grants))},
		{"Events flagged break-the-glass", itoa(e.FlaggedEvents)},
		{"Reviews still open", itoa(e.ReviewsOpen)},
		{"Reviews closed", itoa(e.ReviewsClosed)},
	}
	s.Charts = charts(barChart("Flagged events by user", e.FlaggedByUser))
	s.Tables = []table{
		{Name: "emergency_grants", Caption: "Emergency grants opened in the period",
			Cols: []column{{Title: "Opened"}, {Title: "User"}, {Title: "Patient"}, {Title: "Reason"}, {Title: "Opened by"},
				{Title: "Expires"}, {Title: "Review"}, {Title: "Reviewed by"}, {Title: "Reviewed"}, {Title: "Review note"},
				{Title: "Events", Num: true}, {Title: "Id"}},
			Rows: rowsOf(e.Grants, func(g Grant) []string {
				return []string{ts(g.OpenedAt), g.UserID, orDefault(g.PatientID, "(every patient)"), g.Reason, g.OpenedBy,
					ts(g.ExpiresAt), g.Review, g.ReviewedBy, tsp(g.ReviewedAt), g.ReviewNote, itoa(g.Events), g.ID}
			}),
			Empty: "No emergency grant was opened."},
		countTable("emergency_flagged_by_user", "Flagged events by user", "User", e.FlaggedByUser),
		{Name: "emergency_uses", Caption: "Events flagged break-the-glass, newest first", Truncated: e.Truncated,
			Cols: []column{{Title: "Time"}, {Title: "User"}, {Title: "Action"}, {Title: "Resource type"},
				{Title: "Resource id"}, {Title: "Patient"}, {Title: "Reason"}, {Title: "Index", Num: true}},
			Rows: rowsOf(e.Uses, func(u EmergencyUse) []string {
				return []string{ts(u.Timestamp), u.UserID, u.Action, u.ResourceType, u.ResourceID, u.PatientID, u.Reason, utoa(u.Index)}
			}),
			Empty: "None."},
	}
	return s
}

func changesSection(c *SystemChanges) section {
	s := newSection("system_changes", c.SectionInfo, "System changes: roles, permissions, users, keys, rules, blocks", RegAccessMgmt)
	s.Facts = []fact{{"Changes", itoa(c.Total)}}
	s.Charts = charts(barChart("Changes by kind", c.ByEntity))
	s.Tables = []table{
		countTable("system_changes_by_entity", "Changes by kind", "Kind", c.ByEntity),
		{Name: "system_changes", Caption: "Changes, oldest first", Truncated: c.Truncated,
			Cols: []column{{Title: "Time"}, {Title: "Kind"}, {Title: "Id"}, {Title: "Operation"}, {Title: "By"},
				{Title: "What changed"}, {Title: "Index", Num: true}},
			Rows: rowsOf(c.Changes, func(ch Change) []string {
				return []string{ts(ch.Timestamp), ch.Entity, ch.ID, ch.Op, ch.By, ch.Summary, utoa(ch.Index)}
			}),
			Empty: "No change."},
	}
	return s
}

func workforceSection(w *Workforce) section {
	s := newSection("workforce", w.SectionInfo, "Workforce security: suspensions and terminations", RegTermination)
	s.Facts = []fact{
		{"Accounts suspended", fmt.Sprint(len(w.Suspended))},
		{"Accounts terminated", fmt.Sprint(len(w.Terminated))},
		{"Accounts reinstated", fmt.Sprint(len(w.Reinstated))},
		{"Activity after termination or while suspended", fmt.Sprint(len(w.ActivityAfterTermination))},
	}
	s.Tables = []table{
		accountTable("workforce_suspended", "Accounts suspended", w.Suspended),
		accountTable("workforce_terminated", "Accounts terminated", w.Terminated),
		accountTable("workforce_reinstated", "Accounts reinstated", w.Reinstated),
		inactiveTable("workforce_activity_after_termination", "Activity after termination or while suspended (should be empty)",
			w.ActivityAfterTermination, w.Truncated),
	}
	return s
}

func accountTable(name, caption string, as []AccountChange) table {
	return table{Name: name, Caption: caption,
		Cols: []column{{Title: "Time"}, {Title: "User"}, {Title: "New status"}, {Title: "Reason"}, {Title: "By"}, {Title: "Index", Num: true}},
		Rows: rowsOf(as, func(a AccountChange) []string {
			return []string{ts(a.Timestamp), a.UserID, a.Status, a.Reason, a.By, utoa(a.Index)}
		}),
		Empty: "None."}
}

func accessDocument(r *PatientAccess) document {
	d := newDocument(&r.Header, "Access report for patient "+r.PatientID)
	s := section{ID: "patient_access", Title: "Who accessed the record of patient " + r.PatientID,
		Regulation: orDefault(r.Regulation, RegPatientAudit)}
	s.Facts = []fact{{"Patient", r.PatientID}, {"Accesses in the period", itoa(r.Total)}}
	s.Charts = charts(barChart("Accesses by user", r.ByUser), barChart("Accesses by action", r.ByAction))
	s.Tables = []table{
		countTable("by_user", "Accesses by user", "User", r.ByUser),
		countTable("by_action", "Accesses by action", "Action", r.ByAction),
		{Name: "accesses", Caption: "Every access, newest first", Truncated: r.Truncated,
			Cols: []column{{Title: "Time"}, {Title: "User"}, {Title: "Name"}, {Title: "Roles"}, {Title: "Action"},
				{Title: "Resource type"}, {Title: "Resource id"}, {Title: "Outcome"}, {Title: "From (IP address)"},
				{Title: "Source"}, {Title: "Purpose of use"}, {Title: "Emergency access"}, {Title: "Index", Num: true}},
			Rows: rowsOf(r.Accesses, func(a Access) []string {
				emergency := "no"
				if a.BreakGlass {
					emergency = "yes: " + a.BreakGlassReason
				}
				return []string{ts(a.Timestamp), a.UserID, a.UserName, list(a.Roles), a.Action, a.ResourceType,
					a.ResourceID, a.Outcome, a.IPAddress, a.Source, a.PurposeOfUse, emergency, utoa(a.Index)}
			}),
			Empty: "No access to this patient's record in the period."},
	}
	d.Sections = []section{s}
	return d
}

func disclosuresDocument(r *Disclosures) document {
	d := newDocument(&r.Header, "Accounting of disclosures for patient "+r.PatientID)
	s := section{ID: "disclosures", Title: "Disclosures of the protected health information of patient " + r.PatientID,
		Regulation: orDefault(r.Regulation, RegDisclosures)}
	s.Facts = []fact{{"Patient", r.PatientID}, {"Disclosures", itoa(r.Total)}}
	s.Tables = []table{disclosureTable("disclosures", "Disclosures, newest first", r.Disclosures, r.Truncated, false)}
	d.Sections = []section{s}
	return d
}
