package ledger

// Failure isolation in group commit, on real stores: a request whose records
// the database refuses fails alone; a database that pushes back fails the
// group, and stores nothing. Validation at the door. (An internal test: it
// waits on the sequencer's queue to make one group out of many requests.)

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
	"github.com/custos-audit/custos/internal/store/sqlite"
	"github.com/jackc/pgx/v5"
)

// faults sits between the sequencer and a real store: it can hold the next
// write until released (so that requests pile up into one group), change a
// batch on its way to the database (records the database then refuses),
// and run something inside the append transaction.
type faults struct {
	mu      sync.Mutex
	gate    chan struct{} // the next write waits until it is closed
	entered chan struct{} // closed when a write is waiting at the gate
	mutate  func(*store.Batch) *store.Batch
	inTx    func() error // run inside the transaction of the next group (2+ events), once
}

func (f *faults) hold() (entered chan struct{}, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate, f.entered = make(chan struct{}), make(chan struct{})
	gate := f.gate
	return f.entered, func() { close(gate) }
}

func (f *faults) wait() {
	f.mu.Lock()
	gate, entered := f.gate, f.entered
	f.gate = nil
	f.mu.Unlock()
	if gate != nil {
		close(entered)
		<-gate
	}
}

func (f *faults) batch(b *store.Batch) *store.Batch {
	f.mu.Lock()
	m := f.mutate
	f.mu.Unlock()
	if m == nil || b == nil {
		return b
	}
	return m(b)
}

func (f *faults) takeInTx() func() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn := f.inTx
	f.inTx = nil
	return fn
}

// liteWriter is the SQLite store behind faults (not a SharedWriter).
type liteWriter struct {
	*sqlite.Store
	*faults
}

func (w liteWriter) Append(ctx context.Context, b *store.Batch) error {
	w.wait()
	return w.Store.Append(ctx, w.batch(b))
}

// pgWriter is the PostgreSQL store behind faults: a SharedWriter, so the
// sequencer appends under AppendLocked as on a real deployment.
type pgWriter struct {
	*postgres.Store
	*faults
}

func (w pgWriter) Append(ctx context.Context, b *store.Batch) error {
	return w.AppendLocked(ctx, func(store.Head) (*store.Batch, error) { return b, nil })
}

func (w pgWriter) AppendLocked(ctx context.Context, build func(store.Head) (*store.Batch, error)) error {
	w.wait()
	return w.Store.AppendLocked(ctx, func(h store.Head) (*store.Batch, error) {
		b, err := build(h)
		if err != nil || b == nil {
			return b, err
		}
		if len(b.Events) < 2 {
			return w.batch(b), nil // a plug or a checkpoint: not the group
		}
		if fn := w.takeInTx(); fn != nil {
			if err := fn(); err != nil {
				return nil, err
			}
		}
		return w.batch(b), nil
	})
}

// target is one real store under test.
type target struct {
	st     store.Store
	w      store.Writer // what the sequencer writes through
	f      *faults
	dir    string
	refuse func(t *testing.T) // make the database refuse events whose resource_id is "poison"
	// pushback makes the next group commit fail as when the database
	// pushes back; the returned function ends it.
	pushback func(t *testing.T) (end func())
}

func sqliteTarget(t *testing.T) *target {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &faults{}
	side := func(t *testing.T) *sql.DB {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	return &target{st: st, w: liteWriter{st, f}, f: f, dir: dir,
		refuse: func(t *testing.T) {
			// A real refusal by SQLite, SQLITE_CONSTRAINT_NOTNULL: the
			// poisoned event's leaf reaches the database without its hash.
			// (SQLite keeps any text, so nothing the door lets through is
			// refused by it; the fault is put in after the door.)
			f.mu.Lock()
			f.mutate = func(b *store.Batch) *store.Batch {
				c := *b
				c.Nodes = slices.Clone(b.Nodes)
				for _, e := range b.Events {
					if e.ResourceID != "poison" {
						continue
					}
					for i := range c.Nodes {
						if c.Nodes[i].Pos == LeafPos(e.Index) {
							c.Nodes[i].Hash = nil
						}
					}
				}
				return &c
			}
			f.mu.Unlock()
		},
		pushback: func(t *testing.T) func() {
			// Another connection holds the write lock: SQLITE_BUSY until
			// the commit's deadline.
			conn, err := side(t).Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
				t.Fatal(err)
			}
			return func() {
				conn.ExecContext(ctx, `ROLLBACK`)
				conn.Close()
			}
		},
	}
}

func postgresTarget(t *testing.T) *target {
	ctx := context.Background()
	app := fmt.Sprintf("custos-isolation-%d", time.Now().UnixNano())
	u, err := url.Parse(pgtest.FreshSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	st, err := postgres.Open(ctx, u.String(), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &faults{}
	return &target{st: st, w: pgWriter{st, f}, f: f, dir: t.TempDir(),
		refuse: func(t *testing.T) {
			// The case: invalid UTF-8 inside changes, which the
			// database refuses (SQLSTATE 22021). The door refuses it now, so
			// it is put in after the door, on the batch's way to the
			// database.
			f.mu.Lock()
			f.mutate = func(b *store.Batch) *store.Batch {
				c := *b
				c.Events = slices.Clone(b.Events)
				for i := range c.Events {
					if c.Events[i].ResourceID == "poison" {
						c.Events[i].Changes = json.RawMessage("{\"note\":\"\xff\xfe\"}")
					}
				}
				return &c
			}
			f.mu.Unlock()
		},
		pushback: func(t *testing.T) func() {
			// The database cuts the connection of the append transaction
			// (an administrator, a failover): SQLSTATE 57P01. Only that one:
			// the pool's idle connections stay up.
			admin, err := pgx.Connect(ctx, pgtest.ServerURL(t))
			if err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			f.inTx = func() error {
				_, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
					WHERE application_name = $1 AND state = 'idle in transaction'`, app)
				return err
			}
			f.mu.Unlock()
			return func() { admin.Close(ctx) }
		},
	}
}

func eachStore(t *testing.T, fn func(t *testing.T, tg *target)) {
	for _, s := range []struct {
		name string
		open func(*testing.T) *target
	}{{"sqlite", sqliteTarget}, {"postgres", postgresTarget}} {
		t.Run(s.name, func(t *testing.T) { fn(t, s.open(t)) })
	}
}

func isoEvent(i int) custos.Event {
	return custos.Event{User: custos.User{ID: fmt.Sprintf("u%d", i%7)}, Action: custos.ActionRead,
		ResourceType: "Patient", ResourceID: fmt.Sprintf("r%d", i), PatientID: fmt.Sprintf("p%d", i%13),
		Changes: json.RawMessage(`{"field":"name"}`)}
}

// attempts records every commit the sequencer tried.
type attempts struct {
	mu   sync.Mutex
	list []attemptRec
}

type attemptRec struct {
	events int
	err    error
}

func (a *attempts) observe(n int, _ time.Duration, err error) {
	a.mu.Lock()
	a.list = append(a.list, attemptRec{n, err})
	a.mu.Unlock()
}

func openSeq(t *testing.T, tg *target, cfg Config) (*Sequencer, *Signer) {
	t.Helper()
	sig, _, err := LoadOrCreateKey(filepath.Join(tg.dir, KeyFileName), "custos.test/isolation")
	if err != nil {
		t.Fatal(err)
	}
	seq, err := Open(context.Background(), tg.w, tg.st, tg.st, sig, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return seq, sig
}

type outcome struct {
	receipts []custos.Receipt
	err      error
}

// group sends n requests (send(i) sends the i-th) while the store holds
// the sequencer's writer, so that they queue and are committed as one
// group, and returns each request's answer.
func group(t *testing.T, tg *target, seq *Sequencer, n int, send func(i int) ([]custos.Receipt, error)) []outcome {
	t.Helper()
	entered, release := tg.f.hold()
	plug := make(chan outcome, 1)
	go func() {
		rs, err := seq.Append(context.Background(), "apikey:plug", []custos.Event{isoEvent(-1)})
		plug <- outcome{rs, err}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no write reached the store")
	}
	out := make([]outcome, n)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs, err := send(i)
			out[i] = outcome{rs, err}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); len(seq.reqs) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests queued", len(seq.reqs), n)
		}
	}
	release()
	wg.Wait()
	if p := <-plug; p.err != nil && custos.KindOf(p.err) != custos.Unavailable {
		t.Fatalf("the plug request: %v", p.err)
	}
	return out
}

// sendEvents sends reqs[i] as client i's request.
func sendEvents(seq *Sequencer, reqs [][]custos.Event) func(int) ([]custos.Receipt, error) {
	return func(i int) ([]custos.Receipt, error) {
		return seq.Append(context.Background(), fmt.Sprintf("apikey:client-%d", i), reqs[i])
	}
}

// checkStored checks that every receipt is stored at its index with its leaf
// hash, that the acknowledged indices are exactly 0..size-1 of the ledger
// (with the plug requests'), and that the audit passes.
func checkStored(t *testing.T, tg *target, seq *Sequencer, sig *Signer, acked map[uint64][]byte) {
	t.Helper()
	ctx := context.Background()
	seq.Close()
	h, err := tg.st.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := map[uint64]leaf.StateRecord{}
	srs, err := tg.st.StateRecords(ctx, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range srs {
		states[r.Index] = r
	}
	var plugs int
	for i := uint64(0); i < h.Size; i++ {
		if r, ok := states[i]; ok {
			if want, ok := acked[i]; !ok || !bytes.Equal(leaf.StateHash(&r), want) {
				t.Fatalf("state record %d (%s) is stored but not as acknowledged", i, r.Key())
			}
			continue
		}
		e, err := tg.st.Event(ctx, i)
		if err != nil {
			t.Fatalf("index %d: %v", i, err)
		}
		want, ok := acked[i]
		if !ok {
			if e.SubmittedBy == "apikey:plug" {
				plugs++
				continue
			}
			t.Fatalf("index %d (%s, %s) is stored but was never acknowledged", i, e.SubmittedBy, e.ResourceID)
		}
		if e.ResourceID == "poison" {
			t.Fatalf("index %d: a refused record was stored", i)
		}
		if !bytes.Equal(leaf.LeafHash(&e), want) {
			t.Fatalf("index %d: the stored event differs from its receipt", i)
		}
	}
	if uint64(len(acked)+plugs) != h.Size {
		t.Fatalf("%d acknowledged and %d plug records, the ledger holds %d", len(acked), plugs, h.Size)
	}
	rep, err := Audit(ctx, tg.st, AuditOptions{VKey: sig.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem != nil || rep.Records != h.Size || rep.Uncovered != 0 {
		t.Fatalf("audit: %d records, %d uncovered, problem %v; want %d intact", rep.Records, rep.Uncovered, rep.Problem, h.Size)
	}
}

// TestGroupCommitIsolatesRefusedRequest: in a group of 20 requests, one
// carries an event the database refuses (on PostgreSQL invalid UTF-8 in
// changes, SQLSTATE 22021; on SQLite a NOT NULL constraint). Only that
// request fails,
// as Invalid; the 19 others are acknowledged with contiguous indices and
// their leaf hashes, nothing of the refused request is stored, and the
// audit passes.
func TestGroupCommitIsolatesRefusedRequest(t *testing.T) {
	eachStore(t, func(t *testing.T, tg *target) {
		var att attempts
		seq, sig := openSeq(t, tg, Config{Observe: att.observe, CheckpointInterval: 50 * time.Millisecond})
		tg.refuse(t)
		const n, bad = 20, 13
		reqs := make([][]custos.Event, n)
		total := 0
		for i := range reqs {
			reqs[i] = []custos.Event{isoEvent(3 * i), isoEvent(3*i + 1), isoEvent(3*i + 2)}[:1+i%3]
			total += len(reqs[i])
		}
		reqs[bad][len(reqs[bad])-1].ResourceID = "poison" // its other events are fine: the request fails whole
		out := group(t, tg, seq, len(reqs), sendEvents(seq, reqs))
		acked := map[uint64][]byte{}
		for i, o := range out {
			if i == bad {
				if custos.KindOf(o.err) != custos.Invalid || !store.IsPermanent(o.err) {
					t.Fatalf("the refused request: %v (kind %v), want Invalid", o.err, custos.KindOf(o.err))
				}
				if o.receipts != nil {
					t.Fatal("the refused request got receipts")
				}
				continue
			}
			if o.err != nil {
				t.Fatalf("request %d failed with the refused one: %v", i, o.err)
			}
			if len(o.receipts) != len(reqs[i]) {
				t.Fatalf("request %d: %d receipts for %d events", i, len(o.receipts), len(reqs[i]))
			}
			for j, r := range o.receipts {
				if j > 0 && r.Index != o.receipts[j-1].Index+1 {
					t.Fatalf("request %d: receipts %d, %d are not contiguous", i, o.receipts[j-1].Index, r.Index)
				}
				if _, dup := acked[r.Index]; dup {
					t.Fatalf("index %d acknowledged twice", r.Index)
				}
				acked[r.Index] = r.LeafHash
			}
		}
		// The whole group was tried once, and refused for its data.
		att.mu.Lock()
		whole := false
		for _, a := range att.list {
			whole = whole || (a.events >= total && store.IsPermanent(a.err))
		}
		tries := len(att.list)
		att.mu.Unlock()
		if !whole {
			t.Fatal("no commit carried the whole group: the test did not make one group")
		}
		t.Logf("%d requests in one group, 1 refused: %d commits tried", n, tries)
		// The ledger goes on.
		rs, err := seq.Append(context.Background(), "apikey:after", []custos.Event{isoEvent(1000)})
		if err != nil {
			t.Fatal(err)
		}
		acked[rs[0].Index] = rs[0].LeafHash
		checkStored(t, tg, seq, sig, acked)
	})
}

// TestGroupCommitIsolatesConflict: a store's own refusal of a request is
// isolated too. In a group where each request creates an entity (an event
// and a create state record, as the key API writes), one creates an entity
// that exists already: it alone is answered Conflict, the others are
// acknowledged.
func TestGroupCommitIsolatesConflict(t *testing.T) {
	eachStore(t, func(t *testing.T, tg *target) {
		ctx := context.Background()
		seq, sig := openSeq(t, tg, Config{})
		create := func(id string) leaf.StateRecord {
			return leaf.StateRecord{Entity: "test_entity", ID: id, Op: leaf.OpCreate, Doc: json.RawMessage(`{"id":"` + id + `"}`)}
		}
		rs, err := seq.Append(ctx, "apikey:before", []custos.Event{isoEvent(0)}, create("taken"))
		if err != nil {
			t.Fatal(err)
		}
		acked := map[uint64][]byte{}
		for _, r := range rs {
			acked[r.Index] = r.LeafHash
		}
		const n, bad = 9, 4
		out := group(t, tg, seq, n, func(i int) ([]custos.Receipt, error) {
			id := fmt.Sprintf("e%d", i)
			if i == bad {
				id = "taken"
			}
			return seq.Append(ctx, fmt.Sprintf("apikey:client-%d", i), []custos.Event{isoEvent(10 + i)}, create(id))
		})
		for i, o := range out {
			if i == bad {
				if custos.KindOf(o.err) != custos.Conflict {
					t.Fatalf("the conflicting create: %v (kind %v), want Conflict", o.err, custos.KindOf(o.err))
				}
				continue
			}
			if o.err != nil || len(o.receipts) != 2 {
				t.Fatalf("request %d: %d receipts, %v; want acknowledged", i, len(o.receipts), o.err)
			}
			for _, r := range o.receipts {
				acked[r.Index] = r.LeafHash
			}
		}
		checkStored(t, tg, seq, sig, acked)
	})
}

// TestGroupCommitPushbackFailsAll: when the database pushes back (SQLite
// busy past the commit's deadline; PostgreSQL terminating the connection),
// every request of the group is answered Unavailable, nothing is stored,
// and the next appends commit.
func TestGroupCommitPushbackFailsAll(t *testing.T) {
	eachStore(t, func(t *testing.T, tg *target) {
		ctx := context.Background()
		seq, sig := openSeq(t, tg, Config{CommitTimeout: 500 * time.Millisecond, CheckpointInterval: time.Hour})
		rs, err := seq.Append(ctx, "apikey:before", []custos.Event{isoEvent(0)})
		if err != nil {
			t.Fatal(err)
		}
		acked := map[uint64][]byte{rs[0].Index: rs[0].LeafHash}
		before, err := tg.st.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		end := tg.pushback(t)
		reqs := make([][]custos.Event, 12)
		for i := range reqs {
			reqs[i] = []custos.Event{isoEvent(10 + i)}
		}
		out := group(t, tg, seq, len(reqs), sendEvents(seq, reqs))
		end()
		for i, o := range out {
			if custos.KindOf(o.err) != custos.Unavailable {
				t.Fatalf("request %d: %v (kind %v), want Unavailable", i, o.err, custos.KindOf(o.err))
			}
			if store.IsPermanent(o.err) {
				t.Fatalf("request %d: pushback classified as permanent: %v", i, o.err)
			}
		}
		after, err := tg.st.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Only the plug may have committed (when the tick's checkpoint
		// was the write held at the gate): nothing of the group.
		for i := before.Size; i < after.Size; i++ {
			if e, err := tg.st.Event(ctx, i); err != nil || e.SubmittedBy != "apikey:plug" {
				t.Fatalf("index %d stored after the pushback: %s, %v", i, e.SubmittedBy, err)
			}
		}
		t.Logf("pushback: %d requests answered Unavailable, e.g. %v", len(out), out[0].err)
		for i := 0; i < 3; i++ {
			rs, err := seq.Append(ctx, "apikey:after", []custos.Event{isoEvent(100 + i)})
			if err != nil {
				t.Fatalf("append after the pushback: %v", err)
			}
			acked[rs[0].Index] = rs[0].LeafHash
		}
		checkStored(t, tg, seq, sig, acked)
	})
}

// TestAppendValidatesAtTheDoor: the sequencer refuses invalid records from
// any caller (the server's own events included) before queueing them,
// answering Invalid with the fields at fault; valid records are stored in
// their normalized form, and the caller's events are left as they were.
func TestAppendValidatesAtTheDoor(t *testing.T) {
	ctx := context.Background()
	tg := sqliteTarget(t)
	seq, sig := openSeq(t, tg, Config{Limits: custos.Limits{MaxChanges: custos.MinMaxChanges}})
	ok := isoEvent(0)
	server := ok
	server.Kind = custos.KindServer
	for _, tt := range []struct {
		name   string
		events []custos.Event
		states []leaf.StateRecord
		field  string
	}{
		{"no action", []custos.Event{func() custos.Event { e := ok; e.Action = "PEEK"; return e }()}, nil, "action"},
		{"NUL in user id", []custos.Event{func() custos.Event { e := ok; e.User.ID = "u\x00"; return e }()}, nil, "user.id"},
		{"server event with NUL in its name", []custos.Event{func() custos.Event { e := server; e.User.Name = "key\x00name"; return e }()}, nil, "user.name"},
		{"invalid UTF-8 in changes", []custos.Event{func() custos.Event {
			e := ok
			e.Changes = json.RawMessage("{\"note\":\"\xff\"}")
			return e
		}()}, nil, "changes"},
		{"escaped NUL in changes", []custos.Event{func() custos.Event { e := ok; e.Changes = json.RawMessage(`{"a":"\u0000"}`); return e }()}, nil, "changes"},
		{"changes over the limit", []custos.Event{func() custos.Event {
			e := ok
			e.Changes = json.RawMessage(`{"a":"` + strings.Repeat("x", custos.MinMaxChanges) + `"}`)
			return e
		}()}, nil, "changes"},
		{"unknown kind", []custos.Event{func() custos.Event { e := ok; e.Kind = "witness"; return e }()}, nil, "kind"},
		{"empty disclosure", []custos.Event{func() custos.Event { e := ok; e.Disclosure = &custos.Disclosure{}; return e }()}, nil, "disclosure"},
		{"second event of a batch", []custos.Event{ok, func() custos.Event { e := ok; e.IPAddress = "not-an-ip"; return e }()}, nil, "[1].ip_address"},
		{"state without id", []custos.Event{ok}, []leaf.StateRecord{{Entity: "api_key", Op: leaf.OpPut, Doc: []byte(`{}`)}}, "states[0]"},
		{"state id with NUL", nil, []leaf.StateRecord{{Entity: "api_key", ID: "k\x00", Op: leaf.OpPut, Doc: []byte(`{}`)}}, "states[0].id"},
		{"state doc with NUL", nil, []leaf.StateRecord{{Entity: "api_key", ID: "k1", Op: leaf.OpPut, Doc: []byte(`{"name":"a\u0000b"}`)}}, "states[0].doc"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := seq.Append(ctx, "apikey:test", tt.events, tt.states...)
			var ce *custos.Error
			if !errors.As(err, &ce) || ce.Kind != custos.Invalid {
				t.Fatalf("Append = %v, want Invalid", err)
			}
			found := false
			for _, f := range ce.Fields {
				found = found || f.Field == tt.field
			}
			if !found {
				t.Fatalf("fields %+v do not name %q", ce.Fields, tt.field)
			}
		})
	}
	if h, err := tg.st.Head(ctx); err != nil || h.Size != 0 {
		t.Fatalf("after refusals the ledger holds %d records (%v), want 0", h.Size, err)
	}
	// Valid records pass, server events included, stored normalized; the
	// caller's slice is not touched.
	mapped := ok
	mapped.IPAddress, mapped.Changes = "::ffff:192.0.2.1", json.RawMessage(`{ "field" : "name" }`)
	in := []custos.Event{mapped, server}
	rs, err := seq.Append(ctx, "apikey:test", in)
	if err != nil {
		t.Fatal(err)
	}
	if in[0].IPAddress != "::ffff:192.0.2.1" || in[0].Outcome != "" || in[1].Kind != custos.KindServer {
		t.Fatalf("the caller's events were modified: %+v", in[0])
	}
	e, err := tg.st.Event(ctx, rs[0].Index)
	if err != nil {
		t.Fatal(err)
	}
	if e.IPAddress != "192.0.2.1" || string(e.Changes) != `{"field":"name"}` || e.Outcome != custos.OutcomeSuccess {
		t.Fatalf("stored %q %s %q, want the normalized form", e.IPAddress, e.Changes, e.Outcome)
	}
	if !bytes.Equal(leaf.LeafHash(&e), rs[0].LeafHash) {
		t.Fatal("the receipt is not the stored event's leaf hash")
	}
	if e2, _ := tg.st.Event(ctx, rs[1].Index); e2.Kind != custos.KindServer {
		t.Fatalf("server event stored as %q", e2.Kind)
	}
	checkStored(t, tg, seq, sig, map[uint64][]byte{rs[0].Index: rs[0].LeafHash, rs[1].Index: rs[1].LeafHash})
}
