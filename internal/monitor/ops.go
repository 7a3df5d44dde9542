package monitor

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
)

// What people and applications do: report security events, change their
// status, block and lift addresses. Each is a ledger record, replayed
// before it is answered.

// Report records a security event an application reports. Its id is new;
// rule, status and counts are Custos's to set.
func (m *Monitor) Report(ctx context.Context, by string, se custos.SecurityEvent) (SecurityEvent, error) {
	const op = "security_event.report"
	if se.Rule != "" || se.ID != "" || se.Status != "" {
		return SecurityEvent{}, &custos.Error{Op: op, Kind: custos.Invalid, Detail: "the security event is invalid",
			Fields: []custos.FieldError{{Field: "rule", Message: "id, rule and status are set by Custos, not by a report"}}}
	}
	if err := se.Normalize(m.cfg.Limits); err != nil {
		return SecurityEvent{}, err
	}
	d := eventDoc{ID: "se-" + newID(), EventType: se.EventType, Severity: se.Severity, Description: se.Description,
		User: se.User, IPAddress: se.IPAddress, AdditionalData: se.AdditionalData, Status: custos.StatusOpen, Count: 1,
		ReportedBy: by}
	if err := m.commit(ctx, by, nil, d.record(leaf.OpCreate)); err != nil {
		return SecurityEvent{}, err
	}
	return m.SecurityEvent(d.ID)
}

// SetStatus moves a security event to acknowledged or resolved (or back
// to open), with a note; the history keeps every step.
func (m *Monitor) SetStatus(ctx context.Context, by string, id string, status custos.SecurityEventStatus, note string) (SecurityEvent, error) {
	const op = "security_event.status"
	switch {
	case !status.Valid():
		return SecurityEvent{}, invalid(op, "status", `must be "open", "acknowledged" or "resolved"`)
	case checkNote(note) != nil:
		return SecurityEvent{}, invalid(op, "note", checkNote(note).Error())
	}
	m.mu.RLock()
	s, ok := m.events[id]
	var d eventDoc
	if ok {
		d = s.doc
		d.History = slices.Clone(d.History)
	}
	m.mu.RUnlock()
	switch {
	case !ok:
		return SecurityEvent{}, custos.Errorf(op, custos.NotFound, "no security event %q", id)
	case d.Status == status:
		return SecurityEvent{}, custos.Errorf(op, custos.Conflict, "security event %q is already %s", id, status)
	}
	d.Status, d.Change = status, changeStatus
	d.History = append(d.History, statusChange{Status: status, Note: note, By: by, At: stamp(m.now())})
	ev := custos.Event{Kind: custos.KindServer, User: custos.User{ID: by, Name: by, Roles: []string{}}, Action: custos.ActionUpdate,
		ResourceType: "SecurityEvent", ResourceID: id, Outcome: custos.OutcomeSuccess, Source: "custos"}
	if err := m.commit(ctx, by, []custos.Event{ev}, d.record(leaf.OpPut)); err != nil {
		return SecurityEvent{}, err
	}
	return m.SecurityEvent(id)
}

// AddBlock blocks an address or range for a while, by hand.
func (m *Monitor) AddBlock(ctx context.Context, by string, target, reason string, d time.Duration) (Block, error) {
	const op = "block.create"
	p, err := custos.ParseBlockTarget(target)
	if err != nil {
		return Block{}, invalid(op, "cidr", "must be an IP address (ip) or a CIDR range (cidr)")
	}
	if d <= 0 {
		return Block{}, invalid(op, "duration", "must be positive")
	}
	now := m.now()
	b := custos.Block{ID: "blk-" + newID(), CIDR: p, Reason: strings.TrimSpace(reason), CreatedAt: now.UTC().Truncate(time.Microsecond),
		BlockedUntil: now.Add(d).UTC().Truncate(time.Microsecond), CreatedBy: by}
	if err := b.Validate(m.cfg.Rules.BlockLimits); err != nil {
		return Block{}, err
	}
	doc := blockDoc{ID: b.ID, CIDR: p.String(), Reason: b.Reason, CreatedAt: stamp(b.CreatedAt),
		BlockedUntil: stamp(b.BlockedUntil), CreatedBy: by}
	ev := change(by, custos.ActionCreate, b.ID, nil, doc)
	if err := m.commit(ctx, by, []custos.Event{ev}, doc.record(leaf.OpCreate)); err != nil {
		return Block{}, err
	}
	return doc.view(m.now()), nil
}

// Lift ends a block now.
func (m *Monitor) Lift(ctx context.Context, by string, id, note string) (Block, error) {
	const op = "block.lift"
	if err := checkNote(note); err != nil {
		return Block{}, invalid(op, "note", err.Error())
	}
	m.mu.RLock()
	d, ok := m.blocks[id]
	var doc blockDoc
	if ok {
		doc = *d
	}
	m.mu.RUnlock()
	now := m.now()
	if !ok || !doc.view(now).Active {
		return Block{}, custos.Errorf(op, custos.NotFound, "no block %q in force", id)
	}
	before := doc
	doc.LiftedAt, doc.LiftedBy, doc.LiftNote = stamp(now), by, strings.TrimSpace(note)
	ev := change(by, custos.ActionDelete, id, before, doc)
	if err := m.commit(ctx, by, []custos.Event{ev}, doc.record(leaf.OpPut)); err != nil {
		return Block{}, err
	}
	return doc.view(m.now()), nil
}

// change is the server event of a block change: a configuration change.
func change(by string, a custos.Action, id string, before, after any) custos.Event {
	ev := custos.Event{Kind: custos.KindServer, User: custos.User{ID: by, Name: by, Roles: []string{}}, Action: a,
		ResourceType: "Block", ResourceID: id, Outcome: custos.OutcomeSuccess, Source: "custos"}
	ev.Changes = mustJSON(map[string]any{"before": before, "after": after})
	return ev
}

// commit appends a change and passes over the ledger, so that the change
// is in the tables (and the engine) before it is answered.
func (m *Monitor) commit(ctx context.Context, by string, events []custos.Event, states ...leaf.StateRecord) error {
	if _, err := m.ledger.Append(ctx, by, events, states...); err != nil {
		return err
	}
	return m.Step(ctx)
}

// Filter selects security events.
type Filter struct {
	EventType custos.SecurityEventType
	Severity  custos.Severity
	Status    custos.SecurityEventStatus
	Rule      string
	From, To  time.Time
}

// SecurityEvents returns the matching security events, newest first.
func (m *Monitor) SecurityEvents(f Filter) []SecurityEvent {
	m.mu.RLock()
	out := make([]SecurityEvent, 0)
	for _, s := range m.events {
		d := &s.doc
		if (f.EventType != "" && d.EventType != f.EventType) || (f.Severity != "" && d.Severity != f.Severity) ||
			(f.Status != "" && d.Status != f.Status) || (f.Rule != "" && d.Rule != f.Rule) ||
			(!f.From.IsZero() && s.at.Before(f.From)) || (!f.To.IsZero() && s.at.After(f.To)) {
			continue
		}
		out = append(out, s.view())
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b SecurityEvent) int { return cmp.Compare(b.Index, a.Index) })
	return out
}

// SecurityEvent returns one security event.
func (m *Monitor) SecurityEvent(id string) (SecurityEvent, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.events[id]
	if !ok {
		return SecurityEvent{}, custos.Errorf("security_event.get", custos.NotFound, "no security event %q", id)
	}
	return s.view(), nil
}

// Blocks returns the blocks, newest first; active keeps those in force.
func (m *Monitor) Blocks(active bool) []Block {
	now := m.now()
	m.mu.RLock()
	out := make([]Block, 0)
	for _, d := range m.blocks {
		if v := d.view(now); !active || v.Active {
			out = append(out, v)
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b Block) int { return cmp.Or(cmp.Compare(b.CreatedAt, a.CreatedAt), cmp.Compare(a.ID, b.ID)) })
	return out
}

// Check answers whether ip is blocked now, and by which block.
func (m *Monitor) Check(ip string) (bool, Block, error) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false, Block{}, invalid("block.check", "ip", "must be an IPv4 or IPv6 address")
	}
	b, ok := m.eng.Blocked(addr.Unmap().String())
	if !ok {
		return false, Block{}, nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if d, ok := m.blocks[b.ID]; ok {
		return true, d.view(m.now()), nil
	}
	// Derived by this node's engine, its record not written yet.
	return true, Block{ID: b.ID, CIDR: b.CIDR.String(), Reason: b.Reason, BlockedUntil: stamp(b.BlockedUntil),
		CreatedAt: stamp(b.CreatedAt), CreatedBy: b.CreatedBy, Active: true}, nil
}

func invalid(op, field, msg string) error {
	return &custos.Error{Op: op, Kind: custos.Invalid, Detail: fmt.Sprintf("the request is invalid: %s %s", field, msg),
		Fields: []custos.FieldError{{Field: field, Message: msg}}}
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// checkNote refuses a note that is not one a person writes: invalid UTF-8,
// control characters other than newlines, more than 2,000 characters.
func checkNote(note string) error {
	if !utf8.ValidString(note) || utf8.RuneCountInString(note) > 2000 ||
		strings.ContainsFunc(note, func(r rune) bool { return unicode.IsControl(r) && r != '\n' }) {
		return errors.New("at most 2,000 characters of UTF-8, no control characters but newlines")
	}
	return nil
}
