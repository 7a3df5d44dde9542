package cli

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServeMonitorTakesCommitsFromMemory: the server's monitor is told of
// what its sequencer commits, so the events clients send reach the rules
// from memory rather than being read back from the store
// (custos_monitor_events_total by where they came from).
func TestServeMonitorTakesCommitsFromMemory(t *testing.T) {
	const admin = "first-admin-token-0123456789"
	addr, _, stderr, stop := runServe(t, "--data", t.TempDir(), "--bootstrap-token", admin)
	base := "http://" + addr
	const n = 60
	var evs []string
	for i := range n {
		evs = append(evs, fmt.Sprintf(`{"user":{"id":"u%d","roles":[]},"action":"LOGIN","resource_type":"Session",`+
			`"ip_address":"203.0.113.%d","outcome":"failure","status_code":401,"source":"t"}`, i%3, i%2))
	}
	for i := 0; i < n; i += 20 {
		if code, body := call(t, "POST", base+"/v1/events", admin, "["+strings.Join(evs[i:i+20], ",")+"]"); code != 201 {
			t.Fatalf("POST /v1/events: %d %s", code, body)
		}
	}
	count := regexp.MustCompile(`(?m)^custos_monitor_events_total\{from="(memory|store)"\} (\d+)$`)
	var got map[string]int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) { // the monitor polls
		code, body := call(t, "GET", base+"/metrics", admin, "")
		if code != 200 {
			t.Fatalf("GET /metrics: %d", code)
		}
		got = map[string]int{}
		for _, m := range count.FindAllStringSubmatch(body, -1) {
			got[m[1]], _ = strconv.Atoi(m[2])
		}
		if got["memory"] >= n || time.Now().After(deadline) {
			break
		}
	}
	if got["memory"] < n {
		t.Fatalf("the monitor took %d events from memory and read %d from the store, after %d were sent", got["memory"], got["store"], n)
	}
	t.Logf("events observed from memory %d, from the store %d", got["memory"], got["store"])
	if code, body := call(t, "GET", base+"/v1/blocks", admin, ""); code != 200 || !strings.Contains(body, "203.0.113.0") {
		t.Errorf("no block for 30 failed logins from one address: %d %s", code, body)
	}
	if code := stop(); code != exitOK {
		t.Fatalf("serve exit %d\n%s", code, stderr.String())
	}
}
