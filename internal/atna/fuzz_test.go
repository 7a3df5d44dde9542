package atna_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/atna"
)

// FuzzDecode: any input is either a valid event carrying the input as its
// original, or a *Rejection; never a panic, never an event the ledger would
// refuse. Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	lim := atna.Limits{MaxBytes: 8 << 10, MaxDepth: 8}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		e, err := atna.Decode(data, lim)
		if err != nil {
			var rj *atna.Rejection
			if !errors.As(err, &rj) {
				t.Fatalf("not a rejection: %v", err)
			}
			return
		}
		if !bytes.Equal(e.Original.Data, bytes.TrimPrefix(in, []byte("\xEF\xBB\xBF"))) {
			t.Fatal("the original is not the input")
		}
		if len(in) > lim.MaxBytes {
			t.Fatalf("accepted %d bytes over the limit %d", len(in), lim.MaxBytes)
		}
		if err := e.Normalize(custos.DefaultLimits, ""); err != nil {
			t.Fatalf("accepted an event the ledger refuses: %v", err)
		}
		if bytes.Contains(in, []byte("<!")) && !bytes.Contains(in, []byte("<!--")) && !bytes.Contains(in, []byte("<![CDATA[")) {
			t.Fatal("accepted a declaration")
		}
	})
}

// FuzzFrameReader: frames are never over the limit, never hold more bytes
// than were sent, and a frame written as "LEN SP MSG" reads back. Seeds:
// testdata/fuzz/FuzzFrameReader.
func FuzzFrameReader(f *testing.F) {
	const max = 256
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := atna.NewFrameReader(bytes.NewReader(data), max)
		total := 0
		for {
			frame, err := fr.Next()
			if err != nil {
				var rj *atna.Rejection
				if err.Error() != "EOF" && !errors.As(err, &rj) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if len(frame) == 0 || len(frame) > max {
				t.Fatalf("a frame of %d bytes (limit %d)", len(frame), max)
			}
			if total += len(frame); total > len(data) {
				t.Fatal("more bytes framed than were read")
			}
		}
		if len(data) == 0 || len(data) > max {
			return
		}
		var enc bytes.Buffer
		enc.WriteString(itoa(len(data)) + " ")
		enc.Write(data)
		got, err := atna.NewFrameReader(&enc, max).Next()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip: %q, %v", got, err)
		}
	})
}

func itoa(n int) string {
	var b []byte
	for n > 0 || len(b) == 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
