package cli

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/custos-audit/custos/client"
	"github.com/custos-audit/custos/internal/bench"
)

// The proxy mode: a trivial upstream in this process, loaded first alone,
// then through custos proxy (also in this process) in front of it, in the
// same run; then every proxied request's event is counted in Custos.

// benchUpstream is the trivial upstream: a small JSON answer to anything.
func benchUpstream() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	body := []byte(`{"resourceType":"Patient","id":"p","active":true}`)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/fhir+json")
			w.Write(body)
		})}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

func (c *benchConfig) proxyOverhead(ctx context.Context, stdout, stderr io.Writer) error {
	upstream := c.upstream
	if upstream == "" {
		u, stopUpstream, err := benchUpstream()
		if err != nil {
			return err
		}
		defer stopUpstream()
		upstream = u
	}
	spool, err := os.MkdirTemp("", "custos-bench-spool-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(spool)
	nonce := make([]byte, 4)
	crand.Read(nonce)
	user := "bench-proxy-" + hex.EncodeToString(nonce) // the run's events, and only them, carry this user
	var pc proxyConfig
	pc.flags(flag.NewFlagSet("", flag.ContinueOnError)) // the defaults
	pc.addr, pc.upstream, pc.custosURL, pc.token, pc.spool = "127.0.0.1:0", upstream, c.url, c.token, spool
	pc.fhirBase, pc.userHeader, pc.trusted, pc.source = "/fhir", "X-Bench-User", listFlag{"127.0.0.1"}, "custos-bench"
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	px, err := startProxy(ctx, pc, log)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			px.shutdown()
		}
	}()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.concurrency * 2, MaxConnsPerHost: c.concurrency * 2}}
	var answered atomic.Int64 // proxied requests answered, whatever the status: each has an event
	get := func(base string) func(ctx context.Context, i int) (int, error) {
		return func(ctx context.Context, i int) (int, error) {
			r := rand.New(rand.NewPCG(uint64(i), 3))
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/fhir/Patient/p-%06d", base, r.IntN(c.patients)), nil)
			if err != nil {
				return 0, err
			}
			req.Header.Set("X-Bench-User", user)
			resp, err := hc.Do(req)
			if err != nil {
				return 0, err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if base == px.url {
				answered.Add(1)
			}
			if resp.StatusCode != http.StatusOK {
				return 0, fmt.Errorf("GET: %s", resp.Status)
			}
			return 1, nil
		}
	}
	fmt.Fprintf(stdout, "custos bench --mode proxy: GET /fhir/Patient/{id} of %s, alone then through custos proxy, concurrency %d, %s per phase\n",
		upstreamName(c.upstream), c.concurrency, c.duration)
	fmt.Fprintln(stdout, "(Custos, the proxy, the upstream and this load generator all share this machine)")
	cpu0 := cpuTime()
	alone := bench.Run(ctx, "upstream", bench.Load{Concurrency: c.concurrency, Rate: c.rate, Duration: c.duration, Do: get(upstream)})
	alone.Queries = true
	cpu1 := cpuTime()
	fmt.Fprintln(stdout, alone)
	through := bench.Run(ctx, "proxy", bench.Load{Concurrency: c.concurrency, Rate: c.rate, Duration: c.duration, Do: get(px.url)})
	through.Queries = true
	cpu2 := cpuTime()
	fmt.Fprintln(stdout, through)
	if alone.Rate() > 0 && alone.Requests > 0 && through.Requests > 0 {
		perAlone := (cpu1 - cpu0) / time.Duration(alone.Requests)
		perThrough := (cpu2 - cpu1) / time.Duration(through.Requests)
		fmt.Fprintf(stdout, "ratio     proxy / upstream alone = %.2f (requests/s); latency p50 %s vs %s\n",
			through.Rate()/alone.Rate(), through.Percentile(50).Round(time.Microsecond), alone.Percentile(50).Round(time.Microsecond))
		fmt.Fprintf(stdout, "cpu       this process used %s per request through the proxy (load generator, proxy, upstream%s), %s alone; %.1f and %.1f cores busy on average\n",
			perThrough.Round(time.Microsecond), c.inProcess(), perAlone.Round(time.Microsecond),
			float64(cpu2-cpu1)/float64(through.Elapsed), float64(cpu1-cpu0)/float64(alone.Elapsed))
	}
	// Closing the proxy sends every event it still holds; then count them.
	stats := px.auditor.Stats()
	stopped = true
	if err := px.shutdown(); err != nil {
		return fmt.Errorf("proxy shutdown: %w", err)
	}
	n, err := countEvents(ctx, client.New(c.url, c.token, hc), user)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "acknowledged: %d of %d proxied requests have their event in Custos (middleware stats before close: %+v)\n",
		n, answered.Load(), stats)
	if int64(n) != answered.Load() {
		return fmt.Errorf("the proxy answered %d requests, but %d events are in Custos", answered.Load(), n)
	}
	return nil
}

func upstreamName(u string) string {
	if u == "" {
		return "a trivial upstream"
	}
	return u
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// inProcess names Custos among the process's parts when it runs in it.
func (c *benchConfig) inProcess() string {
	if c.inProc {
		return ", Custos recording the events"
	}
	return ""
}

// countEvents counts the events of one user, page by page.
func countEvents(ctx context.Context, cl *client.Client, user string) (int, error) {
	q := url.Values{"user": {user}, "limit": {"1000"}}
	n := 0
	for {
		p, err := cl.Events(ctx, q)
		if err != nil {
			return n, err
		}
		n += len(p.Items)
		if p.NextCursor == "" {
			return n, nil
		}
		if len(p.Items) == 0 {
			return n, errors.New("an empty page with a cursor")
		}
		q.Set("cursor", p.NextCursor)
	}
}
