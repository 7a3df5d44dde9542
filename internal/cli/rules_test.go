package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadRulesFileStopsTheStart: a rules file with a mistake stops the
// server before it opens the store, naming the line and the reason.
func TestBadRulesFileStopsTheStart(t *testing.T) {
	for name, c := range map[string]struct{ yaml, want string }{
		"unknown rule":     {"version: 1\nrules:\n  brute_forse:\n    enabled: true\n", "line 3"},
		"negative window":  {"version: 1\nrules:\n  brute_force:\n    window: -5m\n", "line 4"},
		"zero threshold":   {"version: 1\nrules:\n  brute_force:\n    threshold: 0\n", "line 4"},
		"duplicate name":   {"version: 1\nrules:\n  brute_force:\n    threshold: 5\n  brute_force:\n    threshold: 6\n", "line 5"},
		"bad allow-list":   {"version: 1\nallow_list: [10.0.0.0/33]\n", "line 2"},
		"unknown severity": {"version: 1\nrules:\n  brute_force:\n    severity: SEVERE\n", "line 4"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "rules.yaml")
			if err := os.WriteFile(f, []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			code := Main(context.Background(), []string{"serve", "--data", filepath.Join(dir, "store"), "--addr", freeAddr(t), "--rules", f}, &out, &out)
			if code != exitError || !strings.Contains(out.String(), c.want) {
				t.Fatalf("serve with %s: exit %d, want %d naming %q:\n%s", name, code, exitError, c.want, out.String())
			}
		})
	}
}
