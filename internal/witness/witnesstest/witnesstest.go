// Package witnesstest runs a real litewitness (filippo.io/torchwood's C2SP
// tlog-witness) for tests, with its key in a private ssh-agent.
//
// Install it with
//
//	go install filippo.io/torchwood/cmd/litewitness@v0.6.1
//
// and have ssh-keygen, ssh-agent and ssh-add (Debian: openssh-client) on PATH.
// Without them Start skips the test, unless CUSTOS_TEST_LITEWITNESS=1, when it
// fails it.
package witnesstest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite" // litewitness's database is edited as witnessctl would
)

// EnvRequire is the environment variable that, set to 1, turns a missing
// litewitness or OpenSSH client into a test failure instead of a skip.
const EnvRequire = "CUSTOS_TEST_LITEWITNESS"

// started numbers the witnesses Start runs, so that each has its own name.
var started atomic.Int64

// startTimeout bounds the wait for each helper process to be ready.
const startTimeout = 15 * time.Second

// emptyHash is base64(SHA-256("")), the root hash of the empty tree.
const emptyHash = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

// Litewitness is a running litewitness, stopped when its test ends.
type Litewitness struct {
	url  string
	vkey string
	name string
	db   string
}

// URL returns the witness's URL, its add-checkpoint submission prefix.
func (w *Litewitness) URL() string { return w.url }

// VKey returns the witness's cosignature/v1 verifier key, as it logged it.
func (w *Litewitness) VKey() string { return w.vkey }

// Name returns the witness's key name, custos.test/witness/N, distinct for
// each witness a test binary starts.
func (w *Litewitness) Name() string { return w.name }

// Start generates a witness key, loads it in a new ssh-agent, and starts
// litewitness on a free loopback port with a new database. Everything is
// stopped at the end of the test.
func Start(t testing.TB) *Litewitness {
	t.Helper()
	bin := findLitewitness(t)
	for _, tool := range []string{"ssh-keygen", "ssh-agent", "ssh-add"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable(t, "%s not found (Debian: apt-get install openssh-client): %v", tool, err)
		}
	}
	dir := t.TempDir()
	// Unix socket paths are limited to about 100 bytes; test folders can be
	// longer.
	sockDir, err := os.MkdirTemp("", "lw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "agent.sock")

	key := filepath.Join(dir, "witness_key")
	run(t, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "custos witnesstest", "-f", key)
	agent := startProcess(t, nil, "ssh-agent", "-D", "-a", sock)
	if !waitUntil(t, agent, func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("witnesstest: ssh-agent exited: %v\n%s", agent.waitErr(), agent.out.String())
	}
	env := []string{"SSH_AUTH_SOCK=" + sock}
	run(t, env, "ssh-add", key)
	fp := fingerprint(t, key+".pub")

	db := filepath.Join(dir, "witness.db")
	name := fmt.Sprintf("custos.test/witness/%d", started.Add(1))
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		lw := startProcess(t, env, bin, "-db", db, "-name", name, "-key", fp,
			"-ssh-agent", sock, "-listen", addr)
		var vkey string
		ok := waitUntil(t, lw, func() bool {
			if vkey == "" {
				vkey = loggedVKey(lw.out.String())
			}
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil && vkey != ""
		})
		if ok {
			return &Litewitness{url: "http://" + addr, vkey: vkey, name: name, db: db}
		}
		// It exited: retry only if another process took the port.
		if attempt == 3 || !strings.Contains(lw.out.String(), "address already in use") {
			t.Fatalf("witnesstest: litewitness exited: %v\n%s", lw.waitErr(), lw.out.String())
		}
	}
}

// AddLog makes the witness trust logVKey (a note verifier key) for origin,
// at size 0, as witnessctl add-log and add-key do.
func (w *Litewitness) AddLog(t testing.TB, origin, logVKey string) {
	t.Helper()
	db := w.open(t)
	defer db.Close()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("witnesstest: add log: %v", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO log (origin, tree_size, tree_hash) VALUES (?, 0, ?)", origin, emptyHash); err != nil {
		t.Fatalf("witnesstest: add log %q: %v", origin, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO key (origin, key) VALUES (?, ?)", origin, logVKey); err != nil {
		t.Fatalf("witnesstest: add key of %q: %v", origin, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("witnesstest: add log %q: %v", origin, err)
	}
}

// TreeSize returns the size the witness recorded for origin.
func (w *Litewitness) TreeSize(t testing.TB, origin string) uint64 {
	t.Helper()
	db := w.open(t)
	defer db.Close()
	var n uint64
	if err := db.QueryRow("SELECT tree_size FROM log WHERE origin = ?", origin).Scan(&n); err != nil {
		t.Fatalf("witnesstest: tree size of %q: %v", origin, err)
	}
	return n
}

// open opens the witness's database, shared with the running litewitness.
func (w *Litewitness) open(t testing.TB) *sql.DB {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(ON)")
	db, err := sql.Open("sqlite", "file:"+w.db+"?"+q.Encode())
	if err != nil {
		t.Fatalf("witnesstest: open %s: %v", w.db, err)
	}
	return db
}

// findLitewitness looks for litewitness on PATH, then in GOBIN and
// GOPATH/bin.
func findLitewitness(t testing.TB) string {
	if p, err := exec.LookPath("litewitness"); err == nil {
		return p
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		gobin, gopath, _ := strings.Cut(string(out), "\n")
		if gobin = strings.TrimSpace(gobin); gobin != "" {
			dirs = append(dirs, gobin)
		}
		for _, p := range filepath.SplitList(strings.TrimSpace(gopath)) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "litewitness")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	unavailable(t, "litewitness not found on PATH or in %v "+
		"(go install filippo.io/torchwood/cmd/litewitness@v0.6.1)", dirs)
	return ""
}

// unavailable skips the test, or fails it when EnvRequire is set.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("witnesstest: "+format+" and "+EnvRequire+"=1", args...)
	}
	t.Skipf("witnesstest: "+format, args...)
}

// run runs a command to completion, failing the test on error.
func run(t testing.TB, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("witnesstest: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// fingerprint returns the SHA256: fingerprint of an OpenSSH public key file.
func fingerprint(t testing.TB, pub string) string {
	t.Helper()
	out := run(t, nil, "ssh-keygen", "-l", "-E", "sha256", "-f", pub)
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "SHA256:") {
			return f
		}
	}
	t.Fatalf("witnesstest: no SHA256: fingerprint in ssh-keygen -l output %q", out)
	return ""
}

// vkeyRE matches litewitness's "verifier key" log attribute, quoted or not.
var vkeyRE = regexp.MustCompile(`msg="verifier key" vkey=("(?:[^"\\]|\\.)*"|\S+)`)

// loggedVKey returns the verifier key litewitness logged, or "".
func loggedVKey(out string) string {
	m := vkeyRE.FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	if strings.HasPrefix(m[1], `"`) {
		s, err := strconv.Unquote(m[1])
		if err != nil {
			return ""
		}
		return s
	}
	return m[1]
}

// freeAddr returns a loopback address with a port nobody listened on a moment
// ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// process is a helper process stopped at the end of the test.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // of Wait, once done is closed
}

// startProcess starts a process, stopped (interrupted, then killed) at the
// end of the test; its output is logged if the test failed.
func startProcess(t testing.TB, env []string, name string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(name, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("witnesstest: start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("witnesstest: %s output:\n%s", filepath.Base(name), p.out.String())
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitErr returns the error of the ended process.
func (p *process) waitErr() error {
	<-p.done
	return p.err
}

// stop interrupts the process, and kills it if it lingers.
func (p *process) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitUntil polls ready until it reports true, or fails the test after
// startTimeout. It returns false at once if p exits first.
func waitUntil(t testing.TB, p *process, ready func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		if ready() {
			return true
		}
		if p.exited() {
			return false
		}
		if time.Now().After(deadline) {
			t.Fatalf("witnesstest: %s not ready after %v\n%s", filepath.Base(p.cmd.Path), startTimeout, p.out.String())
		}
		time.Sleep(delay)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends to the buffer.
func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns the contents so far.
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
