package httpaudit_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/client"
	"github.com/custos-audit/custos/httpaudit"
	"github.com/custos-audit/custos/httpaudit/internal/custostest"
)

// BenchmarkMiddleware measures what the middleware adds to a request: each
// iteration serves one request through the bare handler and one through
// the audited handler, interleaved so both see the same machine, and
// reports the p50 and p99 of each and their differences (overhead-p50-µs,
// overhead-p99-µs). "up" delivers to a real Custos on loopback; "down"
// spools to disk with Custos unreachable.
//
//	go test -run '^$' -bench BenchmarkMiddleware -benchtime 20000x ./httpaudit/
func BenchmarkMiddleware(b *testing.B) {
	for _, state := range []string{"up", "down"} {
		for _, kind := range []string{"read", "write"} {
			b.Run(state+"/"+kind, func(b *testing.B) { benchMiddleware(b, state, kind) })
		}
	}
}

func benchMiddleware(b *testing.B, state, kind string) {
	var cl *client.Client
	if state == "up" {
		srv := custostest.Start(b)
		cl = client.New(srv.URL, srv.Key(), nil)
	} else {
		cl = client.New("http://127.0.0.1:1", "unreachable", nil)
	}
	a, err := httpaudit.New(httpaudit.Config{Client: cl, Source: "bench", SpoolDir: b.TempDir(), FHIRBase: "/fhir",
		SpoolMaxBytes: 1 << 30, User: func(*http.Request) (custos.User, bool) {
			return custos.User{ID: "dr.grey", Roles: []string{"physician"}}, true
		}})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second) // down: nothing to wait for
		defer cancel()
		a.Close(ctx)
	}()
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			io.Copy(io.Discard, r.Body)
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		io.WriteString(w, `{"resourceType":"Patient","id":"123"}`)
	})
	audited := a.Handler(bare)
	newReq := func() *http.Request {
		if kind == "write" {
			r := httptest.NewRequest("PUT", "/fhir/Patient/123", strings.NewReader(`{"resourceType":"Patient","id":"123","name":[{"family":"Lee"}],"ssn":"123-45-6789"}`))
			r.Header.Set("Content-Type", "application/fhir+json")
			return r
		}
		return httptest.NewRequest("GET", "/fhir/Patient/123", nil)
	}
	timeOne := func(h http.Handler) time.Duration {
		r, w := newReq(), httptest.NewRecorder()
		t0 := time.Now()
		h.ServeHTTP(w, r)
		return time.Since(t0)
	}
	bareT := make([]time.Duration, 0, b.N)
	audT := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		bareT = append(bareT, timeOne(bare))
		audT = append(audT, timeOne(audited))
	}
	b.StopTimer()
	p := func(d []time.Duration, q float64) float64 {
		slices.Sort(d)
		return float64(d[int(q*float64(len(d)-1))]) / float64(time.Microsecond)
	}
	b50, b99, a50, a99 := p(bareT, 0.50), p(bareT, 0.99), p(audT, 0.50), p(audT, 0.99)
	b.ReportMetric(b50, "bare-p50-µs")
	b.ReportMetric(a50, "audited-p50-µs")
	b.ReportMetric(a50-b50, "overhead-p50-µs")
	b.ReportMetric(b99, "bare-p99-µs")
	b.ReportMetric(a99, "audited-p99-µs")
	b.ReportMetric(a99-b99, "overhead-p99-µs")
	st := a.Stats()
	b.ReportMetric(float64(st.Dropped), "dropped")
	if state == "up" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Flush(ctx); err != nil {
			b.Fatalf("flush: %v", err)
		}
	}
}
