package custos

// Permission is a codename that an API call requires and a credential may
// hold. Permissions are allow-only: holding one never takes another away.
// Codenames are append-only; never rename one.
type Permission string

// The permissions this release checks.
const (
	PermEventsWrite Permission = "events:write" // append audit events
	PermEventsRead  Permission = "events:read"  // search and read the trail
	PermProofsRead  Permission = "proofs:read"  // checkpoints and proofs (no PHI)
	PermKeysManage  Permission = "keys:manage"  // create, list and revoke API keys
	PermMetricsRead Permission = "metrics:read" // Prometheus metrics
)

// Scope is a named bundle of permissions carried by an API key.
type Scope string

// The scopes an API key may carry.
const (
	ScopeAdmin   Scope = "admin"   // every permission
	ScopeIngest  Scope = "ingest"  // may only append events
	ScopeRead    Scope = "read"    // may query the trail and its proofs
	ScopeMetrics Scope = "metrics" // may scrape /metrics
)

// Scopes lists every scope in a fixed order.
var Scopes = []Scope{ScopeAdmin, ScopeIngest, ScopeRead, ScopeMetrics}

// Valid reports whether s is a known scope.
func (s Scope) Valid() bool {
	for _, v := range Scopes {
		if s == v {
			return true
		}
	}
	return false
}

// Permissions returns what the scope grants.
func (s Scope) Permissions() []Permission {
	switch s {
	case ScopeAdmin:
		return []Permission{PermEventsWrite, PermEventsRead, PermProofsRead, PermKeysManage, PermMetricsRead}
	case ScopeIngest:
		return []Permission{PermEventsWrite}
	case ScopeRead:
		return []Permission{PermEventsRead, PermProofsRead}
	case ScopeMetrics:
		return []Permission{PermMetricsRead}
	}
	return nil
}

// Principal is an authenticated caller: an API key today; users with roles
// slot in behind the same type.
type Principal struct {
	ID          string // the key id (or, later, the user id)
	Name        string // a display name
	Permissions map[Permission]bool
}

// Can reports whether the principal holds p.
func (p *Principal) Can(perm Permission) bool {
	return p != nil && p.Permissions[perm]
}

// APIKey is a credential as the API shows it: never its secret.
type APIKey struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Scopes    []Scope `json:"scopes"`
	CreatedAt string  `json:"created_at"`
	CreatedBy string  `json:"created_by"`
	RevokedAt string  `json:"revoked_at,omitempty"`
}
