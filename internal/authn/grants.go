package authn

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
)

// grantDoc is an emergency ("break-the-glass") grant as its state records
// carry it. It ends by itself at ExpiresAt; its review is opened with it and
// closed by a privacy officer. THIS DOCUMENT FEEDS THE HASH: fields are only
// ever added (with omitempty), never renamed.
type grantDoc struct {
	ID         string `json:"id"`
	UserID     string `json:"user_id"`
	Reason     string `json:"reason"`
	PatientID  string `json:"patient_id,omitempty"`
	OpenedAt   string `json:"opened_at"`
	OpenedBy   string `json:"opened_by"`
	ExpiresAt  string `json:"expires_at"`
	Review     string `json:"review"` // "open" or "closed"
	ReviewedBy string `json:"reviewed_by,omitempty"`
	ReviewedAt string `json:"reviewed_at,omitempty"`
	ReviewNote string `json:"review_note,omitempty"`
}

func (g *grantDoc) put() leaf.StateRecord {
	b, _ := json.Marshal(g)
	return leaf.StateRecord{Entity: EntityGrant, ID: g.ID, Op: leaf.OpPut, Doc: b}
}

// Grant is an emergency grant as the API shows it.
type Grant struct {
	grantDoc
	Active bool `json:"active"`
}

// GrantRequest opens an emergency grant.
type GrantRequest struct {
	UserID    string        // "" for the caller itself
	Reason    string        // mandatory
	PatientID string        // optional: the grant covers only this patient
	Duration  time.Duration // at most Config.MaxGrant; 0 for the maximum
}

func (d *Directory) applyGrant(r *leaf.StateRecord) error {
	var g grantDoc
	if err := decodeDoc(r, &g, func() string { return g.ID }); err != nil {
		return err
	}
	if _, ok := d.grants[g.ID]; !ok {
		d.grantsOf[g.UserID] = append(d.grantsOf[g.UserID], g.ID)
	}
	d.grants[g.ID] = g
	return nil
}

// OpenGrant opens an emergency grant for a user: the caller itself, or a
// user of the application that asks (a credential holding authz:decide).
// The grant, and the review it opens, are ledger records.
func (d *Directory) OpenGrant(ctx context.Context, by *custos.Principal, req GrantRequest) (Grant, error) {
	const op = "grant.open"
	if req.UserID == "" {
		req.UserID = by.UserID
	}
	var fields []custos.FieldError
	reason := strings.TrimSpace(req.Reason)
	switch {
	case req.UserID == "":
		fields = append(fields, custos.FieldError{Field: "user_id", Message: "is required when the credential is not a user's"})
	case req.UserID != by.UserID && !by.Can(custos.PermAuthorize):
		return Grant{}, custos.Errorf(op, custos.PermissionDenied, "opening a grant for another user needs the %s permission", custos.PermAuthorize)
	}
	if reason == "" || utf8.RuneCountInString(reason) > maxGrantReason || strings.ContainsFunc(reason, unicode.IsControl) {
		fields = append(fields, custos.FieldError{Field: "reason", Message: fmt.Sprintf("is required: at most %d characters, no control characters", maxGrantReason)})
	}
	if len(req.PatientID) > 256 || strings.ContainsFunc(req.PatientID, unicode.IsControl) || !utf8.ValidString(req.PatientID) {
		fields = append(fields, custos.FieldError{Field: "patient_id", Message: "at most 256 bytes of UTF-8, no control characters"})
	}
	if req.Duration < 0 || req.Duration > d.cfg.MaxGrant {
		fields = append(fields, custos.FieldError{Field: "duration", Message: "must be positive and at most " + d.cfg.MaxGrant.String()})
	}
	if req.Duration == 0 {
		req.Duration = d.cfg.MaxGrant
	}
	d.write.Lock()
	defer d.write.Unlock()
	if err := d.Reload(ctx); err != nil {
		return Grant{}, err
	}
	d.mu.RLock()
	u, ok := d.users[req.UserID]
	d.mu.RUnlock()
	if req.UserID != "" && (!ok || u.Status != StatusActive) {
		fields = append(fields, custos.FieldError{Field: "user_id", Message: fmt.Sprintf("no active user %q", req.UserID)})
	}
	if len(fields) > 0 {
		return Grant{}, &custos.Error{Op: op, Kind: custos.Invalid, Detail: "the grant is invalid", Fields: fields}
	}
	now := d.now()
	g := grantDoc{ID: newID(), UserID: req.UserID, Reason: reason, PatientID: req.PatientID, OpenedAt: stamp(now),
		OpenedBy: Actor(by).ID, ExpiresAt: stamp(now.Add(req.Duration)), Review: "open"}
	ev := change(by, custos.ActionCreate, "EmergencyGrant", g.ID, nil, g)
	ev.User = custos.User{ID: u.ID, Name: u.Name, Roles: nonNil(u.Roles)}
	ev.PatientID, ev.BreakGlass, ev.BreakGlassReason = g.PatientID, true, g.Reason
	rec := g.put()
	rec.Op = leaf.OpCreate
	if err := d.commit(ctx, by, []custos.Event{ev}, rec); err != nil {
		return Grant{}, err
	}
	return Grant{grantDoc: g, Active: true}, nil
}

// ReviewGrant closes the review of a grant, with a note.
func (d *Directory) ReviewGrant(ctx context.Context, by *custos.Principal, id, note string) (Grant, error) {
	const op = "grant.review"
	note = strings.TrimSpace(note)
	if note == "" || utf8.RuneCountInString(note) > 2000 || strings.ContainsFunc(note, func(r rune) bool { return unicode.IsControl(r) && r != '\n' }) {
		return Grant{}, &custos.Error{Op: op, Kind: custos.Invalid, Detail: "the review is invalid",
			Fields: []custos.FieldError{{Field: "note", Message: "is required: at most 2,000 characters"}}}
	}
	d.write.Lock()
	defer d.write.Unlock()
	if err := d.Reload(ctx); err != nil {
		return Grant{}, err
	}
	d.mu.RLock()
	g, ok := d.grants[id]
	d.mu.RUnlock()
	switch {
	case !ok:
		return Grant{}, custos.Errorf(op, custos.NotFound, "no grant %q", id)
	case g.Review != "open":
		return Grant{}, custos.Errorf(op, custos.Conflict, "grant %q was reviewed already", id)
	case by.UserID != "" && by.UserID == g.UserID:
		return Grant{}, custos.Errorf(op, custos.PermissionDenied, "a grant is reviewed by someone other than its user")
	}
	before := g
	g.Review, g.ReviewedBy, g.ReviewedAt, g.ReviewNote = "closed", Actor(by).ID, stamp(d.now()), note
	ev := change(by, custos.ActionUpdate, "EmergencyGrant", g.ID, before, g)
	if err := d.commit(ctx, by, []custos.Event{ev}, g.put()); err != nil {
		return Grant{}, err
	}
	return Grant{grantDoc: g, Active: d.now().Before(parseStamp(g.ExpiresAt))}, nil
}

// Grants returns the grants, newest first; openReview keeps those whose
// review is open.
func (d *Directory) Grants(ctx context.Context, openReview bool) ([]Grant, error) {
	if err := d.Reload(ctx); err != nil {
		return nil, err
	}
	now := d.now()
	d.mu.RLock()
	out := make([]Grant, 0, len(d.grants))
	for _, g := range d.grants {
		if !openReview || g.Review == "open" {
			out = append(out, Grant{grantDoc: g, Active: now.Before(parseStamp(g.ExpiresAt))})
		}
	}
	d.mu.RUnlock()
	slices.SortFunc(out, func(a, b Grant) int { return cmp.Or(-cmp.Compare(a.OpenedAt, b.OpenedAt), cmp.Compare(a.ID, b.ID)) })
	return out, nil
}

// EmergencyGrant returns the open grant under which userID may access
// patientID now, if any.
func (d *Directory) EmergencyGrant(userID, patientID string) (Grant, bool) {
	d.refresh(maxAge)
	now := d.now()
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, id := range d.grantsOf[userID] {
		if g := d.grants[id]; now.Before(parseStamp(g.ExpiresAt)) && (g.PatientID == "" || g.PatientID == patientID) {
			return Grant{grantDoc: g, Active: true}, true
		}
	}
	return Grant{}, false
}

// maxGrantReason bounds a grant's reason so that the break_glass_reason it
// becomes on every access under the grant ("emergency grant <id>: <reason>",
// or a decision's "allowed by emergency grant …") stays within what an
// event may carry (500 characters).
const maxGrantReason = 400

// FlagEmergency marks the client events of users acting under an open
// emergency grant that covers the event's patient: break_glass, with the
// grant as the reason. An event its sender already flagged keeps its own
// reason. It returns events itself when nothing is marked, otherwise a
// marked copy: the caller's slice is never written. The ledger calls it for
// every ingest path (ledger.Sequencer.SetEnrich).
func (d *Directory) FlagEmergency(events []custos.Event) []custos.Event {
	d.refresh(maxAge)
	now := d.now()
	d.mu.RLock()
	defer d.mu.RUnlock()
	if len(d.grantsOf) == 0 {
		return events
	}
	out := events
	for i := range events {
		e := &events[i]
		if e.BreakGlass || e.Kind == custos.KindServer || len(d.grantsOf[e.User.ID]) == 0 {
			continue
		}
		for _, id := range d.grantsOf[e.User.ID] {
			if g := d.grants[id]; now.Before(parseStamp(g.ExpiresAt)) && (g.PatientID == "" || g.PatientID == e.PatientID) {
				if &out[0] == &events[0] {
					out = slices.Clone(events)
				}
				out[i].BreakGlass, out[i].BreakGlassReason = true, "emergency grant "+g.ID+": "+g.Reason
				break
			}
		}
	}
	return out
}
