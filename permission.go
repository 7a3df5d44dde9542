package custos

import "strings"

// Permission is a codename that an API call requires and a credential may
// hold, written area:verb. Permissions are allow-only: holding one never
// takes another away. Codenames are append-only; never rename one.
type Permission string

// Custos's own permissions: what its routes require.
const (
	PermEventsWrite     Permission = "events:write"     // append audit events
	PermEventsRead      Permission = "events:read"      // search and read the trail
	PermProofsRead      Permission = "proofs:read"      // checkpoints and proofs (no PHI)
	PermSecurityRead    Permission = "security:read"    // read security events
	PermSecurityManage  Permission = "security:manage"  // report and change security events
	PermBlocksManage    Permission = "blocks:manage"    // block and unblock addresses
	PermRolesManage     Permission = "roles:manage"     // create, change and delete roles
	PermUsersManage     Permission = "users:manage"     // create and change users, review grants
	PermKeysManage      Permission = "keys:manage"      // create, list and revoke API keys
	PermReportsGenerate Permission = "reports:generate" // compliance reports
	PermMetricsRead     Permission = "metrics:read"     // Prometheus metrics
	PermAuthorize       Permission = "authz:decide"     // ask for decisions on behalf of applications
	PermGrantsOpen      Permission = "grants:open"      // open a break-the-glass grant for oneself
	PermGrantsRead      Permission = "grants:read"      // list emergency grants and their reviews
	PermGrantsReview    Permission = "grants:review"    // close the review of an emergency grant
	PermSecurityReport  Permission = "security:report"  // report an application's own security events
	PermBlocksCheck     Permission = "blocks:check"     // ask whether an address is blocked (middleware, proxy)
)

// Permissions lists Custos's own permissions in a fixed order.
var Permissions = []Permission{
	PermEventsWrite, PermEventsRead, PermProofsRead, PermSecurityRead, PermSecurityManage,
	PermBlocksManage, PermRolesManage, PermUsersManage, PermKeysManage, PermReportsGenerate,
	PermMetricsRead, PermAuthorize, PermGrantsOpen, PermGrantsRead, PermGrantsReview,
	PermSecurityReport, PermBlocksCheck,
}

// ReservedAreas are the permission areas that belong to Custos: a codename
// in one of them must be one of Permissions. Other areas are the
// applications' own (patient:read, chart:write) and only need the form.
var ReservedAreas = []string{"events", "proofs", "security", "blocks", "roles", "users", "keys",
	"reports", "metrics", "authz", "grants"}

// Area returns the part of p before the colon.
func (p Permission) Area() string {
	area, _, _ := strings.Cut(string(p), ":")
	return area
}

// Scope is a named bundle of permissions carried by the API keys of the
// first releases. Each scope now stands for a built-in role (ScopeRole).
type Scope string

// The scopes an API key may carry.
const (
	ScopeAdmin   Scope = "admin"   // the administrator role
	ScopeIngest  Scope = "ingest"  // the ingest service role
	ScopeRead    Scope = "read"    // the auditor role
	ScopeMetrics Scope = "metrics" // the metrics role
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

// The built-in roles. Their permissions are Custos's to define; a store
// cannot change them.
const (
	RoleAdministrator   = "administrator"
	RoleSecurityOfficer = "security_officer"
	RolePrivacyOfficer  = "privacy_officer"
	RoleAuditor         = "auditor"
	RoleIngestService   = "ingest_service"
	RoleMetrics         = "metrics"
)

// Role returns the built-in role a scope stands for.
func (s Scope) Role() string {
	switch s {
	case ScopeAdmin:
		return RoleAdministrator
	case ScopeIngest:
		return RoleIngestService
	case ScopeRead:
		return RoleAuditor
	case ScopeMetrics:
		return RoleMetrics
	}
	return ""
}

// Role is a named set of permissions that inherits its parent's. Roles are
// allow-only; a role's effective permissions are its own and every
// ancestor's.
type Role struct {
	Name                 string       `json:"name"`
	Description          string       `json:"description"`
	Permissions          []Permission `json:"permissions"`
	ParentRole           string       `json:"parent_role,omitempty"`
	EffectivePermissions []Permission `json:"effective_permissions,omitempty"` // computed, never stored
	BuiltIn              bool         `json:"built_in,omitempty"`              // computed, never stored
}

// Principal is an authenticated caller: an API key, a user's session, or a
// user's single-sign-on token. Permissions is the effective set of its
// roles, computed when the roles last changed: shared, never modified.
type Principal struct {
	ID          string // the key id, or the user id for a session or a single-sign-on token
	Kind        string // "apikey", "session" or "oidc"
	Name        string // a display name
	UserID      string // the user the credential belongs to ("" for a service key)
	Roles       []string
	Permissions map[Permission]bool
}

// Can reports whether the principal holds p.
func (p *Principal) Can(perm Permission) bool {
	return p != nil && p.Permissions[perm]
}

// APIKey is a credential as the API shows it: never its secret.
type APIKey struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Scopes    []Scope  `json:"scopes,omitempty"`
	Roles     []string `json:"roles"`
	UserID    string   `json:"user_id,omitempty"`
	CreatedAt string   `json:"created_at"`
	CreatedBy string   `json:"created_by"`
	RevokedAt string   `json:"revoked_at,omitempty"`
}
