package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/client"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store/sqlite"
	"github.com/custos-audit/custos/internal/witness/witnesstest"
	"github.com/transparency-dev/merkle/compact"
	_ "modernc.org/sqlite" // the tampering is done with SQL, as an intruder would
)

const witnessedOrigin = "custos.test/witnessed"

// custos verify's exit codes.
const (
	verifyOK     = 0
	verifyFailed = 1 // tampering found
)

// witnessed is one witnessed log: its data folder (cleanly stopped), keys,
// the witness, and what the witness cosigned.
type witnessed struct {
	bin, dir    string
	vkey        string // the log's verifier key
	lw          *witnesstest.Litewitness
	wspec       string // --witness URL,VKEY
	trusted     string // file holding the cosigned checkpoint of the whole log
	size        uint64 // its size: the whole log
	pacedFirst  uint64 // the first record of the paced requests
	checkpoints []uint64
}

// TestWitnessedLogDetectsRollbackAndRewrite runs custos serve with a real
// litewitness, then tampers with copies of the stopped store as an intruder
// with write access to the database (not to the witness) would: a rollback to
// an earlier consistent state, a fork extending that rollback, and a rewrite
// of the newest records with their tree recomputed and the checkpoints that
// covered them deleted. verify (with a trusted checkpoint, the witnesses'
// cosignatures or the witness asked online) and serve's start checks must
// catch each, and the witness must never accept the tampered history.
func TestWitnessedLogDetectsRollbackAndRewrite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs server and witness processes")
	}
	w := setUpWitnessedLog(t)
	t.Logf("log of %d records, cosigned by %s at size %d; checkpoints at sizes %v", w.size, w.lw.Name(), w.size, w.checkpoints)

	t.Run("rollback", func(t *testing.T) {
		dir := copyStore(t, w.dir)
		s := w.rollbackPoint(t, dir)
		rollBack(t, dir, s)
		wantVerify(t, w.bin, verifyFailed, []string{"trusted checkpoint " + w.trusted, fmt.Sprintf("covers %d records but only %d are stored", w.size, s)},
			"--data", dir, "--public-key", w.vkey, "--trusted-checkpoint", w.trusted)
		wantVerify(t, w.bin, verifyFailed, []string{fmt.Sprintf("witness %s has cosigned this log at tree size %d, but the store's newest checkpoint is size %d: the store was rolled back", w.lw.Name(), w.size, s)},
			"--data", dir, "--public-key", w.vkey, "--witness", w.wspec)
		out := serveMustRefuse(t, w.bin, dir, "--witness", w.wspec)
		wantIn(t, "serve on the rolled-back store", out, "CRITICAL", "rolled back")
		w.wantWitnessSize(t)
	})

	t.Run("fork", func(t *testing.T) {
		dir := copyStore(t, w.dir)
		s := w.rollbackPoint(t, dir)
		rollBack(t, dir, s)
		// Without the witness the server cannot know: it extends the
		// rolled-back history with other events, past the witnessed size.
		p := startWitnessedServe(t, w.bin, dir)
		cl := client.New(p.url, crashToken, nil)
		for n := s; n <= w.size+50; n += 100 {
			batch := make([]custos.EventInput, 100)
			for i := range batch {
				batch[i] = forkEvent(int(n) + i)
			}
			if _, err := cl.Append(context.Background(), batch); err != nil {
				t.Fatalf("append to the fork: %v\n%s", err, p.log)
			}
		}
		stopServe(t, p)
		forkSize := storeSize(t, dir)
		if forkSize <= w.size {
			t.Fatalf("the fork has %d records, want more than the witnessed %d", forkSize, w.size)
		}
		out := serveMustRefuse(t, w.bin, dir, "--witness", w.wspec)
		wantIn(t, "serve on the fork", out, "CRITICAL", w.lw.Name())
		w.wantWitnessSize(t)
		cosigned := newestCosigned(t, dir)
		if cosigned == 0 || cosigned > s {
			t.Fatalf("the newest cosigned checkpoint of the fork is at size %d, want one at most the rollback's %d", cosigned, s)
		}
		wantVerify(t, w.bin, verifyFailed, []string{"lacks 1 valid witness cosignatures", fmt.Sprintf("(newest witnessed: size %d)", cosigned)},
			"--data", dir, "--public-key", w.vkey, "--witness-key", w.lw.VKey(), "--witness-grace", "0s")
		wantVerify(t, w.bin, verifyFailed, []string{"not an extension of the trusted checkpoint " + w.trusted, fmt.Sprintf("at tree size %d", w.size)},
			"--data", dir, "--public-key", w.vkey, "--trusted-checkpoint", w.trusted)
		// Asked online, the witness (at a smaller size than the fork) must
		// be shown that the fork extends what it cosigned: it does not.
		wantVerify(t, w.bin, verifyFailed, []string{"does not extend the one it cosigned at size"},
			"--data", dir, "--public-key", w.vkey, "--witness", w.wspec)
		w.wantWitnessSize(t)
		t.Logf("fork of %d records from %d refused", forkSize, s)
	})

	t.Run("tail rewrite", func(t *testing.T) {
		// The records of the paced requests span more than a crash can
		// leave unsigned; the intruder alters the first of them and deletes
		// every checkpoint that commits to it.
		dir := copyStore(t, w.dir)
		victim := w.pacedFirst
		rewrite(t, dir, victim)
		covered := w.latestCheckpointBelow(victim + 1)
		wantVerify(t, w.bin, verifyFailed, []string{fmt.Sprintf("(from %d) are not covered by a signed checkpoint", covered)},
			"--data", dir, "--public-key", w.vkey)
		out := serveMustRefuse(t, w.bin, dir)
		wantIn(t, "serve on the rewritten store", out, fmt.Sprintf("the records from %d on are not covered by a signed checkpoint", covered))
		// The witness catches it even when the tail is excused as a crash's.
		wantVerify(t, w.bin, verifyFailed, []string{fmt.Sprintf("witness %s has cosigned this log at tree size %d", w.lw.Name(), w.size)},
			"--data", dir, "--public-key", w.vkey, "--allow-uncovered-tail", "--witness", w.wspec)
		w.wantWitnessSize(t)
	})

	t.Run("rewrite of the last record", func(t *testing.T) {
		// The newest commit alone (800 ms after the one before), rewritten
		// and its checkpoint deleted, is what a crash leaves: the start
		// checks let it through, and only the witness tells the two apart.
		dir := copyStore(t, w.dir)
		rewrite(t, dir, w.size-1)
		wantVerify(t, w.bin, verifyFailed, []string{fmt.Sprintf("witness %s has cosigned this log at tree size %d", w.lw.Name(), w.size)},
			"--data", dir, "--public-key", w.vkey, "--allow-uncovered-tail", "--witness", w.wspec)
		before := newestCheckpoint(t, dir)
		out := serveMustRefuse(t, w.bin, dir, "--witness", w.wspec)
		wantIn(t, "serve on the rewritten tail", out, "CRITICAL", w.lw.Name())
		w.wantWitnessSize(t)
		// The refused start signed nothing: the forged tail stays uncovered.
		if after := newestCheckpoint(t, dir); after != before {
			t.Fatalf("the refused start stored a checkpoint of size %d over the forged tail (newest before: %d)", after, before)
		}
		wantVerify(t, w.bin, verifyFailed, []string{fmt.Sprintf("witness %s has cosigned this log at tree size %d", w.lw.Name(), w.size)},
			"--data", dir, "--public-key", w.vkey, "--allow-uncovered-tail", "--witness", w.wspec)
	})
}

// setUpWitnessedLog creates a log, makes a litewitness trust it, and fills
// it through a server that submits its checkpoints to the witness, until
// the witness has cosigned the whole log; then stops the server cleanly and
// checks that verify accepts the store against every anchor.
func setUpWitnessedLog(t *testing.T) *witnessed {
	lw := witnesstest.Start(t) // skips (or fails) as witnesstest says when litewitness is absent
	w := &witnessed{bin: buildBinary(t), dir: t.TempDir(), lw: lw, wspec: lw.URL() + "," + lw.VKey()}
	ctx := context.Background()

	// The first start creates the signing key for the origin.
	stopServe(t, startWitnessedServe(t, w.bin, w.dir, "--origin", witnessedOrigin))
	out, err := exec.Command(w.bin, "public-key", "--data", w.dir).CombinedOutput()
	if err != nil {
		t.Fatalf("custos public-key: %v\n%s", err, out)
	}
	w.vkey = strings.TrimSpace(string(out))
	if !strings.HasPrefix(w.vkey, witnessedOrigin+"+") {
		t.Fatalf("custos public-key printed %q, want a key of origin %s", w.vkey, witnessedOrigin)
	}
	lw.AddLog(t, witnessedOrigin, w.vkey)

	p := startWitnessedServe(t, w.bin, w.dir, "--witness", w.wspec)
	cl := client.New(p.url, crashToken, nil)
	var last uint64
	post := func(batch int, tag string) uint64 {
		evs := make([]custos.EventInput, batch)
		for i := range evs {
			evs[i] = crashEvent(int(last) + i)
			evs[i].ResourceID = tag
		}
		rs, err := cl.Append(ctx, evs)
		if err != nil {
			t.Fatalf("append: %v\n%s", err, p.log)
		}
		last = rs[len(rs)-1].Index
		return rs[0].Index
	}
	for i := 0; i < 4; i++ {
		post(60, "burst")
	}
	// Then requests paced over 2.4 s, so that the newest records span more
	// than a crash leaves unsigned (verify allows 1 s + 1 s of slack): the
	// tail-rewrite case deletes the checkpoints over them.
	for i := 0; i < 4; i++ {
		if i > 0 {
			time.Sleep(800 * time.Millisecond)
		}
		first := post(20, "paced")
		if i == 0 {
			w.pacedFirst = first
		}
	}
	w.size = last + 1

	// Wait for the witness's cosignature on the checkpoint of the whole log.
	var cp []byte
	line := "— " + lw.Name() + " "
	deadline := time.Now().Add(15 * time.Second)
	for {
		body, err := cl.Checkpoint(ctx)
		if err != nil {
			t.Fatalf("GET /v1/checkpoint: %v", err)
		}
		parsed, err := ledger.OpenCheckpoint(body, w.vkey)
		if err != nil {
			t.Fatalf("the served checkpoint does not verify with the log's key: %v\n%s", err, body)
		}
		if parsed.Size == w.size && hasLine(body, line) {
			cp = body
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cosignature by %s on the checkpoint of size %d within 15 s; last served (size %d):\n%s\nserver log:\n%s",
				lw.Name(), w.size, parsed.Size, body, p.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopServe(t, p)
	if got := lw.TreeSize(t, witnessedOrigin); got != w.size {
		t.Fatalf("the witness records size %d, want %d", got, w.size)
	}
	w.trusted = filepath.Join(t.TempDir(), "trusted-checkpoint")
	if err := os.WriteFile(w.trusted, cp, 0o600); err != nil {
		t.Fatal(err)
	}
	w.checkpoints = checkpointSizes(t, w.dir)
	if n := len(w.checkpoints); n == 0 || w.checkpoints[n-1] != w.size {
		t.Fatalf("stored checkpoints %v, want the newest at size %d", w.checkpoints, w.size)
	}
	wantVerify(t, w.bin, verifyOK, []string{"OK: ", fmt.Sprintf("witness %s: has the log at size %d", lw.Name(), w.size), "1 trusted checkpoints extended"},
		"--data", w.dir, "--public-key", w.vkey, "--witness-key", lw.VKey(), "--trusted-checkpoint", w.trusted, "--witness", w.wspec)
	return w
}

func forkEvent(i int) custos.EventInput {
	e := crashEvent(i)
	e.User = &custos.User{ID: "forger"}
	e.ResourceID = "fork"
	return e
}

func hasLine(note []byte, prefix string) bool {
	for _, l := range strings.Split(string(note), "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// startWitnessedServe starts custos serve with a 100 ms checkpoint interval,
// killed at the end of the test if still running.
func startWitnessedServe(t *testing.T, bin, dir string, extra ...string) *proc {
	t.Helper()
	p := startServe(t, bin, dir, append([]string{"--checkpoint-interval", "100ms"}, extra...)...)
	t.Cleanup(func() { p.cmd.Process.Kill() }) // an error once it was waited for
	return p
}

// stopServe stops a server with SIGTERM and requires a clean exit within
// 20 s.
func stopServe(t *testing.T, p *proc) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("clean shutdown: %v\n%s", err, p.log)
		}
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-done
		t.Fatalf("custos serve did not stop within 20 s of SIGTERM\n%s", p.log)
	}
}

// serveMustRefuse runs custos serve on dir and requires it to exit with an
// error before serving; it returns the output.
func serveMustRefuse(t *testing.T, bin, dir string, extra ...string) string {
	t.Helper()
	args := append([]string{"serve", "--data", dir, "--addr", "127.0.0.1:0", "--checkpoint-interval", "100ms"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CUSTOS_BOOTSTRAP_TOKEN="+crashToken)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	var out bytes.Buffer
	serving := make(chan struct{}, 1)
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if servingRE.MatchString(sc.Text()) {
				serving <- struct{}{}
			}
		}
	}()
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		exited <- err
	}()
	select {
	case err := <-exited:
		<-read
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("custos serve %s exited with %v, want a refusal (non-zero exit)\n%s", strings.Join(extra, " "), err, out.String())
		}
		return out.String()
	case <-serving:
		cmd.Process.Kill()
		<-exited
		<-read
		t.Fatalf("custos serve %s started on the tampered store\n%s", strings.Join(extra, " "), out.String())
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-exited
		<-read
		t.Fatalf("custos serve %s neither served nor refused within 20 s\n%s", strings.Join(extra, " "), out.String())
	}
	return ""
}

// wantVerify runs custos verify with args and requires the exit code and
// every fragment in its output.
func wantVerify(t *testing.T, bin string, code int, want []string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"verify", "--quiet"}, args...)...).CombinedOutput()
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		t.Fatalf("custos verify %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if got != code {
		t.Fatalf("custos verify %s: exit %d, want %d\n%s", strings.Join(args, " "), got, code, out)
	}
	wantIn(t, "custos verify "+strings.Join(args, " "), string(out), want...)
	t.Logf("verify %s → %d: %s", strings.Join(slices.DeleteFunc(slices.Clone(args), func(a string) bool { return strings.ContainsAny(a, "/+") }), " "), got,
		strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
}

func wantIn(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

// wantWitnessSize checks that the witness still has the genuine log.
func (w *witnessed) wantWitnessSize(t *testing.T) {
	t.Helper()
	if got := w.lw.TreeSize(t, witnessedOrigin); got != w.size {
		t.Fatalf("the witness now records size %d, want the genuine %d", got, w.size)
	}
}

// latestCheckpointBelow returns the size of the newest stored checkpoint
// smaller than size.
func (w *witnessed) latestCheckpointBelow(size uint64) uint64 {
	var out uint64
	for _, s := range w.checkpoints {
		if s < size {
			out = s
		}
	}
	return out
}

// rollbackPoint picks the size of a stored checkpoint about half way, after
// every state record of dir (so that the state table stays consistent).
func (w *witnessed) rollbackPoint(t *testing.T, dir string) uint64 {
	t.Helper()
	db := openDB(t, dir)
	defer db.Close()
	var minSize uint64
	if err := db.QueryRow(`SELECT coalesce(max(idx), -1) + 1 FROM state_records`).Scan(&minSize); err != nil {
		t.Fatal(err)
	}
	var cands []uint64
	for _, s := range w.checkpoints {
		if s > minSize && s < w.size {
			cands = append(cands, s)
		}
	}
	if len(cands) == 0 {
		t.Fatalf("no stored checkpoint between the state records (%d) and the log's size %d: %v", minSize, w.size, w.checkpoints)
	}
	return cands[len(cands)/2]
}

// copyStore copies the files of a stopped store into a new folder.
func copyStore(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == sqlite.LockFileName {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func openDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func execSQL(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db := openDB(t, dir)
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, s := range stmts {
		if _, err := tx.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func checkpointSizes(t *testing.T, dir string) []uint64 {
	t.Helper()
	db := openDB(t, dir)
	defer db.Close()
	rows, err := db.Query(`SELECT size FROM checkpoints ORDER BY size`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var s uint64
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// newestCosigned is the size of the newest stored checkpoint that carries
// cosignatures, 0 if none does.
func newestCosigned(t *testing.T, dir string) uint64 {
	t.Helper()
	db := openDB(t, dir)
	defer db.Close()
	var n uint64
	if err := db.QueryRow(`SELECT coalesce(max(size), 0) FROM checkpoints WHERE length(cosignatures) > 0`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// storeSize is the number of records (events and state records) in dir.
func storeSize(t *testing.T, dir string) uint64 {
	t.Helper()
	db := openDB(t, dir)
	defer db.Close()
	var n uint64
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM state_records)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// rollBack truncates the store in dir to its first size records, as a
// restored older backup would be: records, their tree nodes and the later
// checkpoints go, and the derived index file is dropped (it is rebuilt from
// the ledger at start).
func rollBack(t *testing.T, dir string, size uint64) {
	t.Helper()
	db := openDB(t, dir)
	var stale int
	err := db.QueryRow(`SELECT count(*) FROM state WHERE idx >= ?`, size).Scan(&stale)
	db.Close()
	if err != nil || stale > 0 {
		t.Fatalf("state rows set by records at or after %d: %d (%v)", size, stale, err)
	}
	execSQL(t, dir,
		fmt.Sprintf(`DELETE FROM events WHERE idx >= %d`, size),
		fmt.Sprintf(`DELETE FROM state_records WHERE idx >= %d`, size),
		fmt.Sprintf(`DELETE FROM tree_nodes WHERE pos >= %d`, ledger.NodeCount(size)),
		fmt.Sprintf(`DELETE FROM checkpoints WHERE size > %d`, size))
	dropIndex(t, dir)
	if got := storeSize(t, dir); got != size {
		t.Fatalf("rolled back to %d records, want %d", got, size)
	}
}

func dropIndex(t *testing.T, dir string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(filepath.Join(dir, sqlite.IndexFileName+suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
}

// rewrite alters the event at index victim, recomputes every tree node so
// that the tree matches the records, deletes the checkpoints that commit to
// the altered event, and drops the derived index file, whose entries would
// still name the old content (the server rebuilds it from the ledger).
func rewrite(t *testing.T, dir string, victim uint64) {
	t.Helper()
	execSQL(t, dir, fmt.Sprintf(`UPDATE events SET user_id = 'mallory' WHERE idx = %d`, victim))
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	states, err := st.StateRecords(ctx, -1)
	if err != nil {
		t.Fatal(err)
	}
	rng := ledger.NewEmptyRange()
	var stmts []string
	add := func(h []byte) {
		rng.Append(h, func(id compact.NodeID, h []byte) {
			stmts = append(stmts, fmt.Sprintf(`UPDATE tree_nodes SET hash = X'%x' WHERE pos = %d`, h, ledger.NodePos(id)))
		})
	}
	altered := false
	err = st.ScanEvents(ctx, 0, func(e custos.Event) error {
		for len(states) > 0 && states[0].Index < e.Index {
			add(leaf.StateHash(&states[0]))
			states = states[1:]
		}
		if e.Index != rng.End() {
			return fmt.Errorf("event %d where record %d was expected", e.Index, rng.End())
		}
		altered = altered || (e.Index == victim && e.User.ID == "mallory")
		add(leaf.LeafHash(&e))
		return nil
	})
	for _, r := range states {
		add(leaf.StateHash(&r))
	}
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !altered {
		t.Fatalf("event %d was not altered", victim)
	}
	stmts = append(stmts, fmt.Sprintf(`DELETE FROM checkpoints WHERE size > %d`, victim))
	execSQL(t, dir, stmts...)
	dropIndex(t, dir)
}

// newestCheckpoint is the size of the newest stored checkpoint in dir.
func newestCheckpoint(t *testing.T, dir string) uint64 {
	t.Helper()
	db := openDB(t, dir)
	defer db.Close()
	var n uint64
	if err := db.QueryRow(`SELECT coalesce(max(size), 0) FROM checkpoints`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
