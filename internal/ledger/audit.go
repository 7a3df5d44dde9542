package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
	"github.com/transparency-dev/merkle/compact"
)

// Problem is the first thing Audit found wrong, with the ledger index of the
// first bad record.
type Problem struct {
	Index  uint64 // the first bad record (or the first index a missing record would have)
	Reason string
}

func (p *Problem) Error() string { return fmt.Sprintf("record %d: %s", p.Index, p.Reason) }

// AuditReport is what Audit checked.
type AuditReport struct {
	Records      uint64
	Nodes        uint64
	Checkpoints  uint64
	LatestSize   uint64        // size of the newest checkpoint
	Uncovered    uint64        // records after the newest checkpoint
	Problem      *Problem      // nil when the ledger is intact
	Elapsed      time.Duration // wall time of the audit
	LatestOrigin string
}

// Progress is told how many records have been checked so far.
type Progress func(records uint64)

// Audit re-derives the whole ledger from the store and compares it with what
// is stored: every leaf hash, every tree node, every checkpoint's signature and
// root. It stops at the first disagreement and names the first bad record.
// Memory is bounded: it holds one scan chunk and the compact range.
//
// Consecutive checkpoints are consistent when both roots match the one tree
// recomputed from the records, so consistency is checked by construction.
func Audit(ctx context.Context, sc store.Scanner, vkey string, progress Progress) (*AuditReport, error) {
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a := &auditor{rep: &AuditReport{}, vkey: vkey, rng: NewEmptyRange()}
	nextNode, nodeErr := streamNodes(ctx, sc)
	a.nextNode = func() (store.Node, bool) {
		n, ok := nextNode()
		if !ok && *nodeErr != nil && a.scanErr == nil { // read after the stream closed
			a.scanErr = *nodeErr
		}
		return n, ok
	}
	nextCP, stopCPs := iter.Pull(pushSeq(ctx, sc.ScanCheckpoints, &a.scanErr))
	defer stopCPs()
	a.nextCP = nextCP
	a.pullCheckpoint()

	for c := range readLeaves(ctx, sc, 2*runtime.GOMAXPROCS(0)) {
		if c.err != nil {
			return nil, c.err
		}
		for i := range c.events {
			if a.record(&c.events[i], c.hashes[i]) != nil {
				break
			}
			if progress != nil && a.rep.Records%100_000 == 0 {
				progress(a.rep.Records)
			}
		}
		if a.problem != nil {
			break
		}
	}
	if a.problem == nil {
		a.finish()
	}
	// A failed node or checkpoint scan looks like a missing node: report
	// the I/O error, not a tampering verdict.
	if a.scanErr != nil {
		return nil, a.scanErr
	}
	a.rep.Problem = a.problem
	a.rep.Elapsed = time.Since(start)
	return a.rep, nil
}

// pushSeq turns a store scan into an iterator; a scan error is kept in *errp.
func pushSeq[T any](ctx context.Context, scan func(context.Context, func(T) error) error, errp *error) iter.Seq[T] {
	stop := errors.New("stop")
	return func(yield func(T) bool) {
		err := scan(ctx, func(v T) error {
			if !yield(v) {
				return stop
			}
			return nil
		})
		if err != nil && err != stop && *errp == nil {
			*errp = err
		}
	}
}

type auditor struct {
	rep      *AuditReport
	vkey     string
	rng      *compact.Range
	lastTS   time.Time
	nextNode func() (store.Node, bool)
	nextCP   func() (store.Checkpoint, bool)
	cp       *store.Checkpoint // the next checkpoint to reach, already signature-checked
	verified uint64            // size of the last checkpoint whose root matched
	problem  *Problem
	scanErr  error
}

func (a *auditor) fail(index uint64, format string, args ...any) *Problem {
	if a.problem == nil {
		a.problem = &Problem{Index: index, Reason: fmt.Sprintf(format, args...)}
	}
	return a.problem
}

// pullCheckpoint reads the next stored checkpoint and checks its signature.
func (a *auditor) pullCheckpoint() {
	cp, ok := a.nextCP()
	if !ok {
		a.cp = nil
		return
	}
	a.cp = &cp
	a.rep.Checkpoints++
	parsed, err := OpenCheckpoint(cp.Note, a.vkey)
	if err != nil {
		a.fail(lastIndex(cp.Size), "the checkpoint stored for tree size %d does not verify with the log's public key (forged or altered): %v", cp.Size, err)
		return
	}
	if parsed.Size != cp.Size {
		a.fail(lastIndex(cp.Size), "the checkpoint stored for tree size %d is signed for size %d", cp.Size, parsed.Size)
		return
	}
	a.cp.Note = parsed.Hash // keep only the signed root
	a.rep.LatestSize, a.rep.LatestOrigin = cp.Size, parsed.Origin
}

func lastIndex(size uint64) uint64 {
	if size == 0 {
		return 0
	}
	return size - 1
}

// record checks one event, appends it to the recomputed tree and compares the
// nodes it completes with the stored ones.
func (a *auditor) record(e *custos.Event, h []byte) *Problem {
	if a.problem != nil {
		return a.problem
	}
	i := a.rng.End()
	switch {
	case e.Index > i:
		return a.fail(i, "missing: the next stored record is %d (records deleted)", e.Index)
	case e.Index < i:
		return a.fail(e.Index, "stored twice")
	case e.Timestamp.Before(a.lastTS):
		return a.fail(i, "timestamp %s is earlier than the previous record's (records reordered)", e.Timestamp.Format(time.RFC3339Nano))
	}
	a.lastTS = e.Timestamp
	a.rng.Append(h, func(id compact.NodeID, hash []byte) {
		if a.problem != nil {
			return
		}
		n, ok := a.nextNode()
		want := NodePos(id)
		switch {
		case !ok || n.Pos > want:
			a.fail(i, "tree node at level %d, index %d is missing", id.Level, id.Index)
		case n.Pos < want:
			a.fail(i, "an extra tree node is stored at position %d", n.Pos)
		case !bytes.Equal(n.Hash, hash) && id.Level == 0:
			a.fail(i, "content does not match its leaf hash (record altered, or moved from another index)")
		case !bytes.Equal(n.Hash, hash):
			first, _ := id.Coverage()
			a.fail(first, "stored tree node at level %d, index %d (records %d–%d) does not match the records (tree altered)",
				id.Level, id.Index, first, first+(1<<id.Level)-1)
		}
	})
	if a.problem != nil {
		return a.problem
	}
	a.rep.Records++
	a.rep.Nodes = NodeCount(a.rep.Records)
	if a.cp != nil && a.cp.Size == a.rng.End() {
		if !bytes.Equal(Root(a.rng), a.cp.Note) {
			return a.fail(a.verified, "records %d–%d do not match the signed checkpoint at tree size %d: one of them was altered and the tree rewritten to hide it",
				a.verified, i, a.cp.Size)
		}
		a.verified = a.cp.Size
		a.pullCheckpoint()
		if a.problem != nil {
			return a.problem
		}
	}
	if a.cp != nil && a.cp.Size < a.rng.End() && a.cp.Size != 0 {
		return a.fail(lastIndex(a.cp.Size), "a checkpoint for tree size %d was stored out of order", a.cp.Size)
	}
	return nil
}

// finish checks what must hold once every record has been read.
func (a *auditor) finish() {
	size := a.rng.End()
	if a.cp != nil && a.cp.Size == 0 {
		a.pullCheckpoint() // a checkpoint of the empty log commits to nothing
	}
	if a.cp != nil && a.cp.Size > size {
		a.fail(size, "missing: the signed checkpoint covers %d records but only %d are stored (ledger truncated)", a.cp.Size, size)
	} else if n, ok := a.nextNode(); ok {
		a.fail(size, "an extra tree node is stored at position %d beyond the last record", n.Pos)
	}
	a.rep.Uncovered = size - a.rep.LatestSize
}
