package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
)

// StartSource is what the start checks read.
type StartSource interface {
	store.Writer
	NodeReader
	LatestCheckpoint(ctx context.Context) (*store.Checkpoint, error)
	Event(ctx context.Context, index uint64) (custos.Event, error)
	StateRecords(ctx context.Context, after int64) ([]leaf.StateRecord, error)
	StateRows(ctx context.Context) ([]store.StateRow, error)
	RecordCount(ctx context.Context) (count, size uint64, err error)
}

// CheckBeforeStart runs the cheap checks that must pass before a server
// extends a stored ledger, so that it never signs a damaged or rewritten
// history with the real key: the records are contiguous (as many as the
// head says), and the records beyond the latest checkpoint are what a crash
// can leave — no more than one checkpoint interval of them — rather than a
// history whose checkpoints were deleted. (ledger.Open then checks the
// latest checkpoint's signature and root.) cfg is the sequencer's.
func CheckBeforeStart(ctx context.Context, st StartSource, cfg Config) error {
	cfg = cfg.withDefaults()
	n, size, err := st.RecordCount(ctx)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("ledger: the store holds %d records but its newest is index %d: records were deleted or inserted; run custos verify", n, int64(size)-1)
	}
	h, err := st.Head(ctx)
	if err != nil {
		return err
	}
	var covered uint64
	cp, err := st.LatestCheckpoint(ctx)
	switch {
	case errors.Is(err, custos.ErrNotFound):
	case err != nil:
		return err
	default:
		covered = cp.Size
	}
	if covered >= h.Size {
		return nil
	}
	if tail := h.Size - covered; tail > cfg.CheckpointEvery+uint64(cfg.MaxBatch) {
		return fmt.Errorf("ledger: the last %d records (from %d) are not covered by a signed checkpoint, more than a crash can leave (%d): checkpoints were deleted; run custos verify",
			tail, covered, cfg.CheckpointEvery+uint64(cfg.MaxBatch))
	}
	first, err := recordTime(ctx, st, covered)
	if err != nil {
		return err
	}
	if span := h.LastTimestamp.Sub(first); span > cfg.CheckpointInterval+gapSlack {
		return fmt.Errorf("ledger: the records from %d on are not covered by a signed checkpoint and span %s, more than the checkpoint interval (%s) a crash can leave: checkpoints were deleted; run custos verify",
			covered, span.Round(time.Millisecond), cfg.CheckpointInterval)
	}
	return nil
}

// recordTime returns the timestamp of the record at index, an event or a
// state record.
func recordTime(ctx context.Context, st StartSource, index uint64) (time.Time, error) {
	e, err := st.Event(ctx, index)
	if err == nil {
		return e.Timestamp, nil
	}
	if !errors.Is(err, custos.ErrNotFound) {
		return time.Time{}, err
	}
	recs, err := st.StateRecords(ctx, int64(index)-1)
	if err != nil {
		return time.Time{}, err
	}
	if len(recs) == 0 || recs[0].Index != index {
		return time.Time{}, fmt.Errorf("ledger: record %d is missing; run custos verify", index)
	}
	return recs[0].Timestamp, nil
}

// CheckState replays every state record, each proven against the signed
// checkpoints, and compares the state table with the replay: a row that no
// record backs, or that differs from its record, stops the start.
func CheckState(ctx context.Context, st StartSource, vkey string) error {
	recs, err := NewStateFeed(st, vkey).Since(ctx, -1)
	if err != nil {
		return err
	}
	all, err := st.StateRecords(ctx, -1)
	if err != nil {
		return err
	}
	if len(recs) != len(all) {
		return fmt.Errorf("ledger: state record %d is not covered by a signed checkpoint (each is signed as it commits): run custos verify", all[len(recs)].Index)
	}
	p := Projection{}
	for i := range recs {
		p.Apply(&recs[i])
	}
	rows, err := st.StateRows(ctx)
	if err != nil {
		return err
	}
	if err := p.Compare(rows); err != nil {
		return fmt.Errorf("ledger: %w; run custos verify", err)
	}
	return nil
}
