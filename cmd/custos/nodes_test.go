package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/client"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
)

// TestNodesFailover runs three custos serve processes on one PostgreSQL
// database under load from every node, kills one with SIGKILL, checks that
// the others keep acknowledging writes within 5 s, restarts it, and then
// checks every receipt and runs custos verify --db.
func TestNodesFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three server processes")
	}
	db := pgtest.FreshSchema(t)
	bin := buildBinary(t)
	keyFile := filepath.Join(t.TempDir(), "shared.key")
	if _, _, err := ledger.LoadOrCreateKey(keyFile, "custos.test/nodes"); err != nil {
		t.Fatal(err)
	}
	start := func() *proc {
		return startServe(t, bin, t.TempDir(), "--db", db, "--key-file", keyFile)
	}
	nodes := []*proc{start(), start(), start()}
	defer func() {
		for _, p := range nodes {
			p.cmd.Process.Kill()
		}
	}()

	var mu sync.Mutex
	acked := map[uint64][]byte{}
	lastAck := make([]time.Time, len(nodes))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for n, p := range nodes {
		cl := client.New(p.url, crashToken, nil)
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					batch := make([]custos.EventInput, 20)
					for j := range batch {
						batch[j] = crashEvent(n*1_000_000 + w*100_000 + i*20 + j)
					}
					rs, err := cl.Append(context.Background(), batch)
					if err != nil {
						time.Sleep(10 * time.Millisecond)
						continue
					}
					mu.Lock()
					for _, r := range rs {
						if _, dup := acked[r.Index]; dup {
							t.Errorf("index %d acknowledged twice", r.Index)
						}
						acked[r.Index] = r.LeafHash
					}
					lastAck[n] = time.Now()
					mu.Unlock()
				}
			}()
		}
	}
	time.Sleep(1500 * time.Millisecond)
	killed := time.Now()
	nodes[0].cmd.Process.Signal(syscall.SIGKILL)
	nodes[0].cmd.Wait()
	time.Sleep(2 * time.Second)
	mu.Lock()
	for n := 1; n < len(nodes); n++ {
		if !lastAck[n].After(killed) {
			t.Errorf("node %d acknowledged nothing in the 2 s after node 0 was killed", n)
		}
	}
	before := len(acked)
	mu.Unlock()
	nodes[0] = start() // restart the killed node; its writers stopped with it
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	cl := client.New(nodes[0].url, crashToken, nil)
	if _, err := cl.Append(context.Background(), []custos.EventInput{crashEvent(1)}); err != nil {
		t.Fatalf("append through the restarted node: %v\n%s", err, nodes[0].log)
	}
	for _, p := range nodes {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("clean shutdown: %v\n%s", err, p.log)
		}
	}
	t.Logf("%d events acknowledged across 3 nodes (%d before the restart)", len(acked), before)

	ctx := context.Background()
	st, err := postgres.Open(ctx, db, postgres.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for idx, want := range acked {
		e, err := st.Event(ctx, idx)
		if err != nil {
			t.Fatalf("acknowledged event %d lost: %v", idx, err)
		}
		if string(ledger.LeafHash(&e)) != string(want) {
			t.Fatalf("event %d differs from its receipt", idx)
		}
	}
	out, err := exec.Command(bin, "verify", "--db", db, "--key-file", keyFile).CombinedOutput()
	if err != nil {
		t.Fatalf("custos verify --db: %v\n%s", err, out)
	}
	t.Logf("verify: %s", out)
}
