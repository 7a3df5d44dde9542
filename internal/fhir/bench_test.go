package fhir

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/bench"
	"github.com/custos-audit/custos/internal/ingest"
)

// benchBatch returns the same 500 events of custos bench as a Custos JSON
// array and as a FHIR batch Bundle.
func benchBatch(b *testing.B) (jsonBody, bundle []byte) {
	b.Helper()
	ins := bench.Events(rand.New(rand.NewPCG(1, 2)), 500, 100_000)
	jsonBody, err := json.Marshal(ins)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	var buf bytes.Buffer
	buf.WriteString(`{"resourceType":"Bundle","type":"batch","entry":[`)
	for i := range ins {
		e := ins[i].Event()
		e.OccurredAt = &now
		res, err := ClientResource(&e)
		if err != nil {
			b.Fatal(err)
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"resource":`)
		buf.Write(res)
		buf.WriteString(`,"request":{"method":"POST","url":"AuditEvent"}}`)
	}
	buf.WriteString("]}")
	return jsonBody, buf.Bytes()
}

// BenchmarkBundle500 decodes, checks and maps a 500-resource batch Bundle:
// the FHIR side of what BenchmarkJSON500 does for the same events.
func BenchmarkBundle500(b *testing.B) {
	_, bundle := benchBatch(b)
	h := New(Config{})
	b.SetBytes(int64(len(bundle)))
	for b.Loop() {
		bd, err := h.decodeBundle(bundle)
		if err != nil {
			b.Fatal(err)
		}
		for i := range bd.Entry {
			if _, err := h.entryEvent(&bd.Entry[i], i); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkJSON500 decodes the same events as a Custos JSON array.
func BenchmarkJSON500(b *testing.B) {
	body, _ := benchBatch(b)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ingest.Decode("application/json", bytes.NewReader(body), ingest.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRender renders one record received as FHIR and one that was not.
func BenchmarkRender(b *testing.B) {
	_, bundle := benchBatch(b)
	h := New(Config{})
	bd, _ := h.decodeBundle(bundle)
	in, err := h.entryEvent(&bd.Entry[0], 0)
	if err != nil {
		b.Fatal(err)
	}
	native := shapes()["patient READ"]
	for b.Loop() {
		if _, err := Render(&in); err != nil {
			b.Fatal(err)
		}
		if _, err := Render(&native); err != nil {
			b.Fatal(err)
		}
	}
	_ = custos.DefaultLimits
}
