package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyFixture copies the store the release before roles wrote
// (testdata/store-de7d4cd) into a temporary folder.
func copyFixture(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"checkpoint.key", "custos.db", "custos-index.db"} {
		b, err := os.ReadFile(filepath.Join("testdata", "store-de7d4cd", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func call(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestUpgradeKeepsKeyScopes starts this release on a store the previous
// release wrote: each key's scope now stands for a built-in role, and each
// keeps exactly what it could do; the ledger still verifies.
func TestUpgradeKeepsKeyScopes(t *testing.T) {
	data := copyFixture(t)
	var out bytes.Buffer
	if code := Main(context.Background(), []string{"verify", "--data", data, "--quiet"}, &out, &out); code != exitOK {
		t.Fatalf("verify of the previous release's store: exit %d\n%s", code, out.String())
	}
	addr, _, stderr, stop := runServe(t, "--data", data)
	base := "http://" + addr
	const (
		admin   = "cus_fixture_bootstrap_admin_token_0001"
		ingest  = "cus_6bhLXMoJTPJ1dItRX56jn0t-PSiQNBDyPU_zXgB5LfM"
		read    = "cus_3N2n-BftnfJkDgO047507tSKakfcoHUguRyL-nscbTI"
		metrics = "cus_ZcYUzlNaRRSqAY-IiB3A5OYOETFqL-cLt8cAqDVeBAU"
	)
	event := `{"user":{"id":"u1","name":"U","roles":[]},"action":"READ","resource_type":"Patient","resource_id":"p-2","patient_id":"p-2","outcome":"success","source":"t"}`
	for _, c := range []struct {
		name, token, method, path, body string
		want                            int
	}{
		{"ingest writes", ingest, "POST", "/v1/events", event, 201},
		{"ingest cannot read", ingest, "GET", "/v1/events?patient_id=p-1", "", 403},
		{"read reads", read, "GET", "/v1/events?patient_id=p-1", "", 200},
		{"read reads proofs", read, "GET", "/v1/checkpoint", "", 200},
		{"read cannot write", read, "POST", "/v1/events", event, 403},
		{"read cannot manage keys", read, "GET", "/v1/api-keys", "", 403},
		{"metrics scrapes", metrics, "GET", "/metrics", "", 200},
		{"metrics cannot read", metrics, "GET", "/v1/events?patient_id=p-1", "", 403},
		{"admin manages keys", admin, "GET", "/v1/api-keys", "", 200},
		{"admin manages roles (new)", admin, "GET", "/v1/roles", "", 200},
		{"admin manages users (new)", admin, "GET", "/v1/users", "", 200},
	} {
		if code, body := call(t, c.method, base+c.path, c.token, c.body); code != c.want {
			t.Errorf("%s: %s %s answered %d, want %d: %s", c.name, c.method, c.path, code, c.want, body)
		}
	}
	_, body := call(t, "GET", base+"/v1/api-keys", admin, "")
	var keys struct {
		Items []struct {
			ID    string   `json:"id"`
			Roles []string `json:"roles"`
		} `json:"items"`
	}
	json.Unmarshal([]byte(body), &keys)
	roles := map[string]string{}
	for _, k := range keys.Items {
		roles[k.ID] = strings.Join(k.Roles, ",")
	}
	for id, want := range map[string]string{"bootstrap": "administrator", "5930531931379eb9": "ingest_service",
		"ad6be6f9eb05e5dd": "auditor", "99d24d5e415e13f2": "metrics"} {
		if roles[id] != want {
			t.Errorf("key %s shows roles %q, want %q", id, roles[id], want)
		}
	}
	if code := stop(); code != exitOK {
		t.Fatalf("serve exit %d\n%s", code, stderr.String())
	}
	out.Reset()
	if code := Main(context.Background(), []string{"verify", "--data", data, "--quiet"}, &out, &out); code != exitOK {
		t.Fatalf("verify after the upgrade: exit %d\n%s", code, out.String())
	}
}

// TestUserAndRoleCommands: the first administrator is made on a stopped
// store, then through a running server's API; a store in use without
// --server is refused with the way out.
func TestUserAndRoleCommands(t *testing.T) {
	data := copyFixture(t)
	ctx := context.Background()
	run := func(input string, args ...string) (int, string, string) {
		t.Helper()
		stdin = strings.NewReader(input)
		t.Cleanup(func() { stdin = os.Stdin })
		var o, e bytes.Buffer
		code := Main(ctx, args, &o, &e)
		return code, o.String(), e.String()
	}
	code, _, errs := run("", "role", "add", "--data", data, "--name", "ward_nurse", "--permission", "patient:read,chart:write",
		"--parent", "auditor", "--description", "Nurses of a ward")
	if code != exitOK {
		t.Fatalf("role add: exit %d: %s", code, errs)
	}
	code, _, errs = run("", "role", "set", "--data", data, "--name", "auditor", "--permission", "patient:read")
	if code != exitError || !strings.Contains(errs, "built-in") {
		t.Errorf("role set of a built-in role: exit %d: %s", code, errs)
	}
	code, out, errs := run("correct horse battery staple\n", "user", "add", "--data", data, "--id", "dr.grey",
		"--name", "Meredith Grey", "--role", "ward_nurse", "--role", "administrator", "--password-stdin")
	if code != exitOK || !strings.Contains(out, `"has_password": true`) || strings.Contains(out, "argon2") {
		t.Fatalf("user add: exit %d\n%s\n%s", code, out, errs)
	}
	code, _, errs = run("", "user", "add", "--data", data, "--id", "x y", "--name", "X")
	if code != exitError || !strings.Contains(errs, "id:") {
		t.Errorf("user add with a bad id: exit %d: %s", code, errs)
	}

	addr, _, stderr, stop := runServe(t, "--data", data)
	defer stop()
	base := "http://" + addr
	code, body := call(t, "POST", base+"/v1/login", "", `{"user_id":"dr.grey","password":"correct horse battery staple"}`)
	if code != 200 {
		t.Fatalf("login of the user made on the stopped store: %d %s\n%s", code, body, stderr.String())
	}
	var s struct{ Token string }
	json.Unmarshal([]byte(body), &s)
	if code, body := call(t, "GET", base+"/v1/roles/ward_nurse", s.Token, ""); code != 200 || !strings.Contains(body, `"events:read"`) {
		t.Errorf("ward_nurse as the new administrator sees it: %d %s", code, body)
	}

	code, _, errs = run("", "user", "add", "--data", data, "--id", "bailey", "--name", "Miranda Bailey")
	if code != exitError || !strings.Contains(errs, "--server") {
		t.Errorf("user add on a store in use: exit %d: %s", code, errs)
	}
	code, out, errs = run("", "user", "add", "--server", base, "--token", s.Token, "--id", "bailey", "--name", "Miranda Bailey",
		"--role", "privacy_officer")
	if code != exitOK || !strings.Contains(out, `"privacy_officer"`) {
		t.Fatalf("user add through the server: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = run("", "user", "disable", "--server", base, "--token", s.Token, "--id", "bailey", "--terminate", "--reason", "left")
	if code != exitOK {
		t.Fatalf("user disable: exit %d: %s", code, errs)
	}
	code, _, errs = run("", "user", "enable", "--server", base, "--token", s.Token, "--id", "bailey")
	if code != exitError || !strings.Contains(errs, "terminated") {
		t.Errorf("re-enabling a terminated user: exit %d: %s", code, errs)
	}
	code, out, _ = run("", "role", "list", "--server", base, "--token", s.Token)
	if code != exitOK || !strings.Contains(out, `"ward_nurse"`) || !strings.Contains(out, `"security_officer"`) {
		t.Errorf("role list: exit %d\n%s", code, out)
	}
	stop()
	var vout bytes.Buffer
	if code := Main(ctx, []string{"verify", "--data", data, "--quiet"}, &vout, &vout); code != exitOK {
		t.Fatalf("verify after user and role changes: exit %d\n%s", code, vout.String())
	}
}
