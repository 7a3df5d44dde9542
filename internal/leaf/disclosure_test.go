package leaf

import (
	"encoding/base64"
	"encoding/hex"
	"testing"

	"github.com/custos-audit/custos"
)

// goldenDisclosure is an EXPORT that discloses to a third party, with every
// field of a disclosure (recipient, address, purpose: tags 1, 2, 3) and no
// original record.
func goldenDisclosure() custos.Event {
	e := goldenEventsV2()[0]
	e.Action, e.Original = custos.ActionExport, nil
	e.Disclosure = &custos.Disclosure{Recipient: "Acme Insurance", Address: "1 Main St, Springfield", Purpose: "claim review"}
	return e
}

// TestGoldenVectorDisclosure pins the encoding of a disclosure with its
// address, which the accounting of disclosures (45 CFR 164.528) reads.
// THESE VALUES MUST NEVER CHANGE. Disclosures need no new leaf version:
// they are version 2 extensions (tags 1–3), and leaves without them encode
// as before (TestGoldenVectorsV2 and the version 1 vectors still hold).
func TestGoldenVectorDisclosure(t *testing.T) {
	const wantLeaf = "0201000000000000002a00065f326a964360176170696b65793a303132333435363738396162636465660100065f326a7200000764722e677265790d4d657265646974682047726579020970687973696369616e0773757267656f6e064558504f52540750617469656e7405702d31323305702d3132330b3230332e302e3131332e370b4d6f7a696c6c612f352e30034745540e2f50617469656e742f702d31323301107b2261223a5b312c322c22c3a9225d7d0773756363657373c801076568722d776562057265712d3106736573732d31055452454154010e636172646961632061727265737403010e41636d6520496e737572616e6365021631204d61696e2053742c20537072696e676669656c64030c636c61696d20726576696577"
	const wantHash = "TIOR2gtULMg3mnShXogcX7ju+/ijWcSiSPK+LB8Ml6o="
	e := goldenDisclosure()
	if err := Valid(&e); err != nil {
		t.Fatal(err)
	}
	leaf := EncodeEvent(&e)
	if got := hex.EncodeToString(leaf); got != wantLeaf {
		t.Errorf("leaf changed:\n got %s\nwant %s", got, wantLeaf)
	}
	if got := base64.StdEncoding.EncodeToString(LeafHash(&e)); got != wantHash {
		t.Errorf("leaf hash = %s, want %s", got, wantHash)
	}
	back, err := DecodeEvent(leaf)
	if err != nil || *back.Disclosure != *e.Disclosure {
		t.Fatalf("decode: %+v, %v", back, err)
	}
}
