package authz

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/custos-audit/custos"
)

// Limits on a role definition.
const (
	MaxNameLength        = 64   // characters in a role name
	MaxDescriptionLength = 500  // characters in a description
	MaxPermissionLength  = 128  // characters in a permission codename
	MaxPermissions       = 1024 // permissions a role lists itself
	MaxDepth             = 16   // roles in the longest chain from a role up to its root
)

// ValidateRole checks one role definition on its own (not against other
// roles) and returns it in its stored form: permissions sorted, computed
// fields (EffectivePermissions, BuiltIn) cleared. It returns an *custos.Error
// of kind Invalid naming every field at fault.
func ValidateRole(r custos.Role) (custos.Role, error) {
	return validateRole(r, "")
}

// validateRole is ValidateRole with every field name prefixed by prefix
// (e.g. "[3]." for the fourth role of a list).
func validateRole(r custos.Role, prefix string) (custos.Role, error) {
	var fields []custos.FieldError
	add := func(field, msg string) {
		fields = append(fields, custos.FieldError{Field: prefix + field, Message: msg})
	}
	if err := validateName(r.Name); err != nil {
		add("name", err.Error())
	}
	if err := validateDescription(r.Description); err != nil {
		add("description", err.Error())
	}
	if r.ParentRole != "" {
		if err := validateName(r.ParentRole); err != nil {
			add("parent_role", err.Error())
		}
	}
	if len(r.Permissions) > MaxPermissions {
		add("permissions", fmt.Sprintf("must list at most %d permissions", MaxPermissions))
	}
	perms := slices.Clone(r.Permissions)
	if perms == nil {
		perms = []custos.Permission{}
	}
	first := make(map[custos.Permission]int, len(perms))
	for i, p := range perms {
		if err := ValidatePermission(p); err != nil {
			add(fmt.Sprintf("permissions[%d]", i), err.Error())
			continue
		}
		if j, dup := first[p]; dup {
			add(fmt.Sprintf("permissions[%d]", i), fmt.Sprintf("repeats permissions[%d]", j))
			continue
		}
		first[p] = i
	}
	if len(fields) > 0 {
		return custos.Role{}, &custos.Error{Op: "role.validate", Kind: custos.Invalid,
			Detail: "the role is invalid", Fields: fields}
	}
	slices.Sort(perms)
	return custos.Role{Name: r.Name, Description: r.Description, Permissions: perms,
		ParentRole: r.ParentRole}, nil
}

// validateName checks a role name: 1 to MaxNameLength characters from
// a-z, 0-9, '_', '-' and '.', the first a letter or digit (so that no name
// is "." or "..", which a URL path cannot carry, or looks like a flag).
func validateName(name string) error {
	switch {
	case name == "":
		return errors.New("is required")
	case len(name) > MaxNameLength:
		return fmt.Errorf("must be at most %d characters", MaxNameLength)
	case !isLower(name[0]) && !isDigit(name[0]):
		return errors.New("must start with a lowercase letter or a digit")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isLower(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' {
			return errors.New("must use only lowercase letters, digits, '_', '-' and '.'")
		}
	}
	return nil
}

func validateDescription(d string) error {
	switch {
	case !utf8.ValidString(d):
		return errors.New("must be valid UTF-8")
	case utf8.RuneCountInString(d) > MaxDescriptionLength:
		return fmt.Errorf("must be at most %d characters", MaxDescriptionLength)
	case strings.ContainsFunc(d, unicode.IsControl):
		return errors.New("must not contain control characters")
	}
	return nil
}

// ValidatePermission checks a permission codename: area:verb, the area
// matching [a-z][a-z0-9_-]* and the verb [a-z][a-z0-9_.-]*, at most
// MaxPermissionLength characters; a codename in one of custos.ReservedAreas
// must be one of custos.Permissions. The error's text is a message for a
// custos.FieldError ("must be area:verb", "unknown permission codename").
func ValidatePermission(p custos.Permission) error {
	if len(p) > MaxPermissionLength {
		return fmt.Errorf("must be at most %d characters", MaxPermissionLength)
	}
	area, verb, ok := strings.Cut(string(p), ":")
	if !ok || !validArea(area) || !validVerb(verb) {
		return errors.New("must be area:verb in lowercase letters, digits, '_' and '-' (and '.' in the verb)")
	}
	if slices.Contains(custos.ReservedAreas, area) && !slices.Contains(custos.Permissions, p) {
		return fmt.Errorf("unknown permission codename %q: the area %q is Custos's own", p, area)
	}
	return nil
}

func validArea(s string) bool {
	if s == "" || !isLower(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLower(c) && !isDigit(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func validVerb(s string) bool {
	if s == "" || !isLower(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLower(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
