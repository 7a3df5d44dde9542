package custos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Limits bound the size of an event's fields. The zero value is not useful;
// start from DefaultLimits.
type Limits struct {
	MaxChanges int // bytes of the compacted changes JSON
}

// MinMaxChanges is the smallest MaxChanges a server accepts: its own
// records (the READ of a query, with the filters it used) must always fit.
const MinMaxChanges = 4 << 10

// DefaultLimits are the limits a server starts with.
var DefaultLimits = Limits{MaxChanges: 64 << 10}

// Field length limits, in characters. The first five are the seed's.
const (
	maxResourceType  = 50
	maxResourceID    = 50
	maxRequestMethod = 10
	maxRequestPath   = 255
	maxUserID        = 255
	maxUserName      = 255
	maxRoles         = 32
	maxRole          = 64
	maxPatientID     = 64
	maxUserAgent     = 512
	maxSource        = 100
	maxRequestID     = 128
	maxSessionID     = 128
	maxPurposeOfUse  = 100
	maxReason        = 500
	maxRecipient     = 256
	maxAddress       = 512
	maxDisclosed     = 256 // a disclosure's purpose
)

// MaxLength is the longest value, in characters, an event field takes, by
// its JSON name ("user.id", "patient_id", …); 0 for a field without a text
// limit.
func MaxLength(field string) int {
	switch field {
	case "user.id":
		return maxUserID
	case "action", "outcome":
		return 20
	case "resource_type":
		return maxResourceType
	case "resource_id":
		return maxResourceID
	case "patient_id":
		return maxPatientID
	case "ip_address":
		return 45 // the longest IPv6 text form
	case "user_agent":
		return maxUserAgent
	case "request_path":
		return maxRequestPath
	case "source":
		return maxSource
	}
	return 0
}

// Clip returns s as valid UTF-8 of at most max characters.
func Clip(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max])
}

// Normalize validates e in place and brings it to its stored form: the IP
// address in canonical text, the changes compacted, the outcome derived from
// the status code when absent. It returns an *Error of kind Invalid listing
// every field at fault, each prefixed with prefix (e.g. "[3]." in a batch).
func (e *Event) Normalize(lim Limits, prefix string) error {
	v := validator{prefix: prefix}
	v.text("user.id", e.User.ID, maxUserID, true)
	v.text("user.name", e.User.Name, maxUserName, false)
	if len(e.User.Roles) > maxRoles {
		v.add("user.roles", fmt.Sprintf("at most %d roles", maxRoles))
	}
	for i, r := range e.User.Roles {
		v.text(fmt.Sprintf("user.roles[%d]", i), r, maxRole, true)
	}
	if !e.Action.Valid() {
		v.add("action", "must be one of CREATE, READ, UPDATE, DELETE, LOGIN, LOGOUT, EXPORT, IMPORT")
	}
	v.text("resource_type", e.ResourceType, maxResourceType, true)
	v.text("resource_id", e.ResourceID, maxResourceID, false)
	v.text("patient_id", e.PatientID, maxPatientID, false)
	if e.IPAddress != "" {
		ip, err := netip.ParseAddr(e.IPAddress)
		if err != nil || ip.Zone() != "" {
			v.add("ip_address", "must be an IPv4 or IPv6 address")
		} else {
			e.IPAddress = ip.Unmap().String()
		}
	}
	v.text("user_agent", e.UserAgent, maxUserAgent, false)
	v.text("request_method", e.RequestMethod, maxRequestMethod, false)
	if strings.ContainsFunc(e.RequestMethod, func(r rune) bool { return r <= ' ' || r > '~' }) {
		v.add("request_method", "must be an HTTP method token")
	}
	v.text("request_path", e.RequestPath, maxRequestPath, false)
	e.Changes = v.changes("changes", e.Changes, lim.MaxChanges)
	if e.StatusCode != 0 && (e.StatusCode < 100 || e.StatusCode > 599) {
		v.add("status_code", "must be an HTTP status from 100 to 599")
	}
	switch e.Outcome {
	case OutcomeSuccess, OutcomeFailure:
	case "":
		e.Outcome = OutcomeSuccess
		if e.StatusCode >= 400 {
			e.Outcome = OutcomeFailure
		}
	default:
		v.add("outcome", `must be "success" or "failure"`)
	}
	v.text("source", e.Source, maxSource, false)
	v.text("request_id", e.RequestID, maxRequestID, false)
	v.text("session_id", e.SessionID, maxSessionID, false)
	v.text("purpose_of_use", e.PurposeOfUse, maxPurposeOfUse, false)
	v.text("break_glass_reason", e.BreakGlassReason, maxReason, false)
	if e.BreakGlass && strings.TrimSpace(e.BreakGlassReason) == "" {
		v.add("break_glass_reason", "is required when break_glass is true")
	}
	if !e.BreakGlass && e.BreakGlassReason != "" {
		v.add("break_glass_reason", "is only allowed when break_glass is true")
	}
	if d := e.Disclosure; d != nil {
		v.disclosure(e.Action, d)
	}
	if e.OccurredAt != nil {
		t := e.OccurredAt.UTC()
		e.OccurredAt = &t
	}
	return v.err()
}

// disclosure checks a disclosure (45 CFR 164.528): only an EXPORT makes
// one, and it names its recipient and purpose; the recipient's address is
// optional.
func (v *validator) disclosure(a Action, d *Disclosure) {
	if a != ActionExport {
		v.add("disclosure", "only an EXPORT event records a disclosure")
	}
	v.text("disclosure.recipient", d.Recipient, maxRecipient, true)
	v.text("disclosure.address", d.Address, maxAddress, false)
	v.text("disclosure.purpose", d.Purpose, maxDisclosed, true)
}

type validator struct {
	prefix string
	fields []FieldError
}

func (v *validator) add(field, msg string) {
	v.fields = append(v.fields, FieldError{Field: v.prefix + field, Message: msg})
}

// text checks one string field: presence, length in characters, valid UTF-8
// and no NUL or other C0 control characters but tab.
func (v *validator) text(field, s string, max int, required bool) {
	switch {
	case s == "" && required:
		v.add(field, "is required")
	case !utf8.ValidString(s):
		v.add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > max:
		v.add(field, fmt.Sprintf("must be at most %d characters", max))
	case strings.ContainsFunc(s, func(r rune) bool { return r < ' ' && r != '\t' }):
		v.add(field, "must not contain control characters")
	}
}

// changes validates and compacts a JSON field (changes, additional_data);
// "null" becomes nil.
func (v *validator) changes(field string, raw json.RawMessage, max int) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		v.add(field, "must be valid JSON")
		return raw
	}
	if bytes.Contains(buf.Bytes(), []byte(`\u0000`)) {
		v.add(field, "must not contain NUL characters")
	}
	if buf.Len() > max {
		v.add(field, fmt.Sprintf("must be at most %d bytes of JSON", max))
	}
	if bytes.Equal(buf.Bytes(), []byte("null")) {
		return nil
	}
	return buf.Bytes()
}

func (v *validator) err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return &Error{Op: "event.validate", Kind: Invalid, Detail: "the event is invalid", Fields: v.fields}
}
