package oidc

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// idp is a real OpenID Connect provider (mockoidc) on loopback, whose key
// set endpoint serves the keys the test chooses, so that keys can rotate.
type idp struct {
	m           *mockoidc.MockOIDC
	discoveries atomic.Int32 // requests for the discovery document
	keyFetches  atomic.Int32 // requests for the key set
	keysDown    atomic.Bool  // the key set endpoint answers 500

	mu   sync.Mutex
	keys []jose.JSONWebKey // what the key set endpoint serves
}

// startIDP starts a provider with a fresh RSA key of its own, which its key
// set serves.
func startIDP(t *testing.T) *idp {
	t.Helper()
	kp := newKeypair(t)
	m, err := mockoidc.NewServer(kp.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	m.Keypair = kp
	p := &idp{m: m}
	p.serveKeys(publicJWK(t, kp))
	if err := m.AddMiddleware(p.intercept); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return p
}

// intercept counts requests and serves the test's key set.
func (p *idp) intercept(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case mockoidc.DiscoveryEndpoint:
			p.discoveries.Add(1)
		case mockoidc.JWKSEndpoint:
			p.keyFetches.Add(1)
			if p.keysDown.Load() {
				http.Error(w, "down", http.StatusInternalServerError)
				return
			}
			p.mu.Lock()
			body, _ := json.Marshal(jose.JSONWebKeySet{Keys: p.keys})
			p.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveKeys replaces the key set the provider serves.
func (p *idp) serveKeys(keys ...jose.JSONWebKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = keys
}

func newKeypair(t *testing.T) *mockoidc.Keypair {
	t.Helper()
	kp, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func publicJWK(t *testing.T, kp *mockoidc.Keypair) jose.JSONWebKey {
	t.Helper()
	kid, err := kp.KeyID()
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: kp.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"}
}

// claims returns the claims of a valid token at now, with extra added.
func (p *idp) claims(now time.Time, extra map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": p.m.Issuer(), "aud": p.m.ClientID, "sub": "subject-1",
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// signRS256 signs claims the way the provider does (mockoidc's signer).
func signRS256(t *testing.T, kp *mockoidc.Keypair, claims jwt.MapClaims) string {
	t.Helper()
	token, err := kp.SignJWT(claims)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// signJOSE signs claims with any key and algorithm go-jose knows.
func signJOSE(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// newECKey returns a P-256 key and its public JWK.
func newECKey(t *testing.T, kid string) (crypto.Signer, jose.JSONWebKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key, jose.JSONWebKey{Key: &key.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}
}

// clock is an injected time the test sets.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newVerifier(t *testing.T, cfg Config) *Verifier {
	t.Helper()
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// login runs the authorization code flow against the provider, as a
// browser and an application would, and returns the ID token it issues.
func (p *idp) login(t *testing.T, scope string) string {
	t.Helper()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	const callback = "http://127.0.0.1/callback"
	q := url.Values{"scope": {scope}, "state": {"s"}, "client_id": {p.m.ClientID},
		"response_type": {"code"}, "redirect_uri": {callback}}
	resp, err := noRedirect.Get(p.m.AuthorizationEndpoint() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %s, Location %q", resp.Status, resp.Header.Get("Location"))
	}
	resp, err = http.PostForm(p.m.TokenEndpoint(), url.Values{"grant_type": {"authorization_code"},
		"code": {loc.Query().Get("code")}, "redirect_uri": {callback},
		"client_id": {p.m.ClientID}, "client_secret": {p.m.ClientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tokens struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tokens); err != nil || tokens.IDToken == "" {
		t.Fatalf("token: %s, %v", resp.Status, err)
	}
	return tokens.IDToken
}
