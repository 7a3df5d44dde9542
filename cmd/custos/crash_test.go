package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/client"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store/sqlite"
)

const crashToken = "crash-test-admin-token-0123456789"

// buildBinary compiles custos once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "custos")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type proc struct {
	cmd *exec.Cmd
	url string
	log *syncLog
}

// syncLog is a process's captured log, written by the reader goroutine and
// read by the test at any time.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) WriteString(s string) { l.mu.Lock(); l.b.WriteString(s); l.mu.Unlock() }
func (l *syncLog) String() string       { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
func (l *syncLog) Len() int             { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Len() }

var servingRE = regexp.MustCompile(`msg="custos is serving" url=(\S+)`)

// startServe runs `custos serve` on a free port and waits until it serves.
func startServe(t *testing.T, bin, dir string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"serve", "--data", dir, "--addr", "127.0.0.1:0", "--checkpoint-interval", "200ms"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CUSTOS_BOOTSTRAP_TOKEN="+crashToken)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, log: &syncLog{}}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.log.WriteString(sc.Text() + "\n")
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		close(found)
	}()
	select {
	case u, ok := <-found:
		if !ok {
			t.Fatalf("custos serve exited before serving:\n%s", p.log)
		}
		p.url = u
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("custos serve did not start within 30 s:\n%s", p.log)
	}
	return p
}

// TestCrashSafety ingests from several clients, kills the server with
// SIGKILL at a random moment, restarts it, and checks that every acknowledged
// receipt is stored at its index with its leaf hash and that verify passes.
// CUSTOS_CRASH_ITERATIONS sets how many kill/restart rounds run (default 1).
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	rounds := 1
	if s := os.Getenv("CUSTOS_CRASH_ITERATIONS"); s != "" {
		var err error
		if rounds, err = strconv.Atoi(s); err != nil || rounds < 1 {
			t.Fatalf("CUSTOS_CRASH_ITERATIONS=%q", s)
		}
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	acked := map[uint64][]byte{}
	for round := 1; round <= rounds; round++ {
		p := startServe(t, bin, dir)
		killAfter := time.Duration(300+rand.IntN(1500)) * time.Millisecond
		n := ingestUntilKilled(t, p, killAfter, acked)
		t.Logf("round %d: killed after %s; %d events acknowledged in this round, %d in all", round, killAfter, n, len(acked))
		if n == 0 {
			t.Fatalf("round %d: nothing was acknowledged before the kill:\n%s", round, p.log)
		}
	}
	// Restart once more: the store must open and accept writes.
	p := startServe(t, bin, dir)
	cl := client.New(p.url, crashToken, nil)
	if _, err := cl.Append(context.Background(), []custos.EventInput{crashEvent(0)}); err != nil {
		t.Fatalf("append after restart: %v\n%s", err, p.log)
	}
	checkSearchable(t, cl, acked)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("clean shutdown: %v\n%s", err, p.log)
	}
	checkAcknowledged(t, dir, acked)
	out, err := exec.Command(bin, "verify", "--data", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("custos verify after %d crashes: %v\n%s", rounds, err, out)
	}
	t.Logf("verify: %s", bytes.TrimSpace(out))
}

func crashEvent(i int) custos.EventInput {
	return custos.EventInput{User: &custos.User{ID: fmt.Sprintf("u-%d", i%50)}, Action: custos.ActionRead,
		ResourceType: "Patient", PatientID: fmt.Sprintf("p-%d", i%1000), IPAddress: "198.51.100.7"}
}

// ingestUntilKilled runs 8 writers against p, SIGKILLs p after d, and adds
// every acknowledged receipt to acked.
func ingestUntilKilled(t *testing.T, p *proc, d time.Duration, acked map[uint64][]byte) int {
	t.Helper()
	cl := client.New(p.url, crashToken, nil)
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := make(chan struct{})
	n := 0
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				batch := make([]custos.EventInput, 1+rand.IntN(40))
				for j := range batch {
					batch[j] = crashEvent(w*1_000_000 + i*100 + j)
				}
				rs, err := cl.Append(context.Background(), batch)
				if err != nil {
					continue // the server is gone: nothing of this batch was acknowledged
				}
				mu.Lock()
				for _, r := range rs {
					if _, dup := acked[r.Index]; dup {
						t.Errorf("index %d acknowledged twice", r.Index)
					}
					acked[r.Index] = r.LeafHash
					n++
				}
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(d)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	close(stop)
	wg.Wait()
	return n
}

// checkSearchable: acknowledged events are found by a patient search after
// the crashes (the secondary index caught up with the ledger).
func checkSearchable(t *testing.T, cl *client.Client, acked map[uint64][]byte) {
	t.Helper()
	ctx := context.Background()
	n := 0
	for idx := range acked {
		if n++; n > 20 {
			break
		}
		e, err := cl.Event(ctx, idx)
		if err != nil {
			t.Fatalf("event %d: %v", idx, err)
		}
		found := false
		q := url.Values{"patient_id": {e.PatientID}, "limit": {"1000"}}
		for page := 0; page < 100 && !found; page++ {
			p, err := cl.Events(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range p.Items {
				found = found || it.Index == idx
			}
			if p.NextCursor == "" {
				break
			}
			q.Set("cursor", p.NextCursor)
		}
		if !found {
			t.Errorf("acknowledged event %d is not found by searching its patient %s", idx, e.PatientID)
		}
	}
}

func checkAcknowledged(t *testing.T, dir string, acked map[uint64][]byte) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), dir, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	checkReceipts(t, st, acked)
}

// checkReceipts checks that every acknowledged receipt is stored at its
// index with its leaf hash.
func checkReceipts(t *testing.T, st interface {
	Event(context.Context, uint64) (custos.Event, error)
}, acked map[uint64][]byte) {
	t.Helper()
	missing := 0
	for idx, want := range acked {
		e, err := st.Event(context.Background(), idx)
		if err != nil {
			missing++
			if missing < 5 {
				t.Errorf("acknowledged event %d is lost: %v", idx, err)
			}
			continue
		}
		if got := leaf.LeafHash(&e); !bytes.Equal(got, want) {
			t.Errorf("event %d: stored leaf hash differs from its receipt", idx)
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged events lost", missing, len(acked))
	}
}
