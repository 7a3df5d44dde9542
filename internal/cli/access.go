package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/sqlite"
)

// `custos user` and `custos role` manage users and roles from scripts and
// for the first administrator: on the store itself (a stopped SQLite store,
// or PostgreSQL beside running nodes), or through a running server's API
// with --server and --token. Either way every change is a ledger record.

// access is what the two commands need, from the store or from a server.
type access interface {
	saveUser(ctx context.Context, c authn.UserChange, create bool) (any, error)
	users(ctx context.Context) ([]authn.User, error)
	roles(ctx context.Context) ([]custos.Role, error)
	putRole(ctx context.Context, r custos.Role, create bool) (any, error)
	deleteRole(ctx context.Context, name string, reparent bool, to string) error
	close()
}

// accessFlags are the flags shared by every user and role subcommand.
type accessFlags struct {
	cfg           serverConfig
	server, token string
}

func (a *accessFlags) flags(fs *flag.FlagSet) {
	fs.StringVar(&a.cfg.data, "data", "./custos-data", "data folder of the embedded SQLite store (stopped)")
	fs.StringVar(&a.cfg.db, "db", "", "PostgreSQL URL (postgres://…); works beside running nodes")
	fs.StringVar(&a.cfg.keyFile, "key-file", "", "checkpoint signing key (default <data>/"+ledger.KeyFileName+")")
	fs.StringVar(&a.server, "server", "", "URL of a running Custos: go through its API instead of the store")
	fs.StringVar(&a.token, "token", "", "bearer token for --server (CUSTOS_TOKEN), holding users:manage or roles:manage")
}

// open returns the access the flags name.
func (a *accessFlags) open(ctx context.Context) (access, error) {
	if a.server != "" {
		if a.token == "" {
			return nil, errors.New("--server needs --token (or CUSTOS_TOKEN)")
		}
		u, err := url.Parse(a.server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--server %q is not an http(s) URL", a.server)
		}
		return &remote{base: strings.TrimRight(a.server, "/"), token: a.token, c: &http.Client{Timeout: 30 * time.Second}}, nil
	}
	off, err := openOffline(ctx, a.cfg, false)
	if err != nil {
		return nil, err
	}
	return &local{off: off, by: operator()}, nil
}

// offline is a ledger opened by a command rather than a server.
type offline struct {
	st     store.Store
	seq    *ledger.Sequencer
	dir    *authn.Directory
	signer *ledger.Signer
}

// openOffline opens the store, checks it as a start does, and replays the
// directory. exclusive refuses a PostgreSQL store that servers are using.
func openOffline(ctx context.Context, cfg serverConfig, exclusive bool) (*offline, error) {
	signer, err := ledger.NewSignerFromFile(cfg.keyPath())
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.DiscardHandler)
	var st store.Store
	if cfg.db != "" {
		st, err = postgres.Open(ctx, cfg.db, postgres.Options{Exclusive: exclusive, Logger: log})
	} else {
		st, err = sqlite.Open(ctx, cfg.data, sqlite.Options{Logger: log, MustExist: true})
	}
	if err != nil {
		return nil, fmt.Errorf("%w (a running server holds an embedded store: pass --server and --token to go through it)", err)
	}
	lcfg := ledger.Config{Logger: log}
	if err := checkBeforeStart(ctx, st, lcfg); err != nil {
		st.Close()
		return nil, err
	}
	seq, err := ledger.Open(ctx, st, st, st, signer, lcfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	off := &offline{st: st, seq: seq, signer: signer}
	if err = recordLogKey(ctx, st, seq, signer); err == nil {
		off.dir, err = authn.NewDirectory(ctx, seq, ledger.NewStateFeed(st, signer.VerifierKey()),
			authn.Config{Logger: log, Secret: signer.DeriveSecret("second factor")})
	}
	if err != nil {
		off.close()
		return nil, err
	}
	return off, nil
}

func (o *offline) close() { o.seq.Close(); o.st.Close() }

// operator is the person at the console: the records of a command name the
// system account that ran it. Whoever holds the store and its signing key
// holds every permission.
func operator() *custos.Principal {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	all := map[custos.Permission]bool{}
	for _, p := range custos.Permissions {
		all[p] = true
	}
	return &custos.Principal{ID: name, Kind: "operator", Name: "custos command (" + name + ")", Permissions: all}
}

type local struct {
	off *offline
	by  *custos.Principal
}

func (l *local) saveUser(ctx context.Context, c authn.UserChange, create bool) (any, error) {
	u, _, err := l.off.dir.SaveUser(ctx, l.by, c, create)
	return u, err
}
func (l *local) users(ctx context.Context) ([]authn.User, error)  { return l.off.dir.Users(ctx) }
func (l *local) roles(ctx context.Context) ([]custos.Role, error) { return l.off.dir.Roles(ctx) }
func (l *local) putRole(ctx context.Context, r custos.Role, create bool) (any, error) {
	role, _, err := l.off.dir.PutRole(ctx, l.by, r, create)
	return role, err
}
func (l *local) deleteRole(ctx context.Context, name string, reparent bool, to string) error {
	return l.off.dir.DeleteRole(ctx, l.by, name, reparent, to)
}
func (l *local) close() { l.off.close() }

// remote goes through a running server's API.
type remote struct {
	base, token string
	c           *http.Client
}

func (r *remote) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode >= 300 {
		msg := problemMessage(b)
		if resp.StatusCode == http.StatusAccepted {
			return fmt.Errorf("the change grants its author more: it waits for another administrator's approval (%s)", b)
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// all reads every page of a list.
func all[T any](ctx context.Context, r *remote, path string) ([]T, error) {
	var out []T
	cursor := ""
	for {
		var page struct {
			Items      []T    `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		p := path + "?limit=1000"
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		if err := r.call(ctx, http.MethodGet, p, nil, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if cursor = page.NextCursor; cursor == "" {
			return out, nil
		}
	}
}

func (r *remote) saveUser(ctx context.Context, c authn.UserChange, create bool) (any, error) {
	body := map[string]any{"id": c.ID}
	if c.Name != nil {
		body["name"] = *c.Name
	}
	if c.Roles != nil {
		body["roles"] = *c.Roles
	}
	if c.Status != nil {
		body["status"], body["status_reason"] = *c.Status, c.StatusReason
	}
	if c.Password != nil {
		body["password"] = *c.Password
	}
	var out authn.User
	if create {
		return out, r.call(ctx, http.MethodPost, "/v1/users", body, &out)
	}
	return out, r.call(ctx, http.MethodPut, "/v1/users/"+url.PathEscape(c.ID), body, &out)
}
func (r *remote) users(ctx context.Context) ([]authn.User, error) {
	return all[authn.User](ctx, r, "/v1/users")
}
func (r *remote) roles(ctx context.Context) ([]custos.Role, error) {
	return all[custos.Role](ctx, r, "/v1/roles")
}
func (r *remote) putRole(ctx context.Context, role custos.Role, create bool) (any, error) {
	body := map[string]any{"name": role.Name, "description": role.Description, "permissions": role.Permissions,
		"parent_role": role.ParentRole}
	var out custos.Role
	if create {
		return out, r.call(ctx, http.MethodPost, "/v1/roles", body, &out)
	}
	return out, r.call(ctx, http.MethodPut, "/v1/roles/"+url.PathEscape(role.Name), body, &out)
}
func (r *remote) deleteRole(ctx context.Context, name string, reparent bool, to string) error {
	p := "/v1/roles/" + url.PathEscape(name)
	if reparent {
		p += "?reparent_to=" + url.QueryEscape(to)
	}
	return r.call(ctx, http.MethodDelete, p, nil, nil)
}
func (r *remote) close() {}

// readPassword reads one line from in: a password piped by a script, or
// typed (echoed: pipe it to keep it off the screen).
func readPassword(in io.Reader) (string, error) {
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password on standard input")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// stdin is where passwords are read from (tests replace it).
var stdin io.Reader = os.Stdin

// problemMessage is the detail of a problem+json answer and the fields it
// names, for an error message.
func problemMessage(body []byte) string {
	var p struct {
		Detail string              `json:"detail"`
		Errors []custos.FieldError `json:"errors"`
	}
	_ = json.Unmarshal(body, &p) // a body that is no problem leaves the message empty
	msg := p.Detail
	for _, f := range p.Errors {
		msg += fmt.Sprintf("; %s: %s", f.Field, f.Message)
	}
	return msg
}
