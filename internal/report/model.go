// Package report computes Custos's compliance reports from the ledger: the
// HIPAA report of a period, and per patient the access report and the
// accounting of disclosures (45 CFR 164.528).
//
// This file is the model: the Go types of every report, whose JSON
// encoding is the contract clients, scripts and the renderers (HTML, CSV,
// PDF) rely on. Fields are only ever added, never renamed or removed. Every
// report carries a Header: its period, when and by which generator it was
// made, who asked, and the signed checkpoint it rests on. Every section of
// the HIPAA report carries a SectionInfo: its title and the regulation it
// evidences, so a renderer prints them without knowing the sections.
//
// Every count in a report is computed from the ledger (audit events and
// state records) as it stood at Header.Checkpoint; nothing is estimated.
package report

import "time"

// Kind names what a report is; it is the Header's "kind".
type Kind string

// The report kinds.
const (
	KindHIPAA       Kind = "hipaa"          // HIPAA
	KindAccess      Kind = "patient_access" // PatientAccess
	KindDisclosures Kind = "disclosures"    // Disclosures
)

// The regulations the report's sections evidence, as cited in the reports.
const (
	RegScope        = "45 CFR 164.316(b)(2)"          // retention of documentation
	RegIntegrity    = "45 CFR 164.312(c)(1)"          // integrity of ePHI and its audit trail
	RegAudit        = "45 CFR 164.312(b)"             // audit controls
	RegReview       = "45 CFR 164.308(a)(1)(ii)(D)"   // information system activity review
	RegLogin        = "45 CFR 164.308(a)(5)(ii)(C)"   // log-in monitoring
	RegIncidents    = "45 CFR 164.308(a)(6)(ii)"      // security incident response and reporting
	RegEmergency    = "45 CFR 164.312(a)(2)(ii)"      // emergency access procedure
	RegAccessMgmt   = "45 CFR 164.308(a)(4)(ii)(C)"   // access establishment and modification
	RegTermination  = "45 CFR 164.308(a)(3)(ii)(C)"   // termination procedures
	RegPatientAudit = "45 CFR 164.312(b), 164.524"    // a patient's access to their record of access
	RegDisclosures  = "45 CFR 164.528"                // accounting of disclosures
	RegMinimumNec   = "45 CFR 164.502(b), 164.514(d)" // minimum necessary: PHI access review
	RegTransmission = "45 CFR 164.312(e)(1), 164.528" // exports: transmissions and disclosures
)

// Generator names the software that computed a report.
type Generator struct {
	Name    string `json:"name"`    // "custos"
	Version string `json:"version"` // the binary's version (module version or VCS revision)
}

// Period is the half-open interval [From, To) of ledger timestamps a report
// covers, in UTC.
type Period struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Checkpoint is the signed checkpoint a report was computed from: the
// report counts exactly the records with index below Size.
type Checkpoint struct {
	Origin   string    `json:"origin"`    // the log's origin line (its key name)
	Size     uint64    `json:"size"`      // the tree size: records 0 … Size-1
	RootHash []byte    `json:"root_hash"` // RFC 6962 root of those records (base64 in JSON)
	SignedAt time.Time `json:"signed_at"` // when the server signed it, as the store recorded
	// Note is the C2SP signed note exactly as stored (with any witness
	// cosignature lines), so an auditor can check it with standard tools.
	Note string `json:"note"`
	// VerifierKey is the note verifier key the signature was checked with.
	VerifierKey string `json:"verifier_key"`
	// Witnesses lists the witnesses whose cosignatures the note carries.
	Witnesses []string `json:"witnesses"`
}

// Header is what every report carries, first. Its fields appear at the top
// level of a report's JSON.
type Header struct {
	Kind        Kind       `json:"kind"`
	Title       string     `json:"title"` // the report's title, as printed
	Period      Period     `json:"period"`
	GeneratedAt time.Time  `json:"generated_at"`
	GeneratedBy string     `json:"generated_by"` // the credential's user (or key) that asked
	Generator   Generator  `json:"generator"`
	Checkpoint  Checkpoint `json:"checkpoint"`
}

// SectionInfo heads every section: its title as printed and the regulation
// it evidences. Its fields appear inside each section's JSON object.
type SectionInfo struct {
	Title      string `json:"title"`
	Regulation string `json:"regulation"`
}

// Count is one row of a breakdown: a key (an action, a role, a user id, …)
// and how many records have it. Breakdowns are sorted by Count descending,
// then Key ascending.
type Count struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

// HIPAA is the HIPAA compliance report of a period: the seed's keys
// (period, access_summary, security_events, data_access, system_changes)
// and the ones added since. When Integrity.OK is false the report is still
// whole, and every renderer shows Integrity first with the failure.
type HIPAA struct {
	Header
	// Warning is set, first thing after the header, when the integrity
	// checks failed: the report's counts come from a ledger that does not
	// verify. Renderers print it above everything else.
	Warning         string          `json:"warning,omitempty"`
	Scope           Scope           `json:"scope"`
	Integrity       Integrity       `json:"integrity"`
	AccessSummary   AccessSummary   `json:"access_summary"`
	LoginMonitoring LoginMonitoring `json:"login_monitoring"`
	SecurityEvents  SecurityEvents  `json:"security_events"`
	DataAccess      DataAccess      `json:"data_access"`
	EmergencyAccess EmergencyAccess `json:"emergency_access"`
	SystemChanges   SystemChanges   `json:"system_changes"`
	Workforce       Workforce       `json:"workforce"`
}

// Scope says what the report covers: which sources sent events in the
// period, which event types and actions it counts, and the settings in
// force when it was generated.
type Scope struct {
	SectionInfo
	Sources        []string `json:"sources"`         // every source seen in the period, sorted
	Actions        []string `json:"actions"`         // the audit actions counted (all eight)
	SecurityTypes  []string `json:"security_types"`  // the security event types counted
	RetentionDays  int      `json:"retention_days"`  // the retention setting in force
	MaxPeriodDays  int      `json:"max_period_days"` // the longest period a report may cover
	IncludesServer bool     `json:"includes_server"` // true: Custos's own audit events are counted too
}

// Integrity attests the ledger the report was computed from (45 CFR
// 164.312(c)(1)). What was checked is listed in Checks, each with its
// result; OK is true only when every check passed.
type Integrity struct {
	SectionInfo
	OK bool `json:"ok"`
	// Summary is one plain sentence: "The ledger verified: …" or what failed.
	Summary string `json:"summary"`
	// FirstIndex and LastIndex are the ledger indexes of the period's first
	// and last audit event; both absent when the period holds none.
	FirstIndex *uint64 `json:"first_index,omitempty"`
	LastIndex  *uint64 `json:"last_index,omitempty"`
	// Records is the number of ledger records (events and state) in the
	// period's index range.
	Records int64 `json:"records"`
	// Checks lists each verification performed, in order.
	Checks []Check `json:"checks"`
	// Problems lists every gap, broken record or failed check found,
	// plainly; empty when OK.
	Problems []string `json:"problems"`
}

// Check is one verification step of the integrity attestation.
type Check struct {
	Name   string `json:"name"`   // e.g. "checkpoint signature", "period range"
	OK     bool   `json:"ok"`     // passed
	Detail string `json:"detail"` // what was checked and found
}

// AccessSummary counts the period's audit events (45 CFR
// 164.308(a)(1)(ii)(D)).
type AccessSummary struct {
	SectionInfo
	TotalEvents    int64   `json:"total_events"`
	Failures       int64   `json:"failures"` // outcome failure
	ByAction       []Count `json:"by_action"`
	ByResourceType []Count `json:"by_resource_type"`
	ByRole         []Count `json:"by_role"` // an event with several roles counts once under each
	ByUser         []Count `json:"by_user"` // the top users only; see UsersTotal
	BySource       []Count `json:"by_source"`
	ByDay          []Count `json:"by_day"` // key "2006-01-02" (UTC), every day of the period
	// UsersTotal is the number of distinct users; ByUser holds at most
	// TopN of them.
	UsersTotal int64 `json:"users_total"`
	// TopAccessors are the users with the most accesses to PHI (events
	// naming a patient).
	TopAccessors []Count `json:"top_accessors"`
	TopN         int     `json:"top_n"`
}

// LoginMonitoring is log-in monitoring (45 CFR 164.308(a)(5)(ii)(C)):
// LOGIN events by outcome, failures by user and address, lockouts and
// blocks, and logins by users suspended or terminated at the time.
type LoginMonitoring struct {
	SectionInfo
	Successes       int64   `json:"successes"`
	Failures        int64   `json:"failures"`
	Logouts         int64   `json:"logouts"`
	FailuresByUser  []Count `json:"failures_by_user"`    // top N
	FailuresByIP    []Count `json:"failures_by_ip"`      // top N
	FailuresByDay   []Count `json:"failures_by_day"`     // key "2006-01-02"
	BruteForce      int64   `json:"brute_force"`         // BRUTE_FORCE security events in the period
	AuthFailureSecs int64   `json:"auth_failure_events"` // AUTH_FAILURE security events in the period
	// Blocks are the address blocks placed in the period (by a rule or by
	// hand) and Lifted those lifted in it.
	Blocks []Block `json:"blocks"`
	Lifted int64   `json:"lifted"`
	// InactiveLogins are successful logins by a user whose account was
	// suspended or terminated at that moment.
	InactiveLogins []InactiveLogin `json:"inactive_logins"`
}

// Block is an address block placed in the period.
type Block struct {
	ID           string    `json:"id"`
	CIDR         string    `json:"cidr"`
	Reason       string    `json:"reason"`
	CreatedAt    time.Time `json:"created_at"`
	CreatedBy    string    `json:"created_by"` // a user id or "rule:<name>"
	BlockedUntil time.Time `json:"blocked_until"`
	Lifted       bool      `json:"lifted"` // lifted before it expired
}

// InactiveLogin is a successful login (or any activity, in Workforce) by a
// user whose account was not active at the time.
type InactiveLogin struct {
	Index     uint64    `json:"index"` // the audit event's ledger index
	Timestamp time.Time `json:"timestamp"`
	UserID    string    `json:"user_id"`
	Status    string    `json:"status"` // "suspended" or "terminated"
	Action    string    `json:"action"`
	IPAddress string    `json:"ip_address"`
	Source    string    `json:"source"`
}

// SecurityEvents covers the security incidents of the period and the
// response to them (45 CFR 164.308(a)(6)(ii)): the security events raised
// in the period, by type, severity and present status, and how fast they
// were acknowledged.
type SecurityEvents struct {
	SectionInfo
	Total      int64   `json:"total"`
	ByType     []Count `json:"by_type"`
	BySeverity []Count `json:"by_severity"` // in severity order, every severity
	ByStatus   []Count `json:"by_status"`   // as of the checkpoint: open, acknowledged, resolved
	ByRule     []Count `json:"by_rule"`     // "" for events an application reported
	// TimeToAcknowledge summarises, over the events acknowledged or
	// resolved by the checkpoint, the time from raising to the first
	// status change.
	TimeToAcknowledge Durations `json:"time_to_acknowledge"`
	// OpenHighOrCritical lists every HIGH or CRITICAL event still open at
	// the checkpoint.
	OpenHighOrCritical []SecurityEvent `json:"open_high_or_critical"`
	// Events lists the period's security events, newest first, at most
	// MaxListed; Truncated says when there were more.
	Events    []SecurityEvent `json:"events"`
	Truncated bool            `json:"truncated"`
}

// Durations summarises a set of durations, in seconds.
type Durations struct {
	Count  int64   `json:"count"`
	Mean   float64 `json:"mean_seconds"`
	Median float64 `json:"median_seconds"`
	Max    float64 `json:"max_seconds"`
}

// SecurityEvent is one security event as the report lists it: as raised,
// with its status at the checkpoint.
type SecurityEvent struct {
	ID             string     `json:"id"`
	Index          uint64     `json:"index"` // the ledger index of the record that raised it
	Timestamp      time.Time  `json:"timestamp"`
	EventType      string     `json:"event_type"`
	Severity       string     `json:"severity"`
	Description    string     `json:"description"`
	User           string     `json:"user"`
	IPAddress      string     `json:"ip_address"`
	Rule           string     `json:"rule"`
	Status         string     `json:"status"`
	AcknowledgedAt *time.Time `json:"acknowledged_at,omitempty"`
	ResolvedAt     *time.Time `json:"resolved_at,omitempty"`
	Response       string     `json:"response,omitempty"` // the last status note
}

// DataAccess is the review of access to PHI (the seed's data_access):
// events that name a patient.
type DataAccess struct {
	SectionInfo
	// TotalPHIAccess counts the period's audit events naming a patient.
	TotalPHIAccess   int64   `json:"total_phi_access"`
	DistinctPatients int64   `json:"distinct_patients"`
	AccessByRole     []Count `json:"access_by_role"`
	AccessByUser     []Count `json:"access_by_user"` // top N
	AccessByAction   []Count `json:"access_by_action"`
	// UnusualPatterns are the user-days whose count of distinct patients
	// exceeded the monitoring baseline, and the UNUSUAL_PHI_ACCESS security
	// events the monitoring rules raised in the period.
	UnusualPatterns []UnusualPattern `json:"unusual_patterns"`
	// Exports are the EXPORT events of the period: every one with a
	// disclosure (recipient, purpose), and the count of all.
	Exports Exports `json:"exports"`
}

// UnusualPattern is one user-day of unusual PHI access.
type UnusualPattern struct {
	UserID   string `json:"user_id"`
	Day      string `json:"day"`      // "2006-01-02", UTC
	Patients int64  `json:"patients"` // distinct patients touched that day
	// Baseline is what the user's history (or their role's) made usual,
	// and Threshold the count above which the day is unusual.
	Baseline  float64 `json:"baseline"`
	Threshold float64 `json:"threshold"`
	// Source is "baseline" when the report found the day against the
	// baselines, "rule" when a monitoring rule raised a security event.
	Source          string `json:"source"`
	SecurityEventID string `json:"security_event_id,omitempty"`
	Severity        string `json:"severity,omitempty"`
}

// Exports counts the EXPORT events of the period.
type Exports struct {
	Total       int64        `json:"total"`
	ByUser      []Count      `json:"by_user"` // top N
	Disclosures []Disclosure `json:"disclosures"`
	Truncated   bool         `json:"truncated"` // more disclosures than MaxListed
}

// Disclosure is one disclosure of PHI to a third party: an EXPORT event
// carrying a recipient (45 CFR 164.528(b)(2)).
type Disclosure struct {
	Index       uint64    `json:"index"`
	Date        time.Time `json:"date"`
	PatientID   string    `json:"patient_id"`
	UserID      string    `json:"user_id"` // who disclosed
	Recipient   string    `json:"recipient"`
	Address     string    `json:"address,omitempty"` // the recipient's address, when known
	Description string    `json:"description"`       // what was disclosed (resource type, id)
	Purpose     string    `json:"purpose"`
}

// EmergencyAccess lists every break-the-glass use of the period (45 CFR
// 164.312(a)(2)(ii)): the emergency grants opened, with their reason and
// review, and the audit events flagged break_glass.
type EmergencyAccess struct {
	SectionInfo
	Grants        []Grant `json:"grants"`
	FlaggedEvents int64   `json:"flagged_events"` // audit events with break_glass set
	ReviewsOpen   int64   `json:"reviews_open"`   // grants whose review is still open at the checkpoint
	ReviewsClosed int64   `json:"reviews_closed"`
	FlaggedByUser []Count `json:"flagged_by_user"`
	// Uses lists the flagged events, newest first: the period's first
	// MaxListed of them when there are more (Truncated).
	Uses      []EmergencyUse `json:"uses"`
	Truncated bool           `json:"truncated"`
}

// Grant is an emergency grant opened in the period, as of the checkpoint.
type Grant struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	PatientID  string     `json:"patient_id,omitempty"` // "" when the grant covered every patient
	Reason     string     `json:"reason"`
	OpenedAt   time.Time  `json:"opened_at"`
	OpenedBy   string     `json:"opened_by"`
	ExpiresAt  time.Time  `json:"expires_at"`
	Review     string     `json:"review"` // "open" or "closed"
	ReviewedBy string     `json:"reviewed_by,omitempty"`
	ReviewedAt *time.Time `json:"reviewed_at,omitempty"`
	ReviewNote string     `json:"review_note,omitempty"`
	Events     int64      `json:"events"` // audit events by the user flagged under the grant
}

// EmergencyUse is one audit event flagged break_glass.
type EmergencyUse struct {
	Index        uint64    `json:"index"`
	Timestamp    time.Time `json:"timestamp"`
	UserID       string    `json:"user_id"`
	Action       string    `json:"action"`
	ResourceType string    `json:"resource_type"`
	ResourceID   string    `json:"resource_id"`
	PatientID    string    `json:"patient_id"`
	Reason       string    `json:"reason"`
}

// SystemChanges lists every change to the server's configuration in the
// period (45 CFR 164.308(a)(4)(ii)(C)): roles, permissions, users, keys,
// rules and blocks; who made it and when.
type SystemChanges struct {
	SectionInfo
	Total     int64    `json:"total"`
	ByEntity  []Count  `json:"by_entity"` // role, user, api_key, block, rule, …
	Changes   []Change `json:"changes"`   // oldest first, at most MaxListed
	Truncated bool     `json:"truncated"`
}

// Change is one change to the server's configuration: a state record, or a
// CONFIGURATION_CHANGE security event.
type Change struct {
	Index     uint64    `json:"index"`
	Timestamp time.Time `json:"timestamp"`
	Entity    string    `json:"entity"`  // "role", "user", "api_key", "block", "rule", "grant", …
	ID        string    `json:"id"`      // the entity's id (a key's id, never its secret)
	Op        string    `json:"op"`      // "create", "update", "delete"
	By        string    `json:"by"`      // the credential that made it
	Summary   string    `json:"summary"` // what changed, in a few words (no secrets)
}

// Workforce covers the workforce security of the period (45 CFR
// 164.308(a)(3)(ii)(C)): accounts suspended or terminated in it, and any
// activity by a user after their termination (or while suspended).
type Workforce struct {
	SectionInfo
	Suspended  []AccountChange `json:"suspended"`
	Terminated []AccountChange `json:"terminated"`
	Reinstated []AccountChange `json:"reinstated"` // suspended accounts made active again
	// ActivityAfterTermination lists the audit events by a user after their
	// termination or while suspended; it should be empty.
	ActivityAfterTermination []InactiveLogin `json:"activity_after_termination"`
	Truncated                bool            `json:"truncated"`
}

// AccountChange is a user account's status change.
type AccountChange struct {
	Index     uint64    `json:"index"`
	Timestamp time.Time `json:"timestamp"`
	UserID    string    `json:"user_id"`
	Status    string    `json:"status"` // the new status
	Reason    string    `json:"reason,omitempty"`
	By        string    `json:"by"`
}

// PatientAccess is the access report of one patient: who touched their
// record, when, what, from where, under which role or emergency grant.
// An unknown patient has an empty report, not an error, so that a report
// never says whether a patient exists.
type PatientAccess struct {
	Header
	Regulation string   `json:"regulation"` // RegPatientAudit
	PatientID  string   `json:"patient_id"`
	Total      int64    `json:"total"`
	ByUser     []Count  `json:"by_user"`
	ByAction   []Count  `json:"by_action"`
	Accesses   []Access `json:"accesses"` // newest first, at most MaxListed
	Truncated  bool     `json:"truncated"`
}

// Access is one audit event in a patient's access report.
type Access struct {
	Index        uint64    `json:"index"`
	Timestamp    time.Time `json:"timestamp"`
	UserID       string    `json:"user_id"`
	UserName     string    `json:"user_name"`
	Roles        []string  `json:"roles"`
	Action       string    `json:"action"`
	ResourceType string    `json:"resource_type"`
	ResourceID   string    `json:"resource_id"`
	Outcome      string    `json:"outcome"`
	IPAddress    string    `json:"ip_address"`
	Source       string    `json:"source"`
	PurposeOfUse string    `json:"purpose_of_use,omitempty"`
	// BreakGlass is set when the access was made under an emergency grant,
	// with the grant's reason.
	BreakGlass       bool   `json:"break_glass"`
	BreakGlassReason string `json:"break_glass_reason,omitempty"`
}

// Disclosures is the accounting of disclosures of one patient's PHI (45 CFR
// 164.528): every disclosure of the six years before the request (or of
// the period asked), newest first.
type Disclosures struct {
	Header
	Regulation  string       `json:"regulation"` // RegDisclosures
	PatientID   string       `json:"patient_id"`
	Total       int64        `json:"total"`
	Disclosures []Disclosure `json:"disclosures"`
	Truncated   bool         `json:"truncated"`
}
