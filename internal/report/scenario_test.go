package report_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/clocktest"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/monitor"
	"github.com/custos-audit/custos/internal/report"
	"github.com/custos-audit/custos/internal/rules"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
	"github.com/custos-audit/custos/internal/store/sqlite"
	"github.com/jackc/pgx/v5"
)

// The fixed scenario: ten days of March 2026 on a real ledger, written
// through the real directory (roles, users, a suspension, a termination,
// an emergency grant) and monitor (security events reported and
// acknowledged, a block placed and lifted, the rules stepped over every
// day), with audit events sent as an EHR would.
var (
	periodFrom = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	periodTo   = time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)
)

// scenario is a store written with the fixed scenario, and the ids the
// directory and monitor drew at random (replaced in golden files).
type scenario struct {
	kind  string // "sqlite" or "postgres"
	dir   string
	db    string
	st    store.Store
	vkey  string
	clk   *clocktest.Clock
	ids   []string // random ids, in the order drawn
	close func()
}

var stores = []string{"sqlite", "postgres"}

func newScenario(t *testing.T, kind string) *scenario {
	t.Helper()
	ctx := context.Background()
	s := &scenario{kind: kind, dir: t.TempDir(), clk: clocktest.New(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))}
	cfg := ledger.Config{Now: s.clk.Now, LocalClock: true, CheckpointEvery: 1}
	var seq *ledger.Sequencer
	var sig *ledger.Signer
	switch kind {
	case "sqlite":
		l := ledgertest.Open(t, s.dir, "custos.test/report", cfg)
		s.st, seq, sig, s.close = l.Store, l.Seq, l.Signer, l.Close
	default:
		s.db = pgtest.FreshSchema(t)
		st, err := postgres.Open(ctx, s.db, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if sig, _, err = ledger.LoadOrCreateKey(filepath.Join(s.dir, ledger.KeyFileName), "custos.test/report"); err != nil {
			t.Fatal(err)
		}
		if seq, err = ledger.Open(ctx, st, st, st, sig, cfg); err != nil {
			t.Fatal(err)
		}
		s.st, s.close = st, func() { seq.Close(); st.Close() }
	}
	t.Cleanup(func() { s.close() })
	s.vkey = sig.VerifierKey()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := seq.Append(ctx, "custos", nil, ledger.LogKeyRecord(s.vkey))
	must(err)
	feed := ledger.NewStateFeed(s.st, s.vkey)
	dir, err := authn.NewDirectory(ctx, seq, feed, authn.Config{Now: s.clk.Now})
	must(err)
	mon, err := monitor.New(ctx, s.st, seq, feed, monitor.Config{Rules: rules.DefaultConfig(), Now: s.clk.Now, UpdateEvery: time.Second})
	must(err)
	for _, role := range []string{"physician", "nurse"} {
		_, _, err := dir.PutRole(ctx, nil, custos.Role{Name: role, Permissions: []custos.Permission{"patient:read"}, ParentRole: custos.RoleAuditor}, true)
		must(err)
	}
	users := map[string]string{"dr.grey": "physician", "nurse.joy": "nurse", "dr.house": "physician"}
	for _, id := range []string{"dr.grey", "nurse.joy", "dr.house"} {
		name, roles := id, []string{users[id]}
		_, _, err := dir.SaveUser(ctx, nil, authn.UserChange{ID: id, Name: &name, Roles: &roles}, true)
		must(err)
	}
	ev := func(user string, a custos.Action, patient string) custos.Event {
		e := custos.Event{User: custos.User{ID: user, Name: user, Roles: []string{users[user]}}, Action: a,
			ResourceType: "Patient", ResourceID: patient, PatientID: patient, IPAddress: "10.0.0.1",
			Outcome: custos.OutcomeSuccess, StatusCode: 200, Source: "ehr-web"}
		if a == custos.ActionLogin {
			e.ResourceType, e.ResourceID, e.PatientID = "Session", "", ""
		}
		return e
	}
	send := func(evs ...custos.Event) {
		t.Helper()
		_, err := seq.Append(ctx, "apikey:ehr", evs)
		must(err)
	}
	set := func(day, hour int) {
		at := time.Date(2026, 3, 1+day, hour, 0, 0, 0, time.UTC)
		s.clk.Add(at.Sub(s.clk.Now()))
	}
	system := &custos.Principal{Kind: "apikey", ID: "admin", Permissions: map[custos.Permission]bool{custos.PermAuthorize: true}}
	for day := range 10 {
		set(day, 9)
		// dr.grey: three patients a day, forty on the ninth (unusual).
		evs := []custos.Event{ev("dr.grey", custos.ActionLogin, "")}
		n := 3
		if day == 8 {
			n = 40
		}
		for i := range n {
			p := fmt.Sprintf("p-%d", (day+i)%5)
			if day == 8 {
				p = fmt.Sprintf("p-%d", 100+i)
			}
			evs = append(evs, ev("dr.grey", custos.ActionRead, p))
		}
		// nurse.joy: two patients and a failed log-in from elsewhere.
		fail := ev("nurse.joy", custos.ActionLogin, "")
		fail.Outcome, fail.StatusCode, fail.IPAddress = custos.OutcomeFailure, 401, "198.51.100.7"
		evs = append(evs, ev("nurse.joy", custos.ActionLogin, ""), ev("nurse.joy", custos.ActionRead, fmt.Sprintf("p-%d", day%3)),
			ev("nurse.joy", custos.ActionUpdate, fmt.Sprintf("p-%d", (day+1)%3)), fail)
		send(evs...)
		switch day {
		case 2: // a disclosure to an insurer
			set(day, 11)
			e := ev("dr.grey", custos.ActionExport, "p-1")
			e.ResourceType, e.PurposeOfUse = "DocumentReference", "PAYMENT"
			e.Disclosure = &custos.Disclosure{Recipient: "Acme Insurance", Address: "1 Main St, Springfield", Purpose: "claim review"}
			send(e, ev("dr.grey", custos.ActionExport, "p-2")) // and an export that discloses to nobody
		case 3: // break the glass
			set(day, 14)
			g, err := dir.OpenGrant(ctx, system, authn.GrantRequest{UserID: "dr.house", Reason: "code blue in the ER", PatientID: "p-9", Duration: time.Hour})
			must(err)
			s.ids = append(s.ids, g.ID)
			e := ev("dr.house", custos.ActionRead, "p-9")
			e.BreakGlass, e.BreakGlassReason = true, "code blue in the ER"
			send(e)
		case 4: // security events and a block
			set(day, 15)
			se, err := mon.Report(ctx, "apikey:ehr", custos.SecurityEvent{EventType: custos.AuthFailure, Severity: custos.SeverityHigh,
				Description: "repeated failed log-ins", User: "nurse.joy", IPAddress: "198.51.100.7"})
			must(err)
			s.ids = append(s.ids, se.ID)
			se2, err := mon.Report(ctx, "apikey:ehr", custos.SecurityEvent{EventType: custos.UnauthorizedAccess, Severity: custos.SeverityCritical,
				Description: "record opened without a treatment relationship", User: "dr.house"})
			must(err)
			s.ids = append(s.ids, se2.ID)
			blk, err := mon.AddBlock(ctx, "admin", "198.51.100.7", "repeated failed log-ins", 24*time.Hour)
			must(err)
			s.ids = append(s.ids, blk.ID)
			set(day, 15)
			s.clk.Add(30 * time.Minute)
			_, err = mon.SetStatus(ctx, "admin", se.ID, custos.StatusAcknowledged, "called the user")
			must(err)
		case 5: // a suspension (and a lifted block)
			set(day, 12)
			st, reason := authn.StatusSuspended, "investigation"
			_, _, err := dir.SaveUser(ctx, nil, authn.UserChange{ID: "nurse.joy", Status: &st, StatusReason: reason}, false)
			must(err)
			_, err = mon.Lift(ctx, "admin", s.ids[len(s.ids)-1], "resolved")
			must(err)
		case 7: // a termination, and the terminated user's access the next day
			set(day, 12)
			st := authn.StatusTerminated
			_, _, err := dir.SaveUser(ctx, nil, authn.UserChange{ID: "dr.house", Status: &st, StatusReason: "left"}, false)
			must(err)
		case 8:
			set(day, 10)
			send(ev("dr.house", custos.ActionRead, "p-5"))
		}
		must(mon.Step(ctx))
	}
	// After the period: not counted.
	set(11, 9)
	send(ev("dr.grey", custos.ActionRead, "p-1"))
	must(mon.Step(ctx))
	// The rule's own alerts (unusual PHI access) drew ids too.
	for _, se := range mon.SecurityEvents(monitor.Filter{}) {
		if !contains(s.ids, se.ID) {
			s.ids = append(s.ids, se.ID)
		}
	}
	return s
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// builder is a report builder on the scenario's store, its clock at the
// end of the scenario.
func (s *scenario) builder(cfg report.Config) *report.Builder {
	cfg.VerifierKey, cfg.Now, cfg.Version, cfg.RecomputeBaselines = s.vkey, s.clk.Now, "test", true
	return report.NewBuilder(s.st, cfg)
}

// tamper runs SQL on the store behind Custos's back.
func (s *scenario) tamper(t *testing.T, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	if s.kind == "sqlite" {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(s.dir, sqlite.FileName))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, q := range stmts {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		return
	}
	conn, err := pgx.Connect(ctx, s.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// normalize replaces what differs between runs (random ids, the signing
// key and everything it signs) with stable placeholders.
func (s *scenario) normalize(b []byte) []byte {
	out := string(b)
	for i, id := range s.ids {
		out = strings.ReplaceAll(out, id, fmt.Sprintf("<id-%d>", i+1))
	}
	return []byte(out)
}
