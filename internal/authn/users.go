package authn

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
)

// The statuses of a user. Terminated is final.
const (
	StatusActive     = "active"
	StatusSuspended  = "suspended"
	StatusTerminated = "terminated"
)

// userDoc is a user as its state records carry it. THIS DOCUMENT FEEDS THE
// HASH: fields are only ever added (with omitempty), never renamed. The
// password is an argon2id PHC string; the TOTP secret is sealed with a key
// derived from the signing key, which lives outside the database.
type userDoc struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Roles        []string `json:"roles"`
	Status       string   `json:"status"`
	CreatedAt    string   `json:"created_at"`
	CreatedBy    string   `json:"created_by"`
	UpdatedAt    string   `json:"updated_at,omitempty"`
	UpdatedBy    string   `json:"updated_by,omitempty"`
	StatusReason string   `json:"status_reason,omitempty"`
	SuspendedAt  string   `json:"suspended_at,omitempty"`
	TerminatedAt string   `json:"terminated_at,omitempty"`
	Password     string   `json:"password,omitempty"`
	PasswordAt   string   `json:"password_changed_at,omitempty"`
	TOTP         string   `json:"totp,omitempty"`
	TOTPStep     int64    `json:"totp_step,omitempty"`    // the last time step accepted: no code is accepted twice
	TOTPPending  string   `json:"totp_pending,omitempty"` // enrolled, not yet confirmed with a first code
}

func (u *userDoc) put() leaf.StateRecord {
	b, _ := json.Marshal(u)
	return leaf.StateRecord{Entity: EntityUser, ID: u.ID, Op: leaf.OpPut, Doc: b}
}

// User is a user as the API shows it: never a secret.
type User struct {
	ID                   string              `json:"id"`
	Name                 string              `json:"name"`
	Roles                []string            `json:"roles"`
	Status               string              `json:"status"`
	StatusReason         string              `json:"status_reason,omitempty"`
	SuspendedAt          string              `json:"suspended_at,omitempty"`
	TerminatedAt         string              `json:"terminated_at,omitempty"`
	CreatedAt            string              `json:"created_at"`
	CreatedBy            string              `json:"created_by"`
	UpdatedAt            string              `json:"updated_at,omitempty"`
	HasPassword          bool                `json:"has_password"`
	TOTP                 bool                `json:"totp"`
	EffectivePermissions []custos.Permission `json:"effective_permissions"`
}

// UserChange is a new user, or the fields of a change (nil: unchanged).
type UserChange struct {
	ID           string
	Name         *string
	Roles        *[]string
	Status       *string
	StatusReason string
	Password     *string
}

// applyUser replays one user record; the caller holds mu.
func (d *Directory) applyUser(r *leaf.StateRecord) error {
	if r.Op == leaf.OpDelete {
		delete(d.users, r.ID)
		return nil
	}
	var u userDoc
	if err := decodeDoc(r, &u, func() string { return u.ID }); err != nil {
		return err
	}
	d.users[u.ID] = u
	return nil
}

// validUserID: 1 to 128 letters, digits and . _ @ + -, as user ids in
// directories and e-mail addresses are written.
func validUserID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c < unicode.MaxASCII && (unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune("._@+-", c))) {
			return false
		}
	}
	return true
}

func checkName(name string) *custos.FieldError {
	if strings.TrimSpace(name) == "" || utf8.RuneCountInString(name) > 200 || !utf8.ValidString(name) ||
		strings.ContainsFunc(name, unicode.IsControl) {
		return &custos.FieldError{Field: "name", Message: "is required: at most 200 characters of valid UTF-8 without control characters"}
	}
	return nil
}

// SaveUser creates a user (create true) or changes one. A change that gives
// its author permissions it does not hold (adding roles to oneself) is not
// made: it becomes a pending approval (returned) for another administrator.
func (d *Directory) SaveUser(ctx context.Context, by *custos.Principal, c UserChange, create bool) (User, *Approval, error) {
	var hash string
	if c.Password != nil { // hashed before taking the write lock: it is slow
		var err error
		if hash, err = d.hasher.Hash(ctx, *c.Password); err != nil {
			return User{}, nil, withField(err, "password")
		}
	}
	d.write.Lock()
	defer d.write.Unlock()
	if err := d.Reload(ctx); err != nil {
		return User{}, nil, err
	}
	before, next, err := d.userChange(c, create, hash)
	if err != nil {
		return User{}, nil, err
	}
	action := custos.ActionUpdate
	if create {
		action, next.CreatedBy = custos.ActionCreate, Actor(by).ID
	} else {
		next.UpdatedBy = Actor(by).ID
	}
	rec := next.put()
	if create {
		rec.Op = leaf.OpCreate
	}
	events := []custos.Event{d.userEvent(by, action, before, next)}
	d.mu.RLock()
	policy := d.policy
	d.mu.RUnlock()
	// Nobody hands out what they do not hold: a change that gives an account
	// (one's own or another's) permissions its author lacks, or takes over
	// such an account (a new password, a reactivation), waits for another
	// administrator. Suspending or terminating never waits.
	grants := create || c.Roles != nil || c.Password != nil || (c.Status != nil && *c.Status == StatusActive)
	if by != nil && grants {
		if extra := beyond(policy.Permissions(next.Roles), by.Permissions); len(extra) > 0 {
			a, err := d.propose(ctx, by, EntityUser, next.ID, events, []leaf.StateRecord{rec}, extra)
			return User{}, a, err
		}
	}
	if err := d.commit(ctx, by, events, rec); err != nil {
		return User{}, nil, err
	}
	return d.userView(next), nil, nil
}

// userChange validates c against the current state and returns the user
// before (nil when new) and after; the caller holds write.
func (d *Directory) userChange(c UserChange, create bool, hash string) (*userDoc, userDoc, error) {
	const op = "user.save"
	d.mu.RLock()
	old, exists := d.users[c.ID]
	policy := d.policy
	d.mu.RUnlock()
	var fields []custos.FieldError
	switch {
	case create && !validUserID(c.ID):
		fields = append(fields, custos.FieldError{Field: "id", Message: "is required: 1 to 128 letters, digits and . _ @ + -"})
	case create && exists:
		return nil, userDoc{}, custos.Errorf(op, custos.Conflict, "user %q already exists", c.ID)
	case !create && !exists:
		return nil, userDoc{}, custos.Errorf(op, custos.NotFound, "user %q does not exist", c.ID)
	}
	next := old
	now := stamp(d.now())
	if create {
		next = userDoc{ID: c.ID, Status: StatusActive, Roles: []string{}, CreatedAt: now}
		if c.Name == nil {
			fields = append(fields, custos.FieldError{Field: "name", Message: "is required"})
		}
	} else {
		next.UpdatedAt = now
	}
	if c.Name != nil {
		if fe := checkName(*c.Name); fe != nil {
			fields = append(fields, *fe)
		}
		next.Name = strings.TrimSpace(*c.Name)
	}
	if c.Roles != nil {
		if err := requireRoles(op, policy, *c.Roles); err != nil {
			fields = append(fields, err.(*custos.Error).Fields...)
		}
		next.Roles = sortedRoles(*c.Roles)
	}
	if c.Status != nil {
		if fe := next.setStatus(old, *c.Status, c.StatusReason, now); fe != nil {
			fields = append(fields, *fe)
		}
	}
	if hash != "" {
		next.Password, next.PasswordAt = hash, now
	}
	if len(fields) > 0 {
		return nil, userDoc{}, &custos.Error{Op: op, Kind: custos.Invalid, Detail: "the user is invalid", Fields: fields}
	}
	if !exists {
		return nil, next, nil
	}
	return &old, next, nil
}

// setStatus moves u to status: active and suspended both ways; terminated
// from either, and never back.
func (u *userDoc) setStatus(old userDoc, status, reason, now string) *custos.FieldError {
	switch {
	case status != StatusActive && status != StatusSuspended && status != StatusTerminated:
		return &custos.FieldError{Field: "status", Message: "must be active, suspended or terminated"}
	case old.Status == StatusTerminated && status != StatusTerminated:
		return &custos.FieldError{Field: "status", Message: "a terminated user stays terminated"}
	case utf8.RuneCountInString(reason) > 500 || strings.ContainsFunc(reason, unicode.IsControl):
		return &custos.FieldError{Field: "status_reason", Message: "at most 500 characters, no control characters"}
	}
	if status == old.Status {
		return nil
	}
	u.Status, u.StatusReason = status, reason
	switch status {
	case StatusSuspended:
		u.SuspendedAt = now
	case StatusTerminated:
		u.TerminatedAt = now
	}
	return nil
}

// userEvent is the server event of a user change: never a secret in it.
func (d *Directory) userEvent(by *custos.Principal, a custos.Action, before *userDoc, after userDoc) custos.Event {
	var b any
	if before != nil {
		b = d.userView(*before)
	}
	return change(by, a, "User", after.ID, b, d.userView(after))
}

// User returns one user.
func (d *Directory) User(ctx context.Context, id string) (User, error) {
	if err := d.Reload(ctx); err != nil {
		return User{}, err
	}
	d.mu.RLock()
	u, ok := d.users[id]
	d.mu.RUnlock()
	if !ok {
		return User{}, custos.Errorf("user.get", custos.NotFound, "user %q does not exist", id)
	}
	return d.userView(u), nil
}

// Users returns the users sorted by id.
func (d *Directory) Users(ctx context.Context) ([]User, error) {
	if err := d.Reload(ctx); err != nil {
		return nil, err
	}
	d.mu.RLock()
	out := make([]User, 0, len(d.users))
	for _, u := range d.users {
		out = append(out, d.userViewLocked(u))
	}
	d.mu.RUnlock()
	slices.SortFunc(out, func(a, b User) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

func (d *Directory) userView(u userDoc) User {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.userViewLocked(u)
}

func (d *Directory) userViewLocked(u userDoc) User {
	perms := make([]custos.Permission, 0)
	for p := range d.policy.Permissions(u.Roles) {
		perms = append(perms, p)
	}
	slices.Sort(perms)
	return User{ID: u.ID, Name: u.Name, Roles: nonNil(u.Roles), Status: u.Status, StatusReason: u.StatusReason,
		SuspendedAt: u.SuspendedAt, TerminatedAt: u.TerminatedAt, CreatedAt: u.CreatedAt, CreatedBy: u.CreatedBy,
		UpdatedAt: u.UpdatedAt, HasPassword: u.Password != "", TOTP: u.TOTP != "", EffectivePermissions: perms}
}

// withField names field in an Invalid error that has none.
func withField(err error, field string) error {
	var e *custos.Error
	if ce, ok := err.(*custos.Error); ok {
		e = ce
	}
	if e != nil && e.Kind == custos.Invalid && len(e.Fields) == 0 {
		e.Fields = []custos.FieldError{{Field: field, Message: e.Detail}}
	}
	return err
}
