package authn

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authz"
	"github.com/custos-audit/custos/internal/leaf"
)

// roleDoc is a custom role as its state records carry it. THIS DOCUMENT
// FEEDS THE HASH: fields are only ever added (with omitempty), never renamed.
type roleDoc struct {
	Name        string              `json:"name"`
	Description string              `json:"description"`
	Permissions []custos.Permission `json:"permissions"`
	ParentRole  string              `json:"parent_role,omitempty"`
}

func roleRecord(r custos.Role) leaf.StateRecord {
	b, _ := json.Marshal(roleDoc{Name: r.Name, Description: r.Description, Permissions: r.Permissions, ParentRole: r.ParentRole})
	return leaf.StateRecord{Entity: EntityRole, ID: r.Name, Op: leaf.OpPut, Doc: b}
}

// applyRole replays one role record; the caller holds mu. A record the
// policy refuses (a cycle two nodes wrote at once) changes nothing.
func (d *Directory) applyRole(r *leaf.StateRecord) error {
	if r.Op == leaf.OpDelete {
		p, err := d.policy.Without(r.ID)
		if err != nil {
			return err
		}
		d.policy = p
		delete(d.roles, r.ID)
		return nil
	}
	var doc roleDoc
	if err := decodeDoc(r, &doc, func() string { return doc.Name }); err != nil {
		return err
	}
	role := custos.Role{Name: doc.Name, Description: doc.Description, Permissions: doc.Permissions, ParentRole: doc.ParentRole}
	var p *authz.Policy
	var err error
	if _, ok := d.roles[doc.Name]; ok {
		p, err = d.policy.Replace(role)
	} else {
		p, err = d.policy.Add(role)
	}
	if err != nil {
		return err
	}
	d.policy = p
	d.roles[doc.Name] = role
	return nil
}

// Roles returns every role, built-in ones included, sorted by name.
func (d *Directory) Roles(ctx context.Context) ([]custos.Role, error) {
	if err := d.Reload(ctx); err != nil {
		return nil, err
	}
	return d.Policy().Roles(), nil
}

// Role returns one role.
func (d *Directory) Role(ctx context.Context, name string) (custos.Role, error) {
	if err := d.Reload(ctx); err != nil {
		return custos.Role{}, err
	}
	r, ok := d.Policy().Role(name)
	if !ok {
		return custos.Role{}, custos.Errorf("role.get", custos.NotFound, "role %q does not exist", name)
	}
	return r, nil
}

// PutRole creates (create true) or replaces a custom role. A change that
// would give the credential making it permissions it does not hold is not
// made: it becomes a pending approval (returned) that another administrator
// must approve.
func (d *Directory) PutRole(ctx context.Context, by *custos.Principal, r custos.Role, create bool) (custos.Role, *Approval, error) {
	d.write.Lock()
	defer d.write.Unlock()
	if err := d.Reload(ctx); err != nil {
		return custos.Role{}, nil, err
	}
	d.mu.RLock()
	policy := d.policy
	d.mu.RUnlock()
	var next *authz.Policy
	var err error
	action, before := custos.ActionUpdate, any(nil)
	if create {
		action = custos.ActionCreate
		next, err = policy.Add(r)
	} else {
		if old, ok := policy.Role(r.Name); ok {
			before = roleView(old)
		}
		next, err = policy.Replace(r)
	}
	if err != nil {
		return custos.Role{}, nil, err
	}
	def, _ := next.Role(r.Name)
	states := []leaf.StateRecord{roleRecord(def)}
	if create {
		states[0].Op = leaf.OpCreate // two nodes creating one name: the second conflicts
	}
	events := []custos.Event{change(by, action, "Role", def.Name, before, roleView(def))}
	if extra := escalation(by, next, def); len(extra) > 0 {
		a, err := d.propose(ctx, by, "role", def.Name, events, states, extra)
		return custos.Role{}, a, err
	}
	if err := d.commit(ctx, by, events, states...); err != nil {
		return custos.Role{}, nil, err
	}
	// The replay is the authority: a change that another node's, committed
	// first, made invalid (a cycle) was skipped.
	got, ok := d.replayedRole(def.Name)
	if !ok || got.Description != def.Description || got.ParentRole != def.ParentRole || !slices.Equal(got.Permissions, def.Permissions) {
		return custos.Role{}, nil, custos.Errorf("role.save", custos.Conflict,
			"role %q was changed on another node at the same time and this change could not be made: read the roles and try again", def.Name)
	}
	return got, nil, nil
}

// replayedRole returns a role as the replayed state holds it.
func (d *Directory) replayedRole(name string) (custos.Role, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.policy.Role(name)
}

// DeleteRole deletes a custom role. A role others inherit from is refused
// unless reparent is set; then its children take newParent ("" for none),
// each re-parenting a record of its own, in the same transaction.
func (d *Directory) DeleteRole(ctx context.Context, by *custos.Principal, name string, reparent bool, newParent string) error {
	d.write.Lock()
	defer d.write.Unlock()
	if err := d.Reload(ctx); err != nil {
		return err
	}
	d.mu.RLock()
	policy := d.policy
	d.mu.RUnlock()
	var err error
	if reparent {
		_, err = policy.WithoutReparent(name, newParent)
	} else {
		_, err = policy.Without(name)
	}
	if err != nil {
		return err
	}
	old, _ := policy.Role(name)
	var states []leaf.StateRecord
	var events []custos.Event
	for _, c := range policy.Children(name) {
		child, _ := policy.Role(c)
		moved := child
		moved.ParentRole = newParent
		states = append(states, roleRecord(moved))
		events = append(events, change(by, custos.ActionUpdate, "Role", c, roleView(child), roleView(moved)))
	}
	states = append(states, leaf.StateRecord{Entity: EntityRole, ID: name, Op: leaf.OpDelete})
	events = append(events, change(by, custos.ActionDelete, "Role", name, roleView(old), nil))
	if err := d.commit(ctx, by, events, states...); err != nil {
		return err
	}
	if _, ok := d.replayedRole(name); ok { // skipped at replay: another node gave it a child meanwhile
		return custos.Errorf("role.delete", custos.Conflict,
			"role %q was changed on another node at the same time and could not be deleted: read the roles and try again", name)
	}
	return nil
}

// roleView is a role as the trail shows it in a change: its definition.
func roleView(r custos.Role) map[string]any {
	return map[string]any{"name": r.Name, "description": r.Description, "permissions": r.Permissions, "parent_role": r.ParentRole}
}

// escalation lists the permissions a role change hands out that its author
// does not hold: the role's own effective permissions, and what the change
// adds to the author through roles the author holds. Nobody hands out what
// they do not hold without a second administrator.
func escalation(by *custos.Principal, next *authz.Policy, role custos.Role) []string {
	if by == nil {
		return nil // Custos itself, or an operator's command on a stopped store
	}
	extra := beyond(next.Permissions([]string{role.Name}), by.Permissions)
	extra = append(extra, beyond(next.Permissions(by.Roles), by.Permissions)...)
	slices.Sort(extra)
	return slices.Compact(extra)
}

// requireRoles checks that every role exists in policy.
func requireRoles(op string, policy *authz.Policy, roles []string) error {
	var fields []custos.FieldError
	for i, r := range roles {
		if _, ok := policy.Role(r); !ok {
			fields = append(fields, custos.FieldError{Field: fmt.Sprintf("roles[%d]", i), Message: fmt.Sprintf("no role %q", r)})
		}
	}
	if len(fields) > 0 {
		return &custos.Error{Op: op, Kind: custos.Invalid, Detail: "unknown roles", Fields: fields}
	}
	return nil
}
