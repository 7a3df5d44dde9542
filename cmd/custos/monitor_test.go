package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestOneAlertPerAttackAcrossNodes runs three custos serve processes on one
// PostgreSQL database. An attacker spreads five failed logins over the
// three nodes; every node then refuses it, and the ledger holds exactly
// one BRUTE_FORCE and one block, whichever nodes received the events.
func TestOneAlertPerAttackAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs several server processes")
	}
	bin := buildBinary(t)
	db := pgtest.FreshSchema(t)
	keyFile := filepath.Join(t.TempDir(), "shared.key")
	if _, _, err := ledger.LoadOrCreateKey(keyFile, "custos.test/monitor-nodes"); err != nil {
		t.Fatal(err)
	}
	var nodes []*proc
	for range 3 {
		p := startServe(t, bin, t.TempDir(), "--db", db, "--key-file", keyFile)
		defer p.cmd.Process.Kill()
		nodes = append(nodes, p)
	}
	// The attacker has its own loopback address, so the test's other
	// requests are not blocked with it.
	attacker := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 3, 0, 1)}}).DialContext}}
	post := func(c *http.Client, url, body string) int {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for i, n := range []int{0, 1, 2, 0, 1} {
		if code := post(attacker, nodes[n].url+"/v1/login", fmt.Sprintf(`{"user_id":"victim","password":"guess number %d"}`, i)); code != 401 {
			t.Fatalf("failed login %d on node %d: %d", i+1, n, code)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for n, p := range nodes {
		for post(attacker, p.url+"/v1/logout", "") != http.StatusForbidden {
			if time.Now().After(deadline) {
				t.Fatalf("node %d does not refuse the attacker 5 s after its fifth failed login:\n%s", n, p.log)
			}
			time.Sleep(20 * time.Millisecond) // polling real processes
		}
	}
	// Every node has passed over the attack; give the last writes a moment.
	time.Sleep(500 * time.Millisecond) // polling real processes
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	count := func(q string) int {
		var n int
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM state_records WHERE entity = 'block'`); n != 1 {
		t.Errorf("%d block records for one attack on three nodes", n)
	}
	if n := count(`SELECT count(*) FROM state_records WHERE entity = 'security_event' AND op = 'create' AND doc LIKE '%"BRUTE_FORCE"%'`); n != 1 {
		t.Errorf("%d BRUTE_FORCE records for one attack on three nodes", n)
	}
	if n := count(`SELECT count(*) FROM state_records WHERE entity = 'security_event' AND op = 'create' AND doc LIKE '%"AUTH_FAILURE"%'`); n != 5 {
		t.Errorf("%d AUTH_FAILURE records for five failed logins", n)
	}
	// Another address is served by every node.
	for n, p := range nodes {
		if code := post(http.DefaultClient, p.url+"/v1/logout", ""); code != http.StatusUnauthorized {
			t.Errorf("node %d answers another address %d", n, code)
		}
	}
}
