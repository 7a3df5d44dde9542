// Package authn owns credentials: API keys stored as SHA-256 hashes of their
// secret, checked in constant time, created and revoked only through the
// ledger (each change is a ledger record written in the same transaction as
// the key row). Users, sessions and OIDC slot in behind the same Principal.
package authn

import (
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
	"sync"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// Appender records ledger events together with key changes; the ledger's
// sequencer is one.
type Appender interface {
	Append(ctx context.Context, events []custos.Event, keys ...store.KeyChange) ([]custos.Receipt, error)
}

// KeyLister lists stored keys.
type KeyLister interface {
	Keys(ctx context.Context) ([]store.Key, error)
}

// Keys authenticates bearer tokens and manages API keys. The active keys are
// cached in memory, indexed by token hash; Reload refreshes the cache.
type Keys struct {
	ledger Appender
	st     KeyLister
	now    func() time.Time

	mu       sync.RWMutex
	byHash   map[[sha256.Size]byte]store.Key
	loadedAt time.Time
	reload   sync.Mutex // one reload at a time
}

// Nodes sharing a database see each other's key changes through reloads: the
// cache is at most maxKeyAge old, and a miss reloads once missReloadAfter
// after the last load.
const (
	maxKeyAge       = 2 * time.Second
	missReloadAfter = 200 * time.Millisecond
)

// NewKeys loads the keys and returns the authenticator.
func NewKeys(ctx context.Context, ledger Appender, st KeyLister, now func() time.Time) (*Keys, error) {
	if now == nil {
		now = time.Now
	}
	k := &Keys{ledger: ledger, st: st, now: now}
	return k, k.Reload(ctx)
}

// Reload re-reads the keys from the store.
func (k *Keys) Reload(ctx context.Context) error {
	keys, err := k.st.Keys(ctx)
	if err != nil {
		return fmt.Errorf("authn: load keys: %w", err)
	}
	m := make(map[[sha256.Size]byte]store.Key, len(keys))
	for _, key := range keys {
		if key.RevokedAt == nil && len(key.Hash) == sha256.Size {
			m[[sha256.Size]byte(key.Hash)] = key
		}
	}
	k.mu.Lock()
	k.byHash, k.loadedAt = m, k.now()
	k.mu.Unlock()
	return nil
}

// refresh reloads the keys when the cache is older than age.
func (k *Keys) refresh(age time.Duration) {
	if !k.olderThan(age) {
		return
	}
	k.reload.Lock()
	defer k.reload.Unlock()
	if k.olderThan(age) { // not reloaded meanwhile by another request
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		k.Reload(ctx) // on failure the cache stays as it was
	}
}

// Authenticate returns the principal of a bearer token, or an error of kind
// Unauthenticated. The token's hash is compared in constant time.
func (k *Keys) Authenticate(token string) (*custos.Principal, error) {
	if token == "" {
		return nil, custos.Errorf("authn", custos.Unauthenticated, "a bearer token is required")
	}
	sum := sha256.Sum256([]byte(token))
	k.refresh(maxKeyAge)
	key, ok := k.lookup(sum)
	if !ok {
		k.refresh(missReloadAfter) // perhaps created on another node
		key, ok = k.lookup(sum)
	}
	if !ok || subtle.ConstantTimeCompare(key.Hash, sum[:]) != 1 {
		return nil, custos.Errorf("authn", custos.Unauthenticated, "the bearer token is not valid")
	}
	return principal(key), nil
}

func (k *Keys) olderThan(age time.Duration) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.now().Sub(k.loadedAt) > age
}

func (k *Keys) lookup(sum [sha256.Size]byte) (store.Key, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	key, ok := k.byHash[sum]
	return key, ok
}

func principal(key store.Key) *custos.Principal {
	p := &custos.Principal{ID: key.ID, Name: key.Name, Permissions: map[custos.Permission]bool{}}
	for _, s := range key.Scopes {
		for _, perm := range s.Permissions() {
			p.Permissions[perm] = true
		}
	}
	return p
}

// Actor is who a ledger record says acted: the principal as an audit user.
func Actor(p *custos.Principal) custos.User {
	if p == nil {
		return custos.User{ID: "custos", Name: "Custos", Roles: []string{}}
	}
	return custos.User{ID: "apikey:" + p.ID, Name: p.Name, Roles: []string{}}
}

// NewToken returns a fresh secret token: "cus_" and 32 random bytes.
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b) // crypto/rand.Read never fails
	return "cus_" + base64.RawURLEncoding.EncodeToString(b)
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Create makes a key with the given scopes and returns it with its secret
// token, which is shown only here. The change is a ledger record.
func (k *Keys) Create(ctx context.Context, by *custos.Principal, name string, scopes []custos.Scope, token string) (custos.APIKey, string, error) {
	const op = "authn.create"
	var fields []custos.FieldError
	if name = strings.TrimSpace(name); name == "" || len(name) > 100 {
		fields = append(fields, custos.FieldError{Field: "name", Message: "is required, at most 100 characters"})
	}
	if len(scopes) == 0 {
		fields = append(fields, custos.FieldError{Field: "scopes", Message: "at least one scope is required"})
	}
	for i, s := range scopes {
		if !s.Valid() {
			fields = append(fields, custos.FieldError{Field: fmt.Sprintf("scopes[%d]", i),
				Message: "must be one of admin, ingest, read, metrics"})
		}
	}
	if len(fields) > 0 {
		return custos.APIKey{}, "", &custos.Error{Op: op, Kind: custos.Invalid, Detail: "the key is invalid", Fields: fields}
	}
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	if token == "" {
		token = NewToken()
	}
	sum := sha256.Sum256([]byte(token))
	key := store.Key{ID: newID(), Name: name, Scopes: scopes, Hash: sum[:],
		CreatedAt: k.now().UTC().Truncate(time.Microsecond), CreatedBy: Actor(by).ID}
	changes, _ := json.Marshal(map[string]any{"name": key.Name, "scopes": key.Scopes})
	rec := k.record(by, custos.ActionCreate, key.ID, changes)
	if _, err := k.ledger.Append(ctx, []custos.Event{rec}, store.KeyChange{Insert: &key}); err != nil {
		return custos.APIKey{}, "", err
	}
	k.mu.Lock()
	k.byHash[sum] = key
	k.mu.Unlock()
	return view(key), token, nil
}

// Revoke revokes a key; the change is a ledger record.
func (k *Keys) Revoke(ctx context.Context, by *custos.Principal, id string) error {
	keys, err := k.List(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(keys, func(a custos.APIKey) bool { return a.ID == id && a.RevokedAt == "" })
	if i < 0 {
		return custos.Errorf("authn.revoke", custos.NotFound, "no active API key with id %q", id)
	}
	at := k.now().UTC().Truncate(time.Microsecond)
	rec := k.record(by, custos.ActionDelete, id, nil)
	if _, err := k.ledger.Append(ctx, []custos.Event{rec}, store.KeyChange{Revoke: &store.KeyRevocation{ID: id, At: at}}); err != nil {
		return err
	}
	return k.Reload(ctx)
}

// List returns every key without secrets.
func (k *Keys) List(ctx context.Context) ([]custos.APIKey, error) {
	keys, err := k.st.Keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("authn: list keys: %w", err)
	}
	out := make([]custos.APIKey, len(keys))
	for i, key := range keys {
		out[i] = view(key)
	}
	return out, nil
}

// Bootstrap creates the administrator key on the first start of an empty
// store: token when it is non-empty (CUSTOS_BOOTSTRAP_TOKEN), otherwise a
// generated one. It returns the token when it created a key, "" otherwise.
func (k *Keys) Bootstrap(ctx context.Context, token string) (string, error) {
	keys, err := k.st.Keys(ctx)
	if err != nil {
		return "", fmt.Errorf("authn: bootstrap: %w", err)
	}
	if len(keys) > 0 {
		return "", nil
	}
	if token != "" && len(token) < 16 {
		return "", fmt.Errorf("authn: the bootstrap token must be at least 16 characters")
	}
	_, tok, err := k.Create(ctx, nil, "bootstrap administrator", []custos.Scope{custos.ScopeAdmin}, token)
	if err != nil {
		// Another node sharing the database may have bootstrapped first.
		if keys, lerr := k.st.Keys(ctx); lerr == nil && len(keys) > 0 {
			return "", k.Reload(ctx)
		}
	}
	return tok, err
}

func (k *Keys) record(by *custos.Principal, a custos.Action, id string, changes json.RawMessage) custos.Event {
	return custos.Event{User: Actor(by), Action: a, ResourceType: "ApiKey", ResourceID: id,
		Changes: changes, Outcome: custos.OutcomeSuccess, Source: "custos"}
}

func view(k store.Key) custos.APIKey {
	v := custos.APIKey{ID: k.ID, Name: k.Name, Scopes: k.Scopes, CreatedBy: k.CreatedBy,
		CreatedAt: k.CreatedAt.Format(time.RFC3339Nano)}
	if k.RevokedAt != nil {
		v.RevokedAt = k.RevokedAt.Format(time.RFC3339Nano)
	}
	return v
}
