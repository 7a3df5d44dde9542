package authz

import (
	"fmt"
	"strings"

	"github.com/custos-audit/custos"
)

// maxNamed is how many children an in-use error names before "and N more".
const maxNamed = 10

// Add returns a policy one version later that also holds r, a new custom
// role. It refuses what ValidateRole refuses (Invalid), a name that exists
// or is built in (Conflict), a parent that does not exist (Invalid), r as its
// own parent (Conflict, the cycle "a → a") and a chain deeper than MaxDepth
// (Invalid). p is never changed.
func (p *Policy) Add(r custos.Role) (*Policy, error) {
	const op = "role.create"
	def, err := ValidateRole(r)
	if err != nil {
		return nil, withOp(op, err)
	}
	switch {
	case IsBuiltIn(def.Name):
		return nil, conflict(op, "role %q is built in", def.Name)
	case p.entry(def.Name) != nil:
		return nil, conflict(op, "role %q already exists", def.Name)
	}
	return p.apply(op, change{put: def})
}

// Replace returns a policy one version later in which the custom role
// r.Name has r's definition. It refuses what ValidateRole refuses
// (Invalid), a role that does not exist (NotFound), a built-in role
// (Conflict), a parent that does not exist (Invalid), and a parent that
// would make a cycle (Conflict, naming it) or a chain deeper than MaxDepth
// (Invalid). p is never changed.
func (p *Policy) Replace(r custos.Role) (*Policy, error) {
	const op = "role.update"
	def, err := ValidateRole(r)
	if err != nil {
		return nil, withOp(op, err)
	}
	switch {
	case IsBuiltIn(def.Name):
		return nil, conflict(op, "built-in role %q cannot be changed", def.Name)
	case p.entry(def.Name) == nil:
		return nil, custos.Errorf(op, custos.NotFound, "role %q does not exist", def.Name)
	}
	return p.apply(op, change{put: def})
}

// Without returns a policy one version later without the custom role name.
// It refuses a role that does not exist (NotFound), a built-in role
// (Conflict) and a role others inherit from (Conflict, naming them; see
// WithoutReparent). p is never changed.
func (p *Policy) Without(name string) (*Policy, error) {
	const op = "role.delete"
	if err := p.deletable(op, name); err != nil {
		return nil, err
	}
	if children := p.children[name]; len(children) > 0 {
		return nil, conflict(op,
			"role %q is the parent of %s: give them another parent first, or delete it with re-parenting",
			name, list(children))
	}
	return p.apply(op, change{drop: name})
}

// WithoutReparent returns a policy one version later without the custom role
// name, in which each of its children has newParent as its parent ("" for
// none). The children lose what they inherited through name. It refuses
// what Without does, except having children, and a newParent that does not
// exist (Invalid), is name, or would make a cycle (Conflict) or a chain
// deeper than MaxDepth (Invalid). p is never changed.
func (p *Policy) WithoutReparent(name, newParent string) (*Policy, error) {
	const op = "role.delete"
	if err := p.deletable(op, name); err != nil {
		return nil, err
	}
	switch {
	case newParent == name:
		return nil, invalid(op, "reparent", "the children of role %q cannot take it as their parent", name)
	case newParent != "" && p.entry(newParent) == nil:
		return nil, invalid(op, "reparent", "role %q does not exist", newParent)
	}
	return p.apply(op, change{drop: name, reparent: true, newParent: newParent})
}

// deletable refuses to delete a role that does not exist or is built in.
func (p *Policy) deletable(op, name string) error {
	switch {
	case IsBuiltIn(name):
		return conflict(op, "built-in role %q cannot be deleted", name)
	case p.entry(name) == nil:
		return custos.Errorf(op, custos.NotFound, "role %q does not exist", name)
	}
	return nil
}

// change is one change to a policy's roles.
type change struct {
	put       custos.Role // a role to create or replace, if it has a name
	drop      string      // a role to delete, if not ""
	reparent  bool        // move drop's children under newParent
	newParent string
}

// apply compiles p's roles with c made.
func (p *Policy) apply(op string, c change) (*Policy, error) {
	if p == nil || p.roles == nil { // the zero Policy: start from the built-in roles
		var err error
		if p, err = Compile(0, nil); err != nil {
			return nil, err
		}
	}
	defs := make(map[string]custos.Role, len(p.names)+1)
	for _, name := range p.names {
		if name != c.drop {
			defs[name] = p.roles[name].def
		}
	}
	changed := make(map[string]bool)
	field := func(string) string { return "parent_role" }
	if c.put.Name != "" {
		defs[c.put.Name] = c.put
		changed[c.put.Name] = true
		if _, ok := defs[c.put.ParentRole]; c.put.ParentRole != "" && !ok {
			return nil, invalid(op, "parent_role", "role %q does not exist", c.put.ParentRole)
		}
	}
	if c.reparent {
		field = func(string) string { return "reparent" }
		for _, child := range p.children[c.drop] {
			def := defs[child]
			def.ParentRole = c.newParent
			defs[child] = def
			changed[child] = true
		}
	}
	return link(op, p.Version()+1, defs, field, c.put.Name, p, changed)
}

// list quotes names for a message: "a", "b" and "c", or the first maxNamed
// and "and 12 more".
func list(names []string) string {
	if len(names) == 1 {
		return fmt.Sprintf("%q", names[0])
	}
	shown := names[:min(len(names), maxNamed)]
	quoted := make([]string, len(shown))
	for i, n := range shown {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	if rest := len(names) - len(shown); rest > 0 {
		return fmt.Sprintf("%s and %d more", strings.Join(quoted, ", "), rest)
	}
	return fmt.Sprintf("%s and %s", strings.Join(quoted[:len(quoted)-1], ", "), quoted[len(quoted)-1])
}
