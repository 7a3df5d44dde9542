package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/oauth2-proxy/mockoidc"
)

var testNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// setup starts a provider and returns it with a Verifier of its tokens at
// testNow; cfg's issuer, client id and clock are filled in.
func setup(t *testing.T, cfg Config) (*idp, *Verifier, *clock) {
	t.Helper()
	p := startIDP(t)
	c := &clock{t: testNow}
	cfg.Issuer, cfg.ClientID, cfg.Now = p.m.Issuer(), p.m.ClientID, c.now
	return p, newVerifier(t, cfg), c
}

func TestVerifyMapsClaims(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		extra map[string]any
		want  Identity // Subject, Issuer and Expiry are filled in
	}{{
		name:  "defaults: sub and name, no roles",
		extra: map[string]any{"name": "Jane Doe", "roles": []string{"admin"}},
		want:  Identity{UserID: "subject-1", Name: "Jane Doe"},
	}, {
		name: "Keycloak: preferred_username, nested realm roles",
		cfg: Config{UserIDClaim: "preferred_username", RolesClaim: "realm_access.roles",
			RoleMap: map[string]string{"audit-reader": "auditor", "privacy": "privacy_officer"}},
		extra: map[string]any{"preferred_username": "jdoe", "name": "Jane Doe",
			"realm_access": map[string]any{"roles": []string{"privacy", "offline_access", "audit-reader"}}},
		want: Identity{UserID: "jdoe", Name: "Jane Doe", Roles: []string{"auditor", "privacy_officer"},
			ClaimRoles: []string{"privacy", "offline_access", "audit-reader"}},
	}, {
		name: "Keycloak client roles, three levels deep",
		cfg: Config{RolesClaim: "resource_access.custos.roles",
			RoleMap: map[string]string{"officer": "security_officer"}},
		extra: map[string]any{"resource_access": map[string]any{
			"custos": map[string]any{"roles": []string{"officer"}},
			"other":  map[string]any{"roles": []string{"admin"}}}},
		want: Identity{UserID: "subject-1", Name: "subject-1", Roles: []string{"security_officer"}, ClaimRoles: []string{"officer"}},
	}, {
		name: "Entra ID: oid and app roles",
		cfg: Config{UserIDClaim: "oid", RolesClaim: "roles",
			RoleMap: map[string]string{"Custos.Auditor": "auditor", "Custos.Admin": "administrator"}},
		extra: map[string]any{"oid": "6f1d2c1e-0000-4000-8000-000000000001", "name": "Dr. Who",
			"roles": []string{"Custos.Auditor", "Other.App"}},
		want: Identity{UserID: "6f1d2c1e-0000-4000-8000-000000000001", Name: "Dr. Who",
			Roles: []string{"auditor"}, ClaimRoles: []string{"Custos.Auditor", "Other.App"}},
	}, {
		name: "groups, two values to one role, and a default that is not needed",
		cfg: Config{RolesClaim: "groups", DefaultRole: "metrics",
			RoleMap: map[string]string{"nurses": "auditor", "doctors": "auditor"}},
		extra: map[string]any{"groups": []string{"doctors", "nurses"}},
		want:  Identity{UserID: "subject-1", Name: "subject-1", Roles: []string{"auditor"}, ClaimRoles: []string{"doctors", "nurses"}},
	}, {
		name:  "no mapped value: the default role",
		cfg:   Config{RolesClaim: "groups", DefaultRole: "metrics", RoleMap: map[string]string{"x": "auditor"}},
		extra: map[string]any{"groups": []string{"visitors"}},
		want:  Identity{UserID: "subject-1", Name: "subject-1", Roles: []string{"metrics"}, ClaimRoles: []string{"visitors"}},
	}, {
		name: "a namespaced claim with dots in its name, a single string",
		cfg: Config{RolesClaim: "https://custos.example/roles",
			RoleMap: map[string]string{"audit": "auditor"}},
		extra: map[string]any{"https://custos.example/roles": "audit"},
		want:  Identity{UserID: "subject-1", Name: "subject-1", Roles: []string{"auditor"}, ClaimRoles: []string{"audit"}},
	}, {
		name:  "a numeric user id keeps its digits",
		cfg:   Config{UserIDClaim: "employee_number"},
		extra: map[string]any{"employee_number": json.Number("12345678901234567890")},
		want:  Identity{UserID: "12345678901234567890", Name: "12345678901234567890"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p, v, _ := setup(t, tc.cfg)
			token := signRS256(t, p.m.Keypair, p.claims(testNow, tc.extra))
			got, err := v.Verify(context.Background(), token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := tc.want
			want.Subject, want.Issuer = "subject-1", p.m.Issuer()
			want.Expiry = testNow.Add(10 * time.Minute)
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerifyES256(t *testing.T) {
	p, v, _ := setup(t, Config{})
	key, pub := newECKey(t, "ec-1")
	p.serveKeys(publicJWK(t, p.m.Keypair), pub)
	token := signJOSE(t, "ES256", key, "ec-1", p.claims(testNow, nil))
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatalf("Verify(ES256) = %v", err)
	}
	narrow := newVerifier(t, Config{Issuer: p.m.Issuer(), ClientID: p.m.ClientID,
		Algorithms: []string{"RS256"}, Now: func() time.Time { return testNow }})
	wantRefusal(t, narrow, token, "the token's algorithm is not allowed")
}

// wantRefusal checks that v refuses token as Unauthenticated with detail.
func wantRefusal(t *testing.T, v *Verifier, token, detail string) {
	t.Helper()
	id, err := v.Verify(context.Background(), token)
	var e *custos.Error
	if !errors.As(err, &e) || e.Kind != custos.Unauthenticated || e.Detail != detail {
		t.Errorf("Verify = %+v, %v; want Unauthenticated %q", id, err, detail)
	}
}

func TestVerifyRefuses(t *testing.T) {
	p, v, _ := setup(t, Config{})
	kid, _ := p.m.Keypair.KeyID()
	impostor := newKeypair(t)
	impostor.Kid = kid // another key that claims the provider's key id
	stranger := newKeypair(t)
	valid := p.claims(testNow, nil)
	with := func(k string, val any) jwt.MapClaims {
		c := p.claims(testNow, nil)
		c[k] = val
		return c
	}
	without := func(k string) jwt.MapClaims {
		c := p.claims(testNow, nil)
		delete(c, k)
		return c
	}
	b64 := base64.RawURLEncoding.EncodeToString
	unsigned := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64([]byte(mustJSON(t, valid))) + "."
	for _, tc := range []struct{ name, token, detail string }{
		{"bad signature: another key with the same kid", signRS256(t, impostor, valid), "the token's signature is not valid"},
		{"unknown key id", signRS256(t, stranger, valid), "unknown key"},
		{"wrong audience", signRS256(t, p.m.Keypair, with("aud", "another-client")), "wrong audience"},
		{"no audience", signRS256(t, p.m.Keypair, without("aud")), "wrong audience"},
		{"wrong issuer", signRS256(t, p.m.Keypair, with("iss", "https://evil.example/")), "wrong issuer"},
		{"expired", signRS256(t, p.m.Keypair, with("exp", testNow.Add(-time.Second).Unix())), "expired"},
		{"no expiry", signRS256(t, p.m.Keypair, without("exp")), "expired"},
		{"not yet valid", signRS256(t, p.m.Keypair, with("nbf", testNow.Add(time.Hour).Unix())), "the token is not valid"},
		{"alg none", unsigned, "the token's algorithm is not allowed"},
		{"HS256 keyed with the public key", signJOSE(t, "HS256", []byte(mustJSON(t, publicJWK(t, p.m.Keypair))), kid, valid),
			"the token's algorithm is not allowed"},
		{"no user id", signRS256(t, p.m.Keypair, without("sub")), "the token has no sub claim"},
		{"not a JWT", "not-a-jwt", "the token is malformed"},
		{"empty", "", "the token is malformed"},
		{"JSON serialization", `{"payload":"e30","signatures":[]}`, "the token is malformed"},
		{"over 16 KiB", strings.Repeat("a", 16<<10+1), "the token is malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantRefusal(t, v, tc.token, tc.detail) })
	}
	if _, err := v.Verify(context.Background(), signRS256(t, p.m.Keypair, valid)); err != nil {
		t.Errorf("the valid token after the refusals: %v", err)
	}
}

// TestKeyRotation: the provider rolls over to a new key; tokens signed with
// it verify without a restart, and once the old key is withdrawn its tokens
// are refused after the next key refresh.
func TestKeyRotation(t *testing.T) {
	p, v, c := setup(t, Config{KeyRefresh: time.Hour})
	ctx := context.Background()
	old := p.m.Keypair
	if _, err := v.Verify(ctx, signRS256(t, old, p.claims(testNow, nil))); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	next := newKeypair(t)
	p.serveKeys(publicJWK(t, old), publicJWK(t, next)) // overlap
	for _, kp := range []*mockoidc.Keypair{next, old} {
		if _, err := v.Verify(ctx, signRS256(t, kp, p.claims(testNow, nil))); err != nil {
			t.Errorf("during overlap: %v", err)
		}
	}
	p.serveKeys(publicJWK(t, next)) // the old key is withdrawn
	if _, err := v.Verify(ctx, signRS256(t, next, p.claims(testNow, nil))); err != nil {
		t.Errorf("after rotation, new key: %v", err)
	}
	wantRefusal(t, v, signRS256(t, newKeypair(t), p.claims(testNow, nil)), "unknown key")

	c.advance(time.Hour) // the key set is refreshed before the next token
	wantRefusal(t, v, signRS256(t, old, p.claims(c.now(), nil)), "unknown key")
	if _, err := v.Verify(ctx, signRS256(t, next, p.claims(c.now(), nil))); err != nil {
		t.Errorf("after the refresh, new key: %v", err)
	}
	if n := p.discoveries.Load(); n != 1 {
		t.Errorf("%d discoveries, want 1", n)
	}
}

// TestKeyRefreshWhileProviderDown: a refresh the provider does not answer
// keeps the keys in hand, and is tried again after the retry interval.
func TestKeyRefreshWhileProviderDown(t *testing.T) {
	p, v, c := setup(t, Config{KeyRefresh: time.Hour, RetryInterval: time.Minute})
	ctx := context.Background()
	// Tokens valid from testNow for 2 hours.
	token := signRS256(t, p.m.Keypair, p.claims(testNow, map[string]any{"exp": testNow.Add(2 * time.Hour).Unix()}))
	if _, err := v.Verify(ctx, token); err != nil {
		t.Fatal(err)
	}
	p.keysDown.Store(true)
	c.advance(time.Hour)
	fetches := p.keyFetches.Load()
	for range 3 {
		if _, err := v.Verify(ctx, token); err != nil {
			t.Errorf("refresh failed, cached key: %v", err)
		}
	}
	if n := p.keyFetches.Load() - fetches; n != 1 {
		t.Errorf("%d key set fetches within the retry interval, want 1", n)
	}
	p.keysDown.Store(false)
	c.advance(time.Minute)
	if _, err := v.Verify(ctx, token); err != nil {
		t.Errorf("after the provider came back: %v", err)
	}
	if n := p.keyFetches.Load() - fetches; n != 2 {
		t.Errorf("%d key set fetches, want 2: the refresh was not retried", n)
	}
}

// TestProviderDown: a provider that does not answer at start does not stop
// the verifier; tokens are answered Unavailable until it does.
func TestProviderDown(t *testing.T) {
	p, v, c := setup(t, Config{RetryInterval: time.Minute})
	ctx := context.Background()
	token := signRS256(t, p.m.Keypair, p.claims(testNow, nil))
	p.m.QueueError(&mockoidc.ServerError{Code: 503, Error: "temporarily_unavailable"})
	for range 3 {
		if _, err := v.Verify(ctx, token); custos.KindOf(err) != custos.Unavailable {
			t.Fatalf("provider down: %v, want Unavailable", err)
		}
	}
	if n := p.discoveries.Load(); n != 1 {
		t.Errorf("%d discovery attempts within the retry interval, want 1", n)
	}
	c.advance(time.Minute)
	if _, err := v.Verify(ctx, token); err != nil {
		t.Fatalf("after the provider came back: %v", err)
	}

	// The key set endpoint fails: a token with a new key is answered
	// Unavailable, not refused as a bad credential; cached keys still work.
	p.keysDown.Store(true)
	if _, err := v.Verify(ctx, signRS256(t, newKeypair(t), p.claims(testNow, nil))); custos.KindOf(err) != custos.Unavailable {
		t.Errorf("key set down: %v, want Unavailable", err)
	}
	if _, err := v.Verify(ctx, token); err != nil {
		t.Errorf("key set down, cached key: %v", err)
	}
}

func TestProviderUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String() + "/oidc"
	ln.Close()
	v := newVerifier(t, Config{Issuer: issuer, ClientID: "custos"})
	if err := v.Discover(context.Background()); custos.KindOf(err) != custos.Unavailable {
		t.Errorf("Discover = %v, want Unavailable", err)
	}
}

func TestNewRefusesConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"http issuer off loopback": {Issuer: "http://idp.example/realms/x", ClientID: "c"},
		"no issuer":                {ClientID: "c"},
		"no client id":             {Issuer: "https://idp.example"},
		"alg none":                 {Issuer: "https://idp.example", ClientID: "c", Algorithms: []string{"none"}},
		"HS256":                    {Issuer: "https://idp.example", ClientID: "c", Algorithms: []string{"HS256"}},
		"empty role mapping":       {Issuer: "https://idp.example", ClientID: "c", RoleMap: map[string]string{"x": ""}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg); err == nil {
				t.Error("New accepted the configuration")
			}
		})
	}
}

// TestHostileTokensDoNotFetchKeys: anyone can send tokens, and go-oidc
// fetches the provider's key set again whenever a signature does not verify.
// A bad signature under a key the set holds never fetches; tokens naming
// unknown keys fetch at most once per MissInterval.
func TestHostileTokensDoNotFetchKeys(t *testing.T) {
	p, v, c := setup(t, Config{KeyRefresh: time.Hour, MissInterval: 10 * time.Second})
	ctx := context.Background()
	good := signRS256(t, p.m.Keypair, p.claims(testNow, nil))
	if _, err := v.Verify(ctx, good); err != nil {
		t.Fatal(err)
	}
	base := p.keyFetches.Load()
	header, rest, _ := strings.Cut(good, ".")
	payload, _, _ := strings.Cut(rest, ".")
	forged := header + "." + payload + "." + strings.Repeat("A", 342) // the provider's key id, a bad signature
	for range 50 {
		wantRefusal(t, v, forged, "the token's signature is not valid")
	}
	if n := p.keyFetches.Load() - base; n != 0 {
		t.Errorf("50 bad signatures under a known key fetched the key set %d times, want 0", n)
	}
	for range 50 {
		wantRefusal(t, v, signRS256(t, newKeypair(t), p.claims(testNow, nil)), "unknown key")
	}
	if n := p.keyFetches.Load() - base; n != 1 {
		t.Errorf("50 tokens under unknown keys fetched the key set %d times, want 1", n)
	}
	c.advance(11 * time.Second)
	wantRefusal(t, v, signRS256(t, newKeypair(t), p.claims(testNow, nil)), "unknown key")
	if n := p.keyFetches.Load() - base; n != 2 {
		t.Errorf("after MissInterval: %d fetches, want 2", n)
	}
	if _, err := v.Verify(ctx, good); err != nil {
		t.Errorf("the good token after the attack: %v", err)
	}
}
