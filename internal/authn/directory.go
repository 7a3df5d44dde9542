// Package authn owns credentials and the access-control state: API keys,
// users, sessions, roles, emergency grants and pending approvals. All of it
// is state records of the ledger: the Directory is built by replaying them,
// each proven against a signed checkpoint by the state feed, never from a
// table an insider could edit. Every change is appended to the ledger with a
// server event that says who changed what (before and after), and only then
// replayed into the cache, so a node believes exactly what the ledger says.
//
// Invariants:
//
//   - The replay is the authority. A record that would break an invariant
//     (a role cycle written by two nodes at once, a grant for a user that
//     does not exist) is skipped at replay on every node alike, and logged.
//   - Principals are computed when the state they depend on changes, and
//     shared read-only: a permission check is a map lookup.
//   - A suspended or terminated user's credentials (keys, sessions, tokens)
//     authenticate nothing.
package authn

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn/password"
	"github.com/custos-audit/custos/internal/authn/totp"
	"github.com/custos-audit/custos/internal/authz"
	"github.com/custos-audit/custos/internal/leaf"
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

// The state entities this package owns. Frozen: they are in the ledger.
const (
	Entity         = "api_key"
	EntityRole     = "role"
	EntityUser     = "user"
	EntitySession  = "session"
	EntityGrant    = "grant"
	EntityApproval = "approval"
	// EntityCodeSpent marks a TOTP time step as spent by a user's login
	// ("<user id>@<step>"); created, so that two nodes cannot both spend one.
	EntityCodeSpent = "totp_spent"
)

// Config tunes a Directory. Zero fields take the defaults.
type Config struct {
	Now    func() time.Time
	Logger *slog.Logger
	// Hasher verifies passwords (default password.NewHasher with its
	// defaults).
	Hasher *password.Hasher
	// SessionIdle ends a session not used for this long (default 15 min);
	// SessionAbsolute ends every session this long after login (default
	// 12 h).
	SessionIdle, SessionAbsolute time.Duration
	// MaxGrant is the longest an emergency grant may last (default 4 h).
	MaxGrant time.Duration
	// Secret seals what the directory keeps secret in the ledger (TOTP
	// secrets); derived from the signing key, which lives outside the
	// database. Without it, second factors cannot be enrolled.
	Secret []byte
	// SSO, when set, accepts bearer JWTs from an OpenID Connect provider.
	SSO SSO
}

// SSO verifies single-sign-on bearer tokens (a JWT from an OpenID Connect
// provider) and says who they name.
type SSO interface {
	Verify(ctx context.Context, token string) (Identity, error)
}

// Identity is the person a single-sign-on token names, with the Custos
// roles its claims map to.
type Identity struct {
	UserID string
	Name   string
	Roles  []string
}

// Nodes sharing a database see each other's changes through reloads: the
// cache is at most maxAge old, and a miss reloads once missReloadAfter after
// the last load.
const (
	maxAge          = 2 * time.Second
	missReloadAfter = 200 * time.Millisecond
)

// Directory authenticates credentials and holds the access-control state.
type Directory struct {
	ledger Appender
	feed   StateFeed
	now    func() time.Time
	log    *slog.Logger
	cfg    Config
	hasher *password.Hasher
	totp   *totp.Authenticator // nil without Config.Secret

	write sync.Mutex // serialises this node's changes: check, append, replay

	mu         sync.RWMutex
	keys       map[string]keyDoc // every key by id, revoked ones included
	byHash     map[[hashSize]byte]string
	users      map[string]userDoc
	roles      map[string]custos.Role // custom roles as recorded
	policy     *authz.Policy
	sessions   map[[hashSize]byte]sessionDoc
	grants     map[string]grantDoc
	grantsOf   map[string][]string // grant ids by user
	approvals  map[string]approvalDoc
	principals map[string]*custos.Principal // "apikey:<id>" and "user:<id>", at the current state
	last       int64                        // index of the last state record replayed (-1: none)
	keyRecords int                          // key records replayed
	loadedAt   time.Time
	reload     sync.Mutex // one reload at a time
}

// NewDirectory replays the state records and returns the directory.
func NewDirectory(ctx context.Context, ledger Appender, feed StateFeed, cfg Config) (*Directory, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 15 * time.Minute
	}
	if cfg.SessionAbsolute <= 0 {
		cfg.SessionAbsolute = 12 * time.Hour
	}
	if cfg.MaxGrant <= 0 {
		cfg.MaxGrant = 4 * time.Hour
	}
	if cfg.Hasher == nil {
		h, err := password.NewHasher(password.Config{})
		if err != nil {
			return nil, err
		}
		cfg.Hasher = h
	}
	policy, err := authz.Compile(0, nil)
	if err != nil {
		return nil, err
	}
	var second *totp.Authenticator
	if len(cfg.Secret) > 0 {
		if second, err = totp.New(totp.Config{ServerSecret: cfg.Secret, Now: cfg.Now}); err != nil {
			return nil, err
		}
	}
	d := &Directory{ledger: ledger, feed: feed, now: cfg.Now, log: cfg.Logger, cfg: cfg, hasher: cfg.Hasher, totp: second,
		keys: map[string]keyDoc{}, byHash: map[[hashSize]byte]string{}, users: map[string]userDoc{},
		roles: map[string]custos.Role{}, policy: policy, sessions: map[[hashSize]byte]sessionDoc{},
		grants: map[string]grantDoc{}, grantsOf: map[string][]string{}, approvals: map[string]approvalDoc{},
		principals: map[string]*custos.Principal{}, last: -1}
	return d, d.Reload(ctx)
}

// Reload replays the state records committed since the last reload.
func (d *Directory) Reload(ctx context.Context) error {
	d.mu.RLock()
	after := d.last
	d.mu.RUnlock()
	recs, err := d.feed.Since(ctx, after)
	if err != nil {
		return fmt.Errorf("authn: load the access-control state: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	changed := false
	for i := range recs {
		r := &recs[i]
		if int64(r.Index) <= d.last {
			continue // replayed meanwhile
		}
		d.last = int64(r.Index)
		changed = d.apply(r) || changed
	}
	if changed {
		d.rebuildPrincipals()
	}
	d.loadedAt = d.now()
	return nil
}

// apply replays one record; the caller holds mu. It reports whether the
// record changes what principals may do (a key, a user or a role).
func (d *Directory) apply(r *leaf.StateRecord) bool {
	var err error
	principals := false
	switch r.Entity {
	case Entity:
		d.keyRecords++
		err, principals = d.applyKey(r), true
	case EntityRole:
		err, principals = d.applyRole(r), true
	case EntityUser:
		err, principals = d.applyUser(r), true
	case EntitySession:
		err = d.applySession(r)
	case EntityGrant:
		err = d.applyGrant(r)
	case EntityApproval:
		err = d.applyApproval(r)
	default:
		return false
	}
	if err != nil {
		// The record is in the ledger, signed: every node skips it alike.
		d.log.Warn("state record skipped at replay", "index", r.Index, "entity", r.Entity, "error", err)
	}
	return principals
}

// decodeDoc reads a state record's document into v, whose id must match.
func decodeDoc(r *leaf.StateRecord, v any, id func() string) error {
	if err := json.Unmarshal(r.Doc, v); err != nil || id() != r.ID {
		return fmt.Errorf("record %d is not a %s document", r.Index, r.Entity)
	}
	return nil
}

// refresh reloads the state when the cache is older than age.
//
// The periodic reload (maxAge) never makes a request wait: while one
// request reloads, the others answer from the cache, at most that reload
// older. A miss (an unknown token, perhaps made on another node) waits for
// the reload in progress.
func (d *Directory) refresh(age time.Duration) {
	if !d.olderThan(age) {
		return
	}
	if age < maxAge {
		d.reload.Lock()
	} else if !d.reload.TryLock() {
		return
	}
	defer d.reload.Unlock()
	if d.olderThan(age) { // not reloaded meanwhile by another request
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Reload(ctx); err != nil { // the cache stays as it was
			d.log.Warn("access-control reload failed", "error", err)
		}
	}
}

func (d *Directory) olderThan(age time.Duration) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.now().Sub(d.loadedAt) > age
}

// commit appends a change (its server events and state records) and replays
// it: the cache changes only from the ledger.
func (d *Directory) commit(ctx context.Context, by *custos.Principal, events []custos.Event, states ...leaf.StateRecord) error {
	if _, err := d.ledger.Append(ctx, Submitter(by), events, states...); err != nil {
		return err
	}
	return d.Reload(ctx)
}

// rebuildPrincipals computes every key's and user's principal from the
// current state; the caller holds mu.
func (d *Directory) rebuildPrincipals() {
	sets := map[string]map[custos.Permission]bool{} // shared by principals with the same roles
	perms := func(roles []string) map[custos.Permission]bool {
		k := strings.Join(roles, "\x00")
		if m, ok := sets[k]; ok {
			return m
		}
		m := d.policy.Permissions(roles)
		sets[k] = m
		return m
	}
	out := make(map[string]*custos.Principal, len(d.keys)+len(d.users))
	for id, u := range d.users {
		if u.Status != StatusActive {
			continue
		}
		roles := sortedRoles(u.Roles)
		out["user:"+id] = &custos.Principal{ID: id, Kind: "session", Name: u.Name, UserID: id,
			Roles: roles, Permissions: perms(roles)}
	}
	for id, k := range d.keys {
		if k.RevokedAt != "" {
			continue
		}
		roles := k.roles()
		if k.UserID != "" {
			u, ok := d.users[k.UserID]
			if !ok || u.Status != StatusActive {
				continue // a key authenticates no more than its user
			}
			roles = sortedRoles(u.Roles)
		}
		out["apikey:"+id] = &custos.Principal{ID: id, Kind: "apikey", Name: k.Name, UserID: k.UserID,
			Roles: roles, Permissions: perms(roles)}
	}
	d.principals = out
}

func sortedRoles(roles []string) []string {
	r := slices.Clone(roles)
	slices.Sort(r)
	return slices.Compact(r)
}

// Policy returns the roles as they stand now.
func (d *Directory) Policy() *authz.Policy {
	d.refresh(maxAge)
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.policy
}

// Actor is who a ledger record says acted: the principal as an audit user.
func Actor(p *custos.Principal) custos.User {
	switch {
	case p == nil:
		return custos.User{ID: "custos", Name: "Custos", Roles: []string{}}
	case p.Kind == "apikey" || p.Kind == "":
		return custos.User{ID: "apikey:" + p.ID, Name: p.Name, Roles: nonNil(p.Roles)}
	case p.Kind == "operator": // a command run on the store by the system account p.ID
		return custos.User{ID: "operator:" + p.ID, Name: p.Name, Roles: []string{}}
	default:
		return custos.User{ID: "user:" + p.UserID, Name: p.Name, Roles: nonNil(p.Roles)}
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Submitter names the credential of p in the ledger's records:
// "apikey:<id>", "user:<id>" for a session, "oidc:<id>" for a single-sign-on
// token, or "custos" for what the server does on its own.
func Submitter(p *custos.Principal) string {
	if p != nil && p.Kind == "oidc" {
		return "oidc:" + p.UserID
	}
	return Actor(p).ID
}

// change is the server event that makes a change visible to searches of the
// trail, with what it was before and after; the state record beside it is
// what changed.
func change(by *custos.Principal, a custos.Action, resourceType, id string, before, after any) custos.Event {
	var changes json.RawMessage
	if before != nil || after != nil {
		changes, _ = json.Marshal(map[string]any{"before": before, "after": after})
	}
	return custos.Event{Kind: custos.KindServer, User: Actor(by), Action: a, ResourceType: resourceType,
		ResourceID: id, Changes: changes, Outcome: custos.OutcomeSuccess, Source: "custos"}
}

func stamp(t time.Time) string { return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano) }

func parseStamp(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}
