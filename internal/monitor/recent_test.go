package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/monitor"
)

// script drives a rig through what the rules decide on: bursts of failed
// logins from several addresses (IPv4, an IPv6 /64), password spraying,
// account guessing, failures then a success, unauthorized access, a
// session changing address, a bulk export, a configuration change, reported
// failures, state records alone and in the same requests as events, a
// status change, with passes at irregular points. Everything in it is
// decided by the ledger and the rig's clock, so two rigs that run it hold
// the same ledger.
func script(t *testing.T, r *rig, m *monitor.Monitor) {
	t.Helper()
	ctx := context.Background()
	tick := func() { r.clk.Add(time.Second) }
	fail := func(user, ip string) custos.Event {
		return custos.Event{User: custos.User{ID: user, Roles: []string{}}, Action: custos.ActionLogin, ResourceType: "Session",
			IPAddress: ip, Outcome: custos.OutcomeFailure, StatusCode: 401, Source: "ehr"}
	}
	app := func(states []leaf.StateRecord, evs ...custos.Event) {
		t.Helper()
		if _, err := r.l.Seq.Append(ctx, "apikey:ehr", evs, states...); err != nil {
			t.Fatal(err)
		}
	}
	entity := func(id string) []leaf.StateRecord {
		return []leaf.StateRecord{{Entity: "test_entity", ID: id, Op: leaf.OpPut, Doc: json.RawMessage(`{"id":"` + id + `"}`)}}
	}
	reported := func(id, ip string) []leaf.StateRecord { // as an application's report is recorded, with a fixed id
		doc := fmt.Sprintf(`{"id":%q,"event_type":"AUTH_FAILURE","severity":"LOW","description":"bad password on the portal","user":"p-1","ip_address":%q,"status":"open","count":1,"reported_by":"apikey:portal"}`, id, ip)
		return []leaf.StateRecord{{Entity: monitor.EntitySecurityEvent, ID: id, Op: leaf.OpCreate, Doc: json.RawMessage(doc)}}
	}
	for range 3 {
		tick()
		app(nil, fail("dr.grey", "203.0.113.9"))
	}
	tick()
	app(entity("e1"), fail("dr.grey", "203.0.113.9"), fail("dr.grey", "203.0.113.9"), fail("nurse.b", "198.51.100.4"),
		fail("dr.grey", "203.0.113.9"), fail("nurse.b", "198.51.100.4"))
	app(entity("e2"))
	tick()
	app(reported("se-reported-1", "198.51.100.4"))
	app(reported("se-reported-2", "198.51.100.4"), fail("nurse.b", "198.51.100.4"))
	step(t, m)
	for i := range 3 { // password spraying: many users from one address
		tick()
		evs := make([]custos.Event, 4)
		for j := range evs {
			evs[j] = fail(fmt.Sprintf("user-%d", 4*i+j), "192.0.2.77")
		}
		var states []leaf.StateRecord
		if i == 1 {
			states = entity("e3")
		}
		app(states, evs...)
	}
	for i := range 4 { // account guessing: one user from many addresses
		tick()
		app(nil, fail("victim", fmt.Sprintf("198.51.100.%d", 20+i)))
	}
	step(t, m)
	for range 5 { // failures, then a success
		tick()
		app(nil, fail("dr.x", "192.0.2.200"))
	}
	ok := fail("dr.x", "192.0.2.200")
	ok.Outcome, ok.StatusCode = custos.OutcomeSuccess, 200
	app(nil, ok)
	var denied []custos.Event
	for i := range 12 { // unauthorized access
		denied = append(denied, custos.Event{User: custos.User{ID: "snoop", Roles: []string{"clerk"}}, Action: custos.ActionRead,
			ResourceType: "Patient", ResourceID: fmt.Sprint(i), PatientID: fmt.Sprintf("p-%d", i), IPAddress: "192.0.2.9",
			Outcome: custos.OutcomeFailure, StatusCode: 403, Source: "ehr"})
	}
	app(entity("e4"), denied...)
	tick()
	for i, ip := range []string{"192.0.2.30", "203.0.113.31"} { // one session, two addresses
		app(nil, custos.Event{User: custos.User{ID: "dr.y", Roles: []string{"physician"}}, Action: custos.ActionRead,
			ResourceType: "Patient", PatientID: "p-9", IPAddress: ip, UserAgent: fmt.Sprintf("agent-%d", i), SessionID: "sess-1",
			Outcome: custos.OutcomeSuccess, Source: "ehr"})
	}
	app(nil, custos.Event{User: custos.User{ID: "dr.z", Roles: []string{"physician"}}, Action: custos.ActionExport,
		ResourceType: "Bundle", IPAddress: "192.0.2.31", Outcome: custos.OutcomeSuccess, Source: "ehr",
		Changes: json.RawMessage(`{"record_count": 5000}`)})
	app(nil, custos.Event{Kind: custos.KindServer, User: custos.User{ID: "admin", Roles: []string{"admin"}}, Action: custos.ActionUpdate,
		ResourceType: "Role", ResourceID: "physician", IPAddress: "192.0.2.32", Outcome: custos.OutcomeSuccess, Source: "ehr"})
	step(t, m)
	for i := range 6 { // an IPv6 attacker rotating the low bits
		tick()
		app(nil, fail("dr.grey", fmt.Sprintf("2001:db8:1:2::%x", 0x1000+i*7919)))
	}
	bf := alerts(m, custos.BruteForce)
	if len(bf) == 0 {
		t.Fatal("no BRUTE_FORCE to change the status of")
	}
	if _, err := m.SetStatus(ctx, "user:sec", bf[len(bf)-1].ID, custos.StatusAcknowledged, "looking"); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		tick()
		app(nil, fail("dr.grey", "203.0.113.9"), fail("dr.grey", "203.0.113.9"))
	}
	step(t, m)
	r.clk.Add(2 * time.Second)
	step(t, m, m)
}

// decisions is everything a monitor decided and recorded.
type decisions struct {
	Events  []monitor.SecurityEvent
	Blocks  []monitor.Block
	Records []leaf.StateRecord
	Alerts  int
}

func decided(t *testing.T, r *rig, m *monitor.Monitor) decisions {
	t.Helper()
	recs, err := r.l.Store.StateRecords(context.Background(), -1)
	if err != nil {
		t.Fatal(err)
	}
	as, err := m.Alerts(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return decisions{Events: m.SecurityEvents(monitor.Filter{}), Blocks: m.Blocks(false), Records: recs, Alerts: len(as)}
}

// sameDecisions reports the first difference between what two monitors
// decided.
func sameDecisions(t *testing.T, what string, got, want decisions) {
	t.Helper()
	first := func(kind string, n, m int, show func(i int) (g, w any)) {
		t.Helper()
		for i := range min(n, m) {
			if g, w := show(i); !reflect.DeepEqual(g, w) {
				t.Errorf("%s: %s %d differs:\n%+v\nfrom the store\n%+v", what, kind, i, g, w)
				return
			}
		}
		if n != m {
			t.Errorf("%s: %d %s, %d from the store", what, n, kind, m)
		}
	}
	first("security events", len(got.Events), len(want.Events), func(i int) (any, any) { return got.Events[i], want.Events[i] })
	first("blocks", len(got.Blocks), len(want.Blocks), func(i int) (any, any) { return got.Blocks[i], want.Blocks[i] })
	first("state records", len(got.Records), len(want.Records), func(i int) (any, any) {
		show := func(r leaf.StateRecord) string {
			return fmt.Sprintf("%d %s %s %s %s", r.Index, r.Timestamp, r.Op, r.ID, r.Doc)
		}
		return show(got.Records[i]), show(want.Records[i])
	})
	if got.Alerts != want.Alerts {
		t.Errorf("%s: %d alerts, %d from the store", what, got.Alerts, want.Alerts)
	}
}

// TestRecentDecidesAsTheStore: the same script on two ledgers, one watched
// by a monitor told of the sequencer's commits (events from memory), the
// other by one that reads every event from the store. They raise the same
// security events (ids, counts, first and last seen, history), the same
// blocks, and record the same state records at the same indices.
//
// A third monitor holds only 3 events, fewer than most passes cover, and is
// not told of every third commit (as if another node made it): what it
// reads back from the store makes up the rest, and it decides the same.
func TestRecentDecidesAsTheStore(t *testing.T) {
	mem, sto, tiny := newRig(t), newRig(t), newRig(t)
	a, b, c := mem.monitor(), sto.storeOnly(), tiny.holding(3)
	n := 0
	tiny.l.Seq.SetCommitted(func(from, to uint64, events []custos.Event) {
		if n++; n%3 != 0 {
			c.Committed(from, to, events)
		}
	})
	script(t, mem, a)
	script(t, sto, b)
	script(t, tiny, c)
	da, db, dc := decided(t, mem, a), decided(t, sto, b), decided(t, tiny, c)
	sameDecisions(t, "a monitor holding 3 events, not told of a third of the commits", dc, db)
	sameDecisions(t, "a monitor told of every commit", da, db)
	rules := map[string]int{}
	for _, e := range db.Events {
		rules[e.Rule]++
	}
	if len(rules) < 8 || len(db.Blocks) < 2 {
		t.Fatalf("the script decided too little to compare: security events by rule %v, %d blocks", rules, len(db.Blocks))
	}
	if sa, sb := a.Stats(), b.Stats(); sa != sb {
		t.Errorf("engine state differs: %+v from memory, %+v from the store", sa, sb)
	}
	if sc, sb := c.Stats(), b.Stats(); sc != sb {
		t.Errorf("engine state differs: %+v holding 3 events, %+v from the store", sc, sb)
	}
	t.Logf("%d security events (by rule %v), %d blocks, %d state records, %d alerts", len(db.Events), rules, len(db.Blocks), len(db.Records), db.Alerts)
}

// TestRecentMissesNothingUntold: failures committed without the monitor
// being told (another node's appends, in effect) between failures it is
// told of still make up the burst, in order: one alert with every failure
// counted, one block.
func TestRecentMissesNothingUntold(t *testing.T) {
	r := newRig(t)
	m := r.monitor()
	for i := range 12 {
		if i%3 != 0 {
			r.l.Seq.SetCommitted(func(uint64, uint64, []custos.Event) {}) // as another node's commit
		}
		r.failLogins(1, "203.0.113.60", same)
		r.l.Seq.SetCommitted(m.Committed)
		if i%4 == 3 {
			step(t, m)
		}
	}
	r.clk.Add(2 * time.Second)
	step(t, m, m)
	bf := alerts(m, custos.BruteForce)
	if len(bf) != 1 || bf[0].Count != 12 {
		t.Fatalf("12 failures, 4 of them told: %+v", bf)
	}
	if n := r.stateRecords(monitor.EntityBlock); n != 1 {
		t.Errorf("%d block records", n)
	}
}

// TestRecentRestartCatchesUp: failures told to a monitor that stops before
// its next pass are caught up from the store by the next one (an empty
// buffer), which goes on counting what it is told of.
func TestRecentRestartCatchesUp(t *testing.T) {
	r := newRig(t)
	m := r.monitor()
	r.failLogins(2, "198.51.100.70", same)
	step(t, m)
	r.failLogins(2, "198.51.100.70", same) // told to m, never passed: it stops
	m = r.monitor()
	if got := alerts(m, custos.BruteForce); len(got) != 0 {
		t.Fatalf("4 failures raised %+v", got)
	}
	r.failLogins(1, "198.51.100.70", same)
	step(t, m)
	if got := alerts(m, custos.BruteForce); len(got) != 1 {
		t.Fatalf("the fifth failure after a restart: %d BRUTE_FORCE", len(got))
	}
	if _, blocked := m.Blocked("198.51.100.70"); !blocked {
		t.Fatal("not blocked")
	}
}
