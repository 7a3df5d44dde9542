package oidc

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/custos-audit/custos"
)

// fuzzKey is the fixed EdDSA key of the fuzz target, so that the seed
// corpus under testdata/fuzz/FuzzVerify can hold validly signed tokens.
func fuzzKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// fuzzVerifier verifies tokens of issuer https://idp.test for client
// "custos" signed with fuzzKey, at a fixed time, without a network: its
// key set is static.
func fuzzVerifier(tb testing.TB) *Verifier {
	tb.Helper()
	v, err := New(Config{Issuer: "https://idp.test", ClientID: "custos",
		RolesClaim: "realm_access.roles", RoleMap: map[string]string{"audit": "auditor"},
		Now: func() time.Time { return time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		tb.Fatal(err)
	}
	v.keys = &gooidc.StaticKeySet{PublicKeys: []crypto.PublicKey{fuzzKey().Public()}}
	return v
}

// FuzzVerify: any input is refused as Unauthenticated, never with a panic
// or another kind of error; what is accepted carries a user id, the
// configured issuer, and only mapped roles.
func FuzzVerify(f *testing.F) {
	v := fuzzVerifier(f)
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(context.Background(), token)
		if err != nil {
			var e *custos.Error
			if !errors.As(err, &e) || e.Kind != custos.Unauthenticated || e.Detail == "" {
				t.Fatalf("Verify(%q) = %v, want an Unauthenticated refusal", token, err)
			}
			return
		}
		if id.UserID == "" || id.Issuer != "https://idp.test" {
			t.Fatalf("Verify(%q) accepted %+v", token, id)
		}
		for _, r := range id.Roles {
			if r != "auditor" {
				t.Fatalf("Verify(%q) granted unmapped role %q", token, r)
			}
		}
		if !slices.IsSorted(id.Roles) {
			t.Fatalf("roles %q are not sorted", id.Roles)
		}
	})
}

// TestFuzzSeeds: the seed corpus holds what it claims, so the fuzzer starts
// from a token that verifies and from each kind of refusal.
func TestFuzzSeeds(t *testing.T) {
	v := fuzzVerifier(t)
	for name, detail := range map[string]string{
		"valid": "", "valid-aud-list": "",
		"wrong-audience": "wrong audience", "expired": "expired", "no-sub": "the token has no sub claim",
		"alg-none": "the token's algorithm is not allowed", "hs256": "the token's algorithm is not allowed",
		"empty": "the token is malformed", "dots": "the token is malformed",
	} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzVerify", name))
			if err != nil {
				t.Fatal(err)
			}
			_, arg, _ := strings.Cut(strings.TrimSpace(string(raw)), "\nstring(")
			token, err := strconv.Unquote(strings.TrimSuffix(arg, ")"))
			if err != nil {
				t.Fatalf("seed: %v", err)
			}
			if detail != "" {
				wantRefusal(t, v, token, detail)
				return
			}
			id, err := v.Verify(context.Background(), token)
			if err != nil || !slices.Equal(id.Roles, []string{"auditor"}) {
				t.Errorf("Verify = %+v, %v; want roles [auditor]", id, err)
			}
		})
	}
}
