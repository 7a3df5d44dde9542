package authz

import (
	"fmt"
	"maps"
	"slices"

	"github.com/custos-audit/custos"
)

// Has reports whether role holds perm, itself or through an ancestor. An
// unknown role holds nothing. It is a lookup: no allocation, no walk.
func (p *Policy) Has(role string, perm custos.Permission) bool {
	e := p.entry(role)
	return e != nil && e.effective[perm]
}

// HasAny reports whether any of roles holds perm. Unknown roles hold
// nothing; an empty list holds nothing. It allocates nothing.
func (p *Policy) HasAny(roles []string, perm custos.Permission) bool {
	for _, r := range roles {
		if p.Has(r, perm) {
			return true
		}
	}
	return false
}

// Permissions returns the effective permissions of roles together, for a
// custos.Principal: read-only, as it may be the policy's own map of a role,
// shared by every caller. Unknown roles add nothing; no known role gives an
// empty map. Compute it once per credential and policy version, not per
// request.
func (p *Policy) Permissions(roles []string) map[custos.Permission]bool {
	var first *entry
	var union map[custos.Permission]bool
	for _, r := range roles {
		e := p.entry(r)
		switch {
		case e == nil:
		case first == nil:
			first = e
		case union == nil && covers(first, e):
		case union == nil && covers(e, first):
			first = e
		default:
			if union == nil {
				union = maps.Clone(first.effective)
			}
			maps.Copy(union, e.effective)
		}
	}
	switch {
	case union != nil:
		return union
	case first != nil:
		return first.effective
	}
	return map[custos.Permission]bool{}
}

// covers reports whether a's effective permissions include b's because b's
// set is that of a or of one of its ancestors.
func covers(a, b *entry) bool {
	for x := a; x != nil; x = x.parent {
		if x.owner == b.owner {
			return true
		}
	}
	return false
}

// Decision is the answer to "may a holder of these roles do P?" with its
// reason.
type Decision struct {
	Allowed bool
	Role    string // the assigned role that grants the permission; "" when denied
	Holder  string // the role that lists the permission itself: Role or an ancestor of it
}

// Decide answers whether any of roles holds perm, and through which: the
// first of roles that holds it, and the nearest role up its chain that lists
// perm itself. It allocates nothing; Has and HasAny are the faster form when
// no reason is needed.
func (p *Policy) Decide(roles []string, perm custos.Permission) Decision {
	for _, r := range roles {
		e := p.entry(r)
		if e == nil || !e.effective[perm] {
			continue
		}
		for h := e; h != nil; h = h.parent { // at most MaxDepth steps
			if _, ok := slices.BinarySearch(h.def.Permissions, perm); ok {
				return Decision{Allowed: true, Role: r, Holder: h.def.Name}
			}
		}
	}
	return Decision{}
}

// Reason says why the decision was taken, for a person: "allowed by role
// ward_nurse (inherited from nurse)" or "no role of the user grants
// patient:read".
func (d Decision) Reason(perm custos.Permission) string {
	switch {
	case !d.Allowed:
		return fmt.Sprintf("no role of the user grants %s", perm)
	case d.Holder != d.Role:
		return fmt.Sprintf("allowed by role %s (inherited from %s)", d.Role, d.Holder)
	}
	return fmt.Sprintf("allowed by role %s", d.Role)
}

// Role returns the named role with its effective permissions (sorted) and
// BuiltIn filled in. The slices are the caller's.
func (p *Policy) Role(name string) (custos.Role, bool) {
	e := p.entry(name)
	if e == nil {
		return custos.Role{}, false
	}
	return e.role(), true
}

// Roles returns every role, built-in ones included, sorted by name, as Role
// does.
func (p *Policy) Roles() []custos.Role {
	if p == nil {
		return nil
	}
	roles := make([]custos.Role, len(p.names))
	for i, name := range p.names {
		roles[i] = p.roles[name].role()
	}
	return roles
}

// Children returns the sorted names of the roles whose parent is name.
func (p *Policy) Children(name string) []string {
	if p == nil {
		return nil
	}
	return slices.Clone(p.children[name])
}

func (e *entry) role() custos.Role {
	r := e.def
	r.Permissions = slices.Clone(r.Permissions)
	r.EffectivePermissions = slices.Sorted(maps.Keys(e.effective))
	r.BuiltIn = e.builtIn
	return r
}
