package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
)

// Bounded resources (issue 7), measured on a real `custos serve` process.
//
// By default each test runs for a few seconds and asserts only what does not
// depend on the machine's speed: /readyz answered 200 throughout, ingest made
// progress, every refusal was a 503 with Retry-After. Set
// CUSTOS_RESOURCES_SECONDS (e.g. 30) for the full run whose figures the README
// reports; CUSTOS_RESOURCES_PRELOAD sets how many events are loaded before
// the searches (default 20,000; 300,000 in a full run), and
// CUSTOS_RESOURCES_ROUNDS how many phases with searches alternate with
// phases without (default 1; 2 in a full run); CUSTOS_RESOURCES_UPLOADS how
// many clients upload at once (default 32); CUSTOS_RESOURCES_BIN runs the tests against another build of custos (the
// previous release, for a before/after comparison).

// resourcesPhase is how long each measured phase runs.
func resourcesPhase(t *testing.T) (time.Duration, bool) {
	t.Helper()
	s := os.Getenv("CUSTOS_RESOURCES_SECONDS")
	if s == "" {
		return 2 * time.Second, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("CUSTOS_RESOURCES_SECONDS=%q: want a positive number of seconds", s)
	}
	return time.Duration(n) * time.Second, true
}

func resourcesBinary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("CUSTOS_RESOURCES_BIN"); b != "" {
		return b
	}
	return buildBinary(t)
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, s)
	}
	return n
}

// resourcesClient sends many requests in parallel to one server.
var resourcesClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 256}}

func post(ctx context.Context, base string, body []byte) (int, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+crashToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := resourcesClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// eventsBody encodes n events of about size bytes each (the padding in
// changes).
func eventsBody(seed, n, size int) []byte {
	pad := strings.Repeat("x", max(0, size-400))
	evs := make([]custos.EventInput, n)
	for i := range evs {
		k := seed*1_000_003 + i
		evs[i] = custos.EventInput{
			User:   &custos.User{ID: fmt.Sprintf("clin-%04d", k%2000), Name: "Clinician", Roles: []string{"physician"}},
			Action: custos.ActionRead, ResourceType: "Observation", ResourceID: fmt.Sprintf("obs-%d", k),
			PatientID: fmt.Sprintf("p-%06d", k%100_000), IPAddress: fmt.Sprintf("10.%d.%d.%d", k%4, (k/4)%256, (k/1024)%256),
			UserAgent: "ehr-web/4.2", RequestMethod: "GET", RequestPath: "/Observation", StatusCode: 200,
			Source: "ehr-web", RequestID: fmt.Sprintf("req-%d", k), SessionID: fmt.Sprintf("s-%d", k%2000),
		}
		if pad != "" {
			evs[i].Changes = json.RawMessage(`{"note":"` + pad + `"}`)
		}
	}
	b, err := json.Marshal(evs)
	if err != nil {
		panic(err)
	}
	return b
}

// readyWatch polls /readyz until stopped and counts what is not a 200.
type readyWatch struct {
	polls, failures atomic.Int64
	worst           atomic.Int64 // slowest answer, ns
	mu              sync.Mutex
	first           string
	stop            chan struct{}
	done            chan struct{}
}

func watchReady(base string) *readyWatch {
	w := &readyWatch{stop: make(chan struct{}), done: make(chan struct{})}
	hc := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			start := time.Now()
			resp, err := hc.Get(base + "/readyz")
			d := time.Since(start)
			if int64(d) > w.worst.Load() {
				w.worst.Store(int64(d))
			}
			w.polls.Add(1)
			msg := ""
			if err != nil {
				msg = err.Error()
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					msg = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
				}
			}
			if msg != "" {
				w.failures.Add(1)
				w.mu.Lock()
				if w.first == "" {
					w.first = msg
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *readyWatch) end() { close(w.stop); <-w.done }

// TestSearchesDoNotStarveIngest: with 16 clients running the most expensive
// search the API accepts, ingest over HTTP goes on and /readyz answers 200
// throughout, on both stores. It measures ingest alone, with the searches,
// and alone again, in the same server process.
func TestSearchesDoNotStarveIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a server process under load")
	}
	bin := resourcesBinary(t)
	t.Run("sqlite", func(t *testing.T) {
		p := startServe(t, bin, t.TempDir())
		defer stopServe(t, p)
		searchIsolation(t, p)
	})
	t.Run("postgres", func(t *testing.T) {
		db := pgtest.FreshSchema(t)
		p := startServe(t, bin, t.TempDir(), "--db", db)
		defer stopServe(t, p)
		searchIsolation(t, p)
	})
}

// expensiveSearch is the costliest search the API accepts: a filter no
// index serves (outcome) that no event matches, over the widest time range
// accepted with it, which holds every event of the run: it reads the whole
// range and finds nothing.
func expensiveSearch(from time.Time) url.Values {
	return url.Values{"outcome": {"failure"}, "from": {from.Format(time.RFC3339)},
		"to": {from.Add(30 * 24 * time.Hour).Format(time.RFC3339)}, "limit": {"1000"}}
}

func searchIsolation(t *testing.T, p *proc) {
	phase, full := resourcesPhase(t)
	preload := envInt(t, "CUSTOS_RESOURCES_PRELOAD", map[bool]int{false: 20_000, true: 300_000}[full])
	ctx := context.Background()
	start := time.Now().Add(-time.Hour).UTC()

	// Preload, in large batches.
	t0 := time.Now()
	var loaded atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; loaded.Load() < int64(preload); i += 4 {
				code, _, err := post(ctx, p.url, eventsBody(i, 1000, 600))
				if err != nil || code != http.StatusCreated {
					t.Errorf("preload: %d %v", code, err)
					return
				}
				loaded.Add(1000)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("preloaded %d events in %v", loaded.Load(), time.Since(t0).Round(time.Millisecond))

	q := expensiveSearch(start).Encode()
	search := func(ctx context.Context) (int, http.Header, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", p.url+"/v1/events?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+crashToken)
		resp, err := resourcesClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
			return resp.StatusCode, resp.Header, fmt.Errorf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
		}
		return resp.StatusCode, resp.Header, nil
	}
	s0 := time.Now()
	if code, _, err := search(ctx); err != nil {
		t.Fatalf("the expensive search: %v", err)
	} else {
		t.Logf("one expensive search alone: %d in %v", code, time.Since(s0).Round(time.Millisecond))
	}

	ready := watchReady(p.url)
	// 8 ingest clients sending batches of 20 events, as audit producers do.
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = eventsBody(10_000+i, 20, 600)
	}
	run := func(name string, searchers int) float64 {
		ctx, cancel := context.WithTimeout(ctx, phase)
		defer cancel()
		var events, refused atomic.Int64
		var sOK, sBusy, sErr atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; ctx.Err() == nil; i++ {
					code, _, err := post(ctx, p.url, bodies[i%len(bodies)])
					switch {
					case ctx.Err() != nil:
					case err != nil || (code != http.StatusCreated && code != http.StatusServiceUnavailable):
						firstErr.CompareAndSwap(nil, fmt.Sprintf("ingest: %d %v", code, err))
					case code == http.StatusCreated:
						events.Add(20)
					default:
						refused.Add(1)
					}
				}
			}()
		}
		for s := 0; s < searchers; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					code, h, err := search(ctx)
					switch {
					case ctx.Err() != nil:
					case err != nil:
						sErr.Add(1)
						firstErr.CompareAndSwap(nil, "search: "+err.Error())
					case code == http.StatusOK:
						sOK.Add(1)
					default:
						sBusy.Add(1)
						if h.Get("Retry-After") == "" {
							firstErr.CompareAndSwap(nil, "search: 503 without Retry-After")
						}
						time.Sleep(100 * time.Millisecond)
					}
				}
			}()
		}
		begin, cpu := time.Now(), cpuTime(p.cmd.Process.Pid)
		wg.Wait()
		elapsed := time.Since(begin)
		rate := float64(events.Load()) / elapsed.Seconds()
		t.Logf("%-18s ingest %7.0f events/s (%d refused); searches %3d answered, %3d busy (503), %d failed; server CPU %.2f cores",
			name, rate, refused.Load(), sOK.Load(), sBusy.Load(), sErr.Load(), (cpuTime(p.cmd.Process.Pid)-cpu).Seconds()/elapsed.Seconds())
		if e := firstErr.Load(); e != nil {
			t.Errorf("%s: %s", name, e)
		}
		if events.Load() == 0 {
			t.Errorf("%s: no event was acknowledged", name)
		}
		return rate
	}
	// Phases alternate, alone first and last; each phase with searches is
	// compared with the mean of the phases alone around it, which cancels
	// the slow drift of the rate as the ledger grows.
	rounds := envInt(t, "CUSTOS_RESOURCES_ROUNDS", map[bool]int{false: 1, true: 2}[full])
	alone := []float64{run("alone", 0)}
	var ratios []string
	for r := 0; r < rounds; r++ {
		with := run("with 16 searches", 16)
		alone = append(alone, run("alone", 0))
		ratios = append(ratios, fmt.Sprintf("%.0f%%", 200*with/(alone[r]+alone[r+1])))
	}
	ready.end()
	t.Logf("ingest with 16 searches, against the mean of the phases alone around it: %s; /readyz: %d polls, %d not 200, slowest %v",
		strings.Join(ratios, ", "), ready.polls.Load(), ready.failures.Load(), time.Duration(ready.worst.Load()).Round(time.Millisecond))
	if n := ready.failures.Load(); n > 0 {
		t.Errorf("/readyz failed %d of %d times; first: %s", n, ready.polls.Load(), ready.first)
	}
}

// TestUploadsMemoryBound: 32 clients upload 16 MiB bodies at once, and the
// peak resident memory of the server process (VmHWM) is reported. Every
// answer is the body's own or a 503 with Retry-After (the body budget),
// never a broken connection.
//
// The short run sends each body once, with an invalid last event: each is
// read and decoded whole, then refused (400), so the run stores nothing and
// takes seconds. The full run sends valid bodies of 10,000 events (the batch
// limit: the most decoded memory one body can carry), and each client
// retries on 503 until its body is stored.
func TestUploadsMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a server process under load")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read the server's resident memory")
	}
	bin := resourcesBinary(t)
	clients := envInt(t, "CUSTOS_RESOURCES_UPLOADS", 32)
	_, full := resourcesPhase(t)
	p := startServe(t, bin, t.TempDir())
	defer stopServe(t, p)
	n := map[bool]int{false: 2_000, true: 10_000}[full]
	size := (16 << 20) / n
	var body []byte
	for body = eventsBody(1, n, size); len(body) > 16<<20; body = eventsBody(1, n, size) {
		size -= (len(body)-(16<<20))/n + 1
	}
	want := http.StatusCreated
	if !full {
		// The last event's action is invalid: the batch is refused whole
		// once it has been read and decoded.
		i := bytes.LastIndex(body, []byte(`"action":"READ"`))
		body = slices.Concat(body[:i], []byte(`"action":"PEEK"`), body[i+len(`"action":"READ"`):])
		want = http.StatusBadRequest
	}
	base := vmHWM(t, p.cmd.Process.Pid)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var answered, refused atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				code, h, err := post(ctx, p.url, body)
				switch {
				case err != nil:
					t.Errorf("upload: %v", err)
					return
				case code == want:
					answered.Add(1)
					return
				case code == http.StatusServiceUnavailable && h.Get("Retry-After") != "":
					refused.Add(1)
					if !full {
						return
					}
					time.Sleep(time.Second)
				default:
					t.Errorf("upload: status %d, want %d or 503", code, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	peak := vmHWM(t, p.cmd.Process.Pid)
	t.Logf("%d concurrent uploads of %.1f MiB (%d events each): %d answered %d, %d refusals (503 with Retry-After), in %v; server VmHWM %d MiB at start, %d MiB peak",
		clients, float64(len(body))/(1<<20), n, answered.Load(), want, refused.Load(), time.Since(begin).Round(time.Millisecond), base>>10, peak>>10)
	if full && answered.Load() != int64(clients) {
		t.Errorf("%d of %d uploads stored", answered.Load(), clients)
	}
	if answered.Load() == 0 {
		t.Error("no upload was answered by the handler")
	}
}

// cpuTime reads the CPU time (user and system) process pid has used, or 0
// where /proc is missing.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis: utime and stime are
	// the 12th and 13th, in clock ticks (USER_HZ, 100 on Linux).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// vmHWM reads the peak resident set size of process pid, in KiB.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
