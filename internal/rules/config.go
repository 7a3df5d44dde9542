package rules

import (
	_ "embed"
	"net/netip"
	"time"

	"github.com/custos-audit/custos"
)

// DefaultYAML is the default rules file, every setting written out with its
// meaning. A deployment's file need only name what it changes: ParseConfig
// starts from these defaults.
//
//go:embed default.yaml
var DefaultYAML []byte

// The names of the default rules: the keys of the rules file's "rules"
// section and the Rule of every security event they raise. Append-only.
const (
	RuleAuthFailure         = "auth_failure"
	RuleBruteForce          = "brute_force"
	RuleSlowBruteForce      = "slow_brute_force"
	RulePasswordSpraying    = "password_spraying"
	RuleAccountGuessing     = "account_guessing"
	RuleFailuresThenSuccess = "failures_then_success"
	RuleUnauthorizedAccess  = "unauthorized_access"
	RuleSessionHijack       = "session_hijack"
	RuleDataExport          = "data_export"
	RuleConfigurationChange = "configuration_change"
	RuleUnusualPHIAccess    = "unusual_phi_access"
)

// MaxThreshold bounds every threshold, so that the state kept per key (at
// most one entry per unit of threshold) stays small.
const MaxThreshold = 10_000

// Config is every number the rules use. Start from DefaultConfig or
// ParseConfig; the zero value detects nothing.
type Config struct {
	// LateAllowance is how far behind the latest event time seen an event
	// may be and still open a new alert or count in a closed period (the
	// day of the PHI baseline). See the package comment.
	LateAllowance time.Duration
	// IPv6Prefix is the prefix length of an IPv6 address key (default 64):
	// every address of an attacker's /64 is one key.
	IPv6Prefix int
	// BlockLimits bound the width of any block, the rules' and manual ones.
	BlockLimits custos.BlockLimits
	// AllowList holds ranges that rules evaluate and report, never block.
	AllowList []netip.Prefix
	// Repeat lengthens the blocks of repeat offenders.
	Repeat Repeat
	// Location is the time zone of working hours and of the PHI baseline's
	// days (default UTC).
	Location *time.Location

	AuthFailure         Each
	BruteForce          Threshold
	SlowBruteForce      Threshold
	PasswordSpraying    Threshold
	AccountGuessing     Threshold
	FailuresThenSuccess Threshold
	UnauthorizedAccess  Levels
	SessionHijack       Session
	DataExport          Export
	ConfigurationChange Changes
	UnusualPHIAccess    Baseline
}

// Repeat says how a key blocked again is blocked for longer: a block within
// Within of the end of the key's previous block lasts Factor times as long
// as that one, at most Max.
type Repeat struct {
	Within time.Duration // default 30 days
	Factor int           // default 2
	Max    time.Duration // default 30 days
}

// Each is a rule that raises one security event per matching event.
type Each struct {
	Enabled  bool
	Severity custos.Severity
}

// Threshold is a rule that raises when at least Threshold hits (failures,
// distinct users, distinct keys) fall within a sliding Window. Block, when
// not zero, blocks the address key that long (address-keyed rules only).
type Threshold struct {
	Enabled   bool
	Window    time.Duration
	Threshold int
	Severity  custos.Severity
	Block     time.Duration
}

// Level is one step of a graded rule: at Threshold hits, Severity.
type Level struct {
	Threshold int
	Severity  custos.Severity
}

// Levels is a graded threshold rule: the alert raised at the first level is
// raised in severity as later levels are reached. Levels are in increasing
// order of threshold and severity.
type Levels struct {
	Enabled bool
	Window  time.Duration
	Levels  []Level
}

// Session configures SESSION_HIJACK: a session id seen from two address
// keys (Addresses) or with two user agents (UserAgents) within Lifetime of
// its last use.
type Session struct {
	Enabled    bool
	Lifetime   time.Duration
	Severity   custos.Severity
	Addresses  bool
	UserAgents bool
}

// Export configures DATA_EXPORT: every EXPORT raises Severity, or
// BulkSeverity when its user exported more than MaxRecords records within
// Window (this export included) or when it falls outside WorkingHours.
type Export struct {
	Enabled      bool
	Severity     custos.Severity
	BulkSeverity custos.Severity
	Window       time.Duration
	MaxRecords   int
	// RecordCountField names the member of an export's changes object that
	// holds how many records it exported (a positive integer); an export
	// without it counts as one record.
	RecordCountField string
	WorkingHours     WorkingHours
}

// WorkingHours are the days and the daily span, in the Config's Location,
// outside which an export is HIGH. Start and End are offsets from midnight;
// End after Start.
type WorkingHours struct {
	Days       []time.Weekday
	Start, End time.Duration
}

// Contains reports whether t, in loc, falls within the working hours.
func (w WorkingHours) Contains(t time.Time, loc *time.Location) bool {
	t = t.In(loc)
	day := false
	for _, d := range w.Days {
		day = day || d == t.Weekday()
	}
	y, m, dd := t.Date()
	since := t.Sub(time.Date(y, m, dd, 0, 0, 0, 0, loc))
	return day && since >= w.Start && since < w.End
}

// Changes configures CONFIGURATION_CHANGE: one security event per server
// event of one of ResourceTypes that succeeded.
type Changes struct {
	Enabled       bool
	Severity      custos.Severity
	ResourceTypes []string
}

// Baseline configures unusual PHI access: a user's distinct patients in a
// day against the robust z-score of their own last HistoryDays active days
// (median and MAD; the MAD never below MADFloor), or of the user-days of
// their roles' peers while they have fewer than MinHistoryDays. The rule
// raises when the count exceeds both MinPatients and median + ZScore ×
// 1.4826 × MAD, and never blocks.
type Baseline struct {
	Enabled        bool
	Severity       custos.Severity
	HistoryDays    int
	MinHistoryDays int
	MinPeerSamples int
	ZScore         float64
	MADFloor       float64
	MinPatients    int
}

// DefaultConfig returns the default rules: the settings of DefaultYAML.
func DefaultConfig() Config {
	const day = 24 * time.Hour
	return Config{
		LateAllowance: 2 * time.Minute,
		IPv6Prefix:    64,
		BlockLimits:   custos.DefaultBlockLimits,
		AllowList:     []netip.Prefix{},
		Repeat:        Repeat{Within: 30 * day, Factor: 2, Max: 30 * day},
		Location:      time.UTC,

		AuthFailure:         Each{Enabled: true, Severity: custos.SeverityLow},
		BruteForce:          Threshold{Enabled: true, Window: 5 * time.Minute, Threshold: 5, Severity: custos.SeverityHigh, Block: day},
		SlowBruteForce:      Threshold{Enabled: true, Window: day, Threshold: 20, Severity: custos.SeverityMedium},
		PasswordSpraying:    Threshold{Enabled: true, Window: 10 * time.Minute, Threshold: 10, Severity: custos.SeverityHigh, Block: day},
		AccountGuessing:     Threshold{Enabled: true, Window: 15 * time.Minute, Threshold: 3, Severity: custos.SeverityHigh},
		FailuresThenSuccess: Threshold{Enabled: true, Window: 30 * time.Minute, Threshold: 5, Severity: custos.SeverityCritical},
		UnauthorizedAccess: Levels{Enabled: true, Window: 10 * time.Minute, Levels: []Level{
			{Threshold: 10, Severity: custos.SeverityMedium}, {Threshold: 50, Severity: custos.SeverityHigh}}},
		SessionHijack: Session{Enabled: true, Lifetime: 12 * time.Hour, Severity: custos.SeverityCritical,
			Addresses: true, UserAgents: true},
		DataExport: Export{Enabled: true, Severity: custos.SeverityLow, BulkSeverity: custos.SeverityHigh,
			Window: time.Hour, MaxRecords: 1000, RecordCountField: "record_count",
			WorkingHours: WorkingHours{Days: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
				Start: 7 * time.Hour, End: 19 * time.Hour}},
		ConfigurationChange: Changes{Enabled: true, Severity: custos.SeverityLow,
			ResourceTypes: []string{"Role", "User", "ApiKey", "EmergencyGrant", "Approval", "Block", "Rule", "AllowList"}},
		UnusualPHIAccess: Baseline{Enabled: true, Severity: custos.SeverityMedium, HistoryDays: 30,
			MinHistoryDays: 7, MinPeerSamples: 20, ZScore: 3.5, MADFloor: 2, MinPatients: 20},
	}
}
