package ledger

import (
	"context"
	"encoding/json"
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
	if covered > 0 {
		last, err := recordTime(ctx, st, covered-1)
		if err != nil {
			return err
		}
		if late := h.LastTimestamp.Sub(last); late > TailAllowance(cfg.CheckpointInterval) {
			return fmt.Errorf("ledger: the records from %d on are not covered by a signed checkpoint and are %s later than the last covered record: a crash leaves at most %s unsigned, so they were forged or their checkpoints deleted; run custos verify",
				covered, late.Round(time.Millisecond), TailAllowance(cfg.CheckpointInterval))
		}
	}
	return nil
}

// TailAllowance is how much later than the last record a checkpoint covers
// an unsigned record can be when a crash left it: the server signs a
// checkpoint in the first commit an interval after the last one, and that
// one is at most an interval after the record it covers.
func TailAllowance(interval time.Duration) time.Duration { return 2*interval + gapSlack }

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
// record backs, or that differs from its record, stops the start, and so
// does a signing key other than the one the ledger records. It returns the
// projection.
func CheckState(ctx context.Context, st StartSource, vkey string) (Projection, error) {
	recs, err := NewStateFeed(st, vkey).Since(ctx, -1)
	if err != nil {
		return nil, err
	}
	all, err := st.StateRecords(ctx, -1)
	if err != nil {
		return nil, err
	}
	if len(recs) != len(all) {
		return nil, fmt.Errorf("ledger: state record %d is not covered by a signed checkpoint (each is signed as it commits): run custos verify", all[len(recs)].Index)
	}
	p := Projection{}
	for i := range recs {
		p.Apply(&recs[i])
	}
	rows, err := st.StateRows(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.Compare(rows); err != nil {
		return nil, fmt.Errorf("ledger: %w; run custos verify", err)
	}
	if err := p.CheckLogKey(vkey); err != nil {
		return nil, fmt.Errorf("ledger: %w; refusing to sign with it", err)
	}
	return p, nil
}

// The log's own signing key is recorded in the ledger as a state record, so
// that a key swapped in the data folder (and every checkpoint re-signed with
// it) is caught without a pinned key: the ledger still names the old one.
const (
	LogEntity = "log"
	LogKeyID  = "signing-key"
)

type logKeyDoc struct {
	VerifierKey string `json:"verifier_key"`
}

// LogKeyRecord is the state record that names the log's verifier key.
func LogKeyRecord(vkey string) leaf.StateRecord {
	b, _ := json.Marshal(logKeyDoc{VerifierKey: vkey}) // always marshals
	return leaf.StateRecord{Entity: LogEntity, ID: LogKeyID, Op: leaf.OpPut, Doc: b}
}

// RecordedKey returns the verifier key the projection records for the log,
// or "" when none is recorded (a store of the first release, until its
// first start by this one).
func (p Projection) RecordedKey() (string, error) {
	row, ok := p[leaf.StateKey{Entity: LogEntity, ID: LogKeyID}]
	if !ok {
		return "", nil
	}
	var d logKeyDoc
	if err := json.Unmarshal(row.Doc, &d); err != nil || d.VerifierKey == "" {
		return "", fmt.Errorf("record %d names the log's key in an unknown form", row.Index)
	}
	return d.VerifierKey, nil
}

// CheckLogKey compares the key the ledger records with vkey.
func (p Projection) CheckLogKey(vkey string) error {
	rec, err := p.RecordedKey()
	if err != nil {
		return err
	}
	if rec != "" && rec != vkey {
		return fmt.Errorf("the ledger records the log's verifier key %s, but the key in use is %s: the signing key was replaced", rec, vkey)
	}
	return nil
}
