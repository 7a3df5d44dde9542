package oidc

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/oauth2-proxy/mockoidc"
)

// TestTokenFromTheProvider: an ID token the provider issues through the
// authorization code flow verifies, on the real clock.
func TestTokenFromTheProvider(t *testing.T) {
	p := startIDP(t)
	p.m.QueueUser(&mockoidc.MockUser{Subject: "u-42", PreferredUsername: "jdoe",
		Groups: []string{"auditors", "staff"}})
	v := newVerifier(t, Config{Issuer: p.m.Issuer(), ClientID: p.m.ClientID,
		UserIDClaim: "preferred_username", RolesClaim: "groups",
		RoleMap: map[string]string{"auditors": "auditor"}})
	id, err := v.Verify(context.Background(), p.login(t, "openid profile groups"))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := &Identity{UserID: "jdoe", Name: "jdoe", Roles: []string{"auditor"},
		ClaimRoles: []string{"auditors", "staff"}, Subject: "u-42", Issuer: p.m.Issuer(), Expiry: id.Expiry}
	if diff := cmp.Diff(want, id); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	if id.Expiry.IsZero() {
		t.Error("no expiry")
	}
}
