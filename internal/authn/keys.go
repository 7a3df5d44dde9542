// Package authn owns credentials: API keys stored as SHA-256 hashes of their
// secret, checked in constant time, created and revoked only through the
// ledger: each key is the replay of its state records, proven against signed
// checkpoints, never a row read from a table. Users, sessions and OIDC slot in behind the same Principal.
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
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
)

// Appender records ledger records; the ledger's sequencer is one.
type Appender interface {
	Append(ctx context.Context, by string, events []custos.Event, states ...leaf.StateRecord) ([]custos.Receipt, error)
}

// StateFeed hands out state records once a signed checkpoint proves them
// (ledger.StateFeed).
type StateFeed interface {
	Since(ctx context.Context, after int64) ([]leaf.StateRecord, error)
}

// Entity is the state entity of API keys.
const Entity = "api_key"

// keyDoc is an API key as its state records carry it. THIS DOCUMENT FEEDS
// THE HASH: fields are only ever added (with omitempty), never renamed.
type keyDoc struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Scopes    []custos.Scope `json:"scopes"`
	Hash      string         `json:"hash"` // hex SHA-256 of the secret token
	CreatedAt string         `json:"created_at"`
	CreatedBy string         `json:"created_by"`
	RevokedAt string         `json:"revoked_at,omitempty"`
	RevokedBy string         `json:"revoked_by,omitempty"`
}

func (d *keyDoc) put() leaf.StateRecord {
	b, _ := json.Marshal(d) // a keyDoc always marshals
	return leaf.StateRecord{Entity: Entity, ID: d.ID, Op: leaf.OpPut, Doc: b}
}

// create is the record of a new key: committed only if no key has its id.
func (d *keyDoc) create() leaf.StateRecord {
	r := d.put()
	r.Op = leaf.OpCreate
	return r
}

// bootstrapID is the id of the first administrator key: fixed, so that two
// nodes starting together on an empty database create one key between them
// (the second create conflicts).
const bootstrapID = "bootstrap"

// Keys authenticates bearer tokens and manages API keys. The keys are state
// records of the ledger: the cache is built by replaying them, as the state
// feed proves them against signed checkpoints, never from a table that an
// insider could edit. Reload catches up with records other nodes wrote.
type Keys struct {
	ledger Appender
	feed   StateFeed
	now    func() time.Time

	mu       sync.RWMutex
	all      map[string]keyDoc // every key by id, revoked ones included
	byHash   map[[sha256.Size]byte]keyDoc
	last     int64 // index of the last state record replayed (-1: none)
	records  int   // state records of keys replayed
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

// NewKeys replays the key records and returns the authenticator.
func NewKeys(ctx context.Context, ledger Appender, feed StateFeed, now func() time.Time) (*Keys, error) {
	if now == nil {
		now = time.Now
	}
	k := &Keys{ledger: ledger, feed: feed, now: now, all: map[string]keyDoc{},
		byHash: map[[sha256.Size]byte]keyDoc{}, last: -1}
	return k, k.Reload(ctx)
}

// Reload replays the state records committed since the last reload.
func (k *Keys) Reload(ctx context.Context) error {
	k.mu.RLock()
	after := k.last
	k.mu.RUnlock()
	recs, err := k.feed.Since(ctx, after)
	if err != nil {
		return fmt.Errorf("authn: load keys: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := range recs {
		r := &recs[i]
		if int64(r.Index) <= k.last {
			continue // replayed meanwhile
		}
		k.last = int64(r.Index)
		if r.Entity != Entity {
			continue
		}
		k.records++
		if err := k.apply(r); err != nil {
			return err
		}
	}
	k.loadedAt = k.now()
	return nil
}

// apply replays one key record into the cache; the caller holds mu.
func (k *Keys) apply(r *leaf.StateRecord) error {
	if old, ok := k.all[r.ID]; ok {
		if sum, err := hex.DecodeString(old.Hash); err == nil && len(sum) == sha256.Size {
			delete(k.byHash, [sha256.Size]byte(sum))
		}
		delete(k.all, r.ID)
	}
	if r.Op == leaf.OpDelete {
		return nil
	}
	var d keyDoc
	if err := json.Unmarshal(r.Doc, &d); err != nil || d.ID != r.ID {
		return fmt.Errorf("authn: key record %d is not a key document", r.Index)
	}
	k.all[d.ID] = d
	if sum, err := hex.DecodeString(d.Hash); err == nil && len(sum) == sha256.Size && d.RevokedAt == "" {
		k.byHash[[sha256.Size]byte(sum)] = d
	}
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
	if !ok || subtle.ConstantTimeCompare([]byte(key.Hash), []byte(hex.EncodeToString(sum[:]))) != 1 {
		return nil, custos.Errorf("authn", custos.Unauthenticated, "the bearer token is not valid")
	}
	return principal(key), nil
}

func (k *Keys) olderThan(age time.Duration) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.now().Sub(k.loadedAt) > age
}

func (k *Keys) lookup(sum [sha256.Size]byte) (keyDoc, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	key, ok := k.byHash[sum]
	return key, ok
}

func principal(key keyDoc) *custos.Principal {
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

// Submitter names the credential of p in the ledger's records: "apikey:<id>",
// or "custos" for what the server does on its own.
func Submitter(p *custos.Principal) string { return Actor(p).ID }

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
	return k.create(ctx, by, newID(), name, scopes, token)
}

func (k *Keys) create(ctx context.Context, by *custos.Principal, id, name string, scopes []custos.Scope, token string) (custos.APIKey, string, error) {
	const op = "authn.create"
	var fields []custos.FieldError
	if name = strings.TrimSpace(name); name == "" || utf8.RuneCountInString(name) > 100 {
		fields = append(fields, custos.FieldError{Field: "name", Message: "is required, at most 100 characters"})
	} else if !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		fields = append(fields, custos.FieldError{Field: "name", Message: "must be valid UTF-8 without control characters"})
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
	key := keyDoc{ID: id, Name: name, Scopes: scopes, Hash: hex.EncodeToString(sum[:]),
		CreatedAt: k.now().UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano), CreatedBy: Actor(by).ID}
	changes, _ := json.Marshal(map[string]any{"name": key.Name, "scopes": key.Scopes})
	rec := k.record(by, custos.ActionCreate, key.ID, changes)
	if _, err := k.ledger.Append(ctx, Submitter(by), []custos.Event{rec}, key.create()); err != nil {
		return custos.APIKey{}, "", err
	}
	k.mu.Lock()
	k.all[key.ID] = key
	k.byHash[sum] = key
	k.mu.Unlock()
	return view(key), token, nil
}

// Revoke revokes a key; the change is a ledger record.
func (k *Keys) Revoke(ctx context.Context, by *custos.Principal, id string) error {
	if err := k.Reload(ctx); err != nil {
		return err
	}
	k.mu.RLock()
	key, ok := k.all[id]
	k.mu.RUnlock()
	if !ok || key.RevokedAt != "" {
		return custos.Errorf("authn.revoke", custos.NotFound, "no active API key with id %q", id)
	}
	key.RevokedAt = k.now().UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
	key.RevokedBy = Actor(by).ID
	rec := k.record(by, custos.ActionDelete, id, nil)
	if _, err := k.ledger.Append(ctx, Submitter(by), []custos.Event{rec}, key.put()); err != nil {
		return err
	}
	return k.Reload(ctx)
}

// List returns every key without secrets, oldest first.
func (k *Keys) List(ctx context.Context) ([]custos.APIKey, error) {
	if err := k.Reload(ctx); err != nil {
		return nil, err
	}
	k.mu.RLock()
	out := make([]custos.APIKey, 0, len(k.all))
	for _, key := range k.all {
		out = append(out, view(key))
	}
	k.mu.RUnlock()
	slices.SortFunc(out, func(a, b custos.APIKey) int {
		return cmp.Or(strings.Compare(a.CreatedAt, b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Bootstrap creates the administrator key on the first start of an empty
// store: token when it is non-empty (CUSTOS_BOOTSTRAP_TOKEN), otherwise a
// generated one. It returns the token when it created a key, "" otherwise.
func (k *Keys) Bootstrap(ctx context.Context, token string) (string, error) {
	if err := k.Reload(ctx); err != nil {
		return "", fmt.Errorf("authn: bootstrap: %w", err)
	}
	if k.count() > 0 {
		return "", nil
	}
	if token != "" && len(token) < 16 {
		return "", fmt.Errorf("authn: the bootstrap token must be at least 16 characters")
	}
	_, tok, err := k.create(ctx, nil, bootstrapID, "bootstrap administrator", []custos.Scope{custos.ScopeAdmin}, token)
	if err != nil {
		// Another node sharing the database may have bootstrapped first
		// (its create won, ours conflicted): one key, one token.
		if lerr := k.Reload(ctx); lerr == nil && k.count() > 0 {
			return "", nil
		}
	}
	return tok, err
}

// count is the number of key records replayed.
func (k *Keys) count() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.records
}

// AdoptLegacy records in the ledger the keys that the first release kept in
// its api_keys table, once, on the first start after the upgrade: each
// becomes a state record (the store empties the legacy row in the same
// transaction). Legacy rows in a ledger that already has key records were
// not written by Custos, and are refused.
func (k *Keys) AdoptLegacy(ctx context.Context, legacy []store.Key) (int, error) {
	if len(legacy) == 0 {
		return 0, nil
	}
	if k.count() > 0 {
		return 0, fmt.Errorf("authn: the legacy api_keys table holds %d rows (first: %q) but the ledger already records keys: rows were inserted behind Custos's back; run custos verify", len(legacy), legacy[0].ID)
	}
	states := make([]leaf.StateRecord, len(legacy))
	for i, l := range legacy {
		d := keyDoc{ID: l.ID, Name: l.Name, Scopes: l.Scopes, Hash: hex.EncodeToString(l.Hash),
			CreatedAt: l.CreatedAt.Format(time.RFC3339Nano), CreatedBy: l.CreatedBy}
		if l.RevokedAt != nil {
			d.RevokedAt = l.RevokedAt.Format(time.RFC3339Nano)
		}
		states[i] = d.put()
	}
	if _, err := k.ledger.Append(ctx, "custos", nil, states...); err != nil {
		return 0, err
	}
	return len(legacy), k.Reload(ctx)
}

// record is the server event that makes a key change visible to searches of
// the trail; the state record beside it is what the key is.
func (k *Keys) record(by *custos.Principal, a custos.Action, id string, changes json.RawMessage) custos.Event {
	return custos.Event{Kind: custos.KindServer, User: Actor(by), Action: a, ResourceType: "ApiKey", ResourceID: id,
		Changes: changes, Outcome: custos.OutcomeSuccess, Source: "custos"}
}

func view(k keyDoc) custos.APIKey {
	return custos.APIKey{ID: k.ID, Name: k.Name, Scopes: k.Scopes, CreatedBy: k.CreatedBy,
		CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
}
