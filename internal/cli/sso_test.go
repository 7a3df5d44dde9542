package cli

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// TestSingleSignOn runs the server against a real OpenID Connect provider
// on loopback: a token's roles claim maps onto Custos roles; a token signed
// by another key, for another audience, or of a suspended local user is
// refused.
func TestSingleSignOn(t *testing.T) {
	kp, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mockoidc.NewServer(kp.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	m.Keypair = kp
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	const admin = "sso-admin-token-0123456789"
	t.Setenv("CUSTOS_BOOTSTRAP_TOKEN", admin)
	addr, _, stderr, stop := runServe(t, "--data", t.TempDir(), "--oidc-issuer", m.Issuer(), "--oidc-client-id", m.ClientID,
		"--oidc-user-claim", "preferred_username", "--oidc-roles-claim", "realm_access.roles",
		"--oidc-role-map", "custos-audit=auditor,custos-admin=administrator")
	defer stop()
	base := "http://" + addr
	token := func(signer *mockoidc.Keypair, aud, user string, roles ...string) string {
		now := time.Now()
		c := jwt.MapClaims{"iss": m.Issuer(), "aud": aud, "sub": "s-" + user, "preferred_username": user, "name": "Dr " + user,
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "realm_access": map[string]any{"roles": roles}}
		tok, err := signer.SignJWT(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	auditor := token(kp, m.ClientID, "dr.yang", "custos-audit", "unmapped")
	code, body := call(t, "GET", base+"/v1/me", auditor, "")
	var me struct {
		UserID      string `json:"user_id"`
		Roles       []string
		Permissions []string
	}
	json.Unmarshal([]byte(body), &me)
	if code != 200 || strings.Join(me.Roles, ",") != "auditor" {
		t.Fatalf("an auditor's token: %d %s\n%s", code, body, stderr.String())
	}
	if code, _ := call(t, "GET", base+"/v1/events?patient_id=p-1", auditor, ""); code != 200 {
		t.Errorf("an auditor's token reading the trail: %d", code)
	}
	if code, _ := call(t, "GET", base+"/v1/api-keys", auditor, ""); code != 403 {
		t.Errorf("an auditor's token managing keys: %d", code)
	}
	other, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"signed by another key": token(other, m.ClientID, "dr.yang", "custos-admin"),
		"for another audience":  token(kp, "someone-else", "dr.yang", "custos-admin"),
	} {
		if code, body := call(t, "GET", base+"/v1/me", tok, ""); code != 401 {
			t.Errorf("a token %s: %d %s", name, code, body)
		}
	}
	// A local user with the token's id, suspended: refused whatever the provider says.
	if code, body := call(t, "POST", base+"/v1/users", admin, `{"id":"dr.yang","name":"Cristina Yang","roles":[]}`); code != 201 {
		t.Fatalf("create the local user: %d %s", code, body)
	}
	if code, body := call(t, "PUT", base+"/v1/users/dr.yang", admin, `{"status":"suspended","status_reason":"on leave"}`); code != 200 {
		t.Fatalf("suspend: %d %s", code, body)
	}
	if code, body := call(t, "GET", base+"/v1/me", auditor, ""); code != 401 {
		t.Errorf("the token of a suspended local user: %d %s", code, body)
	}
}
