package authn

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authz"
	"github.com/custos-audit/custos/internal/leaf"
)

// The statuses of an approval.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalRejected = "rejected"
)

// proposed is one state record of a change waiting for approval.
type proposed struct {
	Entity string          `json:"entity"`
	ID     string          `json:"id"`
	Op     string          `json:"op"`
	Doc    json.RawMessage `json:"doc,omitempty"`
	Base   json.RawMessage `json:"base,omitempty"` // the document it replaces, as it was when proposed
}

// approvalDoc is a change that would give its author permissions it does
// not hold, waiting for a second administrator. THIS DOCUMENT FEEDS THE
// HASH: fields are only ever added (with omitempty), never renamed.
type approvalDoc struct {
	ID              string          `json:"id"`
	Entity          string          `json:"entity"`
	Target          string          `json:"target"`
	Gains           []string        `json:"gains"` // the permissions the author would gain
	Change          json.RawMessage `json:"change"`
	States          []proposed      `json:"states"`
	RequestedBy     string          `json:"requested_by"`
	RequestedByUser string          `json:"requested_by_user,omitempty"`
	RequestedAt     string          `json:"requested_at"`
	Status          string          `json:"status"`
	DecidedBy       string          `json:"decided_by,omitempty"`
	DecidedAt       string          `json:"decided_at,omitempty"`
}

func (a *approvalDoc) put() leaf.StateRecord {
	b, _ := json.Marshal(a)
	return leaf.StateRecord{Entity: EntityApproval, ID: a.ID, Op: leaf.OpPut, Doc: b}
}

// Approval is a pending (or decided) change as the API shows it.
type Approval struct {
	ID          string          `json:"id"`
	Entity      string          `json:"entity"`
	Target      string          `json:"target"`
	Gains       []string        `json:"gains"`
	Change      json.RawMessage `json:"change"`
	RequestedBy string          `json:"requested_by"`
	RequestedAt string          `json:"requested_at"`
	Status      string          `json:"status"`
	DecidedBy   string          `json:"decided_by,omitempty"`
	DecidedAt   string          `json:"decided_at,omitempty"`
}

func (a *approvalDoc) view() Approval {
	return Approval{ID: a.ID, Entity: a.Entity, Target: a.Target, Gains: a.Gains, Change: a.Change,
		RequestedBy: a.RequestedBy, RequestedAt: a.RequestedAt, Status: a.Status, DecidedBy: a.DecidedBy, DecidedAt: a.DecidedAt}
}

func (d *Directory) applyApproval(r *leaf.StateRecord) error {
	var a approvalDoc
	if err := decodeDoc(r, &a, func() string { return a.ID }); err != nil {
		return err
	}
	d.approvals[a.ID] = a
	return nil
}

// propose records a change as pending approval; the caller holds write.
func (d *Directory) propose(ctx context.Context, by *custos.Principal, entity, target string, events []custos.Event, states []leaf.StateRecord, gains []string) (*Approval, error) {
	a := approvalDoc{ID: newID(), Entity: entity, Target: target, Gains: gains, Change: events[0].Changes,
		RequestedBy: Actor(by).ID, RequestedByUser: by.UserID, RequestedAt: stamp(d.now()), Status: ApprovalPending}
	for _, s := range states {
		a.States = append(a.States, proposed{Entity: s.Entity, ID: s.ID, Op: string(s.Op), Doc: s.Doc, Base: d.current(s.Entity, s.ID)})
	}
	ev := change(by, custos.ActionCreate, "Approval", a.ID, nil, map[string]any{"entity": entity, "target": target, "gains": gains, "change": a.Change})
	rec := a.put()
	rec.Op = leaf.OpCreate
	if err := d.commit(ctx, by, []custos.Event{ev}, rec); err != nil {
		return nil, err
	}
	v := a.view()
	return &v, nil
}

// current returns the document of entity/id as the cache holds it, nil
// when there is none.
func (d *Directory) current(entity, id string) json.RawMessage {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var v any
	switch entity {
	case EntityUser:
		if u, ok := d.users[id]; ok {
			v = u
		}
	case EntityRole:
		if r, ok := d.roles[id]; ok {
			v = roleDoc{Name: r.Name, Description: r.Description, Permissions: r.Permissions, ParentRole: r.ParentRole}
		}
	}
	if v == nil {
		return nil
	}
	b, _ := json.Marshal(v)
	return b
}

// Decide approves or rejects a pending change. The approver must be another
// person than its author (another user, or another credential when neither
// is a user's) and hold the permission the change needs; the change is made
// only if what it replaces is as it was when it was proposed and it still
// passes every check.
func (d *Directory) DecideApproval(ctx context.Context, by *custos.Principal, id string, approve bool) (Approval, error) {
	const op = "approval.decide"
	d.write.Lock()
	defer d.write.Unlock()
	if err := d.Reload(ctx); err != nil {
		return Approval{}, err
	}
	d.mu.RLock()
	a, ok := d.approvals[id]
	policy := d.policy
	d.mu.RUnlock()
	switch {
	case !ok:
		return Approval{}, custos.Errorf(op, custos.NotFound, "no approval %q", id)
	case a.Status != ApprovalPending:
		return Approval{}, custos.Errorf(op, custos.Conflict, "approval %q is already %s", id, a.Status)
	case Actor(by).ID == a.RequestedBy || (by.UserID != "" && by.UserID == a.RequestedByUser):
		return Approval{}, custos.Errorf(op, custos.PermissionDenied, "a change that grants its author more must be approved by someone else")
	case approve && !by.Can(changePermission(a.Entity)):
		return Approval{}, custos.Errorf(op, custos.PermissionDenied, "approving a %s change needs the %s permission", a.Entity, changePermission(a.Entity))
	}
	if lacks := approverLacks(by, a.Gains); approve && len(lacks) > 0 {
		// Otherwise two holders of users:manage make each other administrators.
		return Approval{}, custos.Errorf(op, custos.PermissionDenied,
			"a change is approved by someone who holds what it grants: this credential lacks %s", strings.Join(lacks, ", "))
	}
	a.DecidedBy, a.DecidedAt = Actor(by).ID, stamp(d.now())
	a.Status = ApprovalRejected
	var states []leaf.StateRecord
	if approve {
		a.Status = ApprovalApproved
		for _, p := range a.States {
			if !bytes.Equal(d.current(p.Entity, p.ID), p.Base) {
				return Approval{}, custos.Errorf(op, custos.Conflict, "%s %q changed after the change was proposed: propose it again", p.Entity, p.ID)
			}
			rec, err := recheck(op, policy, p)
			if err != nil {
				return Approval{}, err
			}
			states = append(states, rec)
		}
	}
	verb := map[bool]string{true: "approved", false: "rejected"}[approve]
	ev := change(by, custos.ActionUpdate, "Approval", a.ID, nil, map[string]any{"status": verb, "entity": a.Entity,
		"target": a.Target, "requested_by": a.RequestedBy, "change": a.Change})
	events := []custos.Event{ev}
	if approve {
		target := strings.ToUpper(a.Entity[:1]) + a.Entity[1:]
		events = append(events, custos.Event{Kind: custos.KindServer, User: Actor(by), Action: custos.ActionUpdate,
			ResourceType: target, ResourceID: a.Target, Changes: a.Change, Outcome: custos.OutcomeSuccess, Source: "custos"})
	}
	if err := d.commit(ctx, by, events, append(states, a.put())...); err != nil {
		return Approval{}, err
	}
	return a.view(), nil
}

// Approvals returns the approvals, newest first; pendingOnly keeps the
// pending ones.
func (d *Directory) Approvals(ctx context.Context, pendingOnly bool) ([]Approval, error) {
	if err := d.Reload(ctx); err != nil {
		return nil, err
	}
	d.mu.RLock()
	var out []Approval
	for _, a := range d.approvals {
		if !pendingOnly || a.Status == ApprovalPending {
			out = append(out, a.view())
		}
	}
	d.mu.RUnlock()
	slices.SortFunc(out, func(a, b Approval) int {
		return cmp.Or(-cmp.Compare(a.RequestedAt, b.RequestedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// recheck rebuilds a proposed record and checks it against the policy as it
// stands now.
func recheck(op string, policy *authz.Policy, p proposed) (leaf.StateRecord, error) {
	rec := leaf.StateRecord{Entity: p.Entity, ID: p.ID, Op: leaf.StateOp(p.Op), Doc: p.Doc}
	switch p.Entity {
	case EntityRole:
		var r roleDoc
		if err := json.Unmarshal(p.Doc, &r); err != nil {
			return rec, custos.Errorf(op, custos.Internal, "approval holds a malformed role")
		}
		role := custos.Role{Name: r.Name, Description: r.Description, Permissions: r.Permissions, ParentRole: r.ParentRole}
		var err error
		if p.Base == nil {
			_, err = policy.Add(role)
		} else {
			_, err = policy.Replace(role)
		}
		return rec, err
	case EntityUser:
		var u userDoc
		if err := json.Unmarshal(p.Doc, &u); err != nil {
			return rec, custos.Errorf(op, custos.Internal, "approval holds a malformed user")
		}
		return rec, requireRoles(op, policy, u.Roles)
	}
	return rec, custos.Errorf(op, custos.Internal, "approval of an unknown entity %q", p.Entity)
}

// changePermission is the permission that changing entity needs.
func changePermission(entity string) custos.Permission {
	if entity == EntityRole {
		return custos.PermRolesManage
	}
	return custos.PermUsersManage
}

// approverLacks lists, sorted, the permissions of gains that by does not
// hold.
func approverLacks(by *custos.Principal, gains []string) []string {
	var out []string
	for _, g := range gains {
		if !by.Can(custos.Permission(g)) {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return out
}
