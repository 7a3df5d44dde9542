package custos

import (
	"encoding/json"
	"log/slog"
	"time"
)

// Action is what a user did to a resource: exactly one of the eight below.
type Action string

// The actions an audit event may record. The set is closed: a ninth action is
// a change to the ledger's canonical encoding and to this contract.
const (
	ActionCreate Action = "CREATE"
	ActionRead   Action = "READ"
	ActionUpdate Action = "UPDATE"
	ActionDelete Action = "DELETE"
	ActionLogin  Action = "LOGIN"
	ActionLogout Action = "LOGOUT"
	ActionExport Action = "EXPORT"
	ActionImport Action = "IMPORT"
)

// Actions lists every valid action in a fixed order.
var Actions = []Action{ActionCreate, ActionRead, ActionUpdate, ActionDelete,
	ActionLogin, ActionLogout, ActionExport, ActionImport}

// Valid reports whether a is one of the eight actions.
func (a Action) Valid() bool {
	for _, v := range Actions {
		if a == v {
			return true
		}
	}
	return false
}

// Outcome says whether the audited operation succeeded.
type Outcome string

// The two outcomes.
const (
	OutcomeSuccess Outcome = "success"
	OutcomeFailure Outcome = "failure"
)

// User is the person or system that acted.
type User struct {
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
}

// RecordKind says who wrote an audit event: a client through an ingest path,
// or Custos itself (reads of the trail, credential changes). The kind is part
// of the leaf, and no ingest path can produce a server event.
type RecordKind string

// The kinds of audit event.
const (
	KindClient RecordKind = "client" // sent by a client
	KindServer RecordKind = "server" // written by Custos about its own operation
)

// Disclosure describes a disclosure of PHI to a third party, for the
// accounting of disclosures (45 CFR 164.528).
type Disclosure struct {
	Recipient string `json:"recipient,omitempty"`
	Address   string `json:"address,omitempty"`
	Purpose   string `json:"purpose,omitempty"`
}

// Delivery identifies the request that brought an event, when its sender gave
// an idempotency key: a retry of that request is answered with the original
// receipts instead of being appended again. The server sets it on the first
// event of such a request; clients never send it in a body. Digest is the
// SHA-256 of the request body (lowercase hex) and Count the number of events
// the request carried, so a retry is recognised exactly.
type Delivery struct {
	Key    string `json:"key"`
	Digest string `json:"digest"`
	Count  int    `json:"count"`
}

// Original is a record exactly as it was received in another format (a FHIR
// AuditEvent, a DICOM audit message), kept in the leaf so that reading it
// back is lossless.
type Original struct {
	Format string `json:"format"` // a media type, e.g. "application/fhir+json"
	Data   []byte `json:"data"`
}

// Event is one audit event: a leaf of the ledger. Index, Timestamp, Kind and
// SubmittedBy are assigned by the ledger when the event is sequenced; clients
// never send them.
type Event struct {
	Index            uint64          `json:"index"`
	Timestamp        time.Time       `json:"timestamp"`
	Kind             RecordKind      `json:"kind"`
	SubmittedBy      string          `json:"submitted_by"`
	OccurredAt       *time.Time      `json:"occurred_at"`
	User             User            `json:"user"`
	Action           Action          `json:"action"`
	ResourceType     string          `json:"resource_type"`
	ResourceID       string          `json:"resource_id"`
	PatientID        string          `json:"patient_id"`
	IPAddress        string          `json:"ip_address"`
	UserAgent        string          `json:"user_agent"`
	RequestMethod    string          `json:"request_method"`
	RequestPath      string          `json:"request_path"`
	Changes          json.RawMessage `json:"changes"`
	Outcome          Outcome         `json:"outcome"`
	StatusCode       int             `json:"status_code"`
	Source           string          `json:"source"`
	RequestID        string          `json:"request_id"`
	SessionID        string          `json:"session_id"`
	PurposeOfUse     string          `json:"purpose_of_use"`
	BreakGlass       bool            `json:"break_glass"`
	BreakGlassReason string          `json:"break_glass_reason"`
	Disclosure       *Disclosure     `json:"disclosure,omitempty"`
	Original         *Original       `json:"original,omitempty"`
	Delivery         *Delivery       `json:"delivery,omitempty"`

	// LeafVersion is the leaf encoding the event was hashed with: 1 for
	// events written before submitters were recorded, 2 since.
	LeafVersion uint8 `json:"-"`
}

// LogValue keeps PHI out of operational logs: only the ledger index, the
// action and the resource type are ever logged.
func (e Event) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Uint64("index", e.Index),
		slog.String("action", string(e.Action)),
		slog.String("resource_type", e.ResourceType),
	)
}

// Receipt acknowledges one durably committed event: its ledger index and its
// RFC 6962 leaf hash.
type Receipt struct {
	Index    uint64 `json:"index"`
	LeafHash []byte `json:"leaf_hash"`
}
