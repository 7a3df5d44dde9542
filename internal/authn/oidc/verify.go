package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/custos-audit/custos"
	jose "github.com/go-jose/go-jose/v4"
)

// maxToken bounds the bearer tokens read: a token is refused unread above.
const maxToken = 16 << 10

// Verifier verifies the provider's bearer tokens. It is safe for concurrent
// use and should live as long as the server: it caches the provider's keys.
type Verifier struct {
	cfg   Config
	tr    *transport // the provider's HTTP transport, which sees each key set fetched
	probe string     // a token no key verifies, to make a key set fetch (refresh)

	mu         sync.Mutex
	keys       gooidc.KeySet // nil until discovery succeeds
	jwksURL    string        // the key set's URL, from discovery
	keysAt     time.Time     // when keys was last fetched afresh
	refreshing bool          // a refresh of keys is under way
	lastTry    time.Time     // of the last discovery attempt
	lastErr    error         // of the last discovery attempt
	inflight   chan struct{} // closed when the running discovery ends
	lastMiss   time.Time     // when a token with a key id not in the set last fetched it
}

// New returns a Verifier configured by cfg. It makes no request: the
// provider is discovered on the first token, or by Discover.
func New(cfg Config) (*Verifier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	probe, err := newProbe()
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	tr := newTransport(cfg.HTTPClient.Transport)
	client := *cfg.HTTPClient
	client.Transport = tr
	cfg.HTTPClient = &client
	return &Verifier{cfg: cfg, tr: tr, probe: probe}, nil
}

// Verify checks a bearer token (the JWT itself, without "Bearer ") and
// returns the identity it carries. Refusals are custos.Unauthenticated
// errors; a provider that cannot be reached gives a custos.Unavailable one.
func (v *Verifier) Verify(ctx context.Context, token string) (*Identity, error) {
	if len(token) > maxToken {
		return nil, refusal("the token is malformed", fmt.Errorf("token is %d bytes", len(token)))
	}
	jws, err := jose.ParseSignedCompact(token, v.algorithms())
	if err != nil {
		if alg := headerAlg(token); alg != "" && !slices.Contains(v.cfg.Algorithms, alg) {
			return nil, refusal("the token's algorithm is not allowed", fmt.Errorf("alg %q", alg))
		}
		return nil, refusal("the token is malformed", err)
	}
	keys, err := v.keySet(ctx)
	if err != nil {
		return nil, err
	}
	kid := jws.Signatures[0].Header.KeyID
	if local, ok := v.tr.localKeys(kid); ok {
		keys = local // a key the set holds: a bad signature must not make a fetch
	} else if err := v.mayFetch(kid); err != nil {
		return nil, err
	}
	rec := &recorder{KeySet: keys}
	verifier := gooidc.NewVerifier(v.cfg.Issuer, rec, &gooidc.Config{
		ClientID: v.cfg.ClientID, SupportedSigningAlgs: v.cfg.Algorithms, Now: v.cfg.Now,
		SkipIssuerCheck: v.cfg.Issuer == ""})
	idToken, err := verifier.Verify(ctx, token)
	if err != nil {
		return nil, v.explain(err, rec, jws.Signatures[0].Header.KeyID)
	}
	return v.identity(rec.payload, idToken.Expiry)
}

// mayFetch lets a token whose key id is not in the key set make go-oidc
// fetch the set again (the provider may have rotated its keys), at most once
// every MissInterval; other such tokens meanwhile are refused as naming an
// unknown key. Before any set was fetched, the first token fetches, and
// after a failed fetch the next try waits MissInterval (Unavailable).
func (v *Verifier) mayFetch(kid string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.cfg.Now()
	have, fetchErr := v.tr.fetched()
	recent := !v.lastMiss.IsZero() && now.Sub(v.lastMiss) < v.cfg.MissInterval
	switch {
	case !have && fetchErr == nil:
		return nil // the first fetch
	case !have && recent:
		return &custos.Error{Op: "oidc.verify", Kind: custos.Unavailable,
			Detail: "the identity provider's keys could not be fetched; retry", Err: fetchErr}
	case have && recent:
		return refusal("unknown key", fmt.Errorf("key id %q is not in the key set, fetched less than %s ago", kid, v.cfg.MissInterval))
	}
	v.lastMiss = now
	return nil
}

// explain turns a go-oidc refusal into a client-safe reason. go-oidc checks
// the signature, then the issuer, the audience and the expiry; rec tells
// whether the signature passed, and its payload which claim failed.
func (v *Verifier) explain(err error, rec *recorder, kid string) error {
	if rec.payload == nil {
		kids, fetchErr := v.tr.keyIDs()
		switch {
		case fetchErr != nil:
			return &custos.Error{Op: "oidc.verify", Kind: custos.Unavailable,
				Detail: "the identity provider's keys could not be fetched; retry", Err: err}
		case kid != "" && !kids[kid]:
			return refusal("unknown key", err)
		}
		return refusal("the token's signature is not valid", err)
	}
	if _, ok := errors.AsType[*gooidc.TokenExpiredError](err); ok {
		return refusal("expired", err)
	}
	var claims struct {
		Issuer   string          `json:"iss"`
		Audience json.RawMessage `json:"aud"`
	}
	_ = json.Unmarshal(rec.payload, &claims)
	switch {
	case v.cfg.Issuer != "" && claims.Issuer != v.cfg.Issuer:
		return refusal("wrong issuer", err)
	case !slices.Contains(audiences(claims.Audience), v.cfg.ClientID):
		return refusal("wrong audience", err)
	}
	return refusal("the token is not valid", err) // not yet valid, or malformed claims
}

// refusal is the error for a token that is refused; detail is shown to the
// client, cause only logged.
func refusal(detail string, cause error) *custos.Error {
	return &custos.Error{Op: "oidc.verify", Kind: custos.Unauthenticated, Detail: detail, Err: cause}
}

func (v *Verifier) algorithms() []jose.SignatureAlgorithm {
	algs := make([]jose.SignatureAlgorithm, len(v.cfg.Algorithms))
	for i, a := range v.cfg.Algorithms {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	return algs
}

// headerAlg returns the "alg" of a compact JWT's header, or "" if the
// header cannot be read.
func headerAlg(token string) string {
	header, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		return ""
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return ""
	}
	return h.Alg
}

// audiences reads an "aud" claim: one string or a list.
func audiences(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}

// recorder is the key set of one verification: it keeps the payload once
// the signature is verified, so that a refusal can say which check failed.
type recorder struct {
	gooidc.KeySet
	payload []byte
}

func (r *recorder) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := r.KeySet.VerifySignature(ctx, jwt)
	if err == nil {
		r.payload = payload
	}
	return payload, err
}
