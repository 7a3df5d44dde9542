package authn_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/store"
	"github.com/google/go-cmp/cmp"
	"github.com/pquerna/otp/totp"
)

const testPassword = "correct horse battery staple"

func addUser(t *testing.T, d *authn.Directory, id string, roles ...string) {
	t.Helper()
	name, pw := "User "+id, testPassword
	if _, _, err := d.SaveUser(context.Background(), nil, authn.UserChange{ID: id, Name: &name, Roles: &roles, Password: &pw}, true); err != nil {
		t.Fatal(err)
	}
}

// TestFailedLoginsAnswerAlike: a wrong password, an unknown user, a user
// without a password and an invalid id get one answer; the trail records
// each attempt with its real reason, before the answer.
func TestFailedLoginsAnswerAlike(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 1)
	d := ns.dirs[0]
	addUser(t, d, "ann", custos.RoleAuditor)
	name := "No Password"
	if _, _, err := d.SaveUser(ctx, nil, authn.UserChange{ID: "nopw", Name: &name}, true); err != nil {
		t.Fatal(err)
	}
	attempts := []authn.Login{
		{UserID: "ann", Password: "not the right password", Address: "203.0.113.9"},
		{UserID: "nobody", Password: "not the right password", Address: "203.0.113.9"},
		{UserID: "nopw", Password: "not the right password", Address: "203.0.113.9"},
		{UserID: "bad id!", Password: "x", Address: "::ffff:203.0.113.9"},
	}
	var answers []string
	for _, in := range attempts {
		_, err := d.Login(ctx, in)
		if custos.KindOf(err) != custos.Unauthenticated {
			t.Fatalf("login %+v: %v, want unauthenticated", in, err)
		}
		var ce *custos.Error
		if !errors.As(err, &ce) {
			t.Fatalf("login %+v: %T", in, err)
		}
		answers = append(answers, ce.Detail)
	}
	for i := range answers {
		if answers[i] != answers[0] {
			t.Errorf("attempt %d answers %q, attempt 0 %q", i, answers[i], answers[0])
		}
	}
	evs, err := ns.l.Store.Events(ctx, store.Query{Action: string(custos.ActionLogin), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	type rec struct{ User, IP, Reason string }
	var got []rec
	for _, ev := range evs {
		if ev.Outcome != custos.OutcomeFailure || ev.StatusCode != 401 {
			t.Errorf("failed login recorded as %s %d", ev.Outcome, ev.StatusCode)
		}
		var c struct{ Reason string }
		json.Unmarshal(ev.Changes, &c)
		got = append(got, rec{ev.User.ID, ev.IPAddress, c.Reason})
	}
	want := []rec{
		{"(invalid user id)", "203.0.113.9", "unknown user"},
		{"nopw", "203.0.113.9", "wrong password"},
		{"nobody", "203.0.113.9", "unknown user"},
		{"ann", "203.0.113.9", "wrong password"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failed logins in the trail, newest first (-want +got):\n%s", diff)
	}
}

// enrol gives user id a confirmed second factor and returns its secret.
func enrol(t *testing.T, ns *nodes, d *authn.Directory, id string) string {
	t.Helper()
	ctx := context.Background()
	s, err := d.Login(ctx, authn.Login{UserID: id, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.Authenticate(ctx, s.Token)
	if err != nil {
		t.Fatal(err)
	}
	e, err := d.EnrollTOTP(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(e.Secret, ns.clock.Now())
	if err := d.ConfirmTOTP(ctx, p, code); err != nil {
		t.Fatal(err)
	}
	return e.Secret
}

// TestConcurrentLoginsSpendACodeOnce: many logins with one code at once, on
// one node, open one session.
func TestConcurrentLoginsSpendACodeOnce(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 1)
	d := ns.dirs[0]
	addUser(t, d, "ann", custos.RoleAuditor)
	secret := enrol(t, ns, d, "ann")
	ns.clock.Add(30 * time.Second)
	code, _ := totp.GenerateCode(secret, ns.clock.Now())
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = d.Login(ctx, authn.Login{UserID: "ann", Password: testPassword, Code: code})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case custos.KindOf(err) != custos.Unauthenticated:
			t.Errorf("login: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d logins with one code succeeded, want 1", ok)
	}
}

// TestCodeSpentOnOneNodeIsSpentOnAll: two nodes check the same code at the
// same time, each against a view in which it is unspent: only one login
// opens a session.
func TestCodeSpentOnOneNodeIsSpentOnAll(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 2)
	a, b := ns.dirs[0], ns.dirs[1]
	addUser(t, a, "ann", custos.RoleAuditor)
	secret := enrol(t, ns, a, "ann")
	ns.clock.Add(30 * time.Second)
	code, _ := totp.GenerateCode(secret, ns.clock.Now())
	var errB error
	ns.racer[0].arm(func() {
		_, errB = b.Login(ctx, authn.Login{UserID: "ann", Password: testPassword, Code: code})
	})
	_, errA := a.Login(ctx, authn.Login{UserID: "ann", Password: testPassword, Code: code})
	if errA == nil && errB == nil {
		t.Fatal("one code opened a session on each of two nodes")
	}
	if errA != nil && errB != nil {
		t.Fatalf("neither login succeeded: %v; %v", errA, errB)
	}
	if err := errors.Join(errA, errB); custos.KindOf(err) != custos.Unauthenticated {
		t.Errorf("the second login answered %v, want unauthenticated", err)
	}
	// The refused attempt is in the trail.
	evs, err := ns.l.Store.Events(ctx, store.Query{Action: string(custos.ActionLogin), Outcome: "failure", Limit: 10})
	if err != nil || len(evs) != 1 {
		t.Fatalf("failed logins in the trail: %+v %v", evs, err)
	}
	// Later codes still work, on either node.
	ns.clock.Add(30 * time.Second)
	code, _ = totp.GenerateCode(secret, ns.clock.Now())
	if _, err := b.Login(ctx, authn.Login{UserID: "ann", Password: testPassword, Code: code}); err != nil {
		t.Fatalf("the next step's code on node B: %v", err)
	}
}
