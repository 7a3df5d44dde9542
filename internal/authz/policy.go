// Package authz owns authorization decisions: the built-in roles, the rules
// a role definition must follow, and Policy, the compiled and versioned form
// of every role that answers "may a holder of these roles do P?".
//
// Invariants:
//
//   - A Policy is immutable. A change (Add, Replace, Without,
//     WithoutReparent) returns a new Policy one version later, or an error
//     and no policy; the old one is untouched, so a request that started on
//     it finishes on it.
//   - Every compiled Policy holds the built-in roles unchanged, and its role
//     graph has no cycle, no missing parent and no chain deeper than
//     MaxDepth: Compile and every change refuse anything else.
//   - A role's effective permissions (its own and every ancestor's) are
//     computed once, when the policy is compiled, so a decision is a map
//     lookup: it allocates nothing and never walks the graph.
//   - Roles are allow-only, and a decision never silently allows: an unknown
//     role, an empty role list or a nil Policy grants nothing.
//
// The package does no I/O; the store keeps the role definitions and hands
// them to Compile.
package authz

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/custos-audit/custos"
)

// Policy is a compiled, immutable set of roles at one version. Its methods
// are safe for concurrent use; the zero value and nil hold no role and grant
// nothing.
type Policy struct {
	version  uint64
	roles    map[string]*entry
	names    []string            // every role, sorted
	children map[string][]string // sorted names of each parent's children
}

// entry is one compiled role. Entries are shared between the versions of a
// policy in which the role and its ancestors did not change, so nothing in
// one is ever modified after it is built.
type entry struct {
	def       custos.Role // the stored form: own permissions sorted, computed fields empty
	parent    *entry
	effective map[custos.Permission]bool // own and every ancestor's; may be shared with an ancestor
	owner     *entry                     // the entry that made effective: this one or an ancestor
	depth     int                        // 1 for a role without a parent
	builtIn   bool
}

// Compile checks roles, the custom roles a store holds, and compiles them
// with the built-in roles into a Policy at version. It refuses a role that
// fails ValidateRole (Invalid, fields prefixed "[i]."), a name defined twice
// or a built-in name (Conflict), a parent that does not exist (Invalid), a
// cycle (Conflict, naming it) and a chain deeper than MaxDepth (Invalid).
func Compile(version uint64, roles []custos.Role) (*Policy, error) {
	const op = "policy.compile"
	defs := make(map[string]custos.Role, len(builtIns)+len(roles))
	index := make(map[string]int, len(roles))
	for _, b := range builtIns {
		defs[b.Name] = builtInDef(b)
	}
	for i, r := range roles {
		prefix := fmt.Sprintf("[%d].", i)
		def, err := validateRole(r, prefix)
		if err != nil {
			return nil, withOp(op, err)
		}
		if IsBuiltIn(def.Name) {
			return nil, conflict(op, "role %q is built in", def.Name)
		}
		if j, dup := index[def.Name]; dup {
			return nil, conflict(op, "role %q is defined twice ([%d] and [%d])", def.Name, j, i)
		}
		index[def.Name] = i
		defs[def.Name] = def
	}
	for i, r := range roles {
		if _, ok := defs[r.ParentRole]; r.ParentRole != "" && !ok {
			return nil, invalid(op, fmt.Sprintf("[%d].parent_role", i), "role %q does not exist", r.ParentRole)
		}
	}
	field := func(name string) string { return fmt.Sprintf("[%d].parent_role", index[name]) }
	return link(op, version, defs, field, "", nil, nil)
}

// link checks the graph of defs (each valid on its own, every parent
// present) for cycles and depth and compiles it. field names the field to
// blame for a role's cycle or depth; start, when on a cycle, is where its
// description begins. Entries of prev whose role is not in changed and has
// no ancestor in changed are reused as they are.
func link(op string, version uint64, defs map[string]custos.Role, field func(string) string,
	start string, prev *Policy, changed map[string]bool) (*Policy, error) {
	names := make([]string, 0, len(defs))
	for name := range defs {
		names = append(names, name)
	}
	slices.Sort(names)
	depth, err := depths(op, defs, names, field, start)
	if err != nil {
		return nil, err
	}
	p := &Policy{version: version, roles: make(map[string]*entry, len(defs)), names: names,
		children: make(map[string][]string)}
	byDepth := slices.Clone(names)
	slices.SortStableFunc(byDepth, func(a, b string) int { return cmp.Compare(depth[a], depth[b]) })
	dirty := make(map[string]bool, len(changed))
	for _, name := range byDepth { // parents before children
		def := defs[name]
		if def.ParentRole != "" {
			p.children[def.ParentRole] = append(p.children[def.ParentRole], name)
		}
		dirty[name] = changed[name] || (def.ParentRole != "" && dirty[def.ParentRole])
		if old := prev.entry(name); old != nil && !dirty[name] {
			p.roles[name] = old
			continue
		}
		p.roles[name] = newEntry(def, p.roles[def.ParentRole], depth[name])
	}
	for _, c := range p.children {
		slices.Sort(c)
	}
	return p, nil
}

// newEntry compiles def under its compiled parent (nil for a root).
func newEntry(def custos.Role, parent *entry, depth int) *entry {
	e := &entry{def: def, parent: parent, depth: depth, builtIn: IsBuiltIn(def.Name)}
	if parent != nil && !slices.ContainsFunc(def.Permissions, func(p custos.Permission) bool {
		return !parent.effective[p]
	}) {
		e.effective, e.owner = parent.effective, parent.owner // nothing of its own to add: share
		return e
	}
	n := len(def.Permissions)
	if parent != nil {
		n += len(parent.effective)
	}
	e.effective, e.owner = make(map[custos.Permission]bool, n), e
	if parent != nil {
		for p := range parent.effective {
			e.effective[p] = true
		}
	}
	for _, p := range def.Permissions {
		e.effective[p] = true
	}
	return e
}

// depths returns the depth of every role, or the first cycle or over-deep
// chain found walking up from each role in names order.
func depths(op string, defs map[string]custos.Role, names []string, field func(string) string,
	start string) (map[string]int, error) {
	const done = -1
	depth := make(map[string]int, len(defs))
	state := make(map[string]int, len(defs)) // 0 unseen, done, or 1+ its place on path
	var path []string
	for _, name := range names {
		path = path[:0]
		cur, base := name, 0
		for cur != "" {
			if s := state[cur]; s == done {
				base = depth[cur]
				break
			} else if s > 0 {
				return nil, cycleError(op, path[s-1:], start)
			}
			path = append(path, cur)
			state[cur] = len(path)
			def, ok := defs[cur]
			if !ok { // the callers check parents; never trust it to loop
				return nil, &custos.Error{Op: op, Kind: custos.Internal,
					Err: fmt.Errorf("role %q has no definition", cur)}
			}
			cur = def.ParentRole
		}
		for i := len(path) - 1; i >= 0; i-- {
			base++
			if base > MaxDepth {
				return nil, invalid(op, field(path[i]),
					"the hierarchy would be more than %d levels deep at role %q; roles nest at most %d levels",
					MaxDepth, path[i], MaxDepth)
			}
			depth[path[i]] = base
			state[path[i]] = done
		}
	}
	return depth, nil
}

// cycleError names the cycle made of the roles in ring (each the parent of
// the one before, the last's parent the first): "a → b → c → a", starting
// from start if it is on the cycle, else from the smallest name.
func cycleError(op string, ring []string, start string) error {
	at := slices.Index(ring, start)
	if at < 0 {
		at = slices.Index(ring, slices.Min(ring))
	}
	names := make([]string, len(ring)+1)
	for i := range names {
		names[i] = ring[(at+i)%len(ring)]
	}
	return conflict(op, "the roles would form the cycle %s", strings.Join(names, " → "))
}

// conflict is a refusal because of the roles as they are: its detail says
// it all.
func conflict(op, format string, args ...any) *custos.Error {
	return custos.Errorf(op, custos.Conflict, format, args...)
}

// invalid is a refusal of one field.
func invalid(op, field, format string, args ...any) *custos.Error {
	e := custos.Errorf(op, custos.Invalid, format, args...)
	e.Fields = []custos.FieldError{{Field: field, Message: e.Detail}}
	return e
}

// withOp sets the operation of an *custos.Error made inside this package.
func withOp(op string, err error) error {
	if e, ok := err.(*custos.Error); ok {
		e.Op = op
	}
	return err
}

// Version returns the version the policy was compiled at.
func (p *Policy) Version() uint64 {
	if p == nil {
		return 0
	}
	return p.version
}

func (p *Policy) entry(name string) *entry {
	if p == nil {
		return nil
	}
	return p.roles[name]
}
