package password

import (
	"unicode/utf8"

	"github.com/custos-audit/custos"
)

// The password policy: long enough to resist guessing, short enough that
// hashing it costs nothing extra. Length is counted in characters, so a
// passphrase in any script qualifies.
const (
	MinLength = 12   // characters (Unicode code points)
	MaxBytes  = 1024 // bytes of UTF-8
)

// Check reports whether password meets the policy. Its error is a
// custos.Invalid error naming the field "password"; the password itself is
// never part of it.
func Check(password string) error {
	var msg string
	switch {
	case !utf8.ValidString(password):
		msg = "must be valid UTF-8"
	case len(password) > MaxBytes:
		msg = "must be at most 1024 bytes"
	case utf8.RuneCountInString(password) < MinLength:
		msg = "must be at least 12 characters"
	default:
		return nil
	}
	return &custos.Error{Op: "password.check", Kind: custos.Invalid,
		Detail: "the password does not meet the policy",
		Fields: []custos.FieldError{{Field: "password", Message: msg}}}
}
