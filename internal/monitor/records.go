package monitor

import (
	"encoding/json"
	"net/netip"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
)

// The state entities of security monitoring. Frozen: they are in the ledger.
const (
	EntitySecurityEvent = "security_event"
	EntityBlock         = "block"
)

// statusChange is one step of a security event's life.
type statusChange struct {
	Status custos.SecurityEventStatus `json:"status"`
	Note   string                     `json:"note,omitempty"`
	By     string                     `json:"by"`
	At     string                     `json:"at"`
}

// eventDoc is a security event as its state records carry it. THIS
// DOCUMENT FEEDS THE HASH: fields are only ever added (with omitempty),
// never renamed.
type eventDoc struct {
	ID             string                     `json:"id"`
	EventType      custos.SecurityEventType   `json:"event_type"`
	Severity       custos.Severity            `json:"severity"`
	Description    string                     `json:"description"`
	User           string                     `json:"user,omitempty"`
	IPAddress      string                     `json:"ip_address,omitempty"`
	AdditionalData json.RawMessage            `json:"additional_data,omitempty"`
	Rule           string                     `json:"rule,omitempty"`
	Status         custos.SecurityEventStatus `json:"status"`
	Count          int                        `json:"count,omitempty"`
	FirstSeen      string                     `json:"first_seen,omitempty"`
	LastSeen       string                     `json:"last_seen,omitempty"`
	Cause          uint64                     `json:"cause,omitempty"` // the index of the event that raised it
	AllowListed    bool                       `json:"allow_listed,omitempty"`
	ReportedBy     string                     `json:"reported_by,omitempty"`
	History        []statusChange             `json:"history,omitempty"`
	Change         string                     `json:"change,omitempty"` // what this record changed: changeStatus or changeCount
}

// What a put of a security event changed, so that an alert says so.
const (
	changeStatus = "status"
	changeCount  = "count"
)

func (d *eventDoc) record(op leaf.StateOp) leaf.StateRecord {
	b, _ := json.Marshal(d)
	return leaf.StateRecord{Entity: EntitySecurityEvent, ID: d.ID, Op: op, Doc: b}
}

// SecurityEvent is a security event as the API shows it.
type SecurityEvent struct {
	custos.SecurityEvent
	Count       int            `json:"count"`
	FirstSeen   string         `json:"first_seen,omitempty"`
	LastSeen    string         `json:"last_seen,omitempty"`
	AllowListed bool           `json:"allow_listed,omitempty"`
	ReportedBy  string         `json:"reported_by,omitempty"`
	History     []statusChange `json:"history"`
}

// stored is a security event with where the ledger put it.
type stored struct {
	doc   eventDoc
	index uint64
	at    time.Time
}

func (s *stored) view() SecurityEvent {
	se := custos.SecurityEvent{ID: s.doc.ID, Index: s.index, Timestamp: s.at, EventType: s.doc.EventType,
		Severity: s.doc.Severity, Description: s.doc.Description, User: s.doc.User, IPAddress: s.doc.IPAddress,
		AdditionalData: s.doc.AdditionalData, Rule: s.doc.Rule, Status: s.doc.Status}
	h := s.doc.History
	if h == nil {
		h = []statusChange{}
	}
	count := max(s.doc.Count, 1)
	return SecurityEvent{SecurityEvent: se, Count: count, FirstSeen: s.doc.FirstSeen, LastSeen: s.doc.LastSeen,
		AllowListed: s.doc.AllowListed, ReportedBy: s.doc.ReportedBy, History: h}
}

// blockDoc is a block as its state records carry it; a lift is the same
// document with lifted_at. THIS DOCUMENT FEEDS THE HASH: fields are only
// ever added (with omitempty), never renamed.
type blockDoc struct {
	ID           string `json:"id"`
	CIDR         string `json:"cidr"`
	Reason       string `json:"reason"`
	CreatedAt    string `json:"created_at"`
	BlockedUntil string `json:"blocked_until"`
	CreatedBy    string `json:"created_by"`
	Rule         string `json:"rule,omitempty"`
	LiftedAt     string `json:"lifted_at,omitempty"`
	LiftedBy     string `json:"lifted_by,omitempty"`
	LiftNote     string `json:"lift_note,omitempty"`
}

func (d *blockDoc) record(op leaf.StateOp) leaf.StateRecord {
	b, _ := json.Marshal(d)
	return leaf.StateRecord{Entity: EntityBlock, ID: d.ID, Op: op, Doc: b}
}

// block is the domain form of d.
func (d *blockDoc) block() (custos.Block, error) {
	p, err := netip.ParsePrefix(d.CIDR)
	if err != nil {
		return custos.Block{}, err
	}
	return custos.Block{ID: d.ID, CIDR: p, Reason: d.Reason, CreatedAt: parse(d.CreatedAt),
		BlockedUntil: parse(d.BlockedUntil), CreatedBy: d.CreatedBy}, nil
}

// Block is a block as the API shows it.
type Block struct {
	ID           string `json:"id"`
	CIDR         string `json:"cidr"`
	Reason       string `json:"reason"`
	BlockedUntil string `json:"blocked_until"`
	CreatedAt    string `json:"created_at"`
	CreatedBy    string `json:"created_by"`
	Rule         string `json:"rule,omitempty"`
	LiftedAt     string `json:"lifted_at,omitempty"`
	LiftedBy     string `json:"lifted_by,omitempty"`
	Active       bool   `json:"active"`
}

func (d *blockDoc) view(now time.Time) Block {
	end := parse(d.BlockedUntil)
	if d.LiftedAt != "" {
		end = parse(d.LiftedAt)
	}
	return Block{ID: d.ID, CIDR: d.CIDR, Reason: d.Reason, BlockedUntil: d.BlockedUntil, CreatedAt: d.CreatedAt,
		CreatedBy: d.CreatedBy, Rule: d.Rule, LiftedAt: d.LiftedAt, LiftedBy: d.LiftedBy, Active: now.Before(end)}
}

func stamp(t time.Time) string { return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano) }

func parse(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
