// Package totp owns the optional second factor of local logins: time-based
// one-time passwords (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps, one
// step of skew either side), as every authenticator app reads them from an
// otpauth:// URL.
//
// Invariants:
//
//   - A TOTP secret is stored only sealed: AES-256-GCM under a key derived
//     (HKDF-SHA256) from a server secret that lives outside the database,
//     with the user id as associated data, so a sealed secret copied to
//     another user's row, or altered, does not open.
//   - A code is accepted at most once. The package keeps no state: the
//     caller remembers each user's last accepted time step (Validate
//     returns it) and passes it back; a code of that step or an earlier
//     one is refused. The caller must store the new step with a
//     compare-and-set (only if greater than the stored one), so two
//     concurrent logins cannot both spend one code.
//   - Codes are compared in constant time, and every candidate step is
//     computed whether or not an earlier one matched.
package totp

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"time"

	"github.com/custos-audit/custos"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// The code parameters. Authenticator apps assume them; never change them
// for enrolled users.
const (
	Period     = 30 * time.Second // one time step
	Digits     = 6
	Skew       = 1  // steps accepted either side of the current one
	SecretSize = 20 // bytes of random secret (160 bits, RFC 4226's recommendation)
)

// The answers to a code that is not accepted. Both are Unauthenticated; a
// login may show either, or answer both the same.
var (
	ErrWrongCode = &custos.Error{Op: "totp.validate", Kind: custos.Unauthenticated,
		Detail: "wrong code"}
	ErrReplayed = &custos.Error{Op: "totp.validate", Kind: custos.Unauthenticated,
		Detail: "the code was already used; wait for the next one"}
)

// Config configures an Authenticator.
type Config struct {
	// ServerSecret derives the key that seals TOTP secrets: at least 32
	// bytes that live outside the database (Custos passes its Ed25519
	// signing key seed). Changing it makes every sealed secret unreadable.
	ServerSecret []byte
	// Issuer names the service in authenticator apps; "Custos" if empty.
	Issuer string
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Authenticator enrols users and validates their codes. It is safe for
// concurrent use.
type Authenticator struct {
	sealer *sealer
	issuer string
	now    func() time.Time
}

// New returns an Authenticator configured by cfg.
func New(cfg Config) (*Authenticator, error) {
	s, err := newSealer(cfg.ServerSecret)
	if err != nil {
		return nil, fmt.Errorf("totp: %w", err)
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "Custos"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Authenticator{sealer: s, issuer: cfg.Issuer, now: cfg.Now}, nil
}

// Enrollment is a new TOTP secret: Secret and URL are shown to the user
// once (the URL as a QR code, the secret for typing in), Sealed is what the
// caller stores. Enrolment is complete only when the user has entered a
// first valid code: keep Sealed pending until Validate accepts one.
type Enrollment struct {
	Secret string // base32, unpadded
	URL    string // otpauth://totp/Issuer:account?secret=…
	Sealed []byte
}

// Enroll makes a new random secret for userID. account is the name the
// authenticator app shows next to the issuer (the user name).
func (a *Authenticator) Enroll(userID, account string) (Enrollment, error) {
	secret := make([]byte, SecretSize)
	rand.Read(secret) // never fails (Go 1.24 and later)
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: a.issuer, AccountName: account, Secret: secret,
		Period: uint(Period / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return Enrollment{}, &custos.Error{Op: "totp.enroll", Kind: custos.Invalid,
			Detail: "an account name is required", Err: err}
	}
	return Enrollment{Secret: key.Secret(), URL: key.URL(), Sealed: a.sealer.seal(userID, secret)}, nil
}

// Validate checks code against userID's sealed secret at the current time.
// lastStep is the step of the user's last accepted code (0 if none). On
// success it returns the step of this code, which the caller must store as
// the new lastStep. It returns ErrWrongCode, ErrReplayed, or a
// custos.Internal error when sealed does not open for userID (the wrong
// server secret, or a secret moved or altered in the store).
func (a *Authenticator) Validate(userID string, sealed []byte, code string, lastStep int64) (int64, error) {
	secret, err := a.sealer.open(userID, sealed)
	if err != nil {
		return 0, &custos.Error{Op: "totp.validate", Kind: custos.Internal, Err: err}
	}
	if !wellFormed(code) {
		return 0, ErrWrongCode
	}
	b32 := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
	current := Step(a.now())
	var matched int64 = -1
	for step := current - Skew; step <= current+Skew; step++ {
		want, err := hotp.GenerateCodeCustom(b32, uint64(step), hotp.ValidateOpts{
			Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, &custos.Error{Op: "totp.validate", Kind: custos.Internal, Err: err}
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			matched = step
		}
	}
	switch {
	case matched < 0:
		return 0, ErrWrongCode
	case matched <= lastStep:
		return 0, ErrReplayed
	}
	return matched, nil
}

// Step returns the RFC 6238 time step of t: whole periods since the Unix
// epoch.
func Step(t time.Time) int64 {
	return t.Unix() / int64(Period/time.Second)
}

// wellFormed reports whether code is exactly Digits ASCII digits.
func wellFormed(code string) bool {
	if len(code) != Digits {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}
