package custos

import (
	"encoding/json"
	"time"
)

// EventInput is an audit event as a client sends it: the record's fields
// without index and timestamp, which only the ledger assigns.
type EventInput struct {
	OccurredAt       *time.Time      `json:"occurred_at,omitempty"`
	User             *User           `json:"user"`
	Action           Action          `json:"action"`
	ResourceType     string          `json:"resource_type"`
	ResourceID       string          `json:"resource_id,omitempty"`
	PatientID        string          `json:"patient_id,omitempty"`
	IPAddress        string          `json:"ip_address,omitempty"`
	UserAgent        string          `json:"user_agent,omitempty"`
	RequestMethod    string          `json:"request_method,omitempty"`
	RequestPath      string          `json:"request_path,omitempty"`
	Changes          json.RawMessage `json:"changes,omitempty"`
	Outcome          Outcome         `json:"outcome,omitempty"`
	StatusCode       int             `json:"status_code,omitempty"`
	Source           string          `json:"source,omitempty"`
	RequestID        string          `json:"request_id,omitempty"`
	SessionID        string          `json:"session_id,omitempty"`
	PurposeOfUse     string          `json:"purpose_of_use,omitempty"`
	BreakGlass       bool            `json:"break_glass,omitempty"`
	BreakGlassReason string          `json:"break_glass_reason,omitempty"`
	// Disclosure, on an EXPORT, records a disclosure to a third party for
	// the accounting of disclosures (45 CFR 164.528).
	Disclosure *Disclosure `json:"disclosure,omitempty"`
}

// Event returns the input as an (unsequenced, not yet validated) Event.
func (in *EventInput) Event() Event {
	e := Event{OccurredAt: in.OccurredAt, Action: in.Action, ResourceType: in.ResourceType,
		ResourceID: in.ResourceID, PatientID: in.PatientID, IPAddress: in.IPAddress, UserAgent: in.UserAgent,
		RequestMethod: in.RequestMethod, RequestPath: in.RequestPath, Changes: in.Changes, Outcome: in.Outcome,
		StatusCode: in.StatusCode, Source: in.Source, RequestID: in.RequestID, SessionID: in.SessionID,
		PurposeOfUse: in.PurposeOfUse, BreakGlass: in.BreakGlass, BreakGlassReason: in.BreakGlassReason}
	if in.Disclosure != nil {
		d := *in.Disclosure
		e.Disclosure = &d
	}
	if in.User != nil {
		e.User = *in.User
	}
	if e.User.Roles == nil {
		e.User.Roles = []string{}
	}
	return e
}
