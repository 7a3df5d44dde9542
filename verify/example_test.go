package verify_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store/sqlite"
	"github.com/custos-audit/custos/verify"
)

// An auditor holds the log's public key, a signed checkpoint, an event with
// its inclusion proof (all as the API serves them), and checks them offline.
func Example() {
	pub, note, event, index, hashes := serveEvidence()

	cp, err := verify.OpenCheckpoint(note, pub)
	if err != nil {
		fmt.Println("checkpoint:", err)
		return
	}
	err = verify.Inclusion(cp, index, verify.LeafHash(event), hashes)
	fmt.Printf("event %d is in the signed tree of size %d: %v\n", index, cp.Size, err == nil)

	event.User.ID = "someone-else" // a record altered after the fact
	err = verify.Inclusion(cp, index, verify.LeafHash(event), hashes)
	fmt.Println("altered event accepted:", err == nil)
	// Output:
	// event 2 is in the signed tree of size 5: true
	// altered event accepted: false
}

// serveEvidence runs a small ledger and returns what the API would serve.
func serveEvidence() (pub string, note []byte, e *custos.Event, index uint64, hashes [][]byte) {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "custos-example-")
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	signer, _, _ := ledger.LoadOrCreateKey(filepath.Join(dir, ledger.KeyFileName), "example.org/audit")
	seq, err := ledger.Open(ctx, st, st, st, signer, ledger.Config{CheckpointInterval: time.Hour})
	if err != nil {
		panic(err)
	}
	for i := 0; i < 5; i++ {
		seq.Append(ctx, "apikey:test", []custos.Event{{User: custos.User{ID: fmt.Sprint("u", i)}, Action: custos.ActionRead,
			ResourceType: "Patient", PatientID: "p-1", Outcome: custos.OutcomeSuccess}})
	}
	seq.Close() // signs the tail
	cp, _ := st.LatestCheckpoint(ctx)
	ev, _ := st.Event(ctx, 2)
	hashes, _ = ledger.InclusionProof(ctx, st, 2, cp.Size)
	return signer.VerifierKey(), cp.Note, &ev, 2, hashes
}
