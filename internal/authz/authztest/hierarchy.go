// Package authztest builds large role hierarchies for the benchmarks and
// tests of access control, the same in every module that compares against
// them (bench/casbin). It does no I/O and holds no state.
package authztest

import (
	"fmt"

	"github.com/custos-audit/custos"
)

// Shape describes a generated hierarchy: Levels deep, Roles roles in all,
// Perms distinct permissions spread evenly over the roles.
type Shape struct {
	Levels, Roles, Perms int
}

// Issue9 is the hierarchy of issue 9's target: 8 deep, 500 roles, 5,000
// permissions.
var Issue9 = Shape{Levels: 8, Roles: 500, Perms: 5000}

// Hierarchy returns the custom roles of s: role names "r<level>-<i>",
// permissions "app<n>:read", each role listing Perms/Roles of them and
// having a parent on the level above (none on level 1). Level sizes grow
// towards the leaves, as in an organisation. It also returns the leaf roles,
// those on the last level.
func Hierarchy(s Shape) (roles []custos.Role, leaves []string) {
	sizes := levelSizes(s.Levels, s.Roles)
	perm := 0
	var above []string
	for level, size := range sizes {
		var names []string
		for i := range size {
			r := custos.Role{
				Name:        fmt.Sprintf("r%d-%d", level+1, i),
				Description: fmt.Sprintf("generated role %d on level %d", i, level+1),
			}
			if len(above) > 0 {
				r.ParentRole = above[i%len(above)]
			}
			n := s.Perms / s.Roles
			if len(roles) < s.Perms%s.Roles {
				n++
			}
			for range n {
				r.Permissions = append(r.Permissions, custos.Permission(fmt.Sprintf("app%d:read", perm)))
				perm++
			}
			roles = append(roles, r)
			names = append(names, r.Name)
		}
		above = names
	}
	return roles, above
}

// levelSizes splits roles over levels, each level at least one role and
// twice the one above until the rest must be shared out evenly.
func levelSizes(levels, roles int) []int {
	sizes := make([]int, levels)
	left := roles
	for i := range sizes {
		n := max(1, left/(levels-i))
		if i > 0 {
			n = min(n, 2*sizes[i-1])
		} else {
			n = min(n, 4)
		}
		sizes[i] = n
		left -= n
	}
	sizes[levels-1] += left
	return sizes
}

// Query is one decision to ask: may a user with Roles do Perm, and the
// answer a correct policy gives.
type Query struct {
	User  string
	Roles []string
	Perm  custos.Permission
	Want  bool
}

// Queries returns n decisions over the hierarchy, for users each holding
// one leaf role ("u<i>" holds leaves[i%len(leaves)]): a quarter the leaf's own
// permission, a quarter one inherited from its root, a quarter one from the
// middle of its chain, and a quarter one of a role off its chain, which it
// does not hold. Every role must list at least one permission, and some
// role must be off every chain.
func Queries(roles []custos.Role, leaves []string, n int) []Query {
	byName := make(map[string]custos.Role, len(roles))
	for _, r := range roles {
		byName[r.Name] = r
	}
	qs := make([]Query, n)
	for i := range qs {
		leaf := leaves[i%len(leaves)]
		var chain []custos.Role
		for r, ok := byName[leaf]; ok; r, ok = byName[r.ParentRole] {
			chain = append(chain, r)
		}
		q := Query{User: fmt.Sprintf("u%d", i%len(leaves)), Roles: []string{leaf}, Want: true}
		switch i % 4 {
		case 0:
			q.Perm = pick(chain[0], i)
		case 1:
			q.Perm = pick(chain[len(chain)-1], i)
		case 2:
			q.Perm = pick(chain[len(chain)/2], i)
		default: // a permission of the hierarchy held by a role off the chain
			on := make(map[string]bool, len(chain))
			for _, c := range chain {
				on[c.Name] = true
			}
			j := (i * 7919) % len(roles)
			for on[roles[j].Name] {
				j = (j + 1) % len(roles)
			}
			q.Perm, q.Want = pick(roles[j], i), false
		}
		qs[i] = q
	}
	return qs
}

func pick(r custos.Role, i int) custos.Permission {
	return r.Permissions[i%len(r.Permissions)]
}
