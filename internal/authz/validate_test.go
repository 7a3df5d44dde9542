package authz_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authz"
)

// asError returns err as a *custos.Error, failing the test when it is not one.
func asError(tb testing.TB, err error) *custos.Error {
	tb.Helper()
	var e *custos.Error
	if !errors.As(err, &e) {
		tb.Fatalf("error %v (%T) is not a *custos.Error", err, err)
	}
	return e
}

// invalid is the error ValidateRole returns for fields.
func invalid(fields ...custos.FieldError) *custos.Error {
	return &custos.Error{Op: "role.validate", Kind: custos.Invalid, Detail: "the role is invalid", Fields: fields}
}

func field(name, msg string) custos.FieldError { return custos.FieldError{Field: name, Message: msg} }

func TestValidateRoleRefuses(t *testing.T) {
	const (
		charset = "must use only lowercase letters, digits, '_', '-' and '.'"
		start   = "must start with a lowercase letter or a digit"
		form    = "must be area:verb in lowercase letters, digits, '_' and '-' (and '.' in the verb)"
	)
	many := make([]custos.Permission, authz.MaxPermissions+1)
	for i := range many {
		many[i] = custos.Permission(fmt.Sprintf("app:p%d", i))
	}
	tests := []struct {
		name string
		role custos.Role
		want *custos.Error
	}{
		{"no name", custos.Role{}, invalid(field("name", "is required"))},
		{"upper case", custos.Role{Name: "Nurse"}, invalid(field("name", start))},
		{"space", custos.Role{Name: "ward nurse"}, invalid(field("name", charset))},
		{"slash", custos.Role{Name: "a/b"}, invalid(field("name", charset))},
		{"dot dot", custos.Role{Name: ".."}, invalid(field("name", start))},
		{"flag-like", custos.Role{Name: "-x"}, invalid(field("name", start))},
		{"too long", custos.Role{Name: strings.Repeat("a", 65)}, invalid(field("name", "must be at most 64 characters"))},
		{"non-ASCII", custos.Role{Name: "pflegeß"}, invalid(field("name", charset))},
		{"long description", custos.Role{Name: "a", Description: strings.Repeat("é", 501)},
			invalid(field("description", "must be at most 500 characters"))},
		{"control in description", custos.Role{Name: "a", Description: "line\nbreak"},
			invalid(field("description", "must not contain control characters"))},
		{"bad UTF-8 in description", custos.Role{Name: "a", Description: "\xff"},
			invalid(field("description", "must be valid UTF-8"))},
		{"bad parent", custos.Role{Name: "a", ParentRole: "B"}, invalid(field("parent_role", start))},
		{"permission without verb", custos.Role{Name: "a", Permissions: []custos.Permission{"events"}},
			invalid(field("permissions[0]", form))},
		{"permission bad forms", custos.Role{Name: "a", Permissions: []custos.Permission{
			"patient:read", "Patient:read", "patient:", ":read", "a:b:c", "1a:read", "a.b:read", "a:1"}},
			invalid(field("permissions[1]", form), field("permissions[2]", form), field("permissions[3]", form),
				field("permissions[4]", form), field("permissions[5]", form), field("permissions[6]", form),
				field("permissions[7]", form))},
		{"unknown codename", custos.Role{Name: "a", Permissions: []custos.Permission{"events:delete"}},
			invalid(field("permissions[0]", `unknown permission codename "events:delete": the area "events" is Custos's own`))},
		{"repeated permission", custos.Role{Name: "a", Permissions: []custos.Permission{"patient:read", "events:read", "patient:read"}},
			invalid(field("permissions[2]", "repeats permissions[0]"))},
		{"too many permissions", custos.Role{Name: "a", Permissions: many},
			invalid(field("permissions", "must list at most 1024 permissions"))},
		{"permission too long", custos.Role{Name: "a", Permissions: []custos.Permission{custos.Permission("a:" + strings.Repeat("b", 127))}},
			invalid(field("permissions[0]", "must be at most 128 characters"))},
		{"every field at once", custos.Role{Name: "", Description: "\x00", ParentRole: "_", Permissions: []custos.Permission{"x"}},
			invalid(field("name", "is required"), field("description", "must not contain control characters"),
				field("parent_role", start), field("permissions[0]", form))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authz.ValidateRole(tt.role)
			if diff := cmp.Diff(tt.want, asError(t, err)); diff != "" {
				t.Errorf("ValidateRole error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateRoleNormalizes(t *testing.T) {
	in := custos.Role{Name: "ward_nurse-2.b", Description: "Nurses of ward 2 — Station Süd", ParentRole: "nurse",
		Permissions:          []custos.Permission{"patient:write", "chart:read", "events:read", "patient:read.summary"},
		EffectivePermissions: []custos.Permission{"forged:perm"}, BuiltIn: true}
	got, err := authz.ValidateRole(in)
	if err != nil {
		t.Fatal(err)
	}
	want := custos.Role{Name: "ward_nurse-2.b", Description: "Nurses of ward 2 — Station Süd", ParentRole: "nurse",
		Permissions: []custos.Permission{"chart:read", "events:read", "patient:read.summary", "patient:write"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored form (-want +got):\n%s", diff)
	}
	if in.Permissions[0] != "patient:write" {
		t.Error("ValidateRole sorted the caller's slice")
	}
	empty, err := authz.ValidateRole(custos.Role{Name: "0"})
	if err != nil || empty.Permissions == nil {
		t.Errorf("a role without permissions: %+v, %v; want an empty, non-nil list", empty, err)
	}
}

func TestValidatePermission(t *testing.T) {
	for _, p := range custos.Permissions {
		if err := authz.ValidatePermission(p); err != nil {
			t.Errorf("Custos's own %s: %v", p, err)
		}
	}
	for _, p := range []custos.Permission{"patient:read", "chart_2:write", "x-ray:view.full", "a:b"} {
		if err := authz.ValidatePermission(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []custos.Permission{"", ":", "roles:read", "authz:allow", "grants:open.all", "PATIENT:read"} {
		if err := authz.ValidatePermission(p); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
}
