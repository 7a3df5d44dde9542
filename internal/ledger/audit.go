package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
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
	States       uint64 // state records among them
	Nodes        uint64
	Checkpoints  uint64
	LatestSize   uint64        // size of the newest checkpoint
	Uncovered    uint64        // records after the newest checkpoint
	Trusted      int           // trusted checkpoints the ledger was found to extend
	Problem      *Problem      // nil when the ledger is intact
	Elapsed      time.Duration // wall time of the audit
	LatestOrigin string
}

// Progress is told how many records have been checked so far.
type Progress func(records uint64)

// Anchor is a checkpoint kept outside the store (a file an auditor saved, a
// witness's view): the stored ledger must be a consistent extension of it.
type Anchor struct {
	Name string // where it came from, for messages
	Size uint64
	Root []byte
}

// AuditOptions say what Audit trusts and how strict it is.
type AuditOptions struct {
	VKey    string   // the log's verifier key
	Anchors []Anchor // checkpoints kept outside the store
	// CheckpointInterval is the server's --checkpoint-interval (default 1 s):
	// records spanning much longer without a checkpoint mean one was deleted,
	// and an uncovered tail older than that is suspect.
	CheckpointInterval time.Duration
	// AllowUncoveredTail accepts records beyond the newest checkpoint,
	// however old (a store whose server crashed and never restarted).
	AllowUncoveredTail bool
	Now                func() time.Time
	Progress           Progress
}

// AuditSource is what Audit reads: every table of the ledger.
type AuditSource interface {
	store.Scanner
	StateRecords(ctx context.Context, after int64) ([]leaf.StateRecord, error)
	StateRows(ctx context.Context) ([]store.StateRow, error)
	LegacyKeys(ctx context.Context) ([]store.Key, error)
	DeliveryRows(ctx context.Context) ([]store.DeliveryRow, error)
}

// gapSlack is what the interval rules allow beyond the checkpoint interval,
// for commit time and clocks that differ between nodes.
const gapSlack = time.Second

// Audit re-derives the whole ledger from the store and compares it with what
// is stored, trusting nothing but the bytes it hashes: every record's leaf
// hash and canonical form, indices exactly 0..n−1, every tree node, every
// checkpoint's signature, root and order, no checkpoint missing between two
// others or at the tail, the state tables against the replay of the state
// records, and the anchors kept outside the store. It stops at the first
// disagreement and names it. Memory holds a few scan chunks, the compact
// range and the state (keys, roles, … — small).
func Audit(ctx context.Context, src AuditSource, opt AuditOptions) (*AuditReport, error) {
	start := time.Now()
	if opt.CheckpointInterval <= 0 {
		opt.CheckpointInterval = time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // no reader outlives the audit
	defer cancel()
	states, err := src.StateRecords(ctx, -1)
	if err != nil {
		return nil, err
	}
	a := &auditor{rep: &AuditReport{}, opt: opt, rng: NewEmptyRange(), states: states, proj: Projection{},
		anchors: slices.SortedFunc(slices.Values(opt.Anchors), func(x, y Anchor) int { return cmpSize(x.Size, y.Size) })}
	nextNode, nodeErr := streamNodes(ctx, src, &wg)
	a.nextNode = func() (store.Node, bool) {
		n, ok := nextNode()
		if !ok && *nodeErr != nil && a.scanErr == nil { // read after the stream closed
			a.scanErr = *nodeErr
		}
		return n, ok
	}
	nextCP, stopCPs := iter.Pull(pushSeq(ctx, src.ScanCheckpoints, &a.scanErr))
	defer stopCPs()
	a.nextCP = nextCP
	a.pullCheckpoint()

	leaves := readLeaves(ctx, src, 2*runtime.GOMAXPROCS(0), &wg)
	defer func() {
		cancel()
		for range leaves { // let the readers end
		}
	}()
	for c := range leaves {
		if c.err != nil {
			if errors.Is(c.err, store.ErrCorruptRow) {
				a.fail(a.rng.End(), "a stored row cannot be a record: %v", c.err)
				break
			}
			return nil, c.err
		}
		for i := range c.events {
			if a.event(&c.events[i], c.hashes[i]) != nil {
				break
			}
		}
		if a.problem != nil {
			break
		}
	}
	if a.problem == nil {
		a.drainStates(^uint64(0))
	}
	if a.problem == nil {
		a.finish()
	}
	if a.problem == nil {
		a.checkState(ctx, src)
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

func cmpSize(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
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
	rep       *AuditReport
	opt       AuditOptions
	rng       *compact.Range
	lastTS    time.Time
	nextNode  func() (store.Node, bool)
	nextCP    func() (store.Checkpoint, bool)
	cp        *store.Checkpoint // the next checkpoint to reach, already signature-checked
	cpRoot    []byte            // its signed root
	lastCPAt  time.Time         // created_at of the last checkpoint reached
	verified  uint64            // size of the last checkpoint whose root matched
	coveredTS time.Time         // timestamp of its last record
	states    []leaf.StateRecord
	proj      Projection
	delivered []store.DeliveryRow // the deliveries the events name, in index order (one per keyed request)
	anchors   []Anchor            // sorted by size; checked as the tree reaches them
	seg       segment             // the records since the last checkpoint
	problem   *Problem
	scanErr   error
}

// segment follows the records after one checkpoint, to find a checkpoint
// that should have been signed among them.
type segment struct {
	first   time.Time // timestamp of its first record
	late    uint64    // the first record later than the interval allows, if any
	lateTS  time.Time
	hasLate bool
}

func (a *auditor) fail(index uint64, format string, args ...any) *Problem {
	if a.problem == nil {
		a.problem = &Problem{Index: index, Reason: fmt.Sprintf(format, args...)}
	}
	return a.problem
}

// pullCheckpoint reads the next stored checkpoint and checks its signature
// and that it is not older than the one before it.
func (a *auditor) pullCheckpoint() {
	cp, ok := a.nextCP()
	if !ok {
		a.cp = nil
		return
	}
	a.cp = &cp
	a.rep.Checkpoints++
	parsed, err := OpenCheckpoint(cp.Note, a.opt.VKey)
	if err != nil {
		a.fail(lastIndex(cp.Size), "the checkpoint stored for tree size %d does not verify with the log's public key (forged or altered): %v", cp.Size, err)
		return
	}
	if parsed.Size != cp.Size {
		a.fail(lastIndex(cp.Size), "the checkpoint stored for tree size %d is signed for size %d", cp.Size, parsed.Size)
		return
	}
	if a.rep.Checkpoints > 1 && cp.CreatedAt.Before(a.lastCPAt) {
		a.fail(lastIndex(cp.Size), "the checkpoint for tree size %d is dated %s, before the one preceding it (%s)",
			cp.Size, cp.CreatedAt.Format(time.RFC3339Nano), a.lastCPAt.Format(time.RFC3339Nano))
		return
	}
	a.lastCPAt = cp.CreatedAt
	a.cpRoot = parsed.Hash
	a.rep.LatestSize, a.rep.LatestOrigin = cp.Size, parsed.Origin
}

func lastIndex(size uint64) uint64 {
	if size == 0 {
		return 0
	}
	return size - 1
}

// event checks one stored audit event, after the state records before it.
func (a *auditor) event(e *custos.Event, h []byte) *Problem {
	if a.drainStates(e.Index) != nil {
		return a.problem
	}
	i := a.rng.End()
	switch {
	case e.Index > i:
		return a.fail(i, "missing: the next stored record is %d (records deleted)", e.Index)
	case e.Index < i:
		return a.fail(e.Index, "stored twice (an event and a state record share the index)")
	}
	if err := leaf.Valid(e); err != nil {
		return a.fail(i, "the stored event is not a canonical record: %v", err)
	}
	if d := e.Delivery; d != nil {
		a.delivered = append(a.delivered, store.DeliveryRow{SubmittedBy: e.SubmittedBy, Key: d.Key, Index: e.Index})
	}
	return a.record(e.Timestamp, h, "")
}

// drainStates checks the state records with index below next.
func (a *auditor) drainStates(next uint64) *Problem {
	for len(a.states) > 0 && a.states[0].Index < next && a.problem == nil {
		r := &a.states[0]
		a.states = a.states[1:]
		i := a.rng.End()
		switch {
		case r.Index > i:
			return a.fail(i, "missing: the next stored record is %d (records deleted)", r.Index)
		case r.Index < i:
			return a.fail(r.Index, "stored twice (state records share the index)")
		}
		if err := leaf.ValidState(r); err != nil {
			return a.fail(i, "the stored state record is not a canonical record: %v", err)
		}
		if _, exists := a.proj[r.Key()]; exists && r.Op == leaf.OpCreate {
			return a.fail(i, "state record creates %s, which exists already (a create commits only for a new entity)", r.Key())
		}
		if a.record(r.Timestamp, leaf.StateHash(r), "state record") == nil {
			a.proj.Apply(r)
			a.rep.States++
		}
	}
	return a.problem
}

// record appends one record's leaf hash to the recomputed tree, compares the
// nodes it completes with the stored ones, and checks the checkpoint, the
// anchor and the interval rules it reaches.
func (a *auditor) record(ts time.Time, h []byte, what string) *Problem {
	i := a.rng.End()
	if ts.Before(a.lastTS) {
		return a.fail(i, "timestamp %s is earlier than the previous record's (records reordered)", ts.Format(time.RFC3339Nano))
	}
	a.lastTS = ts
	a.noteSegment(i, ts)
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
			a.fail(i, "%scontent does not match its leaf hash (record altered, or moved from another index)", prefix(what))
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
	if a.opt.Progress != nil && a.rep.Records%100_000 == 0 {
		a.opt.Progress(a.rep.Records)
	}
	size := a.rng.End()
	for len(a.anchors) > 0 && a.anchors[0].Size == size {
		if !bytes.Equal(Root(a.rng), a.anchors[0].Root) {
			return a.fail(i, "the ledger is not an extension of the trusted checkpoint %s at tree size %d: records were altered, or the whole log was rolled back and rewritten",
				a.anchors[0].Name, size)
		}
		a.rep.Trusted++
		a.anchors = a.anchors[1:]
	}
	if a.cp != nil && a.cp.Size == size {
		if !bytes.Equal(Root(a.rng), a.cpRoot) {
			return a.fail(a.verified, "records %d–%d do not match the signed checkpoint at tree size %d: one of them was altered and the tree rewritten to hide it",
				a.verified, i, a.cp.Size)
		}
		if a.checkSegment(size) != nil {
			return a.problem
		}
		a.verified, a.coveredTS = a.cp.Size, ts
		a.pullCheckpoint()
		if a.problem != nil {
			return a.problem
		}
	}
	if a.cp != nil && a.cp.Size < size && a.cp.Size != 0 {
		return a.fail(lastIndex(a.cp.Size), "a checkpoint for tree size %d was stored out of order", a.cp.Size)
	}
	return nil
}

func prefix(what string) string {
	if what == "" {
		return ""
	}
	return what + ": "
}

// noteSegment records, for the interval rule, a record later than the
// checkpoint interval allows after the first record since the last
// checkpoint.
func (a *auditor) noteSegment(i uint64, ts time.Time) {
	if i == a.verified || i == 0 {
		a.seg = segment{first: ts}
		return
	}
	if !a.seg.hasLate && ts.Sub(a.seg.first) > a.opt.CheckpointInterval+gapSlack {
		a.seg.late, a.seg.lateTS, a.seg.hasLate = i, ts, true
	}
}

// checkSegment applies the interval rule at a checkpoint of the given size:
// the server signs a checkpoint in the first commit at least one interval
// after the last, so a record that late may only be in the commit that this
// checkpoint closes (which shares the last record's timestamp).
func (a *auditor) checkSegment(size uint64) *Problem {
	if a.seg.hasLate && a.seg.lateTS.Before(a.lastTS) {
		return a.fail(a.seg.late, "records %d–%d span %s with no signed checkpoint between them, beyond the interval of %s: a checkpoint was deleted",
			a.verified, size-1, a.lastTS.Sub(a.seg.first).Round(time.Millisecond), a.opt.CheckpointInterval)
	}
	return nil
}

// finish checks what must hold once every record has been read.
func (a *auditor) finish() {
	size := a.rng.End()
	if a.cp != nil && a.cp.Size == 0 {
		a.pullCheckpoint() // a checkpoint of the empty log commits to nothing
	}
	switch {
	case a.problem != nil:
		return
	case a.cp != nil && a.cp.Size > size:
		a.fail(size, "missing: the signed checkpoint covers %d records but only %d are stored (ledger truncated)", a.cp.Size, size)
		return
	case len(a.anchors) > 0:
		a.fail(size, "missing: the trusted checkpoint %s covers %d records but only %d are stored (the ledger was truncated or rolled back)",
			a.anchors[0].Name, a.anchors[0].Size, size)
		return
	}
	if n, ok := a.nextNode(); ok {
		a.fail(size, "an extra tree node is stored at position %d beyond the last record", n.Pos)
		return
	}
	a.rep.Uncovered = size - a.verified
	if size > 0 && a.rep.Checkpoints == 0 && !a.opt.AllowUncoveredTail {
		a.fail(0, "no signed checkpoint covers any of the %d records: the checkpoints were deleted (the server signs one within a second)", size)
		return
	}
	if a.rep.Uncovered > 0 && !a.opt.AllowUncoveredTail && a.seg.hasLate {
		a.fail(a.seg.late, "the last %d records (from %d) are not covered by a signed checkpoint and span more than the checkpoint interval (%s): a crash leaves at most one interval unsigned, so checkpoints were deleted or the tail was rewritten",
			a.rep.Uncovered, a.verified, a.opt.CheckpointInterval)
		return
	}
	if late := a.lastTS.Sub(a.coveredTS); a.rep.Uncovered > 0 && !a.opt.AllowUncoveredTail && a.verified > 0 && late > TailAllowance(a.opt.CheckpointInterval) {
		a.fail(a.verified, "the last %d records (from %d) are not covered by a signed checkpoint and are %s later than the last covered record: a crash leaves at most %s unsigned, so they were forged or their checkpoints deleted",
			a.rep.Uncovered, a.verified, late.Round(time.Millisecond), TailAllowance(a.opt.CheckpointInterval))
		return
	}
	if a.rep.Uncovered > 0 && !a.opt.AllowUncoveredTail {
		limit := a.opt.CheckpointInterval + 5*time.Second
		if age := a.opt.Now().Sub(a.seg.first); age > limit {
			a.fail(a.verified, "the last %d records (from %d) are not covered by a signed checkpoint and are %s old: the server signs one within %s and at every start, so checkpoints were deleted or the tail was rewritten (after a crash with no restart, pass --allow-uncovered-tail)",
				a.rep.Uncovered, a.verified, age.Round(time.Second), a.opt.CheckpointInterval)
		}
	}
}

// checkState compares the state table with the replay of the state records,
// and requires the first release's key table to be empty once adopted.
func (a *auditor) checkState(ctx context.Context, src AuditSource) {
	rows, err := src.StateRows(ctx)
	if err != nil {
		a.scanErr = err
		return
	}
	if err := a.proj.Compare(rows); err != nil {
		a.fail(a.rng.End(), "%v", err)
		return
	}
	if err := a.proj.CheckLogKey(a.opt.VKey); err != nil {
		a.fail(a.rng.End(), "%v (every checkpoint was re-signed with a new key)", err)
		return
	}
	if !a.checkDeliveries(ctx, src) {
		return
	}
	legacy, err := src.LegacyKeys(ctx)
	if err != nil {
		a.scanErr = err
		return
	}
	if len(legacy) > 0 {
		a.fail(a.rng.End(), "the legacy api_keys table holds a row (%q) that no record backs (its rows are recorded in the ledger and removed on the first start of this release)", legacy[0].ID)
	}
}

// checkDeliveries compares the deliveries table with the deliveries the
// events name. A row no event backs would make a retried request look
// delivered (the API checks the event too, and refuses); a missing row would
// let a retry be appended twice.
func (a *auditor) checkDeliveries(ctx context.Context, src AuditSource) bool {
	rows, err := src.DeliveryRows(ctx)
	if err != nil {
		a.scanErr = err
		return false
	}
	for i := 0; i < max(len(rows), len(a.delivered)); i++ {
		switch {
		case i >= len(rows) || (i < len(a.delivered) && rows[i] != a.delivered[i] && a.delivered[i].Index <= rows[i].Index):
			a.fail(a.delivered[i].Index, "the deliveries table lacks the row of this event's idempotency key, or holds another (deleted or changed)")
		case i >= len(a.delivered) || rows[i] != a.delivered[i]:
			a.fail(rows[i].Index, "the deliveries table holds a row (key %q) that no event names", rows[i].Key)
		default:
			continue
		}
		return false
	}
	return true
}
