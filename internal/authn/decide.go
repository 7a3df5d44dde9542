package authn

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authz"
)

// Question asks whether a user may do something, for an application.
type Question struct {
	UserID       string            `json:"user_id"`
	Permission   custos.Permission `json:"permission"`
	PatientID    string            `json:"patient_id,omitempty"`
	PurposeOfUse string            `json:"purpose_of_use,omitempty"`
}

// Answer is a decision and why.
type Answer struct {
	Allowed    bool   `json:"allowed"`
	Reason     string `json:"reason"`
	BreakGlass bool   `json:"break_glass,omitempty"`
	GrantID    string `json:"grant_id,omitempty"`
}

// Check validates a question's form; an invalid one is a bad request, not a
// denial.
func (q *Question) Check(prefix string) []custos.FieldError {
	var fields []custos.FieldError
	if !validUserID(q.UserID) {
		fields = append(fields, custos.FieldError{Field: prefix + "user_id", Message: "is required: 1 to 128 letters, digits and . _ @ + -"})
	}
	if err := authz.ValidatePermission(q.Permission); err != nil {
		fields = append(fields, custos.FieldError{Field: prefix + "permission", Message: "must be a codename area:verb, such as patient:read"})
	}
	if len(q.PatientID) > 256 || strings.ContainsFunc(q.PatientID, func(r rune) bool { return r < 0x20 }) {
		fields = append(fields, custos.FieldError{Field: prefix + "patient_id", Message: "at most 256 bytes, no control characters"})
	}
	if len(q.PurposeOfUse) > 256 || strings.ContainsFunc(q.PurposeOfUse, func(r rune) bool { return r < 0x20 }) {
		fields = append(fields, custos.FieldError{Field: prefix + "purpose_of_use", Message: "at most 256 bytes, no control characters"})
	}
	return fields
}

// Decide answers a question from the state as it stands: a lookup in the
// compiled policy. Suspended and terminated users are always denied; a
// user without the permission is allowed under an open emergency grant
// that covers the patient, and the answer says so. The event is the
// decision's record for the trail.
func (d *Directory) Decide(by *custos.Principal, q Question) (Answer, custos.Event) {
	d.refresh(maxAge)
	d.mu.RLock()
	u, ok := d.users[q.UserID]
	policy := d.policy
	d.mu.RUnlock()
	var a Answer
	switch {
	case !ok:
		a.Reason = fmt.Sprintf("no user %q", q.UserID)
	case u.Status != StatusActive:
		a.Reason = fmt.Sprintf("user %q is %s", q.UserID, u.Status)
	default:
		dec := policy.Decide(u.Roles, q.Permission)
		a.Allowed, a.Reason = dec.Allowed, dec.Reason(q.Permission)
		// An emergency grant covers patient care, never Custos's own
		// permissions (roles, users, keys): those are not broken glass.
		if !dec.Allowed && !slices.Contains(custos.ReservedAreas, q.Permission.Area()) {
			if g, ok := d.EmergencyGrant(u.ID, q.PatientID); ok {
				a = Answer{Allowed: true, BreakGlass: true, GrantID: g.ID,
					Reason: fmt.Sprintf("allowed by emergency grant %s (%s), until %s", g.ID, g.Reason, g.ExpiresAt)}
			}
		}
	}
	return a, decisionEvent(by, q, u, a)
}

// decisionEvent is the trail's record of a decision.
func decisionEvent(by *custos.Principal, q Question, u userDoc, a Answer) custos.Event {
	user := custos.User{ID: q.UserID, Name: u.Name, Roles: nonNil(u.Roles)}
	if !validUserID(q.UserID) {
		user.ID = "(invalid user id)"
	}
	if user.Name == "" {
		user.Name = user.ID
	}
	outcome, status := custos.OutcomeSuccess, 200
	if !a.Allowed {
		outcome, status = custos.OutcomeFailure, 403
	}
	ev := custos.Event{Kind: custos.KindServer, User: user, Action: actionOf(q.Permission), ResourceType: "Authorization",
		ResourceID: string(q.Permission), PatientID: q.PatientID, PurposeOfUse: q.PurposeOfUse, Outcome: outcome,
		StatusCode: status, Source: "custos", RequestMethod: "POST", RequestPath: "/v1/authorize"}
	if a.BreakGlass {
		ev.BreakGlass, ev.BreakGlassReason = true, a.Reason
	}
	ev.Changes, _ = json.Marshal(map[string]any{"permission": q.Permission, "allowed": a.Allowed, "reason": a.Reason,
		"asked_by": Actor(by).ID})
	return ev
}

// actionOf names the action a permission's verb stands for.
func actionOf(p custos.Permission) custos.Action {
	_, verb, _ := strings.Cut(string(p), ":")
	switch verb {
	case "write", "create", "add":
		return custos.ActionCreate
	case "update", "edit", "change", "manage":
		return custos.ActionUpdate
	case "delete", "remove":
		return custos.ActionDelete
	case "export":
		return custos.ActionExport
	case "import":
		return custos.ActionImport
	}
	return custos.ActionRead
}

// DecisionLog records decisions in the ledger. Denials and emergency
// accesses are committed before the answer (Record); allowed decisions are
// batched behind it (Defer): a crash can lose the allowed decisions of the
// last batch (at most Delay old), never a denial.
type DecisionLog struct {
	ledger Appender
	log    *slog.Logger
	queue  chan custos.Event
	done   chan struct{}
	once   sync.Once
}

// NewDecisionLog starts the batcher; Close stops it after writing what it
// holds.
func NewDecisionLog(ledger Appender, log *slog.Logger) *DecisionLog {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &DecisionLog{ledger: ledger, log: log, queue: make(chan custos.Event, 8192), done: make(chan struct{})}
	go l.run()
	return l
}

// Record commits a decision's events before the caller answers.
func (l *DecisionLog) Record(ctx context.Context, by string, events []custos.Event) error {
	_, err := l.ledger.Append(ctx, by, events)
	return err
}

// Defer queues an allowed decision; it waits while the queue is full.
func (l *DecisionLog) Defer(ctx context.Context, ev custos.Event) error {
	select {
	case l.queue <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxDeferred is the most events one deferred append carries.
const maxDeferred = 2000

func (l *DecisionLog) run() {
	defer close(l.done)
	for ev := range l.queue {
		batch := []custos.Event{ev}
	drain:
		for len(batch) < maxDeferred {
			select {
			case e, ok := <-l.queue:
				if !ok {
					break drain
				}
				batch = append(batch, e)
			default:
				break drain
			}
		}
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := l.ledger.Append(ctx, "custos", batch)
			cancel()
			if err == nil {
				break
			}
			if custos.KindOf(err) != custos.Unavailable || attempt == 5 {
				l.log.Error("allowed decisions not recorded", "count", len(batch), "error", err)
				break
			}
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		}
	}
}

// Close writes the queued decisions and stops.
func (l *DecisionLog) Close() {
	l.once.Do(func() { close(l.queue) })
	<-l.done
}
