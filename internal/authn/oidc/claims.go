package oidc

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// identity maps the verified claims of a token to an Identity. payload is
// the token's verified JSON payload.
func (v *Verifier) identity(payload []byte, expiry time.Time) (*Identity, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber() // a numeric user id keeps every digit
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, refusal("the token's claims are malformed", err)
	}
	userID, ok := stringClaim(claims, v.cfg.UserIDClaim)
	if !ok || userID == "" {
		return nil, refusal("the token has no "+v.cfg.UserIDClaim+" claim", nil)
	}
	id := &Identity{UserID: userID, Expiry: expiry}
	id.Subject, _ = stringClaim(claims, "sub")
	id.Issuer, _ = stringClaim(claims, "iss")
	if id.Name, _ = stringClaim(claims, v.cfg.NameClaim); id.Name == "" {
		id.Name = userID
	}
	id.Roles = v.roles(claims)
	if v.cfg.RolesClaim != "" {
		raw, _ := lookup(claims, v.cfg.RolesClaim)
		id.ClaimRoles = stringValues(raw)
	}
	return id, nil
}

// roles maps the values of the roles claim through the role map.
func (v *Verifier) roles(claims map[string]any) []string {
	var roles []string
	if v.cfg.RolesClaim != "" {
		raw, _ := lookup(claims, v.cfg.RolesClaim)
		for _, value := range stringValues(raw) {
			if role, ok := v.cfg.RoleMap[value]; ok {
				roles = append(roles, role)
			}
		}
	}
	if len(roles) == 0 && v.cfg.DefaultRole != "" {
		roles = append(roles, v.cfg.DefaultRole)
	}
	slices.Sort(roles)
	return slices.Compact(roles)
}

// lookup finds the claim at a dotted path: by its whole name first (for
// namespaced claims such as "https://example.org/roles"), then by
// descending into nested objects one dot at a time.
func lookup(claims map[string]any, path string) (any, bool) {
	if v, ok := claims[path]; ok {
		return v, true
	}
	var cur any = claims
	for seg := range strings.SplitSeq(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[seg]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// stringClaim returns the claim at path if it is a string or a number.
func stringClaim(claims map[string]any, path string) (string, bool) {
	v, _ := lookup(claims, path)
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	}
	return "", false
}

// stringValues returns the strings of a claim that is a string or a list;
// other values are ignored.
func stringValues(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
