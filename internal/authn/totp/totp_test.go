package totp

import (
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/google/go-cmp/cmp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// clock is an injected time the test sets.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestAuthenticator(tb testing.TB, c *clock) *Authenticator {
	tb.Helper()
	a, err := New(Config{ServerSecret: testServerSecret(), Issuer: "Custos Test", Now: c.now})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// TestRFC6238Vectors: the SHA-1 test vectors of RFC 6238 appendix B,
// truncated to 6 digits, validate against the golden sealed secret.
func TestRFC6238Vectors(t *testing.T) {
	sealed, _ := hex.DecodeString(goldenSealed)
	c := &clock{}
	a := newTestAuthenticator(t, c)
	for _, v := range []struct {
		unix int64
		code string
	}{
		{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"},
		{1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"},
	} {
		c.t = time.Unix(v.unix, 0)
		step, err := a.Validate("user-1", sealed, v.code, 0)
		if err != nil || step != v.unix/30 {
			t.Errorf("at %d, Validate(%s) = %d, %v; want %d, nil", v.unix, v.code, step, err, v.unix/30)
		}
	}
}

// enrolled returns an authenticator at a fixed time and a new enrolment of
// user "u-1".
func enrolled(t *testing.T) (*Authenticator, *clock, Enrollment) {
	t.Helper()
	c := &clock{t: time.Date(2026, 3, 1, 8, 0, 10, 0, time.UTC)}
	a := newTestAuthenticator(t, c)
	e, err := a.Enroll("u-1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	return a, c, e
}

// codeAt is the code of e at t, as an authenticator app computes it.
func codeAt(t *testing.T, e Enrollment, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCode(e.Secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func TestEnroll(t *testing.T) {
	_, _, e := enrolled(t)
	key, err := otp.NewKeyFromURL(e.URL)
	if err != nil {
		t.Fatal(err)
	}
	type params struct {
		Type, Issuer, Account, Secret string
		Period                        uint64
		Digits                        otp.Digits
		Algorithm                     otp.Algorithm
	}
	want := params{"totp", "Custos Test", "alice", e.Secret, 30, otp.DigitsSix, otp.AlgorithmSHA1}
	got := params{key.Type(), key.Issuer(), key.AccountName(), key.Secret(), key.Period(), key.Digits(), key.Algorithm()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("otpauth URL (-want +got):\n%s", diff)
	}
	if len(e.Secret) != 32 { // 20 bytes in base32
		t.Errorf("secret %q is %d characters, want 32", e.Secret, len(e.Secret))
	}
}

func TestValidate(t *testing.T) {
	a, c, e := enrolled(t)
	now := c.t
	for _, tc := range []struct {
		name     string
		code     string
		lastStep int64
		want     error // nil: accepted
	}{
		{"current code", codeAt(t, e, now), 0, nil},
		{"previous step (skew)", codeAt(t, e, now.Add(-Period)), 0, nil},
		{"next step (skew)", codeAt(t, e, now.Add(Period)), 0, nil},
		{"two steps ago", codeAt(t, e, now.Add(-2*Period)), 0, ErrWrongCode},
		{"two steps ahead", codeAt(t, e, now.Add(2*Period)), 0, ErrWrongCode},
		{"wrong code", wrongCode(codeAt(t, e, now)), 0, ErrWrongCode},
		{"five digits", codeAt(t, e, now)[:5], 0, ErrWrongCode},
		{"seven digits", codeAt(t, e, now) + "0", 0, ErrWrongCode},
		{"letters", "abcdef", 0, ErrWrongCode},
		{"padded", " " + codeAt(t, e, now)[:5], 0, ErrWrongCode},
		{"empty", "", 0, ErrWrongCode},
		{"current code, already used", codeAt(t, e, now), Step(now), ErrReplayed},
		{"previous step after current was used", codeAt(t, e, now.Add(-Period)), Step(now), ErrReplayed},
		{"next step after current was used", codeAt(t, e, now.Add(Period)), Step(now), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Validate("u-1", e.Sealed, tc.code, tc.lastStep)
			if err != tc.want {
				t.Errorf("Validate(%q, last %d) = %v, want %v", tc.code, tc.lastStep, err, tc.want)
			}
		})
	}
}

func wrongCode(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

// TestReplay: a code accepted once is refused for as long as it would
// otherwise be valid, as the caller feeds back the step it stored.
func TestReplay(t *testing.T) {
	a, c, e := enrolled(t)
	code := codeAt(t, e, c.t)
	last, err := a.Validate("u-1", e.Sealed, code, 0)
	if err != nil {
		t.Fatal(err)
	}
	if last != Step(c.t) {
		t.Errorf("step = %d, want %d", last, Step(c.t))
	}
	// The code's step began 10 s before c.t; with one step of skew it is
	// valid for the 80 s from then, the last 49 s after c.t's.
	start := c.t
	for _, later := range []time.Duration{0, 5 * time.Second, Period, 49 * time.Second} {
		c.t = start.Add(later)
		if _, err := a.Validate("u-1", e.Sealed, code, last); err != ErrReplayed {
			t.Errorf("%v later, the used code: %v, want ErrReplayed", later, err)
		}
	}
	c.t = start.Add(Period)
	next := codeAt(t, e, c.t)
	if _, err := a.Validate("u-1", e.Sealed, next, last); err != nil {
		t.Errorf("a later step's code: %v", err)
	}
}

// TestSealedSecretIsBound: a sealed secret opens only for its user, under
// its server secret, and unaltered.
func TestSealedSecretIsBound(t *testing.T) {
	a, c, e := enrolled(t)
	code := codeAt(t, e, c.t)
	other, err := New(Config{ServerSecret: make([]byte, 32), Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	type attempt struct {
		a      *Authenticator
		user   string
		sealed []byte
	}
	cases := map[string]attempt{
		"moved to another user": {a, "u-2", e.Sealed},
		"other server secret":   {other, "u-1", e.Sealed},
		"truncated":             {a, "u-1", e.Sealed[:len(e.Sealed)-1]},
		"empty":                 {a, "u-1", nil},
	}
	for i := range e.Sealed {
		tampered := append([]byte(nil), e.Sealed...)
		tampered[i] ^= 0x01
		cases[fmt.Sprintf("byte %d flipped", i)] = attempt{a, "u-1", tampered}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			step, err := tc.a.Validate(tc.user, tc.sealed, code, 0)
			if custos.KindOf(err) != custos.Internal || step != 0 {
				t.Errorf("Validate = %d, %v; want an Internal error", step, err)
			}
		})
	}
	if _, err := a.Validate("u-1", e.Sealed, code, 0); err != nil {
		t.Errorf("the untouched secret: %v", err)
	}
}

func TestNewRefusesShortServerSecret(t *testing.T) {
	if _, err := New(Config{ServerSecret: []byte("too short")}); err == nil {
		t.Error("New accepted a 9-byte server secret")
	}
}
