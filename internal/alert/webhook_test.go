package alert_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/custos-audit/custos/internal/alert"
)

var secret = []byte("a shared secret of 32 bytes, ok!")

// receiver is a webhook receiver on a real loopback listener that can go
// down and come back on the same address. It verifies every request.
type receiver struct {
	t    *testing.T
	clk  *fakeClock
	addr string

	mu       sync.Mutex
	srv      *http.Server
	got      []alert.Payload
	answer   map[string]int // status to answer, by delivery id, once
	retryAft string
}

func newReceiver(t *testing.T, clk *fakeClock) *receiver {
	r := &receiver{t: t, clk: clk, answer: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.stop)
	return r
}

func (r *receiver) url() string { return "http://" + r.addr + "/hooks/custos" }

func (r *receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

// stop takes the receiver down: the listener and every connection close.
func (r *receiver) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		r.srv.Close()
		r.srv = nil
	}
}

// start brings the receiver back on the same address.
func (r *receiver) start() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("listen again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	err = alert.Verify(secret, req.Header.Get(alert.HeaderTimestamp), req.Header.Get(alert.HeaderSignature),
		body, r.clk.Now(), 5*time.Minute)
	if err != nil {
		r.t.Errorf("receiver: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var p alert.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		r.t.Errorf("receiver: %v", err)
		return
	}
	if id := req.Header.Get(alert.HeaderDeliveryID); id != p.DeliveryID || id != p.Alert.DeliveryID() {
		r.t.Errorf("receiver: delivery id header %q, body %q, computed %q", id, p.DeliveryID, p.Alert.DeliveryID())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if code, ok := r.answer[p.DeliveryID]; ok {
		delete(r.answer, p.DeliveryID)
		w.Header().Set("Retry-After", r.retryAft)
		w.WriteHeader(code)
		return
	}
	r.got = append(r.got, p)
	w.WriteHeader(http.StatusNoContent)
}

// refuse makes the receiver answer code, once, to the delivery of a.
func (r *receiver) refuse(a alert.Alert, code int, retryAfter string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer[a.DeliveryID()] = code
	r.retryAft = retryAfter
}

func (r *receiver) received() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]uint64, len(r.got))
	for i, p := range r.got {
		out[i] = p.Index
	}
	return out
}

func newWebhook(t *testing.T, r *receiver, clk *fakeClock) *alert.Webhook {
	t.Helper()
	wh, err := alert.NewWebhook(alert.WebhookConfig{Name: "webhook:ops", URL: r.url(), Secret: secret,
		Timeout: 5 * time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return wh
}

const poll = 30 * time.Second

func outboxConfig(clk *fakeClock) alert.OutboxConfig {
	return alert.OutboxConfig{Clock: clk, Poll: poll, Backoff: alert.Backoff{Rand: noJitter}}
}

// TestWebhookReceiverDownForAMinute: the receiver goes down for a minute
// while alerts commit, and comes back on the same address: every alert
// arrives, once, in order; then a new outbox on the same progress resumes
// after the last one delivered.
func TestWebhookReceiverDownForAMinute(t *testing.T) {
	clk, led, prog := newFakeClock(), &ledger{}, newMemProgress()
	rcv := newReceiver(t, clk)
	wh := newWebhook(t, rcv, clk)
	ob := alert.NewOutbox(wh, led.Source, prog, outboxConfig(clk))
	stop := run(t, ob)
	clk.wantWait(t, poll) // nothing to send yet

	led.add(3)
	ob.Wake()
	clk.wantWait(t, poll)
	if diff := cmp.Diff(seq(1, 3), rcv.received()); diff != "" {
		t.Fatalf("before the outage (-want +got):\n%s", diff)
	}

	rcv.stop()
	led.add(1)
	ob.Wake()
	down := time.Duration(0)
	for _, d := range []time.Duration{1, 2, 4, 8, 16} {
		clk.wantWait(t, d*time.Second) // backing off, doubling
		led.add(1)
		ob.Wake() // does not cut the backoff short
		clk.Advance(d * time.Second)
		down += d * time.Second
	}
	clk.wantWait(t, 32*time.Second)
	clk.Advance(time.Minute - down) // a minute after it went down…
	led.add(1)
	rcv.start() // …the receiver is back
	clk.Advance(32*time.Second - (time.Minute - down))
	clk.wantWait(t, poll)
	if diff := cmp.Diff(seq(1, 10), rcv.received()); diff != "" {
		t.Fatalf("after the outage, every alert once and in order (-want +got):\n%s", diff)
	}
	st := ob.Stats()
	if st.Delivered != 10 || st.Retried != 6 || st.FailedPermanent != 0 || st.Backlog != 0 || st.Saved != 10 {
		t.Errorf("stats = %+v, want 10 delivered, 6 retried, none failed, no backlog, 10 saved", st)
	}
	if !strings.Contains(st.LastError, "connect") && !strings.Contains(st.LastError, "refused") {
		t.Errorf("last error %q does not say the receiver was unreachable", st.LastError)
	}
	stop()

	// A restart: a new outbox on the same progress resumes after 10.
	led.add(2)
	ob2 := alert.NewOutbox(wh, led.Source, prog, outboxConfig(clk))
	run(t, ob2)
	clk.wantWait(t, poll)
	if diff := cmp.Diff(seq(1, 12), rcv.received()); diff != "" {
		t.Fatalf("after a restart (-want +got):\n%s", diff)
	}
}

// TestWebhookAnswers: a 400 is skipped and counted; a 503 with
// Retry-After and a 429 are retried, no sooner than asked.
func TestWebhookAnswers(t *testing.T) {
	clk, led, prog := newFakeClock(), &ledger{}, newMemProgress()
	rcv := newReceiver(t, clk)
	ob := alert.NewOutbox(newWebhook(t, rcv, clk), led.Source, prog, outboxConfig(clk))
	run(t, ob)
	clk.wantWait(t, poll)

	added := led.add(4)
	rcv.refuse(added[1], http.StatusBadRequest, "")
	rcv.refuse(added[2], http.StatusServiceUnavailable, "7")
	ob.Wake()
	clk.wantWait(t, 7*time.Second) // the receiver's Retry-After, longer than the 1 s backoff
	rcv.refuse(added[2], http.StatusTooManyRequests, "")
	clk.Advance(7 * time.Second)
	clk.wantWait(t, 2*time.Second)
	clk.Advance(2 * time.Second)
	clk.wantWait(t, poll)

	if diff := cmp.Diff([]uint64{1, 3, 4}, rcv.received()); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
	st := ob.Stats()
	if st.Delivered != 3 || st.FailedPermanent != 1 || st.Retried != 2 || st.Saved != 4 {
		t.Errorf("stats = %+v, want 3 delivered, 1 failed for good, 2 retried, 4 saved", st)
	}
	if !strings.Contains(st.LastError, "429") {
		t.Errorf("last error %q, want the 429", st.LastError)
	}
}

// TestWebhookSignature: what the webhook sends verifies, and nothing else.
func TestWebhookSignature(t *testing.T) {
	body := []byte(`{"delivery_id":"se-1:raised:1"}`)
	now := time.Unix(1_780_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := alert.Sign(secret, ts, body)
	tests := []struct {
		name    string
		secret  []byte
		ts, sig string
		body    []byte
		now     time.Time
		want    error
	}{
		{"valid", secret, ts, sig, body, now, nil},
		{"valid, clocks 4 min apart", secret, ts, sig, body, now.Add(4 * time.Minute), nil},
		{"other secret", []byte("another secret, 32 bytes long!!!"), ts, sig, body, now, alert.ErrBadSignature},
		{"body changed", secret, ts, sig, []byte(`{"delivery_id":"se-2:raised:2"}`), now, alert.ErrBadSignature},
		{"timestamp changed", secret, strconv.FormatInt(now.Unix()+1, 10), sig, body, now, alert.ErrBadSignature},
		{"no prefix", secret, ts, strings.TrimPrefix(sig, "sha256="), body, now, alert.ErrBadSignature},
		{"replayed later", secret, ts, sig, body, now.Add(6 * time.Minute), alert.ErrStale},
		{"from the future", secret, ts, sig, body, now.Add(-6 * time.Minute), alert.ErrStale},
		{"timestamp not a number", secret, "soon", alert.Sign(secret, "soon", body), body, now, alert.ErrStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := alert.Verify(tt.secret, tt.ts, tt.sig, tt.body, tt.now, 5*time.Minute)
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNewWebhookRefusesBadConfig(t *testing.T) {
	for _, cfg := range []alert.WebhookConfig{
		{URL: "ftp://example.com/", Secret: secret},
		{URL: "/relative", Secret: secret},
		{URL: "https://example.com/", Secret: []byte("short")},
	} {
		if _, err := alert.NewWebhook(cfg); err == nil {
			t.Errorf("NewWebhook(%q, %d-byte secret) accepted", cfg.URL, len(cfg.Secret))
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte("k"), "1780000000", []byte(`{}`), "sha256=00")
	f.Fuzz(func(t *testing.T, key []byte, ts string, body []byte, sig string) {
		now := time.Unix(1_780_000_000, 0)
		good := alert.Sign(key, ts, body)
		err := alert.Verify(key, ts, good, body, now, time.Minute)
		sec, perr := strconv.ParseInt(ts, 10, 64)
		fresh := perr == nil && now.Sub(time.Unix(sec, 0)).Abs() <= time.Minute
		if (err == nil) != fresh {
			t.Fatalf("Verify of a good signature at %q = %v", ts, err)
		}
		if sig != good && alert.Verify(key, ts, sig, body, now, time.Minute) == nil {
			t.Fatalf("Verify accepted %q for %q", sig, good)
		}
	})
}
