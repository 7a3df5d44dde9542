package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/witness"
)

// checkWitnessed requires, with --witness-key, that checkpoints carry the
// quorum of valid cosignatures: every checkpoint older than --witness-grace
// after the newest witnessed one is a failure (a witness refused it: the log
// went backwards or forked, or the witnesses were unreachable for longer
// than the grace). code ≥ 0 ends verify.
func (v *verifier) checkWitnessed(ctx context.Context, st store.Store, vkey string, keys []string, quorum int) int {
	if len(keys) == 0 {
		return -1
	}
	var (
		lastWitnessed uint64
		witnessed     int
		unwitnessed   *store.Checkpoint
		scanErr       error
	)
	now := time.Now()
	err := st.ScanCheckpoints(ctx, func(cp store.Checkpoint) error {
		if cp.Size == 0 {
			return nil
		}
		signed, err := witness.MergeSignatures(cp.Note, cp.Cosignatures)
		if err != nil {
			signed = cp.Note // malformed cosignatures count as none
		}
		names, err := witness.VerifyCosignatures(signed, vkey, keys)
		if err != nil {
			scanErr = err
			return err
		}
		if len(names) >= quorum {
			lastWitnessed, witnessed, unwitnessed = cp.Size, witnessed+1, nil
		} else if unwitnessed == nil && now.Sub(cp.CreatedAt) > v.c.witnessGrace {
			c := cp
			unwitnessed = &c
		}
		return nil
	})
	if scanErr != nil {
		return v.failed("checkpoint cosignatures: %v", scanErr)
	}
	if err != nil {
		return v.usage("%v", err)
	}
	if unwitnessed != nil {
		return v.failed("the checkpoint at tree size %d (signed %s) lacks %d valid witness cosignatures (newest witnessed: size %d): a witness refused it, so the log went backwards or forked, or no witness was reachable",
			unwitnessed.Size, unwitnessed.CreatedAt.Format(time.RFC3339), quorum, lastWitnessed)
	}
	if witnessed == 0 {
		return v.failed("no checkpoint carries %d valid cosignatures by the given --witness-key", quorum)
	}
	fmt.Fprintf(v.stdout, "witnessed: %d checkpoints carry %d valid cosignatures; the newest at size %d\n", witnessed, quorum, lastWitnessed)
	return -1
}

// askWitnesses asks each --witness online for the size it has cosigned for
// this log: a witness that has seen a larger tree than the store holds
// proves that the store was rolled back, however consistent it is.
func (v *verifier) askWitnesses(ctx context.Context, st store.Store, vkey string) int {
	if len(v.c.witnesses) == 0 {
		return -1
	}
	cp, err := st.LatestCheckpoint(ctx)
	if errors.Is(err, custos.ErrNotFound) {
		cp = nil
	} else if err != nil {
		return v.usage("%v", err)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	for _, spec := range v.c.witnesses {
		w, err := witness.Parse(spec)
		if err != nil {
			return v.usage("--witness %q: %v", spec, err)
		}
		if cp == nil {
			return v.failed("the store has no checkpoint, but a witness is configured: ask it with a trusted checkpoint instead")
		}
		size, err := ledger.WitnessSize(ctx, w, hc, cp, st)
		if errors.Is(err, ledger.ErrWitnessFork) {
			return v.failed("witness %s: %v", w.Name, err)
		}
		if err != nil {
			return v.usage("witness %s: %v", w.Name, err)
		}
		if size > cp.Size {
			return v.failed("witness %s has cosigned this log at tree size %d, but the store's newest checkpoint is size %d: the store was rolled back", w.Name, size, cp.Size)
		}
		fmt.Fprintf(v.stdout, "witness %s: has the log at size %d, consistent with the store\n", w.Name, size)
	}
	return -1
}
