package oidc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/custos-audit/custos"
	jose "github.com/go-jose/go-jose/v4"
)

// maxResponse bounds what the provider may send in one response.
const maxResponse = 1 << 20

// Discover fetches the provider's discovery document now rather than on the
// first token. It is optional: call it at start to log a misconfigured
// issuer early. A failure is retried on a later token (after
// Config.RetryInterval), so it need not stop the server.
func (v *Verifier) Discover(ctx context.Context) error {
	_, err := v.keySet(ctx)
	return err
}

// keySet returns the provider's key set, discovering the provider first if
// need be. Only one discovery runs at a time; callers that arrive meanwhile
// wait for it. After a failure, callers are refused until RetryInterval
// has passed.
func (v *Verifier) keySet(ctx context.Context) (gooidc.KeySet, error) {
	for {
		v.mu.Lock()
		if keys := v.keys; keys != nil {
			due := v.jwksURL != "" && !v.refreshing && !v.cfg.Now().Before(v.keysAt.Add(v.cfg.KeyRefresh))
			if due {
				v.refreshing = true
			}
			v.mu.Unlock()
			if due {
				return v.refresh(ctx, keys), nil
			}
			return keys, nil
		}
		if running := v.inflight; running != nil {
			v.mu.Unlock()
			select {
			case <-running:
				continue
			case <-ctx.Done():
				return nil, unavailable(ctx.Err())
			}
		}
		if !v.lastTry.IsZero() && v.cfg.Now().Sub(v.lastTry) < v.cfg.RetryInterval {
			err := v.lastErr
			v.mu.Unlock()
			return nil, unavailable(err)
		}
		done := make(chan struct{})
		v.inflight, v.lastTry = done, v.cfg.Now()
		v.mu.Unlock()

		jwksURL, err := v.discover(ctx)

		v.mu.Lock()
		var keys gooidc.KeySet
		if err == nil {
			keys = v.remoteKeySet(jwksURL)
			v.keys, v.jwksURL, v.keysAt = keys, jwksURL, v.cfg.Now()
		}
		v.lastErr, v.inflight = err, nil
		v.mu.Unlock()
		close(done)
		if err != nil {
			return nil, unavailable(err)
		}
		return keys, nil
	}
}

// discover reads the provider's discovery document and returns the URL of
// its key set. The request outlives the caller's cancellation, so that one
// impatient client does not cost everyone a retry interval.
func (v *Verifier) discover(ctx context.Context) (string, error) {
	if v.cfg.JWKSURL != "" {
		v.tr.watch(v.cfg.JWKSURL)
		return v.cfg.JWKSURL, nil
	}
	ctx = gooidc.ClientContext(context.WithoutCancel(ctx), v.cfg.HTTPClient)
	p, err := gooidc.NewProvider(ctx, v.cfg.Issuer)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	var meta struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURL == "" {
		return "", errors.New("discovery: no jwks_uri")
	}
	v.tr.watch(meta.JWKSURL)
	return meta.JWKSURL, nil
}

// remoteKeySet returns go-oidc's key set of jwksURL, with an empty cache.
func (v *Verifier) remoteKeySet(jwksURL string) gooidc.KeySet {
	return gooidc.NewRemoteKeySet(gooidc.ClientContext(context.Background(), v.cfg.HTTPClient), jwksURL)
}

// refresh fetches the key set into a new cache, so that a key the provider
// has withdrawn stops being accepted: go-oidc fetches only for a key id it
// has not seen, which a withdrawn key never is. The new set is swapped in
// only once its fetch succeeded; a provider that does not answer leaves the
// keys in hand in use, and the refresh is tried again after RetryInterval.
// It returns the key set to verify with.
func (v *Verifier) refresh(ctx context.Context, current gooidc.KeySet) gooidc.KeySet {
	v.mu.Lock()
	fresh := v.remoteKeySet(v.jwksURL)
	v.mu.Unlock()
	_, _ = fresh.VerifySignature(ctx, v.probe) // no key verifies it: the set fetches the provider's
	_, fetchErr := v.tr.keyIDs()

	v.mu.Lock()
	defer v.mu.Unlock()
	v.refreshing = false
	if fetchErr != nil {
		v.keysAt = v.cfg.Now().Add(v.cfg.RetryInterval - v.cfg.KeyRefresh)
		return current
	}
	v.keys, v.keysAt = fresh, v.cfg.Now()
	return fresh
}

// newProbe returns a token that no provider key verifies: a JWT signed by
// a throwaway key under a key id no provider uses.
func newProbe() (string, error) {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key},
		(&jose.SignerOptions{}).WithHeader("kid", "custos-key-refresh-probe"))
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign([]byte("{}"))
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func unavailable(cause error) *custos.Error {
	return &custos.Error{Op: "oidc.verify", Kind: custos.Unavailable,
		Detail: "the identity provider has not answered; retry", Err: cause}
}

// transport is the HTTP transport to the provider. It bounds every
// response, and it records the key ids of the last key set fetched (or why
// the fetch failed): go-oidc refetches the key set whenever a signature
// does not verify, so after a refusal this tells an unknown key from a bad
// signature.
type transport struct {
	base http.RoundTripper

	mu      sync.Mutex
	jwksURL string
	kids    map[string]bool
	set     *jose.JSONWebKeySet // the last key set fetched
	err     error               // of the last key set fetch
}

func newTransport(base http.RoundTripper) *transport {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{base: base}
}

// watch names the key set URL whose responses are recorded.
func (t *transport) watch(jwksURL string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.jwksURL = jwksURL
}

// keyIDs returns the key ids of the last key set fetched, or the error of
// that fetch.
func (t *transport) keyIDs() (map[string]bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.kids, t.err
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	t.mu.Lock()
	watched := t.jwksURL != "" && req.URL.String() == t.jwksURL
	t.mu.Unlock()
	if err != nil {
		if watched {
			t.record(nil, err)
		}
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	resp.Body.Close()
	if err == nil && len(body) > maxResponse {
		err = fmt.Errorf("%s: response over %d bytes", req.URL, maxResponse)
	}
	if err != nil {
		if watched {
			t.record(nil, err)
		}
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if watched {
		kids, err := keyIDsOf(resp.StatusCode, body)
		t.record(kids, err)
		if err == nil {
			var set jose.JSONWebKeySet
			if json.Unmarshal(body, &set) == nil {
				t.mu.Lock()
				t.set = &set
				t.mu.Unlock()
			}
		}
	}
	return resp, nil
}

func (t *transport) record(kids map[string]bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.kids, t.err = kids, err // a failed fetch keeps the last set: the keys in hand stay in use
}

// fetched says whether a key set was ever fetched, and the error of the
// last fetch.
func (t *transport) fetched() (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.set != nil, t.err
}

// localKeys returns the keys of the last key set fetched that a token with
// key id kid may be signed with (every signing key when kid is empty), as a
// key set that never fetches; false when the set holds no such key.
func (t *transport) localKeys(kid string) (gooidc.KeySet, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.set == nil {
		return nil, false
	}
	var keys []crypto.PublicKey
	for _, k := range t.set.Keys {
		if (kid == "" || k.KeyID == kid) && k.Use != "enc" && k.Valid() && k.IsPublic() {
			keys = append(keys, k.Key)
		}
	}
	if len(keys) == 0 {
		return nil, false
	}
	return &gooidc.StaticKeySet{PublicKeys: keys}, true
}

// keyIDsOf reads the key ids of a JSON Web Key Set response.
func keyIDsOf(status int, body []byte) (map[string]bool, error) {
	if status != http.StatusOK {
		return nil, fmt.Errorf("key set: status %d", status)
	}
	var set struct {
		Keys []struct {
			KeyID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	kids := make(map[string]bool, len(set.Keys))
	for _, k := range set.Keys {
		kids[k.KeyID] = true
	}
	return kids, nil
}
