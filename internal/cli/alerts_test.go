package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/custos-audit/custos/internal/alert"
)

// TestAlertsReachAWebhook: a security event recorded by a running server
// reaches a real webhook receiver, signed; so do the BRUTE_FORCE a burst of
// failed logins raises and the block it makes.
func TestAlertsReachAWebhook(t *testing.T) {
	const secret = "webhook-secret-0123456789"
	var mu sync.Mutex
	var got []alert.Payload
	arrived := make(chan struct{}, 100)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := alert.Verify([]byte(secret), r.Header.Get(alert.HeaderTimestamp), r.Header.Get(alert.HeaderSignature),
			body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("a delivery with a bad signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p alert.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("a delivery that is not a payload: %s", body)
		}
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
		arrived <- struct{}{}
	}))
	defer recv.Close()
	const admin = "alerts-admin-token-0123456789"
	t.Setenv("CUSTOS_BOOTSTRAP_TOKEN", admin)
	t.Setenv("CUSTOS_ALERT_WEBHOOK_SECRET", secret)
	addr, _, stderr, stop := runServe(t, "--data", t.TempDir(), "--alert-webhook", recv.URL)
	defer stop()
	base := "http://" + addr
	if code, body := call(t, "POST", base+"/v1/security-events", admin,
		`{"event_type":"DATA_EXPORT","severity":"HIGH","description":"bulk export","user":"etl"}`); code != 201 {
		t.Fatalf("report: %d %s", code, body)
	}
	for i := range 5 {
		call(t, "POST", base+"/v1/login", "", `{"user_id":"mallory","password":"guess number `+string(rune('a'+i))+`"}`)
	}
	types := map[string]int{}
	deadline := time.After(20 * time.Second)
	for types["BRUTE_FORCE"] == 0 || types["DATA_EXPORT"] == 0 {
		select {
		case <-arrived:
		case <-deadline:
			t.Fatalf("alerts after 20 s: %v\n%s", types, stderr.String())
		}
		mu.Lock()
		clear(types)
		for _, p := range got {
			types[string(p.SecurityEvent.EventType)]++
		}
		mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]bool{}
	for _, p := range got {
		if seen[p.DeliveryID] {
			t.Errorf("delivered twice: %s", p.DeliveryID)
		}
		seen[p.DeliveryID] = true
	}
}
