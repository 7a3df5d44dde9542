package authn

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
)

const hashSize = sha256.Size

// keyDoc is an API key as its state records carry it. THIS DOCUMENT FEEDS
// THE HASH: fields are only ever added (with omitempty), never renamed.
// Keys of the first releases carry Scopes only; each scope stands for a
// built-in role (custos.Scope.Role).
type keyDoc struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Scopes    []custos.Scope `json:"scopes"`
	Hash      string         `json:"hash"` // hex SHA-256 of the secret token
	CreatedAt string         `json:"created_at"`
	CreatedBy string         `json:"created_by"`
	RevokedAt string         `json:"revoked_at,omitempty"`
	RevokedBy string         `json:"revoked_by,omitempty"`
	Roles     []string       `json:"roles,omitempty"`   // a service account's roles
	UserID    string         `json:"user_id,omitempty"` // the user whose roles the key carries
}

// roles returns the key's own roles, its scopes' included, sorted.
func (k *keyDoc) roles() []string {
	r := slices.Clone(k.Roles)
	for _, s := range k.Scopes {
		if role := s.Role(); role != "" {
			r = append(r, role)
		}
	}
	return sortedRoles(r)
}

func (k *keyDoc) put() leaf.StateRecord {
	b, _ := json.Marshal(k) // a keyDoc always marshals
	return leaf.StateRecord{Entity: Entity, ID: k.ID, Op: leaf.OpPut, Doc: b}
}

// create is the record of a new key: committed only if no key has its id.
func (k *keyDoc) create() leaf.StateRecord {
	r := k.put()
	r.Op = leaf.OpCreate
	return r
}

// bootstrapID is the id of the first administrator key: fixed, so that two
// nodes starting together on an empty database create one key between them
// (the second create conflicts).
const bootstrapID = "bootstrap"

// applyKey replays one key record; the caller holds mu.
func (d *Directory) applyKey(r *leaf.StateRecord) error {
	if old, ok := d.keys[r.ID]; ok {
		if sum, err := hex.DecodeString(old.Hash); err == nil && len(sum) == hashSize {
			delete(d.byHash, [hashSize]byte(sum))
		}
		delete(d.keys, r.ID)
	}
	if r.Op == leaf.OpDelete {
		return nil
	}
	var k keyDoc
	if err := decodeDoc(r, &k, func() string { return k.ID }); err != nil {
		return err
	}
	d.keys[k.ID] = k
	if sum, err := hex.DecodeString(k.Hash); err == nil && len(sum) == hashSize && k.RevokedAt == "" {
		d.byHash[[hashSize]byte(sum)] = k.ID
	}
	return nil
}

// Authenticate returns the principal of a bearer token: an API key, a
// session, or (when configured) a single-sign-on JWT. Failures are of kind
// Unauthenticated; hashes are compared in constant time.
func (d *Directory) Authenticate(ctx context.Context, token string) (*custos.Principal, error) {
	if token == "" {
		return nil, custos.Errorf("authn", custos.Unauthenticated, "a bearer token is required")
	}
	sum := sha256.Sum256([]byte(token))
	d.refresh(maxAge)
	p, err, found := d.lookup(ctx, sum)
	if found {
		return p, err
	}
	// Not a key or session of ours: a single-sign-on token, if it looks
	// like a JWT (header.payload.signature).
	if d.cfg.SSO != nil && strings.Count(token, ".") == 2 {
		return d.authenticateJWT(ctx, token)
	}
	d.refresh(missReloadAfter) // perhaps created on another node
	if p, err, found = d.lookup(ctx, sum); found {
		return p, err
	}
	return nil, custos.Errorf("authn", custos.Unauthenticated, "the bearer token is not valid")
}

// lookup finds the key or session whose token hashes to sum.
func (d *Directory) lookup(ctx context.Context, sum [hashSize]byte) (*custos.Principal, error, bool) {
	d.mu.RLock()
	id, isKey := d.byHash[sum]
	var key keyDoc
	var p *custos.Principal
	if isKey {
		key, p = d.keys[id], d.principals["apikey:"+id]
	}
	s, isSession := d.sessions[sum]
	d.mu.RUnlock()
	switch {
	case isKey:
		if subtle.ConstantTimeCompare([]byte(key.Hash), []byte(hex.EncodeToString(sum[:]))) != 1 {
			return nil, nil, false
		}
		if p == nil {
			return nil, custos.Errorf("authn", custos.Unauthenticated, "the key's user is suspended or terminated"), true
		}
		return p, nil, true
	case isSession:
		p, err := d.checkSession(ctx, sum, s)
		return p, err, true
	}
	return nil, nil, false
}

// NewToken returns a fresh secret API key token: "cus_" and 32 random bytes.
func NewToken() string { return "cus_" + randomToken() }

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// KeySpec is what a new key is: a service account's roles (or scopes, as the
// first releases named them), or a user whose roles it carries.
type KeySpec struct {
	Name   string
	Scopes []custos.Scope
	Roles  []string
	UserID string
}

// Create makes a key and returns it with its secret token, which is shown
// only here. The change is a ledger record. A credential may only make keys
// that can do no more than it can itself.
func (d *Directory) Create(ctx context.Context, by *custos.Principal, spec KeySpec, token string) (custos.APIKey, string, error) {
	return d.create(ctx, by, newID(), spec, token)
}

func (d *Directory) create(ctx context.Context, by *custos.Principal, id string, spec KeySpec, token string) (custos.APIKey, string, error) {
	const op = "authn.create"
	d.write.Lock()
	defer d.write.Unlock()
	if err := d.Reload(ctx); err != nil {
		return custos.APIKey{}, "", err
	}
	key, err := d.checkKey(op, by, id, spec)
	if err != nil {
		return custos.APIKey{}, "", err
	}
	if token == "" {
		token = NewToken()
	}
	sum := sha256.Sum256([]byte(token))
	key.Hash = hex.EncodeToString(sum[:])
	rec := change(by, custos.ActionCreate, "ApiKey", key.ID, nil, view(key))
	if err := d.commit(ctx, by, []custos.Event{rec}, key.create()); err != nil {
		return custos.APIKey{}, "", err
	}
	return view(key), token, nil
}

// checkKey validates a new key; the caller holds write.
func (d *Directory) checkKey(op string, by *custos.Principal, id string, spec KeySpec) (keyDoc, error) {
	var fields []custos.FieldError
	name := strings.TrimSpace(spec.Name)
	if name == "" || utf8.RuneCountInString(name) > 100 {
		fields = append(fields, custos.FieldError{Field: "name", Message: "is required, at most 100 characters"})
	} else if !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		fields = append(fields, custos.FieldError{Field: "name", Message: "must be valid UTF-8 without control characters"})
	}
	for i, s := range spec.Scopes {
		if !s.Valid() {
			fields = append(fields, custos.FieldError{Field: fmt.Sprintf("scopes[%d]", i),
				Message: "must be one of admin, ingest, read, metrics"})
		}
	}
	d.mu.RLock()
	policy := d.policy
	user, userFound := d.users[spec.UserID]
	d.mu.RUnlock()
	for i, r := range spec.Roles {
		if _, ok := policy.Role(r); !ok {
			fields = append(fields, custos.FieldError{Field: fmt.Sprintf("roles[%d]", i), Message: fmt.Sprintf("no role %q", r)})
		}
	}
	switch {
	case spec.UserID != "" && (len(spec.Roles) > 0 || len(spec.Scopes) > 0):
		fields = append(fields, custos.FieldError{Field: "user_id", Message: "a user's key carries the user's roles: give roles or user_id, not both"})
	case spec.UserID != "" && !userFound:
		fields = append(fields, custos.FieldError{Field: "user_id", Message: fmt.Sprintf("no user %q", spec.UserID)})
	case spec.UserID != "" && user.Status != StatusActive:
		fields = append(fields, custos.FieldError{Field: "user_id", Message: fmt.Sprintf("user %q is %s", spec.UserID, user.Status)})
	case spec.UserID == "" && len(spec.Roles) == 0 && len(spec.Scopes) == 0:
		fields = append(fields, custos.FieldError{Field: "roles", Message: "at least one role (or scope) is required"})
	}
	if len(fields) > 0 {
		return keyDoc{}, &custos.Error{Op: op, Kind: custos.Invalid, Detail: "the key is invalid", Fields: fields}
	}
	scopes := slices.Clone(spec.Scopes)
	slices.Sort(scopes)
	key := keyDoc{ID: id, Name: name, Scopes: slices.Compact(scopes), Roles: sortedRoles(spec.Roles), UserID: spec.UserID,
		CreatedAt: stamp(d.now()), CreatedBy: Actor(by).ID}
	roles := key.roles()
	if key.UserID != "" {
		roles = user.Roles
	}
	if by != nil {
		if extra := beyond(policy.Permissions(roles), by.Permissions); len(extra) > 0 {
			return keyDoc{}, custos.Errorf(op, custos.PermissionDenied,
				"a key can do no more than the credential that makes it: this one lacks %s", strings.Join(extra, ", "))
		}
	}
	return key, nil
}

// beyond lists, sorted, Custos's own permissions in want that have does
// not hold. Applications' permissions (patient:read) are not Custos's to
// guard: whoever manages roles hands them out.
func beyond(want, have map[custos.Permission]bool) []string {
	var out []string
	for p := range want {
		if !have[p] && slices.Contains(custos.ReservedAreas, p.Area()) {
			out = append(out, string(p))
		}
	}
	slices.Sort(out)
	return out
}

// Revoke revokes a key; the change is a ledger record.
func (d *Directory) Revoke(ctx context.Context, by *custos.Principal, id string) error {
	d.write.Lock()
	defer d.write.Unlock()
	if err := d.Reload(ctx); err != nil {
		return err
	}
	d.mu.RLock()
	key, ok := d.keys[id]
	d.mu.RUnlock()
	if !ok || key.RevokedAt != "" {
		return custos.Errorf("authn.revoke", custos.NotFound, "no active API key with id %q", id)
	}
	before := view(key)
	key.RevokedAt = stamp(d.now())
	key.RevokedBy = Actor(by).ID
	rec := change(by, custos.ActionDelete, "ApiKey", id, before, view(key))
	return d.commit(ctx, by, []custos.Event{rec}, key.put())
}

// List returns every key without secrets, oldest first.
func (d *Directory) List(ctx context.Context) ([]custos.APIKey, error) {
	if err := d.Reload(ctx); err != nil {
		return nil, err
	}
	d.mu.RLock()
	out := make([]custos.APIKey, 0, len(d.keys))
	for _, key := range d.keys {
		out = append(out, view(key))
	}
	d.mu.RUnlock()
	slices.SortFunc(out, func(a, b custos.APIKey) int {
		return cmp.Or(strings.Compare(a.CreatedAt, b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Bootstrap creates the administrator key on the first start of an empty
// store: token when it is non-empty (CUSTOS_BOOTSTRAP_TOKEN), otherwise a
// generated one. It returns the token when it created a key, "" otherwise.
func (d *Directory) Bootstrap(ctx context.Context, token string) (string, error) {
	if err := d.Reload(ctx); err != nil {
		return "", fmt.Errorf("authn: bootstrap: %w", err)
	}
	if d.count() > 0 {
		return "", nil
	}
	if token != "" && len(token) < 16 {
		return "", fmt.Errorf("authn: the bootstrap token must be at least 16 characters")
	}
	_, tok, err := d.create(ctx, nil, bootstrapID,
		KeySpec{Name: "bootstrap administrator", Roles: []string{custos.RoleAdministrator}}, token)
	if err != nil {
		// Another node sharing the database may have bootstrapped first
		// (its create won, ours conflicted): one key, one token.
		if lerr := d.Reload(ctx); lerr == nil && d.count() > 0 {
			return "", nil
		}
	}
	return tok, err
}

// count is the number of key records replayed.
func (d *Directory) count() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.keyRecords
}

// AdoptLegacy records in the ledger the keys that the first release kept in
// its api_keys table, once, on the first start after the upgrade: each
// becomes a state record (the store empties the legacy row in the same
// transaction). Legacy rows in a ledger that already has key records were
// not written by Custos, and are refused.
func (d *Directory) AdoptLegacy(ctx context.Context, legacy []store.Key) (int, error) {
	if len(legacy) == 0 {
		return 0, nil
	}
	if d.count() > 0 {
		return 0, fmt.Errorf("authn: the legacy api_keys table holds %d rows (first: %q) but the ledger already records keys: rows were inserted behind Custos's back; run custos verify", len(legacy), legacy[0].ID)
	}
	states := make([]leaf.StateRecord, len(legacy))
	for i, l := range legacy {
		k := keyDoc{ID: l.ID, Name: l.Name, Scopes: l.Scopes, Hash: hex.EncodeToString(l.Hash),
			CreatedAt: l.CreatedAt.Format(time.RFC3339Nano), CreatedBy: l.CreatedBy}
		if l.RevokedAt != nil {
			k.RevokedAt = l.RevokedAt.Format(time.RFC3339Nano)
		}
		states[i] = k.put()
	}
	if err := d.commit(ctx, nil, nil, states...); err != nil {
		return 0, err
	}
	return len(legacy), nil
}

func view(k keyDoc) custos.APIKey {
	return custos.APIKey{ID: k.ID, Name: k.Name, Scopes: k.Scopes, Roles: k.roles(), UserID: k.UserID,
		CreatedBy: k.CreatedBy, CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
}
