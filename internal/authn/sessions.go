package authn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn/password"
	"github.com/custos-audit/custos/internal/authn/totp"
	"github.com/custos-audit/custos/internal/leaf"
)

// SessionPrefix starts every session token, so that a token's kind shows.
const SessionPrefix = "cuss_"

// sessionDoc is a login session as its state records carry it: the hash of
// its token, never the token. THIS DOCUMENT FEEDS THE HASH: fields are only
// ever added (with omitempty), never renamed.
type sessionDoc struct {
	ID        string `json:"id"` // hex SHA-256 of the token
	UserID    string `json:"user_id"`
	CreatedAt string `json:"created_at"`
	ExpiresAt string `json:"expires_at"` // the absolute timeout
	LastSeen  string `json:"last_seen"`
	IdleSecs  int64  `json:"idle_seconds"`
	Address   string `json:"address,omitempty"`
	TOTP      bool   `json:"totp,omitempty"`
}

func (s *sessionDoc) put() leaf.StateRecord {
	b, _ := json.Marshal(s)
	return leaf.StateRecord{Entity: EntitySession, ID: s.ID, Op: leaf.OpPut, Doc: b}
}

func (d *Directory) applySession(r *leaf.StateRecord) error {
	sum, err := hex.DecodeString(r.ID)
	if err != nil || len(sum) != hashSize {
		return errors.New("a session id is a hex SHA-256")
	}
	if r.Op == leaf.OpDelete {
		delete(d.sessions, [hashSize]byte(sum))
		return nil
	}
	var s sessionDoc
	if err := decodeDoc(r, &s, func() string { return s.ID }); err != nil {
		return err
	}
	d.sessions[[hashSize]byte(sum)] = s
	return nil
}

// Login is a login attempt.
type Login struct {
	UserID    string
	Password  string
	Code      string // the TOTP code, for users who enrolled one
	Address   string // the client's address
	UserAgent string
}

// Session is what a successful login answers: the token is shown only here.
type Session struct {
	Token     string `json:"token"`
	UserID    string `json:"user_id"`
	ExpiresAt string `json:"expires_at"`
	IdleFor   string `json:"idle_timeout"`
}

// Login checks a user's password (and second factor) and opens a session.
// Every attempt, failed or not, is a LOGIN event of the trail, committed
// before the answer. A wrong password and an unknown user cost the same
// work and answer the same.
func (d *Directory) Login(ctx context.Context, in Login) (Session, error) {
	d.refresh(maxAge)
	d.mu.RLock()
	u, known := d.users[in.UserID]
	d.mu.RUnlock()
	var err error
	if !known || u.Password == "" {
		err = d.hasher.VerifyUnknown(ctx, in.Password)
	} else {
		err = d.hasher.Verify(ctx, in.Password, u.Password)
	}
	if err == nil {
		err = errors.New("no such user") // VerifyUnknown never matches; belt and braces
		if known && u.Password != "" {
			err = nil
		}
	}
	if err != nil {
		if custos.KindOf(err) == custos.Unavailable {
			return Session{}, err // too many logins at once: not an attempt
		}
		reason := "wrong password"
		if !known {
			reason = "unknown user"
		}
		return Session{}, d.failLogin(ctx, in, reason, password.ErrMismatch)
	}
	if u.Status != StatusActive {
		return Session{}, d.failLogin(ctx, in, "user "+u.Status,
			custos.Errorf("authn.login", custos.Unauthenticated, "the account is %s", u.Status))
	}
	step, err := d.checkCode(u, in.Code)
	if err != nil {
		return Session{}, d.failLogin(ctx, in, "second factor: "+err.Error(), err)
	}
	return d.openSession(ctx, u, in, step)
}

// openSession records a successful login and its session.
func (d *Directory) openSession(ctx context.Context, u userDoc, in Login, step int64) (Session, error) {
	token := SessionPrefix + randomToken()
	sum := sha256.Sum256([]byte(token))
	now := d.now()
	s := sessionDoc{ID: hex.EncodeToString(sum[:]), UserID: u.ID, CreatedAt: stamp(now),
		ExpiresAt: stamp(now.Add(d.cfg.SessionAbsolute)), LastSeen: stamp(now),
		IdleSecs: int64(d.cfg.SessionIdle / time.Second), Address: in.Address, TOTP: step > 0}
	states := []leaf.StateRecord{s.put()}
	states[0].Op = leaf.OpCreate
	by := &custos.Principal{ID: u.ID, Kind: "session", Name: u.Name, UserID: u.ID, Roles: u.Roles}
	ev := loginEvent(in, custos.ActionLogin, custos.OutcomeSuccess, 200, map[string]any{"session": s.ID[:16], "second_factor": step > 0})
	// The user as failed logins and logouts name them ("ann", not
	// "user:ann"), so that a search or a rule on the user sees every attempt.
	ev.User = custos.User{ID: u.ID, Name: u.Name, Roles: nonNil(u.Roles)}
	d.write.Lock()
	defer d.write.Unlock()
	if step > 0 { // the code is spent: remembered in the ledger, for every node
		if err := d.Reload(ctx); err != nil {
			return Session{}, err
		}
		d.mu.RLock()
		cur := d.users[u.ID]
		d.mu.RUnlock()
		if cur.TOTPStep >= step { // a concurrent login used the same code
			return Session{}, d.failLogin(ctx, in, "second factor: code replayed", totp.ErrReplayed)
		}
		prev := cur.TOTPStep
		cur.TOTPStep = step
		// The create conflicts if another node spent this step meanwhile
		// (its user record, replayed after our check, said nothing yet); the
		// previous step's marker goes, so a user keeps at most one.
		spent := leaf.StateRecord{Entity: EntityCodeSpent, ID: spentID(u.ID, step), Op: leaf.OpCreate, Doc: []byte("{}")}
		states = append(states, cur.put(), spent,
			leaf.StateRecord{Entity: EntityCodeSpent, ID: spentID(u.ID, prev), Op: leaf.OpDelete})
	}
	if err := d.commit(ctx, by, []custos.Event{ev}, states...); err != nil {
		if step > 0 && custos.KindOf(err) == custos.Conflict {
			return Session{}, d.failLogin(ctx, in, "second factor: code replayed on another node", totp.ErrReplayed)
		}
		return Session{}, err
	}
	return Session{Token: token, UserID: u.ID, ExpiresAt: s.ExpiresAt, IdleFor: d.cfg.SessionIdle.String()}, nil
}

func spentID(userID string, step int64) string { return userID + "@" + strconv.FormatInt(step, 10) }

// failLogin records a failed login, then answers answer.
func (d *Directory) failLogin(ctx context.Context, in Login, reason string, answer error) error {
	ev := loginEvent(in, custos.ActionLogin, custos.OutcomeFailure, 401, map[string]any{"reason": reason})
	if _, err := d.ledger.Append(ctx, "custos", []custos.Event{ev}); err != nil {
		return err // not recorded: fail closed
	}
	return answer
}

// loginEvent is the trail's record of a login or logout. What the client
// sent is cleaned so that the record is always valid: the attempt is
// recorded whatever it carried.
func loginEvent(in Login, a custos.Action, outcome custos.Outcome, status int, changes map[string]any) custos.Event {
	id := in.UserID
	if !validUserID(id) {
		id = "(invalid user id)"
	}
	ev := custos.Event{Kind: custos.KindServer, User: custos.User{ID: id, Name: id, Roles: []string{}}, Action: a,
		ResourceType: "Session", Outcome: outcome, StatusCode: status, Source: "custos",
		UserAgent: clean(in.UserAgent, 512), RequestMethod: "POST", RequestPath: "/v1/" + strings.ToLower(string(a))}
	if addr, err := netip.ParseAddr(in.Address); err == nil {
		ev.IPAddress = addr.Unmap().String()
	}
	ev.Changes, _ = json.Marshal(changes)
	return ev
}

// clean makes s valid UTF-8 without control characters, at most n bytes.
func clean(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	for len(s) > n {
		_, size := lastRune(s)
		s = s[:len(s)-size]
	}
	return s
}

func lastRune(s string) (rune, int) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i]&0xC0 != 0x80 {
			return rune(s[i]), len(s) - i
		}
	}
	return 0, 1
}

// touchEvery is how stale a session's last use may be in the ledger: a
// request after that records the use, so that every node sees the session
// as alive.
func (d *Directory) touchEvery() time.Duration { return min(d.cfg.SessionIdle/4, time.Minute) }

// checkSession authenticates a session: not expired, not idle, its user
// active.
func (d *Directory) checkSession(ctx context.Context, sum [hashSize]byte, s sessionDoc) (*custos.Principal, error) {
	now := d.now()
	switch {
	case !now.Before(parseStamp(s.ExpiresAt)):
		return nil, custos.Errorf("authn", custos.Unauthenticated, "the session has expired: log in again")
	case now.Sub(parseStamp(s.LastSeen)) >= time.Duration(s.IdleSecs)*time.Second:
		return nil, custos.Errorf("authn", custos.Unauthenticated, "the session was idle too long: log in again")
	}
	d.mu.RLock()
	p := d.principals["user:"+s.UserID]
	d.mu.RUnlock()
	if p == nil {
		return nil, custos.Errorf("authn", custos.Unauthenticated, "the session's user is suspended or terminated")
	}
	if now.Sub(parseStamp(s.LastSeen)) >= d.touchEvery() {
		s.LastSeen = stamp(now)
		d.write.Lock()
		err := d.commit(ctx, nil, nil, s.put())
		d.write.Unlock()
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Logout ends the session of token; the LOGOUT is a record of the trail.
func (d *Directory) Logout(ctx context.Context, token string, address, userAgent string) error {
	sum := sha256.Sum256([]byte(token))
	d.write.Lock()
	defer d.write.Unlock()
	if err := d.Reload(ctx); err != nil {
		return err
	}
	d.mu.RLock()
	s, ok := d.sessions[sum]
	d.mu.RUnlock()
	if !ok {
		return custos.Errorf("authn.logout", custos.NotFound, "no session for this token: log out with the session's own token")
	}
	ev := loginEvent(Login{UserID: s.UserID, Address: address, UserAgent: userAgent}, custos.ActionLogout,
		custos.OutcomeSuccess, 204, map[string]any{"session": s.ID[:16]})
	by := &custos.Principal{ID: s.UserID, Kind: "session", UserID: s.UserID}
	return d.commit(ctx, by, []custos.Event{ev}, leaf.StateRecord{Entity: EntitySession, ID: s.ID, Op: leaf.OpDelete})
}

// RevokeSessions ends every session of a user.
func (d *Directory) RevokeSessions(ctx context.Context, by *custos.Principal, userID string) (int, error) {
	d.write.Lock()
	defer d.write.Unlock()
	if err := d.Reload(ctx); err != nil {
		return 0, err
	}
	var states []leaf.StateRecord
	d.mu.RLock()
	for _, s := range d.sessions {
		if s.UserID == userID {
			states = append(states, leaf.StateRecord{Entity: EntitySession, ID: s.ID, Op: leaf.OpDelete})
		}
	}
	d.mu.RUnlock()
	if len(states) == 0 {
		return 0, nil
	}
	ev := change(by, custos.ActionDelete, "Session", userID, nil, map[string]any{"revoked_sessions": len(states)})
	return len(states), d.commit(ctx, by, []custos.Event{ev}, states...)
}
