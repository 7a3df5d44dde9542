package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/store/postgres"
	"github.com/custos-audit/custos/internal/store/postgres/pgtest"
	"github.com/custos-audit/custos/internal/store/sqlite"
)

// TestInvalidClientsDoNotFailOthers is the target, over HTTP on a
// real `custos serve`, on both stores: while 4 of 20 clients send invalid
// bodies, the other 16 clients' events are all acknowledged (201) and
// stored with their receipts' leaf hashes, the invalid requests are all
// refused 400, and verify passes. The invalid bodies are the release's
// reproductions: invalid UTF-8 inside changes (which PostgreSQL refused,
// failing the whole group commit), and a NUL escaped in a text field.
//
// It runs for 2 s per store by default; CUSTOS_ISOLATION_SECONDS=30 runs the
// issue's full 30 s.
func TestInvalidClientsDoNotFailOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs server processes")
	}
	d := 2 * time.Second
	if s := os.Getenv("CUSTOS_ISOLATION_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CUSTOS_ISOLATION_SECONDS=%q: want a positive number of seconds", s)
		}
		d = time.Duration(n) * time.Second
	}
	bin := buildBinary(t)
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		p := startServe(t, bin, dir)
		defer p.cmd.Process.Kill()
		acked := isolationLoad(t, p, d)
		isolationStop(t, p)
		checkAcknowledged(t, dir, acked)
		if out, err := exec.Command(bin, "verify", "--data", dir).CombinedOutput(); err != nil {
			t.Fatalf("custos verify: %v\n%s", err, out)
		}
		st, err := sqlite.Open(context.Background(), dir, sqlite.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		isolationNothingRefusedStored(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		db := pgtest.FreshSchema(t)
		keyFile := filepath.Join(t.TempDir(), "iso.key")
		if _, _, err := ledger.LoadOrCreateKey(keyFile, "custos.test/isolation"); err != nil {
			t.Fatal(err)
		}
		p := startServe(t, bin, t.TempDir(), "--db", db, "--key-file", keyFile)
		defer p.cmd.Process.Kill()
		acked := isolationLoad(t, p, d)
		isolationStop(t, p)
		st, err := postgres.Open(context.Background(), db, postgres.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		checkReceipts(t, st, acked)
		isolationNothingRefusedStored(t, st)
		if out, err := exec.Command(bin, "verify", "--db", db, "--key-file", keyFile).CombinedOutput(); err != nil {
			t.Fatalf("custos verify --db: %v\n%s", err, out)
		}
	})
}

const isolationBatch = 10 // events per request

// isolationBody is one request: a JSON array of isolationBatch events; an
// invalid client's request has one bad event among valid ones, so the
// request must be refused whole.
func isolationBody(client, i int, invalid bool) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for j := 0; j < isolationBatch; j++ {
		if j > 0 {
			b.WriteByte(',')
		}
		ev := crashEvent(client*10_000_000 + i*isolationBatch + j)
		if invalid {
			ev.ResourceID = "refused"
		}
		e, _ := json.Marshal(ev)
		if invalid && j == isolationBatch/2 {
			e = bytes.TrimSuffix(e, []byte("}"))
			switch i % 2 {
			case 0: // invalid UTF-8 inside changes: PostgreSQL refuses it (22021)
				e = append(e, ",\"changes\":{\"note\":\"caf\xe9 \xff\xfe\"}}"...)
			default: // a NUL escaped in a text field
				e = append(e, `,"user_agent":"agent\u0000"}`...)
			}
		}
		b.Write(e)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// isolationLoad runs 20 clients against p for d, 4 of them sending invalid
// bodies, and returns the acknowledged receipts of the valid ones.
func isolationLoad(t *testing.T, p *proc, d time.Duration) map[uint64][]byte {
	t.Helper()
	const clients, invalidClients = 20, 4
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	type tally struct {
		requests, acked, refused int
		other                    map[int]int // unexpected statuses
		firstOther               string
		slowest                  time.Duration
	}
	var mu sync.Mutex
	acked := map[uint64][]byte{}
	valid, invalid := tally{other: map[int]int{}}, tally{other: map[int]int{}}
	var samples [3]string // a 400 answer to each kind of invalid body
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bad := c < invalidClients
			for i := 0; time.Now().Before(deadline); i++ {
				path, reqBody := "/v1/events", isolationBody(c, i, bad)
				if c == invalidClients-1 {
					// Through the key API: a key name with a NUL.
					path, reqBody = "/v1/api-keys", []byte(`{"name":"key\u0000name","scopes":["read"]}`)
				}
				req, _ := http.NewRequest("POST", p.url+path, bytes.NewReader(reqBody))
				req.Header.Set("Authorization", "Bearer "+crashToken)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					t.Errorf("client %d: %v", c, err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				took := time.Since(start)
				mu.Lock()
				tl := &valid
				if bad {
					tl = &invalid
				}
				tl.requests++
				tl.slowest = max(tl.slowest, took)
				switch {
				case !bad && resp.StatusCode == http.StatusCreated:
					var out struct{ Receipts []custos.Receipt }
					if err := json.Unmarshal(body, &out); err != nil || len(out.Receipts) != isolationBatch {
						t.Errorf("client %d: 201 with %d receipts (%v): %s", c, len(out.Receipts), err, body)
					}
					for _, r := range out.Receipts {
						if _, dup := acked[r.Index]; dup {
							t.Errorf("index %d acknowledged twice", r.Index)
						}
						acked[r.Index] = r.LeafHash
					}
					tl.acked++
				case bad && resp.StatusCode == http.StatusBadRequest:
					tl.refused++
					kind := i % 2
					if c == invalidClients-1 {
						kind = 2
					}
					if samples[kind] == "" {
						samples[kind] = string(bytes.TrimSpace(body))
					}
				default:
					tl.other[resp.StatusCode]++
					if tl.firstOther == "" {
						tl.firstOther = fmt.Sprintf("%d %s", resp.StatusCode, body)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	secs := d.Seconds()
	t.Logf("%s: 16 valid clients: %d requests, %d acknowledged (%d events, %.0f events/s), slowest %v; other answers %v",
		d, valid.requests, valid.acked, len(acked), float64(len(acked))/secs, valid.slowest.Round(time.Millisecond), valid.other)
	t.Logf("%s: 4 invalid clients: %d requests, %d refused 400, slowest %v; other answers %v",
		d, invalid.requests, invalid.refused, invalid.slowest.Round(time.Millisecond), invalid.other)
	t.Logf("answer to invalid UTF-8 in changes: %s", samples[0])
	t.Logf("answer to a NUL in user_agent: %s", samples[1])
	t.Logf("answer to a key name with a NUL: %s", samples[2])
	if valid.acked == 0 || valid.acked != valid.requests {
		t.Errorf("%d of %d valid requests acknowledged, want all (first other answer: %s)", valid.acked, valid.requests, valid.firstOther)
	}
	if invalid.requests == 0 || invalid.refused != invalid.requests {
		t.Errorf("%d of %d invalid requests refused 400, want all (first other answer: %s)", invalid.refused, invalid.requests, invalid.firstOther)
	}
	return acked
}

func isolationStop(t *testing.T, p *proc) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("clean shutdown: %v\n%s", err, p.log)
	}
}

// isolationNothingRefusedStored: no event of an invalid client's request
// was stored (they all carry resource_id "refused").
func isolationNothingRefusedStored(t *testing.T, st store.Scanner) {
	t.Helper()
	n := 0
	err := st.ScanEvents(context.Background(), 0, func(e custos.Event) error {
		if n++; e.ResourceID == "refused" {
			return fmt.Errorf("event %d of a refused request is stored", e.Index)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events stored, none of a refused request", n)
}
