package authn

import (
	"context"

	"github.com/custos-audit/custos"
)

// authenticateJWT authenticates a single-sign-on token. Its roles are those
// its claims map to, and those of the local user with its id, if there is
// one; a local user who is suspended or terminated is refused whatever the
// provider says.
func (d *Directory) authenticateJWT(ctx context.Context, token string) (*custos.Principal, error) {
	id, err := d.cfg.SSO.Verify(ctx, token)
	if err != nil {
		return nil, err
	}
	d.refresh(maxAge)
	d.mu.RLock()
	u, local := d.users[id.UserID]
	policy := d.policy
	d.mu.RUnlock()
	roles := id.Roles
	if local {
		if u.Status != StatusActive {
			return nil, custos.Errorf("authn", custos.Unauthenticated, "the user is %s", u.Status)
		}
		roles = append(roles, u.Roles...)
	}
	roles = sortedRoles(roles)
	name := id.Name
	if name == "" {
		name = id.UserID
	}
	return &custos.Principal{ID: id.UserID, Kind: "oidc", Name: name, UserID: id.UserID, Roles: roles,
		Permissions: policy.Permissions(roles)}, nil
}
