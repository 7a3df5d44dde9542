package leaf

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/google/go-cmp/cmp"
)

func goldenEventsV2() []custos.Event {
	v1 := goldenEvents()
	client := v1[1]
	client.LeafVersion, client.Kind, client.SubmittedBy = Version2, custos.KindClient, "apikey:0123456789abcdef"
	client.Disclosure = &custos.Disclosure{Recipient: "Acme Insurance", Purpose: "PAYMENT"}
	client.Original = &custos.Original{Format: "application/fhir+json", Data: []byte(`{"resourceType":"AuditEvent"}`)}
	server := v1[0]
	server.LeafVersion, server.Kind, server.SubmittedBy = Version2, custos.KindServer, "custos"
	return []custos.Event{client, server}
}

func goldenStates() []StateRecord {
	return []StateRecord{
		{Index: 7, Timestamp: time.Date(2026, 11, 25, 9, 0, 0, 1000, time.UTC), SubmittedBy: "apikey:0123456789abcdef",
			Entity: "api_key", ID: "fedcba9876543210", Op: OpPut, Doc: []byte(`{"id":"fedcba9876543210","scopes":["read"]}`)},
		{Index: 8, Timestamp: time.Date(2026, 11, 25, 9, 0, 1, 0, time.UTC), SubmittedBy: "custos",
			Entity: "api_key", ID: "fedcba9876543210", Op: OpDelete},
	}
}

// TestGoldenVectorsV2 pins the version 2 encodings. THESE VALUES MUST NEVER
// CHANGE: every ledger written since version 2 depends on them.
func TestGoldenVectorsV2(t *testing.T) {
	events := []struct{ leaf, hash string }{
		{
			leaf: "0201000000000000002a00065f326a964360176170696b65793a303132333435363738396162636465660100065f326a7200000764722e677265790d4d657265646974682047726579020970687973696369616e0773757267656f6e04524541440750617469656e7405702d31323305702d3132330b3230332e302e3131332e370b4d6f7a696c6c612f352e30034745540e2f50617469656e742f702d31323301107b2261223a5b312c322c22c3a9225d7d0773756363657373c801076568722d776562057265712d3106736573732d31055452454154010e636172646961632061727265737404010e41636d6520496e737572616e636503075041594d454e5404156170706c69636174696f6e2f666869722b6a736f6e051d7b227265736f7572636554797065223a2241756469744576656e74227d",
			hash: "vs27I0lAYWZdLFmocge/V3s8P8ruoHQh1S591Z1SKKM=",
		},
		{
			leaf: "0203000000000000000000065f326a7f600006637573746f73000673797374656d0000054c4f47494e0753657373696f6e0000000000000007737563636573730000000000000000",
			hash: "VAYKoNN/4nCth8lIvcIp2QfUKVRvQr0JRC3xtccSWLI=",
		},
	}
	for i, e := range goldenEventsV2() {
		if err := Valid(&e); err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		leaf := EncodeEvent(&e)
		if got := hex.EncodeToString(leaf); got != events[i].leaf {
			t.Errorf("event vector %d leaf changed:\n got %s\nwant %s", i, got, events[i].leaf)
		}
		if got := base64.StdEncoding.EncodeToString(LeafHash(&e)); got != events[i].hash {
			t.Errorf("event vector %d leaf hash = %s, want %s", i, got, events[i].hash)
		}
	}
	states := []struct{ leaf, hash string }{
		{"02020000000000000007000661160d440401176170696b65793a30313233343536373839616263646566076170695f6b65791066656463626139383736353433323130037075742b7b226964223a2266656463626139383736353433323130222c2273636f706573223a5b2272656164225d7d",
			"ycu2CzXPUuFQm9OQ4X+4n3L6JXyQrDnFq2tUMrwQCg0="},
		{"02020000000000000008000661160d53464006637573746f73076170695f6b657910666564636261393837363534333231300664656c65746500",
			"pcDoy8UlN6o+sBIsD1PRA8nRPY7VSaIMnMt82ub5s9o="},
	}
	for i, r := range goldenStates() {
		if got := hex.EncodeToString(EncodeState(&r)); got != states[i].leaf {
			t.Errorf("state vector %d leaf changed:\n got %s\nwant %s", i, got, states[i].leaf)
		}
		if got := base64.StdEncoding.EncodeToString(StateHash(&r)); got != states[i].hash {
			t.Errorf("state vector %d leaf hash = %s, want %s", i, got, states[i].hash)
		}
	}
}

// TestKindsCannotCollide: an audit event, a server event and a state record
// with the same content never share a leaf, so a client's event can never
// pass for a record only the server writes.
func TestKindsCannotCollide(t *testing.T) {
	e := goldenEventsV2()[0]
	client := EncodeEvent(&e)
	e.Kind = custos.KindServer
	server := EncodeEvent(&e)
	if client[1] == server[1] || string(LeafHash(&e)) == string(Hasher.HashLeaf(client)) {
		t.Fatal("client and server events encode alike")
	}
	if _, err := DecodeState(client); err == nil {
		t.Fatal("an audit event decoded as a state record")
	}
	st := goldenStates()[0]
	if _, err := DecodeEvent(EncodeState(&st)); err == nil {
		t.Fatal("a state record decoded as an audit event")
	}
}

func TestValid(t *testing.T) {
	base := goldenEventsV2()[0]
	for name, mut := range map[string]func(e *custos.Event){
		"v1 with submitter":     func(e *custos.Event) { e.LeafVersion = Version1; e.Disclosure, e.Original, e.Kind = nil, nil, "" },
		"v1 with server kind":   func(e *custos.Event) { e.LeafVersion, e.SubmittedBy, e.Disclosure, e.Original = Version1, "", nil, nil },
		"unknown version":       func(e *custos.Event) { e.LeafVersion = 3 },
		"unknown kind":          func(e *custos.Event) { e.Kind = "admin" },
		"empty disclosure":      func(e *custos.Event) { e.Disclosure = &custos.Disclosure{} },
		"original without data": func(e *custos.Event) { e.Original = &custos.Original{Format: "x"} },
	} {
		e := base
		if name == "v1 with server kind" {
			e.Kind = custos.KindServer
		}
		mut(&e)
		if name == "v1 with server kind" {
			e.Kind = custos.KindServer
		}
		if err := Valid(&e); !errors.Is(err, ErrMalformedLeaf) {
			t.Errorf("%s: Valid = %v", name, err)
		}
	}
}

func TestStateRoundTripAndRejects(t *testing.T) {
	for _, r := range goldenStates() {
		got, err := DecodeState(EncodeState(&r))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(r, *got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	bad := []StateRecord{
		{Entity: "api_key", ID: "x", Op: OpPut, Doc: []byte("{")},
		{Entity: "api_key", ID: "x", Op: OpDelete, Doc: []byte("{}")},
		{Entity: "", ID: "x", Op: OpPut, Doc: []byte("{}")},
		{Entity: "api_key", ID: "x", Op: "patch", Doc: []byte("{}")},
	}
	for i, r := range bad {
		if err := ValidState(&r); err == nil {
			t.Errorf("bad state %d accepted", i)
		}
		if _, err := DecodeState(EncodeState(&r)); err == nil {
			t.Errorf("bad state %d decoded", i)
		}
	}
}

func TestExtRejectsNonCanonical(t *testing.T) {
	for name, b := range map[string][]byte{
		"tags out of order": {2, 2, 1, 'a', 1, 1, 'b'},
		"repeated tag":      {2, 1, 1, 'a', 1, 1, 'b'},
		"empty value":       {1, 1, 0},
		"unknown tag":       {1, 99, 1, 'a'},
		"data no format":    {1, 5, 1, 'a'},
		"format no data":    {1, 4, 1, 'a'},
		"count too large":   {9},
	} {
		var e custos.Event
		if err := DecodeExt(b, &e); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	var e custos.Event
	if err := DecodeExt([]byte{0}, &e); err != nil || e.Disclosure != nil {
		t.Errorf("no extensions: %v %+v", err, e)
	}
	_ = json.Valid
}

// FuzzDecodeState: decoding never panics, and whatever decodes re-encodes to
// the same bytes.
func FuzzDecodeState(f *testing.F) {
	for _, r := range goldenStates() {
		f.Add(EncodeState(&r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeState(b)
		if err != nil {
			return
		}
		if got := EncodeState(r); string(got) != string(b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, got)
		}
	})
}

// TestGoldenDeliveryExtension pins the delivery extension (tags 6 to 8) of a
// version 2 event. THESE VALUES MUST NEVER CHANGE.
func TestGoldenDeliveryExtension(t *testing.T) {
	e := goldenEventsV2()[0]
	e.Original = nil
	e.Delivery = &custos.Delivery{Key: "batch-7f3a", Digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Count: 12}
	const (
		wantLeaf = "0201000000000000002a00065f326a964360176170696b65793a303132333435363738396162636465660100065f326a7200000764722e677265790d4d657265646974682047726579020970687973696369616e0773757267656f6e04524541440750617469656e7405702d31323305702d3132330b3230332e302e3131332e370b4d6f7a696c6c612f352e30034745540e2f50617469656e742f702d31323301107b2261223a5b312c322c22c3a9225d7d0773756363657373c801076568722d776562057265712d3106736573732d31055452454154010e636172646961632061727265737405010e41636d6520496e737572616e636503075041594d454e54060a62617463682d3766336107403966383664303831383834633764363539613266656161306335356164303135613362663466316232623062383232636431356436633135623066303061303808023132"
		wantHash = "DRn6SRXGXZE44vWj2q4Padjctn651x874vdtxgvGeAo="
	)
	if err := Valid(&e); err != nil {
		t.Fatal(err)
	}
	b := EncodeEvent(&e)
	if got := hex.EncodeToString(b); got != wantLeaf {
		t.Errorf("leaf changed:\n got %s\nwant %s", got, wantLeaf)
	}
	if got := base64.StdEncoding.EncodeToString(LeafHash(&e)); got != wantHash {
		t.Errorf("leaf hash = %s, want %s", got, wantHash)
	}
	back, err := DecodeEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e.Delivery, back.Delivery); diff != "" {
		t.Errorf("delivery round trip:\n%s", diff)
	}
	// Non-canonical counts and a delivery without its key are refused.
	for name, ext := range map[string][]byte{
		"count with a leading zero": {2, 6, 1, 'k', 8, 2, '0', '1'},
		"zero count":                {2, 6, 1, 'k', 8, 1, '0'},
		"digest without key":        {1, 7, 1, 'd'},
		"key without digest":        {2, 6, 1, 'k', 8, 1, '1'},
	} {
		var got custos.Event
		if err := DecodeExt(ext, &got); err == nil {
			t.Errorf("%s: decoded as %+v", name, got.Delivery)
		}
	}
}
