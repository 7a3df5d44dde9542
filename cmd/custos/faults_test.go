package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/client"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
	"github.com/jackc/pgx/v5"
)

// Fault tests with real processes (issue 8): a node paused with SIGSTOP
// while it holds or waits for the append lock, and a node whose clock is
// shifted (CUSTOS_TEST_CLOCK_OFFSET), each beside a healthy node on one
// PostgreSQL schema.
//
// They assert correctness and progress only — the healthy node acknowledged
// writes during each pause, nothing acknowledged was lost or duplicated,
// every timestamp is the ledger's one clock, custos verify passes — and log
// the measured stalls (run with -v) for the README. CUSTOS_PAUSE_SECONDS
// sets how long a node stays stopped (default 6; the target is 60).

// faultPause is how long a paused node stays stopped.
func faultPause(t *testing.T) time.Duration {
	t.Helper()
	s := os.Getenv("CUSTOS_PAUSE_SECONDS")
	if s == "" {
		return 6 * time.Second
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("CUSTOS_PAUSE_SECONDS=%q: want a positive number of seconds", s)
	}
	return time.Duration(n) * time.Second
}

// faultDB is db with an application_name, so that a node's sessions can be
// told apart in pg_stat_activity and pg_locks.
func faultDB(t *testing.T, db, app string) string {
	t.Helper()
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	return u.String()
}

var (
	faultHTTP  = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}} // no timeout: a paused node answers late
	faultProbe = &http.Client{Timeout: 3 * time.Second}
)

// faultGet answers the status and body of GET base+path with the admin
// token; status 0 when the request failed.
func faultGet(base, path string) (int, string) {
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+crashToken)
	resp, err := faultProbe.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// faultBigChanges makes events large enough that an append's COPY streams
// for a while.
var faultBigChanges = json.RawMessage(fmt.Sprintf(`{"blob":%q}`, strings.Repeat("x", 4000)))

// faultLoad appends from several clients on every node until ended and
// keeps every receipt and when each node acknowledged.
type faultLoad struct {
	t     *testing.T
	mu    sync.Mutex
	acked map[uint64][]byte    // index → leaf hash
	ackAt map[uint64]time.Time // index → when it was acknowledged
	acks  [][]time.Time        // per node, the time of each acknowledgement
	big   atomic.Bool          // node 0's clients send large events
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startFaultLoad(t *testing.T, nodes []*proc, workers, batch int) *faultLoad {
	l := &faultLoad{t: t, acked: map[uint64][]byte{}, ackAt: map[uint64]time.Time{},
		acks: make([][]time.Time, len(nodes)), stop: make(chan struct{})}
	for n, p := range nodes {
		cl := client.New(p.url, crashToken, faultHTTP)
		for w := 0; w < workers; w++ {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				for i := 0; ; i++ {
					select {
					case <-l.stop:
						return
					default:
					}
					events := make([]custos.EventInput, batch)
					big := n == 0 && l.big.Load()
					for j := range events {
						events[j] = crashEvent(n*10_000_000 + w*1_000_000 + i*batch + j)
						if big {
							events[j].Changes = faultBigChanges
						}
					}
					rs, err := cl.Append(context.Background(), events)
					at := time.Now()
					if err != nil {
						time.Sleep(10 * time.Millisecond)
						continue
					}
					l.mu.Lock()
					for _, r := range rs {
						if prev, dup := l.acked[r.Index]; dup {
							same := "the same"
							if string(prev) != string(r.LeafHash) {
								same = "different"
							}
							t.Errorf("index %d acknowledged twice, with %s leaf hashes", r.Index, same)
						}
						l.acked[r.Index] = r.LeafHash
						l.ackAt[r.Index] = at
					}
					l.acks[n] = append(l.acks[n], at)
					l.mu.Unlock()
				}
			}()
		}
	}
	return l
}

func (l *faultLoad) end() { close(l.stop); l.wg.Wait() }

// acksOf returns node n's acknowledgement times in (from, to].
func (l *faultLoad) acksOf(n int, from, to time.Time) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Time
	for _, at := range l.acks[n] {
		if at.After(from) && !at.After(to) {
			out = append(out, at)
		}
	}
	return out
}

func (l *faultLoad) count(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks[n])
}

// readyTimeline polls a node's /readyz until stopped and records every
// answer, to be summed up as runs ("200 0s–2.4s, 503 2.5s–2.9s, …").
type readyTimeline struct {
	start   time.Time
	mu      sync.Mutex
	samples []readySample
	stop    chan struct{}
	done    chan struct{}
}

type readySample struct {
	at   time.Duration
	code int
}

func watchReadiness(base string, start time.Time) *readyTimeline {
	r := &readyTimeline{start: start, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			code, _ := faultGet(base, "/readyz")
			r.mu.Lock()
			r.samples = append(r.samples, readySample{time.Since(start), code})
			r.mu.Unlock()
			select {
			case <-r.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return r
}

func (r *readyTimeline) end() string {
	close(r.stop)
	<-r.done
	var b strings.Builder
	for i := 0; i < len(r.samples); {
		j := i
		for j+1 < len(r.samples) && r.samples[j+1].code == r.samples[i].code {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		code := strconv.Itoa(r.samples[i].code)
		if r.samples[i].code == 0 {
			code = "no answer"
		}
		fmt.Fprintf(&b, "%s %s–%s", code, r.samples[i].at.Round(100*time.Millisecond), r.samples[j].at.Round(100*time.Millisecond))
		i = j + 1
	}
	return b.String()
}

// lockWatch reads, on a connection of its own, what a node's sessions do
// with the append lock (an exclusive transaction-scoped advisory lock; the
// presence lock is shared).
type lockWatch struct {
	conn *pgx.Conn
	app  string
}

type lockSession struct {
	pid                   int32
	granted               bool
	state, wait, query    string
	key                   int64
	stateChange, xactTime time.Duration // how long in this state, in this transaction
}

func (s lockSession) String() string {
	return fmt.Sprintf("pid %d %q (wait %s) for %s: %s", s.pid, s.state, s.wait, s.stateChange.Round(time.Millisecond), s.query)
}

// sessions returns the node's sessions that hold (granted) or wait for an
// exclusive advisory lock.
func (w *lockWatch) sessions(ctx context.Context) ([]lockSession, error) {
	rows, err := w.conn.Query(ctx, `
		SELECT a.pid, l.granted, coalesce(a.state, ''), coalesce(a.wait_event_type || '/' || a.wait_event, ''),
		       left(regexp_replace(coalesce(a.query, ''), '\s+', ' ', 'g'), 70),
		       (l.classid::bigint << 32) | l.objid::bigint,
		       extract(epoch FROM clock_timestamp() - a.state_change)::float8,
		       extract(epoch FROM clock_timestamp() - a.xact_start)::float8
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.mode = 'ExclusiveLock' AND l.objsubid = 1 AND a.application_name = $1`, w.app)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (lockSession, error) {
		var s lockSession
		var sc, xt *float64
		err := r.Scan(&s.pid, &s.granted, &s.state, &s.wait, &s.query, &s.key, &sc, &xt)
		if sc != nil {
			s.stateChange = time.Duration(*sc * float64(time.Second))
		}
		if xt != nil {
			s.xactTime = time.Duration(*xt * float64(time.Second))
		}
		return s, err
	})
}

func (w *lockWatch) holder(ctx context.Context) (lockSession, bool) {
	ss, _ := w.sessions(ctx)
	for _, s := range ss {
		if s.granted {
			return s, true
		}
	}
	return lockSession{}, false
}

func (w *lockWatch) waiter(ctx context.Context) (lockSession, bool) {
	ss, _ := w.sessions(ctx)
	for _, s := range ss {
		if !s.granted {
			return s, true
		}
	}
	return lockSession{}, false
}

// activity lists what the sessions of an application do.
func activity(ctx context.Context, conn *pgx.Conn, app string) string {
	rows, err := conn.Query(ctx, `
		SELECT format('pid %s %s (wait %s) for %s ms: %s', pid, state, coalesce(wait_event_type || '/' || wait_event, ''),
		              round(extract(epoch FROM clock_timestamp() - state_change) * 1000), left(regexp_replace(query, '\s+', ' ', 'g'), 70))
		FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid`, app)
	if err != nil {
		return err.Error()
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err.Error()
	}
	return strings.Join(lines, "\n")
}

// faultLogPart is where a node's log stood when a round began.
type faultLogPart struct {
	round string
	from  int
}

// stopProcess sends SIGSTOP and waits until the kernel reports the process
// stopped, so that what its database sessions do next is done without it.
func stopProcess(t *testing.T, p *proc) time.Time {
	t.Helper()
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(stat)
		if err != nil {
			return at // no procfs: a stop is immediate enough
		}
		// pid (comm) S ...: the state follows the last ')'.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && (b[i+2] == 'T' || b[i+2] == 't') {
			return at
		}
	}
	t.Fatalf("process %d did not stop", p.cmd.Process.Pid)
	return at
}

func continueProcess(t *testing.T, p *proc) time.Time {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// TestPausedNodeCannotStopOthers: two nodes on one schema under load from
// several clients each (batches of 200 events, so that each holds the append
// lock a good part of the time). Node A is stopped with SIGSTOP for the
// pause, in rounds arranged so that it is stopped
//
//   - while it holds the append lock, its session idle in the transaction
//     (two rounds);
//   - while its session waits for the lock: a session of the test holds
//     the lock until A queues behind it, A is stopped, the lock is released,
//     and A's session is granted the lock with A stopped;
//   - in the middle of an append's COPY (A's clients then send large
//     events, so that the COPY streams for a while), its session holding
//     the lock. PostgreSQL applies neither statement_timeout nor
//     idle_in_transaction_session_timeout to a COPY FROM STDIN waiting for
//     the client's next message, so this round needs more than those
//     timeouts to bound the tenure.
//
// In each round node B must acknowledge writes during the pause; its longest
// gap between acknowledgements, the time to its first acknowledgement after
// the stop, and its /readyz answers are logged. After every round A must
// acknowledge writes again. At the end every receipt from both nodes is
// checked against the store, and custos verify --db passes.
func TestPausedNodeCannotStopOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs several server processes")
	}
	pause := faultPause(t)
	ctx := context.Background()
	db := pgtest.FreshSchema(t)
	bin := buildBinary(t)
	keyFile := filepath.Join(t.TempDir(), "shared.key")
	if _, _, err := ledger.LoadOrCreateKey(keyFile, "custos.test/faults"); err != nil {
		t.Fatal(err)
	}
	appA := fmt.Sprintf("custos-paused-%d", time.Now().UnixNano())
	a := startServe(t, bin, t.TempDir(), "--db", faultDB(t, db, appA), "--key-file", keyFile)
	defer a.cmd.Process.Kill()
	defer a.cmd.Process.Signal(syscall.SIGCONT) // never leave it stopped
	b := startServe(t, bin, t.TempDir(), "--db", faultDB(t, db, "custos-other"), "--key-file", keyFile)
	defer b.cmd.Process.Kill()

	mon, err := pgx.Connect(ctx, pgtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close(ctx)
	watch := &lockWatch{conn: mon, app: appA}

	load := startFaultLoad(t, []*proc{a, b}, 3, 200)
	stopped := false
	defer func() {
		if !stopped {
			a.cmd.Process.Signal(syscall.SIGCONT)
			load.end()
		}
	}()
	for deadline := time.Now().Add(20 * time.Second); load.count(0) < 3 || load.count(1) < 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the load did not start: %d and %d acknowledgements\nA:\n%s\nB:\n%s", load.count(0), load.count(1), a.log, b.log)
		}
	}

	// Each arrangement stops A at the moment it is after and answers when,
	// and what A's session was doing, or "" when it could not arrange it
	// in time.
	//
	// holding stops A when its session holding the lock is seen in the
	// state before wants, and keeps the stop when, once what the session
	// was executing had time to finish, it still holds the lock in the state
	// want (otherwise A goes on, and another moment is tried).
	holding := func(t *testing.T, before, want func(lockSession) bool) (time.Time, string) {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
			if s, ok := watch.holder(ctx); !ok || !before(s) {
				continue
			}
			at := stopProcess(t, a)
			time.Sleep(100 * time.Millisecond)
			if s, ok := watch.holder(ctx); ok && want(s) {
				return at, "A stopped holding the lock: " + s.String()
			}
			continueProcess(t, a)
			time.Sleep(50 * time.Millisecond)
		}
		return time.Time{}, ""
	}
	anyState := func(lockSession) bool { return true }
	idleInTransaction := func(s lockSession) bool { return s.state == "idle in transaction" }
	midCopy := func(s lockSession) bool {
		return s.state == "active" && s.wait == "Client/ClientRead" && strings.HasPrefix(strings.ToUpper(s.query), "COPY")
	}
	waiting := func(t *testing.T) (time.Time, string) {
		// The key A locks, seen while it holds it.
		var key int64
		for deadline := time.Now().Add(10 * time.Second); key == 0; {
			if s, ok := watch.holder(ctx); ok {
				key = s.key
			} else if time.Now().After(deadline) {
				return time.Time{}, ""
			}
		}
		conn, err := pgx.Connect(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, key); err != nil {
			t.Fatal(err)
		}
		var queued lockSession
		for deadline := time.Now().Add(5 * time.Second); ; {
			if s, ok := watch.waiter(ctx); ok {
				queued = s
				break
			}
			if time.Now().After(deadline) {
				return time.Time{}, ""
			}
		}
		at := stopProcess(t, a)
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		released := time.Now()
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if s, ok := watch.holder(ctx); ok && s.pid == queued.pid {
				return at, fmt.Sprintf("A's session queued for the lock (%s), A stopped, the lock released, and A's session granted it %s later: %s",
					queued.String(), time.Since(released).Round(time.Millisecond), s)
			}
		}
		s, _ := watch.waiter(ctx)
		return at, fmt.Sprintf("A's session queued for the lock (%s) and A stopped; A's session was not seen granted the lock within 1 s after it was released (still waiting: %v)",
			queued.String(), s.pid == queued.pid)
	}

	rounds := []struct {
		name    string
		big     bool
		arrange func(t *testing.T) (time.Time, string)
	}{
		{"holding the lock 1", false, func(t *testing.T) (time.Time, string) { return holding(t, anyState, idleInTransaction) }},
		{"holding the lock 2", false, func(t *testing.T) (time.Time, string) { return holding(t, anyState, idleInTransaction) }},
		{"waiting for the lock", false, waiting},
		{"holding the lock mid-COPY", true, func(t *testing.T) (time.Time, string) { return holding(t, midCopy, midCopy) }},
	}
	var report []string
	var failedRounds []faultLogPart
	for _, r := range rounds {
		t.Run(r.name, func(t *testing.T) {
			load.big.Store(r.big)
			defer load.big.Store(false)
			stopAt, how := r.arrange(t)
			if how == "" {
				t.Skipf("could not arrange the pause (%s) in time", r.name)
			}
			t.Log(how)
			ready := watchReadiness(b.url, stopAt)
			logFrom := b.log.Len()
			time.Sleep(time.Until(stopAt.Add(pause)))
			holder, stillHeld := watch.holder(ctx)
			bSessions := activity(ctx, mon, "custos-other")
			contAt := continueProcess(t, a)
			readiness := ready.end()

			acks := load.acksOf(1, stopAt, contAt)
			if len(acks) == 0 {
				at := "A's sessions held no lock at the end of the pause"
				if stillHeld {
					at = "at the end of the pause A's session still held the lock: " + holder.String()
				}
				t.Errorf("node B acknowledged nothing during the %s pause of node A; %s; B's /readyz: %s; B's sessions then:\n%s", pause, at, readiness, bSessions)
				failedRounds = append(failedRounds, faultLogPart{r.name, logFrom})
			}
			gap, prev := time.Duration(0), stopAt
			for _, at := range append(acks, contAt) {
				gap, prev = max(gap, at.Sub(prev)), at
			}
			first := "none"
			if len(acks) > 0 {
				first = acks[0].Sub(stopAt).Round(time.Millisecond).String()
			}

			// A goes on after it resumes.
			var aBack string
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if back := load.acksOf(0, contAt, time.Now()); len(back) > 0 {
					code, _ := faultGet(a.url, "/readyz")
					aBack = fmt.Sprintf("%s (its /readyz then %d)", back[0].Sub(contAt).Round(time.Millisecond), code)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node A acknowledged nothing in the 20 s after it resumed\n%s", a.log)
				}
			}
			line := fmt.Sprintf("%s: pause %s; B: %d acknowledgements during it, longest gap %s, first %s after the SIGSTOP; B's /readyz: %s; A's first acknowledgement %s after the SIGCONT",
				r.name, pause, len(acks), gap.Round(time.Millisecond), first, readiness, aBack)
			t.Log(line)
			report = append(report, line)
		})
	}

	stopped = true
	load.end()
	for _, p := range []*proc{a, b} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("clean shutdown: %v\n%s", err, p.log)
		}
	}
	for _, line := range report {
		t.Log(line)
	}
	for _, f := range failedRounds {
		var lines []string
		for _, line := range strings.Split(b.log.String()[f.from:], "\n") {
			if line != "" && !strings.Contains(line, "GET /readyz") && len(lines) < 20 {
				lines = append(lines, line)
			}
		}
		t.Logf("B's log from the SIGSTOP of round %q on (without /readyz):\n%s", f.round, strings.Join(lines, "\n"))
	}
	t.Logf("%d events acknowledged (%d requests by A, %d by B)", len(load.acked), load.count(0), load.count(1))

	st, err := postgres.Open(ctx, db, postgres.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	scanReceipts(t, st, load.acked)
	out, err := exec.Command(bin, "verify", "--db", db, "--key-file", keyFile).CombinedOutput()
	if err != nil {
		t.Fatalf("custos verify --db: %v\n%s", err, out)
	}
	t.Logf("verify: %s", strings.TrimSpace(string(out)))
}

// scanReceipts is checkReceipts in one scan of the store, for many
// receipts: every acknowledged index is stored with its leaf hash.
func scanReceipts(t *testing.T, st *postgres.Store, acked map[uint64][]byte) {
	t.Helper()
	found, wrong := 0, 0
	if err := st.ScanEvents(context.Background(), 0, func(e custos.Event) error {
		want, ok := acked[e.Index]
		if !ok {
			return nil
		}
		found++
		if got := leaf.LeafHash(&e); !bytes.Equal(got, want) {
			if wrong++; wrong <= 5 {
				t.Errorf("event %d: stored leaf hash differs from its receipt", e.Index)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if found != len(acked) {
		t.Fatalf("%d of %d acknowledged events lost", len(acked)-found, len(acked))
	}
	if wrong > 0 {
		t.Fatalf("%d acknowledged events stored with another leaf hash", wrong)
	}
}

// TestSkewedNodeKeepsOneClock: a node whose clock is 10 minutes ahead, then
// one 10 minutes behind (CUSTOS_TEST_CLOCK_OFFSET), beside a node with the
// right time on one schema, both under load, then the skewed node alone.
// Every record is stamped with the ledger's one clock (the database's; on
// this machine the reference clock): within 1 s of when it was
// acknowledged. The skewed node says so in its log, its metrics and its
// readiness; a checkpoint covers every record soon after the last append,
// also when the skewed node appends alone; the records are in the current
// month's partition and a search up to now finds them all, on either node;
// custos verify passes.
func TestSkewedNodeKeepsOneClock(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs several server processes")
	}
	bin := buildBinary(t)
	for _, off := range []string{"10m", "-10m"} {
		t.Run(off, func(t *testing.T) { skewedNode(t, bin, off) })
	}
}

var skewMetricRE = regexp.MustCompile(`(?m)^custos_clock_skew_seconds (\S+)$`)

// skewLoad appends through nodes until each acknowledged n requests, and
// adds the receipts and when they were acknowledged to acked and ackAt.
func skewLoad(t *testing.T, nodes []*proc, n int, acked map[uint64][]byte, ackAt map[uint64]time.Time) time.Time {
	t.Helper()
	load := startFaultLoad(t, nodes, 2, 20)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		done := true
		for i := range nodes {
			done = done && load.count(i) >= n
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			load.end()
			t.Fatalf("too few appends acknowledged in 15 s (node 0 the skewed one): %v", load.acks)
		}
	}
	load.end()
	last := time.Now()
	for idx, h := range load.acked {
		if _, dup := acked[idx]; dup {
			t.Errorf("index %d acknowledged twice", idx)
		}
		acked[idx], ackAt[idx] = h, load.ackAt[idx]
	}
	return last
}

// coveredSoon polls p's latest checkpoint until it covers the store's head,
// and says how long after last it did.
func coveredSoon(t *testing.T, st *postgres.Store, p *proc, last time.Time) string {
	t.Helper()
	ctx := context.Background()
	h, err := st.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cl := client.New(p.url, crashToken, nil)
	for deadline := last.Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		note, err := cl.Checkpoint(ctx)
		var size uint64
		if err == nil {
			if lines := strings.SplitN(string(note), "\n", 3); len(lines) == 3 {
				size, _ = strconv.ParseUint(lines[1], 10, 64)
			}
		}
		if size >= h.Size {
			return fmt.Sprintf("a checkpoint covered the head (%d records) %s after the last acknowledgement", h.Size, time.Since(last).Round(time.Millisecond))
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the last append the latest checkpoint covers %d records, not the head %d (err %v)", size, h.Size, err)
		}
	}
}

// searchUpToNow checks that a search with to = now through p finds every
// acknowledged event.
func searchUpToNow(t *testing.T, p *proc, name string, acked map[uint64][]byte) {
	t.Helper()
	cl := client.New(p.url, crashToken, nil)
	found := map[uint64]bool{}
	q := url.Values{"to": {time.Now().UTC().Format(time.RFC3339Nano)}, "limit": {"1000"}}
	to := q.Get("to")
	for page := 0; page < 1000; page++ {
		pg, err := cl.Events(context.Background(), q)
		if err != nil {
			t.Fatalf("search up to now through the %s node: %v", name, err)
		}
		for _, e := range pg.Items {
			found[e.Index] = true
		}
		if pg.NextCursor == "" {
			break
		}
		q.Set("cursor", pg.NextCursor)
	}
	missing := 0
	for idx := range acked {
		if !found[idx] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("a search up to now (to=%s) through the %s node misses %d of the %d acknowledged events", to, name, missing, len(acked))
	}
}

func skewedNode(t *testing.T, bin, off string) {
	offset, err := time.ParseDuration(off)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db := pgtest.FreshSchema(t)
	keyFile := filepath.Join(t.TempDir(), "shared.key")
	if _, _, err := ledger.LoadOrCreateKey(keyFile, "custos.test/skew"); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	healthy := startServe(t, bin, t.TempDir(), "--db", db, "--key-file", keyFile)
	defer healthy.cmd.Process.Kill()
	t.Setenv("CUSTOS_TEST_CLOCK_OFFSET", off)
	skewed := startServe(t, bin, t.TempDir(), "--db", db, "--key-file", keyFile)
	defer skewed.cmd.Process.Kill()
	os.Unsetenv("CUSTOS_TEST_CLOCK_OFFSET") // t.Setenv restores it at the end; nothing else starts with it

	st, err := postgres.Open(ctx, db, postgres.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// Appends through both nodes (node 0 is the skewed one).
	acked, ackAt := map[uint64][]byte{}, map[uint64]time.Time{}
	last := skewLoad(t, []*proc{skewed, healthy}, 30, acked, ackAt)
	t.Logf("both nodes: %d events acknowledged; %s", len(acked), coveredSoon(t, st, healthy, last))

	// The skewed node says so: readiness, metrics, log.
	var skewedReady, healthyReady int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		skewedReady, _ = faultGet(skewed.url, "/readyz")
		healthyReady, _ = faultGet(healthy.url, "/readyz")
		if skewedReady == http.StatusServiceUnavailable && healthyReady == http.StatusOK || time.Now().After(deadline) {
			break
		}
	}
	_, why := faultGet(skewed.url, "/readyz")
	if skewedReady != http.StatusServiceUnavailable {
		t.Errorf("the skewed node's /readyz answers %d, want 503", skewedReady)
	}
	if healthyReady != http.StatusOK {
		t.Errorf("the other node's /readyz answers %d, want 200", healthyReady)
	}
	metric := func(p *proc) float64 {
		code, body := faultGet(p.url, "/metrics")
		m := skewMetricRE.FindStringSubmatch(body)
		if code != http.StatusOK || m == nil {
			t.Errorf("GET /metrics: %d, no custos_clock_skew_seconds", code)
			return 0
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Errorf("custos_clock_skew_seconds %q: %v", m[1], err)
		}
		return v
	}
	skewedMetric, healthyMetric := metric(skewed), metric(healthy)
	if d := skewedMetric - offset.Seconds(); d < -2 || d > 2 {
		t.Errorf("the skewed node's custos_clock_skew_seconds is %g, want about %g", skewedMetric, offset.Seconds())
	}
	if healthyMetric < -2 || healthyMetric > 2 {
		t.Errorf("the other node's custos_clock_skew_seconds is %g, want about 0", healthyMetric)
	}
	t.Logf("skewed node: /readyz %d (%s), custos_clock_skew_seconds %g; other node: /readyz %d, custos_clock_skew_seconds %g",
		skewedReady, strings.TrimSpace(why), skewedMetric, healthyReady, healthyMetric)
	searchUpToNow(t, healthy, "other", acked)

	// The skewed node alone: it stamps and signs on the ledger's clock.
	healthy.cmd.Process.Signal(syscall.SIGTERM)
	if err := healthy.cmd.Wait(); err != nil {
		t.Errorf("clean shutdown: %v\n%s", err, healthy.log)
	}
	n := len(acked)
	last = skewLoad(t, []*proc{skewed}, 30, acked, ackAt)
	t.Logf("the skewed node alone: %d more events acknowledged; %s", len(acked)-n, coveredSoon(t, st, skewed, last))
	searchUpToNow(t, skewed, "skewed", acked)

	skewed.cmd.Process.Signal(syscall.SIGTERM)
	if err := skewed.cmd.Wait(); err != nil {
		t.Errorf("clean shutdown: %v\n%s", err, skewed.log)
	}
	end := time.Now()
	if i := strings.Index(skewed.log.String(), "clock is off"); i < 0 {
		t.Errorf("the skewed node's log does not say its clock is off:\n%s", skewed.log)
	} else {
		line := skewed.log.String()
		line = line[strings.LastIndexByte(line[:i], '\n')+1:]
		t.Logf("the skewed node's log: %s", line[:strings.IndexByte(line, '\n')])
		if n := strings.Count(skewed.log.String(), "clock is off"); n != 1 {
			t.Errorf("the skewed node's log says %d times that its clock is off, want once (when it crossed the bound)", n)
		}
	}
	if strings.Contains(healthy.log.String(), "clock is off") {
		t.Errorf("the other node's log says its clock is off:\n%s", healthy.log)
	}

	// Every record is stamped with the reference clock.
	checkReceipts(t, st, acked)
	var events, late int
	var worst time.Duration
	inRange := func(what string, ts time.Time) {
		if ts.Before(begin.Add(-time.Second)) || ts.After(end.Add(time.Second)) {
			if late++; late <= 5 {
				t.Errorf("%s is stamped %s, outside the test's run %s – %s", what, ts.Format(time.RFC3339Nano),
					begin.UTC().Format(time.RFC3339Nano), end.UTC().Format(time.RFC3339Nano))
			}
		}
	}
	if err := st.ScanEvents(ctx, 0, func(e custos.Event) error {
		events++
		inRange(fmt.Sprintf("record %d", e.Index), e.Timestamp)
		if at, ok := ackAt[e.Index]; ok {
			d := at.Sub(e.Timestamp)
			worst = max(worst, d.Abs())
			if d.Abs() > time.Second {
				if late++; late <= 5 {
					t.Errorf("record %d is stamped %s, %s before it was acknowledged", e.Index, e.Timestamp.Format(time.RFC3339Nano), d)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	states, err := st.StateRecords(ctx, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		inRange(fmt.Sprintf("state record %d", s.Index), s.Timestamp)
	}
	checkpoints := 0
	if err := st.ScanCheckpoints(ctx, func(cp store.Checkpoint) error {
		checkpoints++
		inRange(fmt.Sprintf("the checkpoint of size %d", cp.Size), cp.CreatedAt)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events, %d state records and %d checkpoints, all stamped within the run; an acknowledged event's timestamp at most %s from when it was acknowledged",
		events, len(states), checkpoints, worst.Round(time.Microsecond))

	// Month partitions follow the ledger's time: only this month's.
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass ORDER BY 1`)
	parts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, ts := range []time.Time{begin.UTC(), end.UTC()} {
		if name := fmt.Sprintf("events_%04d_%02d", ts.Year(), ts.Month()); !slices.Contains(want, name) {
			want = append(want, name)
		}
	}
	if !slices.Equal(parts, want) {
		t.Errorf("the events are partitioned into %v, want %v (the months of the test's run)", parts, want)
	}

	out, err := exec.Command(bin, "verify", "--db", db, "--key-file", keyFile).CombinedOutput()
	if err != nil {
		t.Fatalf("custos verify --db: %v\n%s", err, out)
	}
	t.Logf("verify: %s", strings.TrimSpace(string(out)))
}
