package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/custos-audit/custos/internal/bench"
)

// The authorize mode: a role hierarchy 8 deep and a few hundred users made
// through the API, then POST /v1/authorize from every client. Allowed
// decisions are recorded in the ledger right behind their answers; denied
// ones (--deny-share) before.

const (
	benchDepth       = 8
	benchRolePerms   = 10
	benchUsers       = 200
	benchBranchRoles = 4 // chains of roles, each benchDepth deep
)

func (c *benchConfig) decisions(ctx context.Context, hc *http.Client, out io.Writer) error {
	// setup creates what a previous run on the same server may have made.
	setup := func(err error) error {
		if err != nil && strings.Contains(err.Error(), "409 Conflict") {
			return nil
		}
		return err
	}
	post := func(method, path string, body any) error {
		b, _ := json.Marshal(body)
		req, err := http.NewRequestWithContext(ctx, method, c.url+path, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, rb)
		}
		return nil
	}
	// Roles: benchBranchRoles chains, each benchDepth deep, each role with
	// its own permissions; users hold the leaf of one chain.
	perm := func(chain, level, i int) string { return fmt.Sprintf("app%d:verb%d_%d", chain, level, i) }
	for chain := range benchBranchRoles {
		for level := range benchDepth {
			r := map[string]any{"name": fmt.Sprintf("bench-%d-%d", chain, level), "description": "custos bench", "permissions": []string{}}
			for i := range benchRolePerms {
				r["permissions"] = append(r["permissions"].([]string), perm(chain, level, i))
			}
			if level > 0 {
				r["parent_role"] = fmt.Sprintf("bench-%d-%d", chain, level-1)
			}
			if err := setup(post("POST", "/v1/roles", r)); err != nil {
				return err
			}
		}
	}
	for u := range benchUsers {
		if err := setup(post("POST", "/v1/users", map[string]any{"id": fmt.Sprintf("bench-user-%d", u), "name": "bench user",
			"roles": []string{fmt.Sprintf("bench-%d-%d", u%benchBranchRoles, benchDepth-1)}})); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "custos bench --mode authorize: %d users, %d role chains %d deep, %d permissions a role, concurrency %d, %s, deny share %.2f\n",
		benchUsers, benchBranchRoles, benchDepth, benchRolePerms, c.concurrency, c.duration, c.denyShare)
	res := bench.Run(ctx, "authorize", bench.Load{Concurrency: c.concurrency, Rate: c.rate, Duration: c.duration,
		Do: func(ctx context.Context, i int) (int, error) {
			r := rand.New(rand.NewPCG(uint64(i), 9))
			u := r.IntN(benchUsers)
			chain := u % benchBranchRoles
			if r.Float64() < c.denyShare {
				chain = (chain + 1) % benchBranchRoles // another chain's permission: denied
			}
			q := map[string]any{"user_id": fmt.Sprintf("bench-user-%d", u),
				"permission": perm(chain, r.IntN(benchDepth), r.IntN(benchRolePerms)), "patient_id": fmt.Sprintf("p-%06d", r.IntN(c.patients))}
			return 1, post("POST", "/v1/authorize", q)
		}})
	res.Queries = true
	fmt.Fprintln(out, res)
	fmt.Fprintln(out, "(every decision is appended to the ledger: denials before their answer, allowed decisions in batches right behind)")
	// The floor: the same load on the cheapest route the server has, so
	// that what the machine and the load generator cost shows beside
	// what a decision costs.
	floor := bench.Run(ctx, "floor", bench.Load{Concurrency: c.concurrency, Rate: c.rate, Duration: c.duration,
		Do: func(ctx context.Context, i int) (int, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/healthz", nil)
			if err != nil {
				return 0, err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return 0, err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return 0, fmt.Errorf("GET /healthz: %s", resp.Status)
			}
			return 1, nil
		}})
	floor.Queries = true
	fmt.Fprintln(out, floor)
	fmt.Fprintf(out, "(floor: GET /healthz under the same load, no credential, no body: what the machine and the load generator cost; p99 %.1f ms for decisions against %.1f ms for the floor)\n",
		ms(res.Percentile(99)), ms(floor.Percentile(99)))
	return nil
}

// blockLatency measures, over --rounds attackers each from its own loopback
// address, the time from the answer to an attacker's fifth failed login to
// the first 403 its next requests get: detection, recording and
// enforcement together.
func (c *benchConfig) blockLatency(ctx context.Context, out io.Writer) error {
	fmt.Fprintf(out, "custos bench --mode block: %d attackers, 5 failed logins each, then requests until refused\n", c.rounds)
	var lat []time.Duration
	for i := range c.rounds {
		src := net.IPv4(127, 1, byte(i/250), byte(i%250+1))
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}).DialContext}}
		do := func(path, body string) (int, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+path, strings.NewReader(body))
			if err != nil {
				return 0, err
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				return 0, err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		var acked time.Time
		for j := range 5 {
			code, err := do("/v1/login", fmt.Sprintf(`{"user_id":"victim-%d","password":"guess number %d"}`, i, j))
			if err != nil {
				return err
			}
			if code != http.StatusUnauthorized {
				return fmt.Errorf("attacker %s: failed login %d answered %d", src, j+1, code)
			}
			acked = time.Now()
		}
		for {
			code, err := do("/v1/logout", "")
			if err != nil {
				return err
			}
			if code == http.StatusForbidden {
				lat = append(lat, time.Since(acked))
				break
			}
			if time.Since(acked) > 10*time.Second {
				return fmt.Errorf("attacker %s: not blocked 10 s after its fifth failed login", src)
			}
		}
		hc.CloseIdleConnections()
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(p/100*float64(len(lat)-1))] }
	fmt.Fprintf(out, "block     %d attackers blocked; from the fifth failed login's answer to the first 403: p50 %s p99 %s max %s\n",
		len(lat), pct(50).Round(time.Microsecond), pct(99).Round(time.Microsecond), pct(100).Round(time.Microsecond))
	return nil
}
