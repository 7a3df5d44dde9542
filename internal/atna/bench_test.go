package atna_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/custos-audit/custos/internal/atna"
)

// BenchmarkDecode measures the DICOM parser and mapping over the corpus.
func BenchmarkDecode(b *testing.B) {
	msgs := corpusPerMessage(b)
	for i := 0; b.Loop(); i++ {
		if _, err := atna.Decode(bytes.Clone(msgs[i%len(msgs)]), atna.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkXMLTokens measures the standard library's XML tokenizer alone
// over the corpus: RawToken to the end of each message, as Decode reads
// it, with no mapping and nothing stored. It is the floor of any receiver
// that parses with encoding/xml: a message cannot cost less CPU than this.
func BenchmarkXMLTokens(b *testing.B) {
	msgs := corpusPerMessage(b)
	for i := 0; b.Loop(); i++ {
		d := xml.NewDecoder(bytes.NewReader(msgs[i%len(msgs)]))
		for {
			if _, err := d.RawToken(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkTLS8 sends the corpus, round robin, over 8 mutually
// authenticated TLS connections to a receiver on a real SQLite ledger, and
// reports durable messages/s: the clock stops when the ledger holds every
// message. The senders run in the same process, on the same CPUs.
func BenchmarkTLS8(b *testing.B) {
	const conns = 8
	msgs := corpusList(b)
	r := newRig(b, atna.Config{})
	payload := make([][]byte, conns)
	per := (b.N + conns - 1) / conns
	total := 0
	for c := range payload {
		var buf bytes.Buffer
		for i := 0; i < per && total < b.N; i++ {
			buf.Write(syslogFrame(msgs[total%len(msgs)]))
			total++
		}
		payload[c] = buf.Bytes()
	}
	cs := make([]interface{ Write([]byte) (int, error) }, conns)
	for i := range cs {
		cs[i] = r.dial(b)
	}
	b.ResetTimer()
	start := time.Now()
	errs := make(chan error, conns)
	for i := range cs {
		go func() { _, err := cs[i].Write(payload[i]); errs <- err }()
	}
	for range cs {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	r.waitSize(b, uint64(total))
	d := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(total)/d.Seconds(), "msgs/s")
}

// corpusPerMessage returns the corpus and has b report bytes and
// allocations per message.
func corpusPerMessage(b *testing.B) [][]byte {
	msgs := corpusList(b)
	size := 0
	for _, m := range msgs {
		size += len(m)
	}
	b.SetBytes(int64(size / len(msgs)))
	b.ReportAllocs()
	return msgs
}

func corpusList(tb testing.TB) [][]byte {
	m := readCorpus(tb)
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([][]byte, len(names))
	for i, n := range names {
		out[i] = m[n]
	}
	return out
}
