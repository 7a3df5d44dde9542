package witness

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestParse(t *testing.T) {
	c := newTestCosigner(t, "witness.example/w1", seedFor("parse"))
	pub := c.priv.Public().(ed25519.PublicKey)
	logVKey, err := note.NewEd25519VerifierKey("witness.example/w1", pub)
	if err != nil {
		t.Fatal(err)
	}
	name, hash, key := splitVKey(c.vkey)
	typed := func(alg byte, n int) string {
		return base64.StdEncoding.EncodeToString(append([]byte{alg}, make([]byte, n)...))
	}

	good := []struct{ spec, url string }{
		{"http://127.0.0.1:7380," + c.vkey, "http://127.0.0.1:7380"},
		{" https://witness.example/w1/ , " + c.vkey + "\n", "https://witness.example/w1"},
		{"HTTPS://[::1]:443/prefix," + c.vkey, "HTTPS://[::1]:443/prefix"},
	}
	for _, tc := range good {
		w, err := Parse(tc.spec)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.spec, err)
			continue
		}
		if w.URL != tc.url || w.VKey != c.vkey || w.Name != name {
			t.Errorf("Parse(%q) = %+v", tc.spec, w)
		}
	}

	bad := []struct{ spec, want string }{
		{"", "want URL,VKEY"},
		{"http://127.0.0.1:7380", "want URL,VKEY"},
		{"," + c.vkey, "URL is empty"},
		{"127.0.0.1:7380," + c.vkey, "no scheme, want http:// or https://"},
		{"ftp://witness.example," + c.vkey, "scheme must be http or https"},
		{"witness.example/w1," + c.vkey, "no scheme"},
		{"unix:///run/w.sock," + c.vkey, "scheme must be http or https"},
		{"http://," + c.vkey, "no host"},
		{"http:///add," + c.vkey, "no host"},
		{"http://:80," + c.vkey, "no host"},
		{"http://witness.example?x=1," + c.vkey, "must not have a query"},
		{"http://witness.example#f," + c.vkey, "must not have a fragment"},
		{"http://witness.example:99999," + c.vkey, "bad port"},
		{"http://wit ness.example," + c.vkey, "bad URL"},
		{"http://witness.example,", "verifier key is empty"},
		{"http://witness.example,witness.example/w1", "want <name>+<key ID>+<base64 key>"},
		{"http://witness.example," + name + "+" + hash, "want <name>+<key ID>+<base64 key>"},
		{"http://witness.example,+" + hash + "+" + key, "bad key name"},
		{"http://witness.example,bad name+" + hash + "+" + key, "bad key name"},
		{"http://witness.example," + name + "+1234+" + key, "not 8 hex digits"},
		{"http://witness.example," + name + "+zzzzzzzz+" + key, "not 8 hex digits"},
		{"http://witness.example," + name + "+" + hash + "+!!!", "not base64"},
		{"http://witness.example," + logVKey, "plain Ed25519 note key (type 0x01)"},
		{"http://witness.example," + name + "+" + hash + "+" + typed(0x06, 1312), "signature type 0x06 is not cosignature/v1"},
		{"http://witness.example," + name + "+" + hash + "+" + typed(0x04, 31), "key is 32 bytes, want 33"},
		{"http://witness.example," + name + "+" + hash + "+", "key is 0 bytes, want 33"},
		{"http://witness.example," + name + "+00000000+" + key, "does not match the key"},
		{"http://witness.example,other.example/w1+" + hash + "+" + key, "does not match the key"},
	}
	for _, tc := range bad {
		w, err := Parse(tc.spec)
		if err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", tc.spec, w)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "witness: parse ") {
			t.Errorf("Parse(%q): %v; want an error containing %q", tc.spec, err, tc.want)
		}
	}
}

func TestNewVerifier(t *testing.T) {
	c := newTestCosigner(t, "witness.example/w1", seedFor("verifier"))
	v, err := NewVerifier(c.vkey)
	if err != nil {
		t.Fatal(err)
	}
	text := []byte("custos.test/log\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n")
	line := c.line(text, 1_700_000_000)
	s, err := parseSigLine(line[:len(line)-1])
	if err != nil {
		t.Fatal(err)
	}
	if s.name != v.Name() || s.id != v.KeyHash() || !v.Verify(text, s.sig) {
		t.Fatalf("cosignature %q does not verify with %s", line, c.vkey)
	}
	// Another time, another text, a timestamp above 2^63-1, a short signature.
	for i, sig := range [][]byte{
		append([]byte{0, 0, 0, 0, 0, 0, 0, 1}, s.sig[8:]...),
		append([]byte{0x80, 0, 0, 0, 0, 0, 0, 0}, s.sig[8:]...),
		s.sig[:len(s.sig)-1],
	} {
		if v.Verify(text, sig) {
			t.Errorf("case %d: a bad cosignature verified", i)
		}
	}
	if v.Verify(append([]byte("x"), text...), s.sig) {
		t.Error("a cosignature verified over another text")
	}
	if _, err := NewVerifier("nope"); err == nil || !strings.HasPrefix(err.Error(), "witness: ") {
		t.Errorf("NewVerifier(nope) = %v", err)
	}
}

// splitVKey splits a verifier key into name, key ID and key.
func splitVKey(vkey string) (name, hash, key string) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		panic(fmt.Sprintf("bad vkey %q", vkey))
	}
	return parts[0], parts[1], parts[2]
}
