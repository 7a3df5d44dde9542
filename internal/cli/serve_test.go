package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestServeRefusesTinyMaxChanges(t *testing.T) {
	var out bytes.Buffer
	code := Main(context.Background(), []string{"serve", "--data", t.TempDir(), "--max-changes", "100"}, &out, &out)
	if code != exitUsageErr || !strings.Contains(out.String(), "--max-changes 100: must be at least 4096") {
		t.Fatalf("serve --max-changes 100: exit %d\n%s", code, out.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runServe runs custos serve with args until the returned stop is called;
// it waits until /readyz answers.
func runServe(t *testing.T, args ...string) (addr string, stdout, stderr *syncBuffer, stop func() int) {
	t.Helper()
	addr = freeAddr(t)
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- Main(ctx, append([]string{"serve", "--addr", addr}, args...), stdout, stderr) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d before it was ready:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready after 20 s:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a real process's readiness
	}
	var once sync.Once
	code := 0
	stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { stop() })
	return addr, stdout, stderr, stop
}

// TestServeFirstHour: what a newcomer meets on the first start — the token
// on standard output apart from the logs, JSON logs on request, a second
// server on the same folder refused naming the holder, a bootstrap token
// given to a store that has keys warned about.
func TestServeFirstHour(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CUSTOS_BOOTSTRAP_TOKEN", "")
	_, stdout, stderr, stop := runServe(t, "--data", dir, "--log-format", "json")
	if !strings.Contains(stdout.String(), "Administrator token (shown once; keep it safe): cus_") {
		t.Errorf("stdout does not carry the token:\n%s", stdout.String())
	}
	if strings.Contains(stderr.String(), "cus_") {
		t.Errorf("the token is among the logs:\n%s", stderr.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("--log-format json wrote a line that is not JSON: %q", line)
		}
	}
	var out bytes.Buffer
	if code := Main(context.Background(), []string{"serve", "--data", dir, "--addr", freeAddr(t)}, &out, &out); code != exitError ||
		!strings.Contains(out.String(), "in use by another custos process (pid") {
		t.Errorf("a second serve on the same folder: exit %d\n%s", code, out.String())
	}
	if code := stop(); code != exitOK {
		t.Fatalf("serve exited %d", code)
	}
	_, _, stderr, stop = runServe(t, "--data", dir, "--bootstrap-token", "another-token-0123456789")
	stop()
	if !strings.Contains(stderr.String(), "CUSTOS_BOOTSTRAP_TOKEN is ignored") {
		t.Errorf("no warning for a bootstrap token given to a store with keys:\n%s", stderr.String())
	}
	if code := Main(context.Background(), []string{"serve", "--data", dir, "--log-format", "xml"}, &out, &out); code != exitUsageErr {
		t.Errorf("--log-format xml: exit %d", code)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := Main(context.Background(), []string{"version"}, &out, &out); code != exitOK ||
		!strings.Contains(out.String(), "reads versions 1 and 2, writes version 2") {
		t.Fatalf("custos version: %d\n%s", code, out.String())
	}
}

// TestAdminKey: recovery on a stopped store, refused while a server runs.
func TestAdminKey(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CUSTOS_BOOTSTRAP_TOKEN", "first-admin-token-0123456789")
	_, _, _, stop := runServe(t, "--data", dir)
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"admin-key", "--data", dir}, &out, &errb); code != exitError ||
		!strings.Contains(errb.String(), "in use by another custos process") {
		t.Fatalf("admin-key against a running server: exit %d\n%s%s", code, out.String(), errb.String())
	}
	stop()
	out.Reset()
	errb.Reset()
	if code := Main(context.Background(), []string{"admin-key", "--data", dir, "--name", "after lockout"}, &out, &errb); code != exitOK {
		t.Fatalf("admin-key on a stopped store: exit %d\n%s", code, errb.String())
	}
	token := strings.TrimSpace(out.String())
	addr, _, _, stop := runServe(t, "--data", dir)
	defer stop()
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/api-keys", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "after lockout") {
		t.Fatalf("the recovery key does not work: %d %s", resp.StatusCode, body)
	}
	stop()
	if code, out := runVerify(t, dir); code != exitOK {
		t.Fatalf("verify after admin-key: %d\n%s", code, out)
	}
	if code := Main(context.Background(), []string{"admin-key", "--data", t.TempDir()}, &out, &errb); code != exitError {
		t.Fatalf("admin-key on an empty folder: exit %d", code)
	}
}
