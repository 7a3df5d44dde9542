package httpaudit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos/client"
	"github.com/google/go-cmp/cmp"
)

func recs(from, n int) [][]byte {
	var out [][]byte
	for i := from; i < from+n; i++ {
		out = append(out, []byte(fmt.Sprintf(`{"i":%d}`, i)))
	}
	return out
}

func drainSpool(t *testing.T, q queue) (keys []string, got [][]byte) {
	t.Helper()
	for {
		b, err := q.next()
		if err != nil {
			t.Fatal(err)
		}
		if b == nil {
			return keys, got
		}
		keys = append(keys, b.key)
		for _, r := range b.recs {
			got = append(got, bytes.Clone(r))
		}
		if err := q.remove(b); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSpoolRecoversAfterACrash: a process dies with one sealed batch and an
// open segment whose last record it was writing; the next open delivers
// the sealed batch under its key, then the whole records of the open one,
// in order, and drops the torn record.
func TestSpoolRecoversAfterACrash(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	s, err := openSpool(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.append(recs(0, 3)); err != nil {
		t.Fatal(err)
	}
	if err := s.seal(); err != nil {
		t.Fatal(err)
	}
	first, _ := s.next()
	if err := s.append(recs(3, 2)); err != nil {
		t.Fatal(err)
	}
	// The crash: a record cut halfway, the file never closed.
	f, err := os.OpenFile(filepath.Join(dir, segName(2, "open")), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	torn := appendRecord(nil, []byte(`{"i":5}`))
	f.Write(torn[:len(torn)-3])
	f.Close()
	s.lock.Close() // the kernel releases a dead process's lock

	s2, err := openSpool(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if s2.pending() != 5 {
		t.Errorf("pending after recovery: %d, want 5", s2.pending())
	}
	keys, got := drainSpool(t, s2)
	if diff := cmp.Diff(recs(0, 5), got); diff != "" {
		t.Errorf("recovered records (-want +got):\n%s", diff)
	}
	if len(keys) != 2 || keys[0] != first.key || keys[0] == keys[1] {
		t.Errorf("keys %v, the first batch's was %s", keys, first.key)
	}
	if s2.bytes() != 0 || s2.pending() != 0 {
		t.Errorf("after delivery: %d bytes, %d events", s2.bytes(), s2.pending())
	}
	// New segments continue the numbering: nothing overtakes what was there.
	if err := s2.append(recs(9, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, segName(3, "open"))); err != nil {
		t.Errorf("the next segment: %v", err)
	}
}

// TestSpoolSetsDamagedBatchesAside: a sealed batch whose bytes changed is
// never sent; it is renamed for an operator, and the next batch goes.
func TestSpoolSetsDamagedBatchesAside(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		s.append(recs(i*2, 2))
		s.seal()
	}
	p := filepath.Join(dir, segName(1, "batch"))
	data, _ := os.ReadFile(p)
	data[len(data)-2] ^= 1
	os.WriteFile(p, data, 0o600)
	_, got := drainSpool(t, s)
	if diff := cmp.Diff(recs(2, 2), got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, segName(1, "rejected"))); err != nil {
		t.Errorf("the damaged batch was not kept aside: %v", err)
	}
}

func TestSegmentRoundTrip(t *testing.T) {
	key := newKey()
	data := encodeHeader(key)
	for _, r := range recs(0, 3) {
		data = appendRecord(data, r)
	}
	k, got, valid, err := decodeSegment(data)
	if err != nil || k != key || valid != len(data) {
		t.Fatalf("key %q valid %d err %v", k, valid, err)
	}
	if diff := cmp.Diff(recs(0, 3), got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, errNotSegment},
		{"another file", []byte("hello, world, this is not a spool segment at all\n"), errNotSegment},
		{"cut in a header", data[:len(data)-len(`{"i":2}`)-5], errTorn},
		{"cut in a payload", data[:len(data)-2], errTorn},
		{"flipped bit", append(bytes.Clone(data[:len(data)-1]), data[len(data)-1]^1), errCorrupt},
	} {
		if _, _, _, err := decodeSegment(c.data); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// unreachable is a client of a Custos that is never there.
func unreachable() *client.Client { return client.New("http://127.0.0.1:1", "token", nil) }

// never is a retry timer that never fires: the deliverer waits forever.
func never(time.Duration) <-chan time.Time { return nil }

func serveN(t *testing.T, h http.Handler, n int) []int {
	t.Helper()
	var codes []int
	for i := range n {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", fmt.Sprintf("/records/%d", i), nil))
		codes = append(codes, rec.Code)
	}
	return codes
}

// TestSpoolFull: with Custos unreachable the spool fills to its bound and
// no further. DropNewest serves every request and counts the lost events;
// RefuseRequests answers 503 without calling the handler. Either way
// OnSpoolFull is called once.
func TestSpoolFull(t *testing.T) {
	for _, policy := range []FullPolicy{DropNewest, RefuseRequests} {
		t.Run(fmt.Sprint(policy), func(t *testing.T) {
			alerts := make(chan SpoolStats, 10)
			a, err := newAuditor(Config{Client: unreachable(), Source: "test", SpoolDir: t.TempDir(), SpoolMaxBytes: 4 << 10,
				WhenFull: policy, OnSpoolFull: func(s SpoolStats) { alerts <- s }}, never)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close(canceled())
			served := 0
			h := a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++ }))
			ctx := context.Background()
			for range 40 { // ~300 bytes an event: the spool fills after ~13
				serveN(t, h, 1)
				a.sync(ctx)
			}
			st := a.Stats()
			if st.SpoolBytes > 4<<10 || st.Dropped == 0 && policy == DropNewest {
				t.Errorf("stats: %+v", st)
			}
			var full SpoolStats
			select {
			case full = <-alerts:
			case <-time.After(10 * time.Second):
				t.Fatal("OnSpoolFull was not called")
			}
			if full.MaxBytes != 4<<10 || full.Events == 0 {
				t.Errorf("OnSpoolFull got %+v", full)
			}
			switch policy {
			case DropNewest:
				if served != 40 {
					t.Errorf("%d requests served, want 40", served)
				}
			case RefuseRequests:
				codes := serveN(t, h, 3)
				if strings.Trim(fmt.Sprint(codes), "[]") != "503 503 503" || served >= 40 {
					t.Errorf("while full: codes %v, %d served", codes, served)
				}
				if st := a.Stats(); st.Refused < 3 {
					t.Errorf("refused: %+v", st)
				}
			}
			if len(alerts) != 0 {
				t.Errorf("OnSpoolFull called %d more times in the same episode", len(alerts))
			}
		})
	}
}

// canceled is a context already done: Close does not wait for delivery.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestSpoolIsOneProcess: a second Auditor cannot open a spool in use;
// once the first closed it, it can.
func TestSpoolIsOneProcess(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	s, err := openSpool(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openSpool(dir, log); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second open: %v", err)
	}
	s.close()
	s2, err := openSpool(dir, log)
	if err != nil {
		t.Fatalf("after close: %v", err)
	}
	s2.close()
}

// TestRefuseWhileTheWriterIsBehind: under RefuseRequests, a queue to the
// writer with no room to spare refuses requests before their handler; under
// DropNewest they are served.
func TestRefuseWhileTheWriterIsBehind(t *testing.T) {
	for policy, want := range map[FullPolicy]int{RefuseRequests: 503, DropNewest: 200} {
		a, err := newAuditor(Config{Client: unreachable(), WhenFull: policy}, never)
		if err != nil {
			t.Fatal(err)
		}
		a.Close(canceled()) // the writer stops: nothing drains the queue
		for len(a.in) < cap(a.in)-refuseMargin {
			a.in <- item{}
		}
		h := a.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		if codes := serveN(t, h, 1); codes[0] != want {
			t.Errorf("%v: %d, want %d", policy, codes[0], want)
		}
	}
}
