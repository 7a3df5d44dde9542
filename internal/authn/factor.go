package authn

import (
	"context"
	"encoding/base64"

	"github.com/custos-audit/custos"
)

// The optional second factor: a TOTP code (RFC 6238). The secret is sealed
// with a key derived from the signing key, bound to the user's id, and kept
// in the user's record; each accepted code's time step is recorded, so no
// code is accepted twice on any node.

// Enrollment is a new second factor: shown once, to its user.
type Enrollment struct {
	Secret string `json:"secret"`
	URL    string `json:"otpauth_url"`
}

// EnrollTOTP gives the caller's user a new TOTP secret, pending until a
// first code confirms it (ConfirmTOTP).
func (d *Directory) EnrollTOTP(ctx context.Context, by *custos.Principal) (Enrollment, error) {
	const op = "totp.enroll"
	if d.totp == nil {
		return Enrollment{}, custos.Errorf(op, custos.Unavailable, "second factors need the server's signing key")
	}
	if by.UserID == "" {
		return Enrollment{}, custos.Errorf(op, custos.PermissionDenied, "only a user's own session enrols a second factor")
	}
	d.write.Lock()
	defer d.write.Unlock()
	if err := d.Reload(ctx); err != nil {
		return Enrollment{}, err
	}
	d.mu.RLock()
	u, ok := d.users[by.UserID]
	d.mu.RUnlock()
	if !ok {
		return Enrollment{}, custos.Errorf(op, custos.NotFound, "user %q does not exist", by.UserID)
	}
	e, err := d.totp.Enroll(u.ID, u.ID)
	if err != nil {
		return Enrollment{}, err
	}
	before := u
	u.TOTPPending = base64.StdEncoding.EncodeToString(e.Sealed)
	if err := d.commit(ctx, by, []custos.Event{d.userEvent(by, custos.ActionUpdate, &before, u)}, u.put()); err != nil {
		return Enrollment{}, err
	}
	return Enrollment{Secret: e.Secret, URL: e.URL}, nil
}

// ConfirmTOTP completes an enrolment with a first valid code: from then on
// every login of the user needs a code.
func (d *Directory) ConfirmTOTP(ctx context.Context, by *custos.Principal, code string) error {
	const op = "totp.confirm"
	if d.totp == nil || by.UserID == "" {
		return custos.Errorf(op, custos.PermissionDenied, "only a user's own session confirms a second factor")
	}
	d.write.Lock()
	defer d.write.Unlock()
	if err := d.Reload(ctx); err != nil {
		return err
	}
	d.mu.RLock()
	u, ok := d.users[by.UserID]
	d.mu.RUnlock()
	if !ok || u.TOTPPending == "" {
		return custos.Errorf(op, custos.Conflict, "no second factor is waiting for confirmation: enrol first")
	}
	sealed, _ := base64.StdEncoding.DecodeString(u.TOTPPending)
	step, err := d.totp.Validate(u.ID, sealed, code, u.TOTPStep)
	if err != nil {
		return err
	}
	before := u
	u.TOTP, u.TOTPPending, u.TOTPStep = u.TOTPPending, "", step
	return d.commit(ctx, by, []custos.Event{d.userEvent(by, custos.ActionUpdate, &before, u)}, u.put())
}

// checkCode checks a user's second factor, when enrolled, and returns the
// time step of the accepted code (0 when the user has none).
func (d *Directory) checkCode(u userDoc, code string) (int64, error) {
	if u.TOTP == "" {
		return 0, nil
	}
	if code == "" {
		return 0, custos.Errorf("authn.login", custos.Unauthenticated, "a one-time code is required")
	}
	if d.totp == nil {
		return 0, custos.Errorf("authn.login", custos.Unavailable, "second factors need the server's signing key")
	}
	sealed, err := base64.StdEncoding.DecodeString(u.TOTP)
	if err != nil {
		return 0, custos.Errorf("authn.login", custos.Internal, "the user's second factor is unreadable")
	}
	return d.totp.Validate(u.ID, sealed, code, u.TOTPStep)
}
