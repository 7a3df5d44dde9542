package monitor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/alert"
	"github.com/custos-audit/custos/internal/clocktest"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/monitor"
	"github.com/custos-audit/custos/internal/rules"
)

// rig is a real ledger on SQLite with an injected clock shared by the
// ledger and the monitors.
type rig struct {
	t   *testing.T
	l   *ledgertest.Ledger
	clk *clocktest.Clock
}

func newRig(t *testing.T) *rig {
	t.Helper()
	clk := clocktest.New(time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC))
	l := ledgertest.Open(t, t.TempDir(), "custos.test/monitor", ledger.Config{Now: clk.Now, LocalClock: true})
	t.Cleanup(l.Close)
	return &rig{t: t, l: l, clk: clk}
}

// monitor starts a monitor on the rig's ledger: a node, or a node restarted.
// It takes what the sequencer commits from then on from memory, as the
// server's does (the monitor started before it no longer does).
func (r *rig) monitor() *monitor.Monitor {
	r.t.Helper()
	m := r.storeOnly()
	r.l.Seq.SetCommitted(m.Committed)
	return m
}

// storeOnly starts a monitor that reads every event from the store.
func (r *rig) storeOnly() *monitor.Monitor {
	r.t.Helper()
	return r.holding(0)
}

// holding starts a monitor that holds recent events of this node (0: the
// default), told of none yet.
func (r *rig) holding(recent int) *monitor.Monitor {
	r.t.Helper()
	m, err := monitor.New(context.Background(), r.l.Store, r.l.Seq, ledger.NewStateFeed(r.l.Store, r.l.Signer.VerifierKey()),
		monitor.Config{Rules: rules.DefaultConfig(), Now: r.clk.Now, UpdateEvery: time.Second, Recent: recent})
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

// failLogins appends n failed LOGIN events from ip, one a second.
func (r *rig) failLogins(n int, ip string, user func(i int) string) {
	r.t.Helper()
	for i := range n {
		r.clk.Add(time.Second)
		ev := custos.Event{User: custos.User{ID: user(i), Roles: []string{}}, Action: custos.ActionLogin,
			ResourceType: "Session", IPAddress: ip, Outcome: custos.OutcomeFailure, StatusCode: 401, Source: "ehr"}
		if _, err := r.l.Seq.Append(context.Background(), "apikey:ehr", []custos.Event{ev}); err != nil {
			r.t.Fatal(err)
		}
	}
}

func step(t *testing.T, ms ...*monitor.Monitor) {
	t.Helper()
	for _, m := range ms {
		if err := m.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func same(int) string { return "dr.grey" }

// alerts returns the rule-raised security events of type typ.
func alerts(m *monitor.Monitor, typ custos.SecurityEventType) []monitor.SecurityEvent {
	return m.SecurityEvents(monitor.Filter{EventType: typ})
}

// stateRecords counts the ledger's state records of entity.
func (r *rig) stateRecords(entity string) int {
	recs, err := r.l.Store.StateRecords(context.Background(), -1)
	if err != nil {
		r.t.Fatal(err)
	}
	n := 0
	for _, rec := range recs {
		if rec.Entity == entity {
			n++
		}
	}
	return n
}

// TestBruteForceRaisesOneAlertAndBlocks: a burst of 100 failures from one
// address raises one BRUTE_FORCE, whose count follows the burst, and one
// block, enforced at once.
func TestBruteForceRaisesOneAlertAndBlocks(t *testing.T) {
	r := newRig(t)
	m := r.monitor()
	r.failLogins(4, "203.0.113.9", same)
	step(t, m)
	if got := alerts(m, custos.BruteForce); len(got) != 0 {
		t.Fatalf("4 failures raised %v", got)
	}
	if _, blocked := m.Blocked("203.0.113.9"); blocked {
		t.Fatal("blocked after 4 failures")
	}
	r.failLogins(1, "203.0.113.9", same)
	step(t, m)
	bf := alerts(m, custos.BruteForce)
	if len(bf) != 1 || bf[0].Severity != custos.SeverityHigh || bf[0].Rule == "" || bf[0].Status != custos.StatusOpen {
		t.Fatalf("after 5 failures: %+v", bf)
	}
	if b, blocked := m.Blocked("203.0.113.9"); !blocked || !b.BlockedUntil.After(r.clk.Now().Add(23*time.Hour)) {
		t.Fatalf("not blocked for 24 h after 5 failures: %+v %v", b, blocked)
	}
	if got := m.Blocks(true); len(got) != 1 || got[0].CIDR != "203.0.113.9/32" {
		t.Fatalf("blocks recorded: %+v", got)
	}
	r.failLogins(95, "203.0.113.9", same)
	step(t, m)
	r.clk.Add(2 * time.Second)
	step(t, m)
	bf = alerts(m, custos.BruteForce)
	if len(bf) != 1 || bf[0].Count != 100 {
		t.Fatalf("after 100 failures: %d alerts, count %d", len(bf), bf[0].Count)
	}
	if n := r.stateRecords(monitor.EntityBlock); n != 1 {
		t.Errorf("%d block records for one attack", n)
	}
	if _, blocked := m.Blocked("203.0.113.10"); blocked {
		t.Error("a neighbour IPv4 address is blocked")
	}
}

// TestIPv6LowBitsAreOneKey: an attacker rotating the low 64 bits is one
// address key, blocked as a /64.
func TestIPv6LowBitsAreOneKey(t *testing.T) {
	r := newRig(t)
	m := r.monitor()
	for i := range 5 {
		r.failLogins(1, fmt.Sprintf("2001:db8:1:2::%x", 0x1000+i*7919), same)
	}
	step(t, m)
	if _, blocked := m.Blocked("2001:db8:1:2:ffff::1"); !blocked {
		t.Fatal("another address of the /64 is not blocked")
	}
	if _, blocked := m.Blocked("2001:db8:1:3::1"); blocked {
		t.Fatal("the next /64 is blocked")
	}
}

// TestRestartMidBurstForgetsNothing: a restart after 3 failures goes on
// counting; a restart after the alert raises no second one.
func TestRestartMidBurstForgetsNothing(t *testing.T) {
	r := newRig(t)
	m := r.monitor()
	r.failLogins(3, "198.51.100.7", same)
	step(t, m)
	m = r.monitor() // restarted
	r.failLogins(2, "198.51.100.7", same)
	step(t, m)
	if got := alerts(m, custos.BruteForce); len(got) != 1 {
		t.Fatalf("3 failures, a restart, 2 more: %d BRUTE_FORCE", len(got))
	}
	m = r.monitor() // restarted again, mid-attack
	r.failLogins(10, "198.51.100.7", same)
	step(t, m)
	if got := alerts(m, custos.BruteForce); len(got) != 1 {
		t.Fatalf("a restart after the alert: %d BRUTE_FORCE", len(got))
	}
	if n := r.stateRecords(monitor.EntityBlock); n != 1 {
		t.Errorf("%d block records", n)
	}
}

// TestRestartRecordsWhatACrashLost: outcomes decided but not recorded
// before a crash are recorded at the next start.
func TestRestartRecordsWhatACrashLost(t *testing.T) {
	r := newRig(t)
	r.failLogins(5, "192.0.2.44", same) // no monitor ran: as if it crashed before recording
	m := r.monitor()
	if got := alerts(m, custos.BruteForce); len(got) != 1 {
		t.Fatalf("after a start on an unrecorded burst: %d BRUTE_FORCE", len(got))
	}
	if _, blocked := m.Blocked("192.0.2.44"); !blocked {
		t.Fatal("not blocked")
	}
}

// TestTwoNodesOneAlert: two monitors on one ledger (two nodes) decide the
// same thing; exactly one security event and one block are recorded.
func TestTwoNodesOneAlert(t *testing.T) {
	r := newRig(t)
	a, b := r.monitor(), r.monitor()
	r.failLogins(7, "203.0.113.50", same)
	step(t, a, b, a, b)
	if n := r.stateRecords(monitor.EntityBlock); n != 1 {
		t.Errorf("%d block records from two nodes", n)
	}
	if ga, gb := alerts(a, custos.BruteForce), alerts(b, custos.BruteForce); len(ga) != 1 || len(gb) != 1 || ga[0].ID != gb[0].ID {
		t.Errorf("nodes disagree: %+v / %+v", ga, gb)
	}
	if _, blocked := b.Blocked("203.0.113.50"); !blocked {
		t.Error("node B does not enforce the block")
	}
}

// TestReportedAuthFailures: failures an application reports count like
// failed logins.
func TestReportedAuthFailures(t *testing.T) {
	r := newRig(t)
	m := r.monitor()
	ctx := context.Background()
	for range 5 {
		r.clk.Add(time.Second)
		if _, err := m.Report(ctx, "apikey:portal", custos.SecurityEvent{EventType: custos.AuthFailure,
			Severity: custos.SeverityLow, Description: "bad password on the portal", IPAddress: "203.0.113.77", User: "p-1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, blocked := m.Blocked("203.0.113.77"); !blocked {
		t.Fatalf("5 reported failures did not block: %+v", m.SecurityEvents(monitor.Filter{}))
	}
	for _, bad := range []custos.SecurityEvent{
		{EventType: "PEEKING", Severity: custos.SeverityLow},
		{EventType: custos.AuthFailure, Severity: "SEVERE"},
		{EventType: custos.AuthFailure, Severity: custos.SeverityLow, Rule: "brute_force"},
		{EventType: custos.AuthFailure, Severity: custos.SeverityLow, IPAddress: "300.1.1.1"},
	} {
		if _, err := m.Report(ctx, "apikey:portal", bad); custos.KindOf(err) != custos.Invalid {
			t.Errorf("report %+v: %v, want invalid", bad, err)
		}
	}
}

// TestManualBlocksAndStatus: blocks by hand, lifts, refusals; status
// changes keep their history.
func TestManualBlocksAndStatus(t *testing.T) {
	r := newRig(t)
	m := r.monitor()
	ctx := context.Background()
	b, err := m.AddBlock(ctx, "apikey:sec", "198.51.100.0/24", "scanner", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, blocked := m.Blocked("198.51.100.200"); !blocked {
		t.Fatal("an address of a blocked range is not blocked")
	}
	for _, c := range []struct {
		target string
		d      time.Duration
	}{{"10.0.0.0/8", time.Hour}, {"::/0", time.Hour}, {"198.51.100.1", 0}, {"198.51.100.1", -time.Hour}, {"not-an-ip", time.Hour}} {
		if _, err := m.AddBlock(ctx, "apikey:sec", c.target, "x", c.d); custos.KindOf(err) != custos.Invalid {
			t.Errorf("block %s for %s: %v, want invalid", c.target, c.d, err)
		}
	}
	for _, note := range []string{"bad \xff utf-8", "a\x00nul", strings.Repeat("x", 2001)} {
		if _, err := m.Lift(ctx, "apikey:sec", b.ID, note); custos.KindOf(err) != custos.Invalid {
			t.Errorf("lift with note %.20q: %v, want invalid", note, err)
		}
	}
	if _, blocked := m.Blocked("198.51.100.200"); !blocked {
		t.Fatal("a refused lift lifted the block")
	}
	if _, err := m.Lift(ctx, "apikey:sec", b.ID, "false positive"); err != nil {
		t.Fatal(err)
	}
	if _, blocked := m.Blocked("198.51.100.200"); blocked {
		t.Fatal("still blocked after the lift")
	}
	if _, err := m.Lift(ctx, "apikey:sec", b.ID, ""); custos.KindOf(err) != custos.NotFound {
		t.Errorf("lifting twice: %v", err)
	}
	se, err := m.Report(ctx, "apikey:portal", custos.SecurityEvent{EventType: custos.DataExport, Severity: custos.SeverityMedium,
		Description: "bulk export", User: "dr.grey"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.SetStatus(ctx, "user:sec", se.ID, custos.StatusAcknowledged, "looking"); err != nil {
		t.Fatal(err)
	}
	got, err := m.SetStatus(ctx, "user:sec", se.ID, custos.StatusResolved, "approved export")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != custos.StatusResolved || len(got.History) != 2 || got.History[1].Note != "approved export" {
		t.Errorf("after two status changes: %+v", got)
	}
	as, err := m.Alerts(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []alert.Kind
	for _, a := range as {
		if a.ID == se.ID {
			kinds = append(kinds, a.Kind)
		}
	}
	if fmt.Sprint(kinds) != fmt.Sprint([]alert.Kind{alert.Raised, alert.Status, alert.Status}) {
		t.Errorf("the alerts of a report and two status changes: %v", kinds)
	}
	if _, err := m.SetStatus(ctx, "user:sec", se.ID, custos.StatusResolved, ""); custos.KindOf(err) != custos.Conflict {
		t.Errorf("resolving twice: %v", err)
	}
	if _, err := m.SetStatus(ctx, "user:sec", se.ID, "closed", ""); custos.KindOf(err) != custos.Invalid {
		t.Errorf("an unknown status: %v", err)
	}
}

// TestBaselineSurvivesARestart: a user's weeks of ordinary PHI access are
// seeded from the store at a start, so an unusual day after a restart is
// still judged against the user's own baseline.
func TestBaselineSurvivesARestart(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	read := func(patient string) custos.Event {
		return custos.Event{User: custos.User{ID: "dr.grey", Roles: []string{"physician"}}, Action: custos.ActionRead,
			ResourceType: "Patient", PatientID: patient, Outcome: custos.OutcomeSuccess, Source: "ehr"}
	}
	for day := range 20 { // 20 ordinary days: 8 to 12 patients a day
		for p := range 8 + day%5 {
			if _, err := r.l.Seq.Append(ctx, "apikey:ehr", []custos.Event{read(fmt.Sprintf("p-%d-%d", day, p))}); err != nil {
				t.Fatal(err)
			}
		}
		r.clk.Add(24 * time.Hour)
	}
	m := r.monitor() // started after the 20 days: only the last one is replayed
	for p := range 60 {
		if _, err := r.l.Seq.Append(ctx, "apikey:ehr", []custos.Event{read(fmt.Sprintf("q-%d", p))}); err != nil {
			t.Fatal(err)
		}
	}
	step(t, m)
	if got := alerts(m, custos.UnusualPHIAccess); len(got) != 1 || got[0].User != "dr.grey" {
		t.Fatalf("60 patients in a day against a baseline of about 10, after a restart: %+v", got)
	}
}
