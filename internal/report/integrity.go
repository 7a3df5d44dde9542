package report

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store"
	"github.com/transparency-dev/merkle/proof"
)

// checkpointOf reads a stored checkpoint's body (origin, size, root) and
// the names on its signature and cosignature lines, without trusting it:
// the integrity section checks it.
func checkpointOf(cp *store.Checkpoint, vkey string) Checkpoint {
	out := Checkpoint{Size: cp.Size, SignedAt: cp.CreatedAt.UTC(), VerifierKey: vkey, Witnesses: []string{}}
	note := cp.Note
	if len(cp.Cosignatures) > 0 {
		note = append(slices.Clip(note), cp.Cosignatures...)
	}
	out.Note = string(note)
	body, sigs, _ := bytes.Cut(note, []byte("\n\n"))
	lines := strings.Split(string(body), "\n")
	if len(lines) >= 3 {
		out.Origin = lines[0]
		out.RootHash, _ = base64.StdEncoding.DecodeString(lines[2])
	}
	for _, l := range strings.Split(string(sigs), "\n") {
		name, _, ok := strings.Cut(strings.TrimPrefix(l, "— "), " ")
		if ok && strings.HasPrefix(l, "— ") && name != out.Origin && !slices.Contains(out.Witnesses, name) {
			out.Witnesses = append(out.Witnesses, name)
		}
	}
	return out
}

// integrity attests the ledger a HIPAA report was computed from. What it
// checks is bounded, so that a report over ten million events stays fast:
//
//  1. the checkpoint's signature, with the log's verifier key;
//  2. the checkpoint's root, recomputed from the stored tree nodes;
//  3. the store's records: as many as the newest index implies (none
//     deleted or inserted), and the checkpoint not beyond them;
//  4. the period's index range: every index from its first event to its
//     last holds exactly one record (no gap, nothing inserted);
//  5. sampled records of the period (its first and last event and up to
//     Samples between): each re-hashed from its stored columns and proven
//     included in the checkpoint.
//
// A full verification of every record is `custos verify`; the report says
// so. Failures do not stop the report: they are listed, plainly.
func (b *Builder) integrity(ctx context.Context, h *Header, w store.Window, inPeriod bool) (Integrity, error) {
	in := Integrity{SectionInfo: SectionInfo{Title: "Integrity of the audit trail", Regulation: RegIntegrity},
		Checks: []Check{}, Problems: []string{}}
	add := func(name string, ok bool, format string, args ...any) {
		detail := fmt.Sprintf(format, args...)
		in.Checks = append(in.Checks, Check{Name: name, OK: ok, Detail: detail})
		if !ok {
			in.Problems = append(in.Problems, name+": "+detail)
		}
	}
	cp := h.Checkpoint
	if cp.Note == "" {
		add("checkpoint", false, "the ledger has no signed checkpoint yet: nothing in it is attested")
		return finishIntegrity(in), nil
	}
	signed, err := ledger.OpenCheckpoint([]byte(cp.Note), b.cfg.VerifierKey)
	if err != nil {
		add("checkpoint signature", false, "the checkpoint of size %d does not verify with the log's key: %v", cp.Size, err)
	} else if signed.Size != cp.Size {
		add("checkpoint signature", false, "the checkpoint stored for size %d signs size %d", cp.Size, signed.Size)
	} else {
		add("checkpoint signature", true, "the checkpoint of size %d is signed by %s", cp.Size, signed.Origin)
	}
	root, err := ledger.RootAt(ctx, b.src, cp.Size)
	switch {
	case err != nil:
		add("checkpoint root", false, "the tree nodes of size %d cannot be read: %v", cp.Size, err)
	case !bytes.Equal(root, cp.RootHash):
		add("checkpoint root", false, "the stored tree nodes give another root than the checkpoint signs")
	default:
		add("checkpoint root", true, "the stored tree nodes give the signed root")
	}
	n, size, err := b.src.RecordCount(ctx)
	switch {
	case err != nil:
		return in, err
	case n != size:
		add("record count", false, "the store holds %d records but its newest is index %d: records were deleted or inserted", n, int64(size)-1)
	case size < cp.Size:
		add("record count", false, "the store holds %d records, fewer than the %d the checkpoint signs", size, cp.Size)
	default:
		add("record count", true, "%d records, none missing; %d of them after the checkpoint, not yet in any report", size, size-cp.Size)
	}
	if inPeriod {
		first, last := w.First, w.Last
		in.FirstIndex, in.LastIndex = &first, &last
		recs, err := b.src.RecordsIn(ctx, first, last)
		if err != nil {
			return in, err
		}
		in.Records = recs
		if want := int64(last - first + 1); recs != want {
			add("period range", false, "indexes %d to %d should hold %d records and hold %d: a gap or an inserted record", first, last, want, recs)
		} else {
			add("period range", true, "indexes %d to %d hold %d records, without a gap", first, last, recs)
		}
		if signed != nil && err == nil {
			b.sampleLeaves(ctx, w, signed.Size, signed.Hash, add)
		}
	} else {
		add("period range", true, "the period holds no audit event below the checkpoint")
	}
	return finishIntegrity(in), nil
}

// sampleLeaves re-hashes sampled events of the window and proves each
// included in the signed tree.
func (b *Builder) sampleLeaves(ctx context.Context, w store.Window, size uint64, root []byte, add func(string, bool, string, ...any)) {
	idxs := []uint64{w.First, w.Last}
	if span := w.Last - w.First; span > 1 {
		step := max(span/uint64(b.cfg.Samples), 1)
		for i := w.First + step; i < w.Last; i += step {
			idxs = append(idxs, i)
		}
	}
	slices.Sort(idxs)
	idxs = slices.Compact(idxs)
	checked := 0
	for _, i := range idxs {
		e, err := b.src.Event(ctx, i)
		if err != nil {
			continue // a state record between events, or missing: the range check says which
		}
		hashes, err := ledger.InclusionProof(ctx, b.src, i, size)
		if err == nil {
			err = proof.VerifyInclusion(leaf.Hasher, i, size, leaf.LeafHash(&e), hashes, root)
		}
		if err != nil {
			add("sampled records", false, "record %d does not match the signed tree: it was changed after it was signed (%v)", i, err)
			return
		}
		checked++
	}
	add("sampled records", true, "%d records of the period (the first, the last and %s evenly between) re-hashed and proven included in the checkpoint",
		checked, strconv.Itoa(max(checked-2, 0)))
}

// finishIntegrity sets OK and the summary from the checks.
func finishIntegrity(in Integrity) Integrity {
	in.OK = len(in.Problems) == 0
	if in.OK {
		in.Summary = "The audit trail verified: the signed checkpoint, its tree, the record count, the period's index range and the sampled records all check out. A full verification of every record is `custos verify`."
	} else {
		in.Summary = "INTEGRITY CHECK FAILED: " + strings.Join(in.Problems, "; ") + ". The counts below come from a ledger that does not verify; run `custos verify`."
	}
	return in
}
