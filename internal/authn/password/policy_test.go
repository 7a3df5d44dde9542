package password

import (
	"strings"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/google/go-cmp/cmp"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name, password, msg string // msg "" means accepted
	}{
		{"twelve characters", "abcdefghijkl", ""},
		{"eleven characters", "abcdefghijk", "must be at least 12 characters"},
		{"twelve multibyte characters", strings.Repeat("é", 12), ""},
		{"eleven multibyte characters in 22 bytes", strings.Repeat("é", 11), "must be at least 12 characters"},
		{"1024 bytes", strings.Repeat("a", 1024), ""},
		{"1025 bytes", strings.Repeat("a", 1025), "must be at most 1024 bytes"},
		{"invalid UTF-8", "abcdefghijkl\xff", "must be valid UTF-8"},
		{"empty", "", "must be at least 12 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.password)
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			e, ok := err.(*custos.Error)
			if !ok || e.Kind != custos.Invalid {
				t.Fatalf("Check = %v, want a custos.Invalid error", err)
			}
			want := []custos.FieldError{{Field: "password", Message: tc.msg}}
			if diff := cmp.Diff(want, e.Fields); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
			if tc.password != "" && strings.Contains(e.Error(), tc.password) {
				t.Error("the error repeats the password")
			}
		})
	}
}
