package ingest

import (
	"bytes"
	"strings"
	"testing"
)

// BenchmarkDecode500 decodes and validates a JSON array of 500 events.
func BenchmarkDecode500(b *testing.B) {
	body := []byte("[" + strings.TrimSuffix(strings.Repeat(good+",", 500), ",") + "]")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode("application/json", bytes.NewReader(body), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStrictScan500 is the strict scan alone over the body of
// BenchmarkDecode500: its share of the decode's cost.
func BenchmarkStrictScan500(b *testing.B) {
	body := []byte("[" + strings.TrimSuffix(strings.Repeat(good+",", 500), ",") + "]")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := scanBatch(body, eventSchema, 10_000); err != nil {
			b.Fatal(err)
		}
	}
}
