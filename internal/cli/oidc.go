package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/authn/oidc"
)

// oidcFlags configure single sign-on: bearer JWTs from an OpenID Connect
// provider, mapped to a user and Custos roles by their claims.
type oidcFlags struct {
	issuer, clientID, userClaim, nameClaim, rolesClaim, roleMap, defaultRole string
}

func (o *oidcFlags) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.issuer, "oidc-issuer", "", "OpenID Connect issuer URL: accept its bearer JWTs (single sign-on)")
	fs.StringVar(&o.clientID, "oidc-client-id", "", "the audience the provider's tokens must name")
	fs.StringVar(&o.userClaim, "oidc-user-claim", "sub", "the claim that names the user (preferred_username, email, oid, …)")
	fs.StringVar(&o.nameClaim, "oidc-name-claim", "name", "the claim with the user's display name")
	fs.StringVar(&o.rolesClaim, "oidc-roles-claim", "", "dotted path of the claim listing roles or groups (realm_access.roles, roles, groups)")
	fs.StringVar(&o.roleMap, "oidc-role-map", "", "claim value=Custos role pairs, comma-separated (custos-admins=administrator,auditors=auditor)")
	fs.StringVar(&o.defaultRole, "oidc-default-role", "", "role of a token none of whose values maps to a role (default: none)")
}

// verifier returns the single-sign-on verifier, nil when no issuer is set.
// Discovery is lazy: a provider that is down does not stop Custos from
// starting; its tokens are refused until it answers.
func (o *oidcFlags) verifier(log *slog.Logger) (authn.SSO, error) {
	if o.issuer == "" {
		return nil, nil
	}
	if o.clientID == "" {
		return nil, fmt.Errorf("--oidc-issuer needs --oidc-client-id (the audience its tokens name)")
	}
	roles := map[string]string{}
	for _, pair := range strings.Split(o.roleMap, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		claim, role, ok := strings.Cut(pair, "=")
		if !ok || claim == "" || role == "" {
			return nil, fmt.Errorf("--oidc-role-map: %q is not claim-value=role", pair)
		}
		roles[claim] = role
	}
	v, err := oidc.New(oidc.Config{Issuer: o.issuer, ClientID: o.clientID, UserIDClaim: o.userClaim,
		NameClaim: o.nameClaim, RolesClaim: o.rolesClaim, RoleMap: roles, DefaultRole: o.defaultRole})
	if err != nil {
		return nil, fmt.Errorf("single sign-on: %w", err)
	}
	log.Info("single sign-on enabled", "issuer", o.issuer, "user_claim", o.userClaim, "roles_claim", o.rolesClaim)
	return ssoAdapter{v}, nil
}

// ssoAdapter gives the directory what the verifier says.
type ssoAdapter struct{ v *oidc.Verifier }

func (a ssoAdapter) Verify(ctx context.Context, token string) (authn.Identity, error) {
	id, err := a.v.Verify(ctx, token)
	if err != nil {
		return authn.Identity{}, err
	}
	return authn.Identity{UserID: id.UserID, Name: id.Name, Roles: id.Roles}, nil
}
