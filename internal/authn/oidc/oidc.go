// Package oidc owns single sign-on: it verifies bearer JWTs issued by an
// OpenID Connect provider and maps their claims to a Custos user and roles.
// github.com/coreos/go-oidc does the protocol: discovery from the issuer
// URL, the provider's JSON Web Key Set (fetched again whenever a token
// names a key it has not seen, so a key rotation needs no restart), and the
// issuer, audience and expiry checks.
//
// Invariants:
//
//   - Only asymmetric signature algorithms are accepted (RS256 and the other
//     RSA, ECDSA and EdDSA algorithms; Config.Algorithms may narrow them).
//     "none" and the HMAC algorithms are refused before any key is looked
//     at.
//   - Every refusal is a custos.Unauthenticated error whose Detail is safe
//     for the client ("expired", "wrong audience", "unknown key", …) and
//     whose Err holds the cause for the log.
//   - A provider that is down does not keep Custos from starting: discovery
//     happens on the first token, and is retried at most once per
//     Config.RetryInterval. Until it succeeds every token is answered with a
//     custos.Unavailable error (503 with Retry-After): the token may well be
//     valid, so the client is told to retry rather than that its credential
//     is bad. The same holds when the key set cannot be fetched.
//   - A key the provider withdraws is accepted at most Config.KeyRefresh
//     longer: the key set is then fetched into a new cache (go-oidc alone
//     refetches only for a key id it has not seen, so a withdrawn key would
//     stay trusted until a restart). If the provider does not answer the
//     refresh, the keys in hand stay in use.
//   - Roles come only from Config.RoleMap: a claim value without a mapping
//     grants nothing.
//
// # Claim mappings
//
// Keycloak (realm roles; access tokens carry aud "account" unless the client
// has an audience mapper adding its own client id):
//
//	Issuer:      "https://keycloak.example.org/realms/hospital"
//	ClientID:    "custos"
//	UserIDClaim: "preferred_username"
//	NameClaim:   "name"
//	RolesClaim:  "realm_access.roles" // or "resource_access.custos.roles" for client roles
//	RoleMap:     {"audit-reader": "auditor", "privacy": "privacy_officer"}
//
// Microsoft Entra ID (app roles declared on the Custos app registration and
// assigned to users or groups; set "accessTokenAcceptedVersion": 2 in its
// manifest, or access tokens carry the v1 issuer https://sts.windows.net/…):
//
//	Issuer:      "https://login.microsoftonline.com/<tenant id>/v2.0"
//	ClientID:    "<application (client) id>"
//	UserIDClaim: "oid" // immutable object id; or "preferred_username" (the UPN, which can change)
//	NameClaim:   "name"
//	RolesClaim:  "roles"
//	RoleMap:     {"Custos.Auditor": "auditor", "Custos.SecurityOfficer": "security_officer"}
//
// A claim path is dotted: each dot descends into a nested object. A claim
// whose own name contains dots (a namespaced claim such as
// "https://example.org/roles") is found first by its whole name.
package oidc

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// Config configures a Verifier.
type Config struct {
	// Issuer is the provider's issuer URL, exactly as its tokens name it
	// (discovery reads Issuer + "/.well-known/openid-configuration"). It
	// must be https, except on a loopback address.
	Issuer string
	// JWKSURL, if set, is the provider's key set: discovery is skipped, and
	// Issuer, if empty, is not checked (for issuers without discovery, such
	// as a gateway that signs its own tokens).
	JWKSURL string
	// ClientID is the audience a token must name: Custos's client id.
	ClientID string

	UserIDClaim string // the claim that names the user; "sub" if empty
	NameClaim   string // the claim with a display name; "name" if empty
	RolesClaim  string // the claim path with role or group values; none if empty

	// RoleMap maps values of RolesClaim to Custos role names. Values
	// without an entry are ignored.
	RoleMap map[string]string
	// DefaultRole, if set, is the role of a user none of whose values
	// maps to a role. Without it such a user has no roles.
	DefaultRole string

	// Algorithms are the signature algorithms accepted, a subset of RS256,
	// RS384, RS512, ES256, ES384, ES512, PS256, PS384, PS512 and EdDSA; all
	// of them if empty.
	Algorithms []string

	// HTTPClient talks to the provider; a client with a 10 s timeout if
	// nil. Responses over 1 MiB are refused either way.
	HTTPClient *http.Client
	// RetryInterval is the least time between two discovery attempts, or
	// two failed key refreshes; 30 s if zero.
	RetryInterval time.Duration
	// KeyRefresh is how often the key set is fetched afresh, so that a key
	// the provider withdraws stops being accepted; 15 min if zero.
	KeyRefresh time.Duration
	// MissInterval is the least time between two fetches of the key set
	// made for a token whose key id is not in it; 10 s if zero. A token
	// naming a key the set holds is checked against that key alone, and a
	// bad signature never fetches: anyone can send tokens, and each fetch
	// costs the provider.
	MissInterval time.Duration
	// Now is the clock for expiry and retries; time.Now if nil.
	Now func() time.Time
}

// asymmetric are the signature algorithms a Verifier may accept.
var asymmetric = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
	"PS256", "PS384", "PS512", "EdDSA"}

// Identity is who a verified token says the caller is.
type Identity struct {
	UserID string   // the value of Config.UserIDClaim
	Name   string   // the value of Config.NameClaim, or UserID
	Roles  []string // Custos roles, sorted, without duplicates
	// ClaimRoles are the values of the roles claim as the token has them,
	// unmapped: for a record of what the provider said, never to grant.
	ClaimRoles []string
	Subject    string    // the token's "sub"
	Issuer     string    // the token's "iss"
	Expiry     time.Time // the token's "exp"
}

// withDefaults returns cfg checked and with its defaults filled in.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Issuer != "" || cfg.JWKSURL == "" {
		if err := checkURL("issuer", cfg.Issuer); err != nil {
			return cfg, err
		}
	}
	if cfg.JWKSURL != "" {
		if err := checkURL("key set URL", cfg.JWKSURL); err != nil {
			return cfg, err
		}
	}
	switch {
	case cfg.ClientID == "":
		return cfg, fmt.Errorf("a client id is required")
	}
	for _, alg := range cfg.Algorithms {
		if !slices.Contains(asymmetric, alg) {
			return cfg, fmt.Errorf("algorithm %q is not allowed", alg)
		}
	}
	for value, role := range cfg.RoleMap {
		if role == "" {
			return cfg, fmt.Errorf("role map: %q maps to no role", value)
		}
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = asymmetric
	}
	if cfg.UserIDClaim == "" {
		cfg.UserIDClaim = "sub"
	}
	if cfg.NameClaim == "" {
		cfg.NameClaim = "name"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 30 * time.Second
	}
	if cfg.MissInterval <= 0 {
		cfg.MissInterval = 10 * time.Second
	}
	if cfg.KeyRefresh <= 0 {
		cfg.KeyRefresh = 15 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}

// checkURL requires an https URL, or http on a loopback address.
func checkURL(what, raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return fmt.Errorf("%s %q is not an http(s) URL", what, raw)
	case u.Scheme == "http" && !loopback(u.Hostname()):
		return fmt.Errorf("%s %q must be https", what, raw)
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
