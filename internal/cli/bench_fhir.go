package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/custos-audit/custos/client"
	"github.com/custos-audit/custos/internal/bench"
	"github.com/custos-audit/custos/internal/fhir"
)

// fhirBodies pre-encodes the same batches as Custos JSON arrays and as FHIR
// batch Bundles of AuditEvents.
func fhirBodies(seed uint64, count, batch, patients int) (jsonBodies, bundles [][]byte, err error) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	now := time.Now().UTC()
	for range count {
		ins := bench.Events(r, batch, patients)
		jb, err := json.Marshal(ins)
		if err != nil {
			return nil, nil, err
		}
		var b bytes.Buffer
		b.WriteString(`{"resourceType":"Bundle","type":"batch","entry":[`)
		for i := range ins {
			e := ins[i].Event()
			e.OccurredAt = &now
			res, err := fhir.ClientResource(&e)
			if err != nil {
				return nil, nil, err
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"resource":`)
			b.Write(res)
			b.WriteString(`,"request":{"method":"POST","url":"AuditEvent"}}`)
		}
		b.WriteString("]}")
		jsonBodies, bundles = append(jsonBodies, jb), append(bundles, b.Bytes())
	}
	return jsonBodies, bundles, nil
}

// fhirIngest measures, in one run, the same events sent as Custos JSON
// arrays and as FHIR batch Bundles, in alternating phases (JSON, FHIR,
// JSON, FHIR), and reports the ratio of the rates.
func (c *benchConfig) fhirIngest(ctx context.Context, cl *client.Client, hc *http.Client, out io.Writer) error {
	jsonBodies, bundles, err := fhirBodies(1, 64, c.batch, c.patients)
	if err != nil {
		return err
	}
	c.describe(out)
	fmt.Fprintf(out, "bodies: Custos JSON %d bytes, FHIR Bundle %d bytes, per batch of %d\n", len(jsonBodies[0]), len(bundles[0]), c.batch)
	var js, fs []*bench.Result
	for round := range 2 {
		j := bench.Run(ctx, "json", bench.Load{Concurrency: c.concurrency, Rate: c.rate / float64(c.batch), Duration: c.duration,
			Do: func(ctx context.Context, i int) (int, error) {
				r, err := cl.AppendRaw(ctx, "application/json", jsonBodies[i%len(jsonBodies)])
				return len(r), err
			}})
		f := bench.Run(ctx, "fhir", bench.Load{Concurrency: c.concurrency, Rate: c.rate / float64(c.batch), Duration: c.duration,
			Do: func(ctx context.Context, i int) (int, error) {
				return c.postBundle(ctx, hc, bundles[i%len(bundles)])
			}})
		fmt.Fprintf(out, "round %d\n%s\n%s\n", round+1, j, f)
		js, fs = append(js, j), append(fs, f)
	}
	var jr, fr float64
	for i := range js {
		jr += js[i].Rate()
		fr += fs[i].Rate()
	}
	if jr > 0 {
		fmt.Fprintf(out, "ratio     fhir / json = %.2f (means of the rounds: %.0f and %.0f events/s)\n", fr/jr, fr/float64(len(fs)), jr/float64(len(js)))
	}
	return nil
}

// postBundle sends one batch Bundle and counts the entries created.
func (c *benchConfig) postBundle(ctx context.Context, hc *http.Client, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/fhir", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var b struct {
		Entry []struct {
			Response struct{ Status string }
		}
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("POST /fhir: %s: %s", resp.Status, msg)
	}
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range b.Entry {
		if e.Response.Status == "201 Created" {
			n++
		}
	}
	if n != len(b.Entry) {
		return n, fmt.Errorf("POST /fhir: %d of %d entries refused", len(b.Entry)-n, len(b.Entry))
	}
	return n, nil
}

// fhirSearch runs GET /fhir/AuditEvent?patient=… and counts the matches.
func (c *benchConfig) fhirSearch(ctx context.Context, hc *http.Client, patient string) (int, error) {
	q := url.Values{"patient": {patient}, "_count": {fmt.Sprint(c.limit)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/fhir/AuditEvent?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET /fhir/AuditEvent: %s: %s", resp.Status, msg)
	}
	// Counted, not decoded: the load generator shares the server's CPUs.
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return bytes.Count(body, []byte(`"search":{"mode":"match"}`)), nil
}
