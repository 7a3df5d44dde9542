package leaf

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/google/go-cmp/cmp"
)

func goldenEvents() []custos.Event {
	occurred := time.Date(2026, 11, 1, 7, 59, 59, 123456000, time.UTC)
	return []custos.Event{
		{
			LeafVersion: Version1, Index: 0, Timestamp: time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC),
			User:   custos.User{ID: "system", Roles: []string{}},
			Action: custos.ActionLogin, ResourceType: "Session", Outcome: custos.OutcomeSuccess,
		},
		{
			LeafVersion: Version1, Index: 42, Timestamp: time.Date(2026, 11, 1, 8, 0, 1, 500000000, time.UTC), OccurredAt: &occurred,
			User:   custos.User{ID: "dr.grey", Name: "Meredith Grey", Roles: []string{"physician", "surgeon"}},
			Action: custos.ActionRead, ResourceType: "Patient", ResourceID: "p-123", PatientID: "p-123",
			IPAddress: "203.0.113.7", UserAgent: "Mozilla/5.0", RequestMethod: "GET", RequestPath: "/Patient/p-123",
			Changes: json.RawMessage(`{"a":[1,2,"é"]}`), Outcome: custos.OutcomeSuccess, StatusCode: 200,
			Source: "ehr-web", RequestID: "req-1", SessionID: "sess-1", PurposeOfUse: "TREAT",
			BreakGlass: true, BreakGlassReason: "cardiac arrest",
		},
	}
}

// TestGoldenVectors pins the version 1 leaf encoding and its RFC 6962 leaf
// hash. THESE VALUES MUST NEVER CHANGE: every stored ledger depends on them.
func TestGoldenVectors(t *testing.T) {
	want := []struct{ leaf, hash string }{
		{
			leaf: "0101000000000000000000065f326a7f6000000673797374656d0000054c4f47494e0753657373696f6e00000000000000077375636365737300000000000000",
			hash: "Hx0F2miPuoskEAPoC4KKtoxeONvg04cQqV0PmV2UgE8=",
		},
		{
			leaf: "0101000000000000002a00065f326a9643600100065f326a7200000764722e677265790d4d657265646974682047726579020970687973696369616e0773757267656f6e04524541440750617469656e7405702d31323305702d3132330b3230332e302e3131332e370b4d6f7a696c6c612f352e30034745540e2f50617469656e742f702d31323301107b2261223a5b312c322c22c3a9225d7d0773756363657373c801076568722d776562057265712d3106736573732d31055452454154010e6361726469616320617272657374",
			hash: "cFpi94/GPAM3S7Yh7UbokSiMAQVXFh0zPnTx4Y6pM0U=",
		},
	}
	for i, e := range goldenEvents() {
		leaf := EncodeEvent(&e)
		if got := hex.EncodeToString(leaf); got != want[i].leaf {
			t.Errorf("vector %d leaf changed:\n got %s\nwant %s", i, got, want[i].leaf)
		}
		if got := base64.StdEncoding.EncodeToString(LeafHash(&e)); got != want[i].hash {
			t.Errorf("vector %d leaf hash = %s, want %s", i, got, want[i].hash)
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, e := range append(goldenEvents(), goldenEventsV2()...) {
		leaf := EncodeEvent(&e)
		got, err := DecodeEvent(leaf)
		if err != nil {
			t.Fatalf("DecodeEvent: %v", err)
		}
		if diff := cmp.Diff(e, *got, cmp.Comparer(func(a, b []string) bool { return len(a) == len(b) && (len(a) == 0 || cmp.Equal(a, b)) })); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good := EncodeEvent(&goldenEvents()[1])
	for name, b := range map[string][]byte{
		"empty":          nil,
		"wrong version":  append([]byte{3}, good[1:]...),
		"v2 of v1 bytes": append([]byte{2}, good[1:]...),
		"wrong kind":     append([]byte{1, 9}, good[2:]...),
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte{}, good...), 0),
	} {
		if _, err := DecodeEvent(b); err == nil {
			t.Errorf("%s: DecodeEvent accepted it", name)
		}
	}
}

// FuzzDecodeEvent: decoding never panics, and whatever decodes re-encodes to
// exactly the same bytes (the encoding is canonical).
func FuzzDecodeEvent(f *testing.F) {
	for _, e := range append(goldenEvents(), goldenEventsV2()...) {
		f.Add(EncodeEvent(&e))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEvent(b)
		if err != nil {
			return
		}
		if got := EncodeEvent(e); string(got) != string(b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, got)
		}
	})
}

// AppendLeafHash gives LeafHash's hash for events of both versions, whatever
// its scratch buffer held before.
func TestAppendLeafHash(t *testing.T) {
	var dst, scratch []byte
	for i, e := range append(goldenEvents(), goldenEventsV2()...) {
		var h []byte
		n := len(dst)
		dst, scratch = AppendLeafHash(dst, scratch, &e)
		h = dst[n:]
		if want := LeafHash(&e); !bytes.Equal(h, want) {
			t.Errorf("event %d: AppendLeafHash %x, LeafHash %x", i, h, want)
		}
	}
}
