package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"runtime"
	"time"

	"github.com/custos-audit/custos"
)

// ErrMismatch is the answer to a wrong password and to an unknown user
// alike: a client cannot tell them apart.
var ErrMismatch = &custos.Error{Op: "password.verify", Kind: custos.Unauthenticated,
	Detail: "wrong user name or password"}

// Config configures a Hasher. The zero value uses the defaults.
type Config struct {
	Params        Params        // new hashes and the unknown-user path; DefaultParams() if zero
	MaxConcurrent int           // derivations at once; runtime.NumCPU() if zero
	Wait          time.Duration // how long a caller waits for a slot; 2 s if zero
}

// Hasher hashes and verifies passwords with a bounded number of argon2id
// derivations at once. It is safe for concurrent use.
type Hasher struct {
	params Params
	wait   time.Duration
	slots  chan struct{} // one token per running derivation
	dummy  *hash         // what an unknown user is verified against

	// derive is argon2id; tests replace it to count and hold derivations.
	derive func(password, salt []byte, p Params) []byte
}

// NewHasher returns a Hasher configured by cfg.
func NewHasher(cfg Config) (*Hasher, error) {
	if cfg.Params == (Params{}) {
		cfg.Params = DefaultParams()
	}
	if err := cfg.Params.Validate(); err != nil {
		return nil, fmt.Errorf("password: parameters: %w", err)
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = runtime.NumCPU()
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 2 * time.Second
	}
	// The dummy hash has random salt and key: no password matches it, and
	// verifying against it is the same work as verifying a real hash.
	dummy := &hash{params: cfg.Params,
		salt: make([]byte, cfg.Params.SaltLen), key: make([]byte, cfg.Params.KeyLen)}
	rand.Read(dummy.salt) // never fails (Go 1.24 and later)
	rand.Read(dummy.key)
	return &Hasher{params: cfg.Params, wait: cfg.Wait,
		slots: make(chan struct{}, cfg.MaxConcurrent), dummy: dummy, derive: derive}, nil
}

// Hash returns the PHC string of password under the Hasher's parameters
// and a fresh salt. A password that fails Check is refused with its
// custos.Invalid error.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	const op = "password.hash"
	if err := Check(password); err != nil {
		return "", err
	}
	salt := make([]byte, h.params.SaltLen)
	rand.Read(salt)
	release, err := h.acquire(ctx, op)
	if err != nil {
		return "", err
	}
	defer release()
	hh := &hash{params: h.params, salt: salt, key: h.derive([]byte(password), salt, h.params)}
	return hh.String(), nil
}

// Verify checks password against encoded, a PHC string from Hash. It
// returns nil on a match, ErrMismatch on a wrong password, a
// custos.Unavailable error when no slot came free in time, and a
// custos.Internal error when encoded is not a hash this package accepts (a
// corrupted or tampered store).
func (h *Hasher) Verify(ctx context.Context, password, encoded string) error {
	const op = "password.verify"
	stored, err := parse(encoded)
	if err != nil {
		return &custos.Error{Op: op, Kind: custos.Internal, Err: fmt.Errorf("stored hash: %w", err)}
	}
	return h.compare(ctx, op, password, stored)
}

// VerifyUnknown does the work of Verify for a user that does not exist, so
// that the answer and its timing are those of a wrong password. It returns
// ErrMismatch, or the same custos.Unavailable error as Verify. The work is
// that of a hash made with the Hasher's parameters: rehash stored hashes
// with older ones (NeedsRehash) so that the two stay alike.
func (h *Hasher) VerifyUnknown(ctx context.Context, password string) error {
	if err := h.compare(ctx, "password.verify", password, h.dummy); err != nil {
		return err
	}
	return ErrMismatch // only if a password derived the random key: fail closed
}

// compare derives password's key under stored's salt and parameters and
// compares it in constant time.
func (h *Hasher) compare(ctx context.Context, op, password string, stored *hash) error {
	if len(password) > MaxBytes {
		return ErrMismatch // no stored password is this long
	}
	release, err := h.acquire(ctx, op)
	if err != nil {
		return err
	}
	defer release()
	key := h.derive([]byte(password), stored.salt, stored.params)
	if subtle.ConstantTimeCompare(key, stored.key) != 1 {
		return ErrMismatch
	}
	return nil
}

// NeedsRehash reports whether encoded was made with parameters other than
// the Hasher's: after a successful login, hash the password again and
// store the new hash.
func (h *Hasher) NeedsRehash(encoded string) bool {
	stored, err := parse(encoded)
	return err != nil || stored.params != h.params
}

// acquire takes a derivation slot, waiting at most h.wait. The caller must
// call release when the derivation is done.
func (h *Hasher) acquire(ctx context.Context, op string) (release func(), err error) {
	release = func() { <-h.slots }
	select {
	case h.slots <- struct{}{}:
		return release, nil
	default:
	}
	timer := time.NewTimer(h.wait)
	defer timer.Stop()
	select {
	case h.slots <- struct{}{}:
		return release, nil
	case <-timer.C:
		return nil, &custos.Error{Op: op, Kind: custos.Unavailable,
			Detail: "too many logins in progress; retry"}
	case <-ctx.Done():
		return nil, &custos.Error{Op: op, Kind: custos.Unavailable,
			Detail: "too many logins in progress; retry", Err: ctx.Err()}
	}
}
