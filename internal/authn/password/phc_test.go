package password

import (
	"context"
	"strings"
	"testing"
)

// goldenHashes were made by the reference implementation (libargon2
// 20190702, argon2id_hash_encoded): this package must verify them, and
// format them back byte for byte.
var goldenHashes = []struct{ password, encoded string }{
	{"correct horse battery staple",
		"$argon2id$v=19$m=64,t=2,p=2$Y3VzdG9zLXNhbHQtMDAwMQ$3K/5Gym8XbZq/oBKBUG+NNo0ofMGGeFohcvKEvaonGY"},
	{"password", "$argon2id$v=19$m=8192,t=1,p=1$c29tZXNhbHQ$HRUiJsWZ9ib3WnZCyyNCOw"},
	{"pässwörd ünïcode",
		"$argon2id$v=19$m=256,t=3,p=4$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY$" +
			"6MXen2upYVIpeI9JaOhAsIi7HzybFb6swczCGZBdDrBqprAhnOyrV2+hK4HrsjxagmAkyBU2zIjt/EUHG/RvTA"},
}

func TestGoldenHashes(t *testing.T) {
	h := newTestHasher(t, Config{})
	for _, g := range goldenHashes {
		t.Run(g.password, func(t *testing.T) {
			parsed, err := parse(g.encoded)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := parsed.String(); got != g.encoded {
				t.Errorf("String() = %q, want %q", got, g.encoded)
			}
			if err := h.Verify(context.Background(), g.password, g.encoded); err != nil {
				t.Errorf("Verify(right password) = %v", err)
			}
			if err := h.Verify(context.Background(), g.password+"x", g.encoded); err != ErrMismatch {
				t.Errorf("Verify(wrong password) = %v, want ErrMismatch", err)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	const salt, key = "c29tZXNhbHQ", "HRUiJsWZ9ib3WnZCyyNCOw"
	for name, s := range map[string]string{
		"empty":              "",
		"argon2i":            "$argon2i$v=19$m=8192,t=1,p=1$" + salt + "$" + key,
		"version 16":         "$argon2id$v=16$m=8192,t=1,p=1$" + salt + "$" + key,
		"no version":         "$argon2id$m=8192,t=1,p=1$" + salt + "$" + key,
		"memory over 1 GiB":  "$argon2id$v=19$m=1048577,t=1,p=1$" + salt + "$" + key,
		"memory overflows":   "$argon2id$v=19$m=99999999999,t=1,p=1$" + salt + "$" + key,
		"memory under 8p":    "$argon2id$v=19$m=15,t=1,p=2$" + salt + "$" + key,
		"time 0":             "$argon2id$v=19$m=8192,t=0,p=1$" + salt + "$" + key,
		"time over 10":       "$argon2id$v=19$m=8192,t=11,p=1$" + salt + "$" + key,
		"threads 0":          "$argon2id$v=19$m=8192,t=1,p=0$" + salt + "$" + key,
		"threads over 16":    "$argon2id$v=19$m=8192,t=1,p=17$" + salt + "$" + key,
		"threads over 255":   "$argon2id$v=19$m=8192,t=1,p=257$" + salt + "$" + key,
		"order":              "$argon2id$v=19$t=1,m=8192,p=1$" + salt + "$" + key,
		"leading zero":       "$argon2id$v=19$m=08192,t=1,p=1$" + salt + "$" + key,
		"sign":               "$argon2id$v=19$m=+8192,t=1,p=1$" + salt + "$" + key,
		"extra parameter":    "$argon2id$v=19$m=8192,t=1,p=1,k=1$" + salt + "$" + key,
		"padded salt":        "$argon2id$v=19$m=8192,t=1,p=1$" + salt + "=$" + key,
		"non-canonical salt": "$argon2id$v=19$m=8192,t=1,p=1$c29tZXNhbHR$" + key,
		"short salt":         "$argon2id$v=19$m=8192,t=1,p=1$c29tZQ$" + key,
		"short key":          "$argon2id$v=19$m=8192,t=1,p=1$" + salt + "$HRUiJsWZ9ib3",
		"trailing field":     "$argon2id$v=19$m=8192,t=1,p=1$" + salt + "$" + key + "$",
		"too long":           "$argon2id$v=19$m=8192,t=1,p=1$" + strings.Repeat("A", 300) + "$" + key,
	} {
		t.Run(name, func(t *testing.T) {
			if h, err := parse(s); err == nil {
				t.Errorf("parse(%q) = %+v, want an error", s, h.params)
			}
		})
	}
}

// FuzzParse: whatever parse accepts is within the bounds and formats back
// to the very same string.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parse(s)
		if err != nil {
			return
		}
		if err := h.params.Validate(); err != nil {
			t.Fatalf("parse(%q) accepted out-of-bounds parameters: %v", s, err)
		}
		if got := h.String(); got != s {
			t.Fatalf("parse(%q).String() = %q", s, got)
		}
	})
}
