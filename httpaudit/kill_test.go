package httpaudit_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custos-audit/custos/httpaudit"
	"github.com/custos-audit/custos/httpaudit/internal/custostest"
	"github.com/google/go-cmp/cmp"
)

// syncBuffer is a process's log, written by os/exec's copier and read by
// the test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testApp is a running internal/testapp process.
type testApp struct {
	cmd *exec.Cmd
	url string
}

func buildTestApp(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "testapp")
	if out, err := exec.Command("go", "build", "-o", bin, "./internal/testapp").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startTestApp(t *testing.T, bin string, srv *custostest.Server, token, spool string) *testApp {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "CUSTOS_URL="+srv.URL, "CUSTOS_TOKEN="+token, "SPOOL_DIR="+spool)
	var logs syncBuffer
	cmd.Stderr = &logs
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testapp's log:\n%s", logs.String())
		}
	})
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("testapp did not start: %v", err)
	}
	return &testApp{cmd: cmd, url: strings.TrimSpace(strings.TrimPrefix(line, "serving "))}
}

// kill sends SIGKILL and reaps the process.
func (p *testApp) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

func (p *testApp) stats(t *testing.T) httpaudit.Stats {
	t.Helper()
	resp, err := http.Get(p.url + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s httpaudit.Stats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitFor polls another process's state until cond holds (30 s at most).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func notePaths(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, "/patients/p1/notes/"+strconv.Itoa(i))
	}
	return out
}

func trailPaths(srv *custostest.Server, source string) []string {
	var out []string
	for _, e := range srv.Events(source) {
		out = append(out, e.RequestPath)
	}
	return out
}

// TestKilledWhileSpooled: with Custos unreachable, the application serves
// requests, spools their events, and is killed with SIGKILL (the last
// segment still open); started again, it delivers every event, in order,
// once, then goes on recording.
func TestKilledWhileSpooled(t *testing.T) {
	bin := buildTestApp(t)
	srv := custostest.Start(t)
	token, spool := srv.Key(), t.TempDir()
	srv.Stop()
	p := startTestApp(t, bin, srv, token, spool)
	for _, path := range notePaths(1, 20) {
		if code, _ := do(t, p.url, call{method: "GET", path: path}); code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
	}
	waitFor(t, "20 events in the spool", func() bool { return p.stats(t).Spooled == 20 })
	p.kill(t)
	if ents, _ := os.ReadDir(spool); len(ents) == 0 {
		t.Fatal("the spool is empty after the kill")
	}

	srv.Restart()
	p = startTestApp(t, bin, srv, token, spool)
	waitFor(t, "the spooled events in Custos", func() bool { return len(srv.Events("testapp")) >= 20 })
	for _, path := range notePaths(21, 25) {
		do(t, p.url, call{method: "GET", path: path})
	}
	waitFor(t, "25 events in Custos", func() bool { return len(srv.Events("testapp")) >= 25 })
	if diff := cmp.Diff(notePaths(1, 25), trailPaths(srv, "testapp")); diff != "" {
		t.Errorf("the trail (-want +got):\n%s", diff)
	}
}

// TestKilledBetweenCommitAndAcknowledgement: Custos commits a batch, and
// the application is killed before the answer reaches it; started again,
// it sends the batch again under the same key, and Custos appends
// nothing twice.
func TestKilledBetweenCommitAndAcknowledgement(t *testing.T) {
	bin := buildTestApp(t)
	srv := custostest.Start(t)
	token, spool := srv.Key(), t.TempDir()
	committed := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	srv.SetHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		first := false
		if r.Method == "POST" && r.URL.Path == "/v1/events" {
			once.Do(func() { first = true })
		}
		if !first {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(httptest.NewRecorder(), r) // committed; the answer is never sent
		close(committed)
		<-release
	})
	p := startTestApp(t, bin, srv, token, spool)
	for _, path := range notePaths(1, 3) { // one batch
		do(t, p.url, call{method: "GET", path: path})
	}
	select {
	case <-committed:
	case <-time.After(30 * time.Second):
		t.Fatal("the batch never reached Custos")
	}
	p.kill(t)
	close(release)
	if got := len(srv.Events("testapp")); got != 3 {
		t.Fatalf("%d events committed before the kill, want 3", got)
	}
	p = startTestApp(t, bin, srv, token, spool)
	waitFor(t, "the batch's redelivery", func() bool { return p.stats(t).Delivered == 3 })
	for _, path := range notePaths(4, 6) {
		do(t, p.url, call{method: "GET", path: path})
	}
	waitFor(t, "6 events delivered", func() bool { return p.stats(t).Delivered == 6 })
	if diff := cmp.Diff(notePaths(1, 6), trailPaths(srv, "testapp")); diff != "" {
		t.Errorf("the trail (-want +got):\n%s", diff)
	}
}
