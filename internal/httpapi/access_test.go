package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/custos-audit/custos/internal/clocktest"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/authn/password"
	"github.com/custos-audit/custos/internal/httpapi"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/google/go-cmp/cmp"
	"github.com/pquerna/otp/totp"
	"github.com/prometheus/client_golang/prometheus"
)

// pw is the password of every test user.
const pw = "correct horse battery staple"

// accessEnv is an API on a real ledger with a directory on an injected
// clock, a cheap password hasher and a TOTP secret.
type accessEnv struct {
	*env
	clock *clocktest.Clock
	api   *httpapi.API
	dir   *authn.Directory
}

func newAccessEnv(t *testing.T, cfg authn.Config) *accessEnv {
	t.Helper()
	ctx := context.Background()
	l := ledgertest.Open(t, t.TempDir(), "custos.test/access", ledger.Config{CheckpointInterval: 10 * time.Millisecond})
	c := clocktest.New(time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC))
	h, err := password.NewHasher(password.Config{Params: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Now, cfg.Hasher, cfg.Secret = c.Now, h, []byte("0123456789abcdef0123456789abcdef")
	dir, err := authn.NewDirectory(ctx, l.Seq, ledger.NewStateFeed(l.Store, l.Signer.VerifierKey()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.Seq.SetEnrich(dir.FlagEmergency)
	if _, err := dir.Bootstrap(ctx, adminToken); err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(l.Seq, l.Store, dir, httpapi.Config{MaxBodyBytes: 64 << 10, MaxBatch: 50,
		CursorKey: []byte("k"), Registry: prometheus.NewRegistry()})
	e := &accessEnv{env: &env{t: t, st: l.Store, seq: l.Seq, signer: l.Signer, keys: dir}, clock: c, api: api, dir: dir}
	e.srv = httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		e.srv.Close()
		api.Close()
		l.Close()
	})
	return e
}

// call sends a JSON body (none when body is "") with a bearer token.
func (e *accessEnv) call(method, path, token, body string) response {
	e.t.Helper()
	ctype := ""
	if body != "" {
		ctype = "application/json"
	}
	return e.do(method, path, token, ctype, body)
}

// want sends a request, requires the status and decodes the answer into out
// (when not nil).
func (e *accessEnv) want(code int, method, path, token, body string, out any) response {
	e.t.Helper()
	r := e.call(method, path, token, body)
	if r.code != code {
		e.t.Fatalf("%s %s: %d %s, want %d", method, path, r.code, r.body, code)
	}
	if out != nil {
		r.json(e.t, out)
	}
	return r
}

// user creates a user with roles and the test password, as Custos itself.
func (e *accessEnv) user(id string, roles ...string) {
	e.t.Helper()
	name, p := "User "+id, pw
	if _, _, err := e.dir.SaveUser(context.Background(), nil,
		authn.UserChange{ID: id, Name: &name, Roles: &roles, Password: &p}, true); err != nil {
		e.t.Fatal(err)
	}
}

// role creates a custom role as Custos itself.
func (e *accessEnv) role(name, parent string, perms ...custos.Permission) {
	e.t.Helper()
	if _, _, err := e.dir.PutRole(context.Background(), nil,
		custos.Role{Name: name, Permissions: perms, ParentRole: parent}, true); err != nil {
		e.t.Fatal(err)
	}
}

// key makes a service account key with roles, as Custos itself.
func (e *accessEnv) key(roles ...string) string {
	e.t.Helper()
	_, tok, err := e.dir.Create(context.Background(), nil, authn.KeySpec{Name: "test key", Roles: roles}, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// login logs a user in with the test password and returns the session
// token.
func (e *accessEnv) login(id string) string {
	e.t.Helper()
	var s authn.Session
	e.want(200, "POST", "/v1/login", "", fmt.Sprintf(`{"user_id":%q,"password":%q}`, id, pw), &s)
	return s.Token
}

// events searches the trail with the administrator key, newest first.
func (e *accessEnv) events(query string) []custos.Event {
	e.t.Helper()
	var page struct{ Items []custos.Event }
	now := time.Now().UTC()
	window := "&from=" + now.Add(-time.Hour).Format(time.RFC3339) + "&to=" + now.Add(time.Hour).Format(time.RFC3339)
	e.want(200, "GET", "/v1/events?limit=1000&"+query+window, adminToken, "", &page)
	return page.Items
}

// problem is a problem+json answer.
type problem struct {
	Status int
	Title  string
	Detail string
	Errors []custos.FieldError
}

// refused checks that r is a problem+json answer with code, whose first
// field error names field (when not "") and whose detail holds detail.
func refused(t *testing.T, r response, code int, field, detail string) {
	t.Helper()
	if r.code != code || r.hdr.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d %q, want %d problem+json: %s", r.code, r.hdr.Get("Content-Type"), code, r.body)
	}
	var p problem
	r.json(t, &p)
	if field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != field) {
		t.Errorf("errors %+v, want field %q first", p.Errors, field)
	}
	if !strings.Contains(p.Detail, detail) {
		t.Errorf("detail %q, want it to hold %q", p.Detail, detail)
	}
}

func (e *accessEnv) roleList() []custos.Role {
	e.t.Helper()
	var page struct{ Items []custos.Role }
	e.want(200, "GET", "/v1/roles?limit=1000", adminToken, "", &page)
	return page.Items
}

func TestRolesLifecycle(t *testing.T) {
	e := newAccessEnv(t, authn.Config{})
	var nurse, ward custos.Role
	e.want(201, "POST", "/v1/roles", adminToken, `{"name":"nurse","description":"Ward staff","permissions":["patient:read"]}`, &nurse)
	e.want(201, "POST", "/v1/roles", adminToken, `{"name":"ward_nurse","permissions":["patient:write"],"parent_role":"nurse"}`, &ward)
	want := custos.Role{Name: "ward_nurse", Permissions: []custos.Permission{"patient:write"}, ParentRole: "nurse",
		EffectivePermissions: []custos.Permission{"patient:read", "patient:write"}}
	if diff := cmp.Diff(want, ward); diff != "" {
		t.Errorf("created role (-want +got):\n%s", diff)
	}
	var got custos.Role
	e.want(200, "GET", "/v1/roles/ward_nurse", adminToken, "", &got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET role (-want +got):\n%s", diff)
	}

	// Keyset paging: every role once, in name order, two at a time.
	var names []string
	path := "/v1/roles?limit=2"
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatal("paging does not end")
		}
		var page struct {
			Items      []custos.Role
			NextCursor string `json:"next_cursor"`
		}
		e.want(200, "GET", path, adminToken, "", &page)
		if len(page.Items) > 2 {
			t.Fatalf("page of %d roles, limit 2", len(page.Items))
		}
		for _, r := range page.Items {
			names = append(names, r.Name)
		}
		if page.NextCursor == "" {
			break
		}
		path = "/v1/roles?limit=2&cursor=" + url.QueryEscape(page.NextCursor)
	}
	wantNames := []string{"administrator", "auditor", "ingest_service", "metrics", "nurse", "privacy_officer", "security_officer", "ward_nurse"}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("paged roles (-want +got):\n%s", diff)
	}

	e.want(200, "PUT", "/v1/roles/nurse", adminToken, `{"description":"Nursing staff","permissions":["patient:read","vitals:read"]}`, &got)
	e.want(200, "GET", "/v1/roles/ward_nurse", adminToken, "", &got)
	if diff := cmp.Diff([]custos.Permission{"patient:read", "patient:write", "vitals:read"}, got.EffectivePermissions); diff != "" {
		t.Errorf("a child's permissions after its parent changed (-want +got):\n%s", diff)
	}
	e.want(204, "DELETE", "/v1/roles/ward_nurse", adminToken, "", nil)
	refused(t, e.call("GET", "/v1/roles/ward_nurse", adminToken, ""), 404, "", "")
}

// TestRoleRefusals: each bad change is refused with problem+json and changes
// nothing, neither the roles nor the ledger.
func TestRoleRefusals(t *testing.T) {
	e := newAccessEnv(t, authn.Config{})
	e.role("a", "", "patient:read")
	e.role("b", "a")
	e.role("c", "b")
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		field, detail            string
	}{
		{"direct cycle", "PUT", "/v1/roles/a", `{"parent_role":"a","permissions":["patient:read"]}`, 409, "", "a → a"},
		{"cycle through three roles", "PUT", "/v1/roles/a", `{"parent_role":"c","permissions":["patient:read"]}`, 409, "", "a → c → b → a"},
		{"missing parent", "POST", "/v1/roles", `{"name":"d","parent_role":"nope"}`, 400, "parent_role", ""},
		{"duplicate name", "POST", "/v1/roles", `{"name":"b"}`, 409, "", `"b" already exists`},
		{"built-in name", "POST", "/v1/roles", `{"name":"auditor"}`, 409, "", "built in"},
		{"unknown codename", "POST", "/v1/roles", `{"name":"d","permissions":["events:frobnicate"]}`, 400, "permissions[0]", ""},
		{"malformed codename", "POST", "/v1/roles", `{"name":"d","permissions":["patient:read","Patient Read"]}`, 400, "permissions[1]", ""},
		{"repeated codename", "POST", "/v1/roles", `{"name":"d","permissions":["patient:read","patient:read"]}`, 400, "permissions[1]", ""},
		{"unknown field", "POST", "/v1/roles", `{"name":"d","colour":"red"}`, 400, "colour", ""},
		{"rename", "PUT", "/v1/roles/a", `{"name":"z"}`, 400, "name", ""},
		{"update missing", "PUT", "/v1/roles/nope", `{}`, 404, "", ""},
		{"delete a parent", "DELETE", "/v1/roles/a", "", 409, "", `"b"`},
		{"re-parent under a missing role", "DELETE", "/v1/roles/a?reparent_to=nope", "", 400, "reparent", ""},
		{"re-parent under itself", "DELETE", "/v1/roles/a?reparent_to=a", "", 400, "reparent", ""},
		{"re-parent into a cycle", "DELETE", "/v1/roles/b?reparent_to=c", "", 409, "", "cycle"},
		{"unknown delete parameter", "DELETE", "/v1/roles/c?force=1", "", 400, "force", ""},
		{"change a built-in role", "PUT", "/v1/roles/administrator", `{"permissions":["events:read"]}`, 409, "", "built-in"},
		{"delete a built-in role", "DELETE", "/v1/roles/auditor", "", 409, "", "built-in"},
		{"no credential", "POST", "/v1/roles", `{"name":"d"}`, 401, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			roles, size := e.roleList(), e.size()
			token := adminToken
			if tc.code == 401 {
				token = ""
			}
			refused(t, e.call(tc.method, tc.path, token, tc.body), tc.code, tc.field, tc.detail)
			if diff := cmp.Diff(roles, e.roleList()); diff != "" {
				t.Errorf("the roles changed (-before +after):\n%s", diff)
			}
			if after := e.size(); after != size {
				t.Errorf("the ledger grew from %d to %d", size, after)
			}
		})
	}

	// Re-parenting moves the children, then deletes.
	e.want(204, "DELETE", "/v1/roles/b?reparent_to=", adminToken, "", nil)
	var c custos.Role
	e.want(200, "GET", "/v1/roles/c", adminToken, "", &c)
	if c.ParentRole != "" || len(c.EffectivePermissions) != 0 {
		t.Errorf("c after its parent b was deleted with reparent_to=: %+v", c)
	}
	e.role("b2", "a")
	e.role("c2", "b2")
	e.want(204, "DELETE", "/v1/roles/b2?reparent_to=a", adminToken, "", nil)
	e.want(200, "GET", "/v1/roles/c2", adminToken, "", &c)
	if c.ParentRole != "a" || !slices.Contains(c.EffectivePermissions, "patient:read") {
		t.Errorf("c2 after b2 was deleted with reparent_to=a: %+v", c)
	}
}

// TestRoleChangeTakesEffectAtOnce: the very next request of a key holding
// the role sees the change.
func TestRoleChangeTakesEffectAtOnce(t *testing.T) {
	e := newAccessEnv(t, authn.Config{})
	e.want(201, "POST", "/v1/roles", adminToken, `{"name":"reader","permissions":["events:read"]}`, nil)
	var k struct{ Token string }
	e.want(201, "POST", "/v1/api-keys", adminToken, `{"name":"reader key","roles":["reader"]}`, &k)
	e.want(200, "GET", "/v1/events?limit=1", k.Token, "", nil)
	refused(t, e.call("GET", "/v1/roles", k.Token, ""), 403, "", "roles:manage")

	e.want(200, "PUT", "/v1/roles/reader", adminToken, `{"permissions":["roles:manage"]}`, nil)
	refused(t, e.call("GET", "/v1/events?limit=1", k.Token, ""), 403, "", "events:read")
	e.want(200, "GET", "/v1/roles", k.Token, "", nil)

	e.want(200, "PUT", "/v1/roles/reader", adminToken, `{"permissions":[],"parent_role":"auditor"}`, nil)
	e.want(200, "GET", "/v1/events?limit=1", k.Token, "", nil)
	refused(t, e.call("GET", "/v1/roles", k.Token, ""), 403, "", "")
}

// TestRoleChangeIsEvidence: a role update is a server event of the trail with
// what the role was before and after.
func TestRoleChangeIsEvidence(t *testing.T) {
	e := newAccessEnv(t, authn.Config{})
	e.want(201, "POST", "/v1/roles", adminToken, `{"name":"nurse","permissions":["patient:read"]}`, nil)
	e.want(200, "PUT", "/v1/roles/nurse", adminToken, `{"description":"Nurses","permissions":["patient:read","vitals:read"]}`, nil)
	evs := e.events("resource_type=Role&resource_id=nurse&action=UPDATE")
	if len(evs) != 1 {
		t.Fatalf("%d UPDATE events of role nurse, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Kind != custos.KindServer || ev.User.ID != "apikey:bootstrap" || ev.Outcome != custos.OutcomeSuccess {
		t.Errorf("the change's event: kind %s, user %q, outcome %s", ev.Kind, ev.User.ID, ev.Outcome)
	}
	var changes struct{ Before, After map[string]any }
	if err := json.Unmarshal(ev.Changes, &changes); err != nil {
		t.Fatalf("changes %s: %v", ev.Changes, err)
	}
	want := struct{ Before, After map[string]any }{
		Before: map[string]any{"name": "nurse", "description": "", "permissions": []any{"patient:read"}, "parent_role": ""},
		After:  map[string]any{"name": "nurse", "description": "Nurses", "permissions": []any{"patient:read", "vitals:read"}, "parent_role": ""},
	}
	if diff := cmp.Diff(want, changes); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	if n := len(e.events("resource_type=Role&resource_id=nurse&action=CREATE")); n != 1 {
		t.Errorf("%d CREATE events of role nurse, want 1", n)
	}
}

func TestUsers(t *testing.T) {
	e := newAccessEnv(t, authn.Config{})
	var u authn.User
	e.want(201, "POST", "/v1/users", adminToken, `{"id":"dr.grey","name":"Meredith Grey","roles":["auditor"],"password":"`+pw+`"}`, &u)
	want := authn.User{ID: "dr.grey", Name: "Meredith Grey", Roles: []string{"auditor"}, Status: "active",
		CreatedAt: "2026-11-02T08:00:00Z", CreatedBy: "apikey:bootstrap", HasPassword: true,
		EffectivePermissions: []custos.Permission{"events:read", "proofs:read", "reports:generate"}}
	if diff := cmp.Diff(want, u); diff != "" {
		t.Errorf("created user (-want +got):\n%s", diff)
	}
	e.want(200, "GET", "/v1/users/dr.grey", adminToken, "", &u)
	if diff := cmp.Diff(want, u); diff != "" {
		t.Errorf("GET user (-want +got):\n%s", diff)
	}
	e.user("gone")
	e.want(200, "PUT", "/v1/users/gone", adminToken, `{"status":"terminated","status_reason":"left"}`, &u)
	if u.Status != "terminated" || u.TerminatedAt == "" {
		t.Errorf("terminated user: %+v", u)
	}

	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		field                    string
	}{
		{"invalid id", "POST", "/v1/users", `{"id":"dr grey","name":"x"}`, 400, "id"},
		{"no name", "POST", "/v1/users", `{"id":"x"}`, 400, "name"},
		{"unknown role", "POST", "/v1/users", `{"id":"x","name":"x","roles":["auditor","surgeon"]}`, 400, "roles[1]"},
		{"short password", "POST", "/v1/users", `{"id":"x","name":"x","password":"short"}`, 400, "password"},
		{"password not UTF-8", "POST", "/v1/users", `{"id":"x","name":"x","password":"` + strings.Repeat("\\udc00", 12) + `"}`, 400, "password"},
		{"short password on update", "PUT", "/v1/users/dr.grey", `{"password":"short"}`, 400, "password"},
		{"duplicate id", "POST", "/v1/users", `{"id":"dr.grey","name":"x"}`, 409, ""},
		{"unknown status", "PUT", "/v1/users/dr.grey", `{"status":"retired"}`, 400, "status"},
		{"reactivate the terminated", "PUT", "/v1/users/gone", `{"status":"active"}`, 400, "status"},
		{"suspend the terminated", "PUT", "/v1/users/gone", `{"status":"suspended"}`, 400, "status"},
		{"id differs from the path", "PUT", "/v1/users/dr.grey", `{"id":"gone"}`, 400, "id"},
		{"unknown user", "PUT", "/v1/users/nobody", `{"name":"x"}`, 404, ""},
		{"unknown field", "POST", "/v1/users", `{"id":"x","name":"x","admin":true}`, 400, "admin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := e.size()
			refused(t, e.call(tc.method, tc.path, adminToken, tc.body), tc.code, tc.field, "")
			if after := e.size(); after != size {
				t.Errorf("the ledger grew from %d to %d", size, after)
			}
		})
	}
	e.want(200, "GET", "/v1/users/gone", adminToken, "", &u)
	if u.Status != "terminated" {
		t.Errorf("the terminated user is now %s", u.Status)
	}
}

// TestSuspendedUserRefusedAtOnce: suspending a user ends what their session
// and their keys may do, at the very next request.
func TestSuspendedUserRefusedAtOnce(t *testing.T) {
	e := newAccessEnv(t, authn.Config{})
	e.user("ann", "auditor")
	session := e.login("ann")
	var k struct{ Token string }
	e.want(201, "POST", "/v1/api-keys", adminToken, `{"name":"ann's key","user_id":"ann"}`, &k)
	for _, tok := range []string{session, k.Token} {
		e.want(200, "GET", "/v1/events?limit=1", tok, "", nil)
	}
	e.want(200, "PUT", "/v1/users/ann", adminToken, `{"status":"suspended","status_reason":"investigation"}`, nil)
	for _, tok := range []string{session, k.Token} {
		refused(t, e.call("GET", "/v1/events?limit=1", tok, ""), 401, "", "")
		refused(t, e.call("GET", "/v1/me", tok, ""), 401, "", "")
	}
	refused(t, e.call("POST", "/v1/login", "", `{"user_id":"ann","password":"`+pw+`"}`), 401, "", "")
	e.want(200, "PUT", "/v1/users/ann", adminToken, `{"status":"active"}`, nil)
	e.want(200, "GET", "/v1/events?limit=1", k.Token, "", nil)
}

// raw sends a request as built and returns the answer and its cookies.
func (e *accessEnv) raw(req *http.Request) (response, []*http.Cookie) {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}, resp.Cookies()
}

func TestLoginAndLogout(t *testing.T) {
	e := newAccessEnv(t, authn.Config{})
	e.user("ann", "auditor")

	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/login", strings.NewReader(`{"user_id":"ann","password":"`+pw+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "login-test/1")
	r, cookies := e.raw(req)
	if r.code != 200 {
		t.Fatalf("login: %d %s", r.code, r.body)
	}
	var s authn.Session
	r.json(t, &s)
	if !strings.HasPrefix(s.Token, authn.SessionPrefix) || s.UserID != "ann" || s.IdleFor != "15m0s" {
		t.Errorf("session %+v", s)
	}
	if len(cookies) != 1 {
		t.Fatalf("cookies %v, want one", cookies)
	}
	c := cookies[0]
	if c.Value != s.Token || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Errorf("cookie %q: want the token, HttpOnly, Secure, SameSite=Strict, Path=/", r.hdr.Get("Set-Cookie"))
	}

	// The cookie alone authenticates.
	req, _ = http.NewRequest("GET", e.srv.URL+"/v1/me", nil)
	req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	r, _ = e.raw(req)
	var me struct {
		ID, Kind string
		UserID   string `json:"user_id"`
	}
	if r.code != 200 {
		t.Fatalf("GET /v1/me with the cookie: %d %s", r.code, r.body)
	}
	r.json(t, &me)
	if me.UserID != "ann" || me.Kind != "session" {
		t.Errorf("/v1/me: %+v", me)
	}

	// A wrong password and an unknown user answer alike.
	wrong := e.call("POST", "/v1/login", "", `{"user_id":"ann","password":"not the password at all"}`)
	unknown := e.call("POST", "/v1/login", "", `{"user_id":"nobody","password":"not the password at all"}`)
	refused(t, wrong, 401, "", "")
	if wrong.code != unknown.code || string(wrong.body) != string(unknown.body) {
		t.Errorf("wrong password: %d %s\nunknown user:   %d %s", wrong.code, wrong.body, unknown.code, unknown.body)
	}
	for _, h := range []string{"Content-Type", "WWW-Authenticate", "Cache-Control", "Content-Length", "Set-Cookie"} {
		if wrong.hdr.Get(h) != unknown.hdr.Get(h) {
			t.Errorf("header %s: %q for a wrong password, %q for an unknown user", h, wrong.hdr.Get(h), unknown.hdr.Get(h))
		}
	}
	invalid := e.call("POST", "/v1/login", "", `{"user_id":"not a valid id!","password":"x"}`)
	if string(invalid.body) != string(unknown.body) {
		t.Errorf("an invalid user id answers %d %s, an unknown one %d %s", invalid.code, invalid.body, unknown.code, unknown.body)
	}

	// Logout ends the session: its token, or its cookie, no longer works.
	e.want(204, "POST", "/v1/logout", s.Token, "", nil)
	refused(t, e.call("GET", "/v1/me", s.Token, ""), 401, "", "")
	r, _ = e.raw(req)
	if r.code != 401 {
		t.Errorf("the cookie of an ended session: %d", r.code)
	}
	refused(t, e.call("POST", "/v1/logout", adminToken, ""), 404, "", "")

	// Each attempt is a LOGIN or LOGOUT event of the trail.
	type rec struct {
		Action  custos.Action
		User    string
		Outcome custos.Outcome
		IP      string
	}
	var got []rec
	for _, ev := range e.events("resource_type=Session") {
		if ev.Action == custos.ActionLogin || ev.Action == custos.ActionLogout {
			got = append(got, rec{ev.Action, ev.User.ID, ev.Outcome, ev.IPAddress})
		}
	}
	want := []rec{
		{custos.ActionLogout, "ann", custos.OutcomeSuccess, "127.0.0.1"},
		{custos.ActionLogin, "(invalid user id)", custos.OutcomeFailure, "127.0.0.1"},
		{custos.ActionLogin, "nobody", custos.OutcomeFailure, "127.0.0.1"},
		{custos.ActionLogin, "ann", custos.OutcomeFailure, "127.0.0.1"},
		{custos.ActionLogin, "ann", custos.OutcomeSuccess, "127.0.0.1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LOGIN and LOGOUT events, newest first (-want +got):\n%s", diff)
	}
	failed := e.events("action=LOGIN&outcome=failure")
	if len(failed) != 3 {
		t.Errorf("%d failed LOGIN events found by action=LOGIN&outcome=failure, want 3", len(failed))
	}
	ok := e.events("action=LOGIN&outcome=success&user=ann")
	if len(ok) != 1 || ok[0].UserAgent != "login-test/1" {
		t.Errorf("successful LOGIN of ann: %+v", ok)
	}
}

func TestSessionEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(e *accessEnv, token string)
	}{
		{"idle", func(e *accessEnv, _ string) { e.clock.Add(15*time.Minute + time.Second) }},
		{"absolute", func(e *accessEnv, token string) {
			e.clock.Add(10 * time.Minute) // 24 minutes old, used: not idle
			e.want(200, "GET", "/v1/me", token, "", nil)
			e.clock.Add(6*time.Minute + time.Second) // idle 6 minutes, but older than 30
		}},
		{"revoked", func(e *accessEnv, _ string) {
			var n struct{ Revoked int }
			e.want(200, "DELETE", "/v1/users/ann/sessions", adminToken, "", &n)
			if n.Revoked != 2 {
				e.t.Errorf("revoked %d sessions, want 2", n.Revoked)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAccessEnv(t, authn.Config{SessionAbsolute: 30 * time.Minute})
			e.user("ann", "auditor")
			token, other := e.login("ann"), e.login("ann")
			e.clock.Add(14 * time.Minute) // not yet idle
			e.want(200, "GET", "/v1/me", token, "", nil)
			tc.end(e, token)
			refused(t, e.call("GET", "/v1/me", token, ""), 401, "", "")
			if tc.name == "revoked" {
				refused(t, e.call("GET", "/v1/me", other, ""), 401, "", "")
			}
		})
	}
	t.Run("forged", func(t *testing.T) {
		e := newAccessEnv(t, authn.Config{})
		e.user("ann", "auditor")
		e.login("ann")
		forged := authn.SessionPrefix + strings.TrimPrefix(authn.NewToken(), "cus_")
		refused(t, e.call("GET", "/v1/me", forged, ""), 401, "", "")
	})
}

func TestTOTP(t *testing.T) {
	e := newAccessEnv(t, authn.Config{})
	e.user("ann", "auditor")
	session := e.login("ann")
	var enr authn.Enrollment
	e.want(200, "POST", "/v1/me/totp", session, "", &enr)
	if enr.Secret == "" || !strings.HasPrefix(enr.URL, "otpauth://totp/") {
		t.Fatalf("enrolment %+v", enr)
	}
	// Pending: logins need no code yet.
	e.login("ann")
	refused(t, e.call("POST", "/v1/me/totp/confirm", session, `{"code":"000000"}`), 401, "", "")
	code := func() string {
		c, err := totp.GenerateCode(enr.Secret, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := code()
	e.want(204, "POST", "/v1/me/totp/confirm", session, `{"code":"`+first+`"}`, nil)
	var u authn.User
	e.want(200, "GET", "/v1/users/ann", adminToken, "", &u)
	if !u.TOTP {
		t.Error("the user shows no second factor after confirmation")
	}

	login := func(code string) response {
		return e.call("POST", "/v1/login", "", fmt.Sprintf(`{"user_id":"ann","password":%q,"code":%q}`, pw, code))
	}
	refused(t, login(""), 401, "", "code")
	refused(t, login("12345"), 401, "", "")
	wrongCode := "000000"
	if wrongCode == first {
		wrongCode = "111111"
	}
	e.clock.Add(30 * time.Second)
	refused(t, login(wrongCode), 401, "", "")
	refused(t, login(first), 401, "", "") // spent confirming, even though still within the skew
	next := code()
	if r := login(next); r.code != 200 {
		t.Fatalf("login with a fresh code: %d %s", r.code, r.body)
	}
	refused(t, login(next), 401, "", "") // replayed
	e.clock.Add(30 * time.Second)
	if r := login(code()); r.code != 200 {
		t.Fatalf("login with the next step's code: %d %s", r.code, r.body)
	}
	// Enrolment needs a user's session.
	refused(t, e.call("POST", "/v1/me/totp", adminToken, ""), 403, "", "")
}

// TestAuthorize: decisions for applications, with their reasons and their
// records in the trail.
func TestAuthorize(t *testing.T) {
	e := newAccessEnv(t, authn.Config{})
	e.role("nurse", "", "patient:read")
	e.role("ward_nurse", "nurse", "patient:write")
	e.role("ehr_app", "", custos.PermAuthorize)
	e.user("alice", "ward_nurse")
	e.user("bob", "auditor")
	e.user("sam", "nurse")
	e.want(200, "PUT", "/v1/users/sam", adminToken, `{"status":"suspended"}`, nil)
	app := e.key("ehr_app")

	// Bad questions are refused before any allowed decision is queued: the
	// ledger must not grow behind the check.
	for _, tc := range []struct{ name, body, field string }{
		{"bad permission", `{"user_id":"alice","permission":"patient read"}`, "permission"},
		{"missing user", `{"permission":"patient:read"}`, "user_id"},
		{"unknown field", `{"user_id":"alice","permission":"patient:read","colour":"red"}`, "colour"},
		{"bad question in a batch", `{"questions":[{"user_id":"alice","permission":"patient:read"},{"user_id":"alice","permission":"x"}]}`, "questions[1].permission"},
		{"empty batch", `{"questions":[]}`, "questions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := e.size()
			refused(t, e.call("POST", "/v1/authorize", app, tc.body), 400, tc.field, "")
			if after := e.size(); after != size {
				t.Errorf("the ledger grew from %d to %d", size, after)
			}
		})
	}

	for _, tc := range []struct {
		name, body string
		want       authn.Answer
	}{
		{"inherited", `{"user_id":"alice","permission":"patient:read","patient_id":"p-1","purpose_of_use":"TREAT"}`,
			authn.Answer{Allowed: true, Reason: "allowed by role ward_nurse (inherited from nurse)"}},
		{"own", `{"user_id":"alice","permission":"patient:write"}`, authn.Answer{Allowed: true, Reason: "allowed by role ward_nurse"}},
		{"denied", `{"user_id":"bob","permission":"patient:read","patient_id":"p-1"}`,
			authn.Answer{Reason: "no role of the user grants patient:read"}},
		{"unknown user", `{"user_id":"ghost","permission":"patient:read"}`, authn.Answer{Reason: `no user "ghost"`}},
		{"suspended", `{"user_id":"sam","permission":"patient:read"}`, authn.Answer{Reason: `user "sam" is suspended`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got authn.Answer
			e.want(200, "POST", "/v1/authorize", app, tc.body, &got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if got.Allowed {
				return
			}
			// A denial is in the trail before the answer.
			var q authn.Question
			json.Unmarshal([]byte(tc.body), &q)
			evs := e.events("resource_type=Authorization&outcome=failure&user=" + q.UserID)
			if len(evs) == 0 {
				t.Fatal("the denial is not in the trail when its answer comes")
			}
			if evs[0].ResourceID != string(q.Permission) || evs[0].StatusCode != 403 || evs[0].PatientID != q.PatientID {
				t.Errorf("denial record %+v", evs[0])
			}
		})
	}

	var batch struct{ Answers []authn.Answer }
	e.want(200, "POST", "/v1/authorize", app, `{"questions":[
		{"user_id":"bob","permission":"events:read"},
		{"user_id":"alice","permission":"vitals:read"},
		{"user_id":"alice","permission":"patient:read"}]}`, &batch)
	want := []authn.Answer{{Allowed: true, Reason: "allowed by role auditor"},
		{Reason: "no role of the user grants vitals:read"},
		{Allowed: true, Reason: "allowed by role ward_nurse (inherited from nurse)"}}
	if diff := cmp.Diff(want, batch.Answers); diff != "" {
		t.Errorf("batch answers (-want +got):\n%s", diff)
	}

	refused(t, e.call("POST", "/v1/authorize", e.key("auditor"), `{"user_id":"alice","permission":"patient:read"}`), 403, "", "")

	// Allowed decisions are recorded behind the answer: flushed by Close.
	e.api.Close()
	allowed := e.events("resource_type=Authorization&outcome=success&user=alice")
	if len(allowed) != 3 {
		t.Fatalf("%d allowed decisions of alice in the trail, want 3", len(allowed))
	}
	var changes map[string]any
	json.Unmarshal(allowed[len(allowed)-1].Changes, &changes)
	if changes["reason"] != "allowed by role ward_nurse (inherited from nurse)" || changes["asked_by"] == "" {
		t.Errorf("allowed decision's record: %s", allowed[len(allowed)-1].Changes)
	}
}

// TestBreakGlass: an emergency grant allows what the user's roles do not,
// flags every access under it, opens a review and ends by itself.
func TestBreakGlass(t *testing.T) {
	e := newAccessEnv(t, authn.Config{MaxGrant: time.Hour})
	e.role("clinician", "", custos.PermGrantsOpen, custos.PermGrantsReview)
	e.role("ehr_app", "", custos.PermAuthorize)
	e.user("carol", "clinician")
	e.user("priya", custos.RolePrivacyOfficer)
	carol, priya, app := e.login("carol"), e.login("priya"), e.key("ehr_app")
	ask := func(patient string) authn.Answer {
		t.Helper()
		var a authn.Answer
		e.want(200, "POST", "/v1/authorize", app, `{"user_id":"carol","permission":"patient:read","patient_id":"`+patient+`"}`, &a)
		return a
	}
	if a := ask("p-1"); a.Allowed {
		t.Fatalf("allowed before any grant: %+v", a)
	}
	for _, tc := range []struct{ name, body, field string }{
		{"no reason", `{"patient_id":"p-1"}`, "reason"},
		{"blank reason", `{"reason":"   "}`, "reason"},
		{"longer than the maximum", `{"reason":"arrest","duration":"2h"}`, "duration"},
		{"not a duration", `{"reason":"arrest","duration":"soon"}`, "duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := e.size()
			refused(t, e.call("POST", "/v1/grants", carol, tc.body), 400, tc.field, "")
			if after := e.size(); after != size {
				t.Errorf("the ledger grew from %d to %d", size, after)
			}
		})
	}
	const reason = "cardiac arrest, bed 4"
	var g authn.Grant
	e.want(201, "POST", "/v1/grants", carol, `{"reason":"`+reason+`","patient_id":"p-1","duration":"30m"}`, &g)
	if !g.Active || g.UserID != "carol" || g.Review != "open" || g.ExpiresAt != "2026-11-02T08:30:00Z" {
		t.Errorf("grant %+v", g)
	}

	a := ask("p-1")
	if !a.Allowed || !a.BreakGlass || a.GrantID != g.ID || !strings.Contains(a.Reason, reason) {
		t.Errorf("under the grant: %+v", a)
	}
	evs := e.events("resource_type=Authorization&outcome=success&user=carol")
	if len(evs) != 1 || !evs[0].BreakGlass || !strings.Contains(evs[0].BreakGlassReason, reason) {
		t.Errorf("the emergency access's record (before the answer): %+v", evs)
	}
	var own authn.Answer
	e.want(200, "POST", "/v1/authorize", adminToken, `{"user_id":"carol","permission":"roles:manage","patient_id":"p-1"}`, &own)
	if own.Allowed || own.BreakGlass {
		t.Errorf("an emergency grant hands out Custos's own permissions: %+v", own)
	}
	if a := ask("p-2"); a.Allowed {
		t.Errorf("a grant for p-1 allows p-2: %+v", a)
	}

	// An access the application reports during the grant is flagged.
	var posted struct{ Receipts []custos.Receipt }
	body := `{"user":{"id":"carol","name":"Carol"},"action":"READ","resource_type":"Patient","resource_id":"p-1","patient_id":"p-1","source":"ehr"}`
	e.want(201, "POST", "/v1/events", adminToken, body, &posted)
	stored, err := e.st.Event(context.Background(), posted.Receipts[0].Index)
	if err != nil {
		t.Fatal(err)
	}
	if !stored.BreakGlass || !strings.Contains(stored.BreakGlassReason, reason) {
		t.Errorf("an access under the grant is stored with break_glass %v, reason %q", stored.BreakGlass, stored.BreakGlassReason)
	}

	var open struct{ Items []authn.Grant }
	e.want(200, "GET", "/v1/grants?review=open", priya, "", &open)
	if len(open.Items) != 1 || open.Items[0].ID != g.ID {
		t.Fatalf("grants awaiting review: %+v", open.Items)
	}
	refused(t, e.call("POST", "/v1/grants/"+g.ID+"/review", carol, `{"note":"fine"}`), 403, "", "")
	refused(t, e.call("POST", "/v1/grants/"+g.ID+"/review", priya, `{"note":""}`), 400, "note", "")
	var reviewed authn.Grant
	e.want(200, "POST", "/v1/grants/"+g.ID+"/review", priya, `{"note":"justified: the patient arrested"}`, &reviewed)
	if reviewed.Review != "closed" || reviewed.ReviewedBy != "user:priya" {
		t.Errorf("reviewed grant %+v", reviewed)
	}
	refused(t, e.call("POST", "/v1/grants/"+g.ID+"/review", priya, `{"note":"again"}`), 409, "", "")
	e.want(200, "GET", "/v1/grants?review=open", priya, "", &open)
	if len(open.Items) != 0 {
		t.Errorf("grants awaiting review after the review: %+v", open.Items)
	}

	// The grant ends by itself.
	e.clock.Add(30*time.Minute + time.Second)
	if a := ask("p-1"); a.Allowed || a.BreakGlass {
		t.Errorf("after the grant ended: %+v", a)
	}
	var all struct{ Items []authn.Grant }
	e.want(200, "GET", "/v1/grants", adminToken, "", &all)
	if len(all.Items) != 1 || all.Items[0].Active {
		t.Errorf("grants after the end: %+v", all.Items)
	}
}

// TestSelfGrantNeedsASecondAdministrator: a change that gives its author
// more is held for another administrator's approval, and nothing changes
// until then.
func TestSelfGrantNeedsASecondAdministrator(t *testing.T) {
	e := newAccessEnv(t, authn.Config{})
	e.role("user_admin", "", custos.PermUsersManage)
	e.role("role_admin", "", custos.PermRolesManage)
	e.role("key_admin", "", custos.PermKeysManage)
	for id, role := range map[string]string{"mallory": "user_admin", "mike": "user_admin", "rita": "role_admin",
		"kim": "key_admin", "root": custos.RoleAdministrator, "root2": custos.RoleAdministrator} {
		e.user(id, role)
	}
	mallory, mike, rita, kim, root, root2 := e.login("mallory"), e.login("mike"), e.login("rita"), e.login("kim"), e.login("root"), e.login("root2")

	roles := func(id string) []string {
		var u authn.User
		e.want(200, "GET", "/v1/users/"+id, adminToken, "", &u)
		return u.Roles
	}

	// A user manager adds administrator to their own roles: held.
	var ap authn.Approval
	e.want(202, "PUT", "/v1/users/mallory", mallory, `{"roles":["user_admin","administrator"]}`, &ap)
	if ap.Status != authn.ApprovalPending || ap.Entity != "user" || ap.Target != "mallory" || !slices.Contains(ap.Gains, string(custos.PermKeysManage)) {
		t.Errorf("approval %+v", ap)
	}
	if diff := cmp.Diff([]string{"user_admin"}, roles("mallory")); diff != "" {
		t.Errorf("roles while pending (-want +got):\n%s", diff)
	}
	refused(t, e.call("POST", "/v1/approvals/"+ap.ID+"/approve", mallory, ""), 403, "", "")
	refused(t, e.call("POST", "/v1/approvals/"+ap.ID+"/approve", mike, ""), 403, "", "")
	var pending struct{ Items []authn.Approval }
	e.want(200, "GET", "/v1/approvals?status=pending", root, "", &pending)
	if len(pending.Items) != 1 || pending.Items[0].ID != ap.ID {
		t.Errorf("pending approvals %+v", pending.Items)
	}
	var decided authn.Approval
	e.want(200, "POST", "/v1/approvals/"+ap.ID+"/approve", root, "", &decided)
	if decided.Status != authn.ApprovalApproved || decided.DecidedBy != "user:root" {
		t.Errorf("decided %+v", decided)
	}
	if diff := cmp.Diff([]string{"administrator", "user_admin"}, roles("mallory")); diff != "" {
		t.Errorf("roles once approved (-want +got):\n%s", diff)
	}
	e.want(200, "GET", "/v1/api-keys", mallory, "", nil)
	refused(t, e.call("POST", "/v1/approvals/"+ap.ID+"/approve", root2, ""), 409, "", "")

	// A stale approval: the user changed after the proposal.
	e.want(202, "PUT", "/v1/users/mike", mike, `{"roles":["administrator"]}`, &ap)
	e.want(200, "PUT", "/v1/users/mike", root, `{"name":"Mike M."}`, nil)
	size := e.size()
	refused(t, e.call("POST", "/v1/approvals/"+ap.ID+"/approve", root2, ""), 409, "", "changed")
	if after := e.size(); after != size {
		t.Errorf("the ledger grew from %d to %d", size, after)
	}
	if diff := cmp.Diff([]string{"user_admin"}, roles("mike")); diff != "" {
		t.Errorf("roles after a stale approval (-want +got):\n%s", diff)
	}
	e.want(200, "POST", "/v1/approvals/"+ap.ID+"/reject", root2, "", &decided)
	if decided.Status != authn.ApprovalRejected {
		t.Errorf("rejected: %+v", decided)
	}

	// A role edit that widens its author's own permissions: held too.
	e.want(202, "PUT", "/v1/roles/role_admin", rita, `{"permissions":["roles:manage","keys:manage"]}`, &ap)
	var role custos.Role
	e.want(200, "GET", "/v1/roles/role_admin", adminToken, "", &role)
	if diff := cmp.Diff([]custos.Permission{"roles:manage"}, role.Permissions); diff != "" {
		t.Errorf("role while pending (-want +got):\n%s", diff)
	}
	refused(t, e.call("GET", "/v1/api-keys", rita, ""), 403, "", "")
	e.want(200, "POST", "/v1/approvals/"+ap.ID+"/approve", root2, "", nil)
	e.want(200, "GET", "/v1/api-keys", rita, "", nil)
	// Nobody hands out a Custos permission they lack: a new role with one
	// waits for approval too. Applications' own permissions are the role
	// manager's to hand out.
	e.want(202, "POST", "/v1/roles", rita, `{"name":"clerk","permissions":["events:read"]}`, nil)
	e.want(201, "POST", "/v1/roles", rita, `{"name":"clerk","permissions":["chart:read"]}`, nil)

	// A key that can do more than the credential making it.
	size = e.size()
	for _, body := range []string{`{"name":"x","roles":["administrator"]}`, `{"name":"x","scopes":["admin"]}`, `{"name":"x","user_id":"root"}`} {
		refused(t, e.call("POST", "/v1/api-keys", kim, body), 403, "", "")
	}
	if after := e.size(); after != size {
		t.Errorf("the ledger grew from %d to %d", size, after)
	}
	e.want(201, "POST", "/v1/api-keys", kim, `{"name":"x","roles":["key_admin"]}`, nil)
}

// TestEmergencyFlagsEveryIngestPath: under a grant with the longest reason
// allowed, an event appended straight to the ledger (as the FHIR and ATNA
// receivers do) is stored flagged, and an allowed decision is recorded:
// the flag's reason always fits an event.
func TestEmergencyFlagsEveryIngestPath(t *testing.T) {
	e := newAccessEnv(t, authn.Config{})
	e.role("clinician", "", custos.PermGrantsOpen)
	e.role("ehr_app", "", custos.PermAuthorize)
	e.user("carol", "clinician")
	carol, app := e.login("carol"), e.key("ehr_app")
	reason := strings.Repeat("r", 400)
	e.want(201, "POST", "/v1/grants", carol, `{"reason":"`+reason+`","patient_id":"p-9","duration":"30m"}`, nil)
	refused(t, e.call("POST", "/v1/grants", carol, `{"reason":"`+reason+`r","duration":"30m"}`), 400, "reason", "")
	var a authn.Answer
	e.want(200, "POST", "/v1/authorize", app, `{"user_id":"carol","permission":"patient:read","patient_id":"p-9"}`, &a)
	if !a.Allowed || !a.BreakGlass {
		t.Fatalf("under the grant: %+v", a)
	}
	ev := custos.Event{User: custos.User{ID: "carol", Roles: []string{}}, Action: custos.ActionRead, ResourceType: "Patient",
		PatientID: "p-9", Outcome: custos.OutcomeSuccess, Source: "pacs"}
	rs, err := e.seq.Append(context.Background(), "atna:pacs", []custos.Event{ev})
	if err != nil {
		t.Fatalf("an access under a grant with a %d-character reason: %v", len(reason), err)
	}
	stored, err := e.st.Event(context.Background(), rs[0].Index)
	if err != nil {
		t.Fatal(err)
	}
	if !stored.BreakGlass || !strings.Contains(stored.BreakGlassReason, reason) {
		t.Errorf("an access appended straight to the ledger: break_glass %v, reason %q", stored.BreakGlass, stored.BreakGlassReason)
	}
	if ev.BreakGlass {
		t.Error("the caller's event was written")
	}
}
