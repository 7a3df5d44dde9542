package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
	"github.com/transparency-dev/merkle/proof"
)

// StateSource is what a StateFeed reads: state records, the latest signed
// checkpoint and the tree nodes that prove records against it.
type StateSource interface {
	NodeReader
	StateRecords(ctx context.Context, after int64) ([]leaf.StateRecord, error)
	LatestCheckpoint(ctx context.Context) (*store.Checkpoint, error)
}

// StateFeed hands the server its state records only once they are proven:
// each record's leaf hash, recomputed from its content, must be included in
// a checkpoint that verifies with the log's key. A row inserted or edited in
// the state_records table behind Custos's back is therefore never believed,
// on any node. Since the sequencer signs a checkpoint in every transaction
// that writes state, a committed state record is provable at once.
type StateFeed struct {
	src  StateSource
	vkey string
}

// NewStateFeed returns a feed that proves records against checkpoints signed
// by the key vkey.
func NewStateFeed(src StateSource, vkey string) *StateFeed { return &StateFeed{src: src, vkey: vkey} }

// ErrUnproven marks a state record that its signed checkpoint does not
// include: the store was altered.
var ErrUnproven = errors.New("state record is not in the signed log")

// Since returns the proven state records with index > after, in order. It
// stops before the first record that no checkpoint covers yet (a later call
// returns it), and fails with ErrUnproven on a record that a covering
// checkpoint does not include.
func (f *StateFeed) Since(ctx context.Context, after int64) ([]leaf.StateRecord, error) {
	recs, err := f.src.StateRecords(ctx, after)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	cp, err := f.src.LatestCheckpoint(ctx)
	if errors.Is(err, custos.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	signed, err := OpenCheckpoint(cp.Note, f.vkey)
	if err != nil {
		return nil, fmt.Errorf("%w: the latest checkpoint does not verify: %v", ErrUnproven, err)
	}
	for i := range recs {
		r := &recs[i]
		if r.Index >= signed.Size {
			return recs[:i], nil
		}
		if err := leaf.ValidState(r); err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrUnproven, r.Index, err)
		}
		hashes, err := InclusionProof(ctx, f.src, r.Index, signed.Size)
		if err != nil {
			return nil, fmt.Errorf("ledger: prove state record %d: %w", r.Index, err)
		}
		if err := proof.VerifyInclusion(Hasher, r.Index, signed.Size, leaf.StateHash(r), hashes, signed.Hash); err != nil {
			return nil, fmt.Errorf("%w: record %d (%s)", ErrUnproven, r.Index, r.Key())
		}
	}
	return recs, nil
}

// Projection is the state that replaying state records in ledger order
// defines: for each live entity, its document and the record that set it.
type Projection map[leaf.StateKey]store.StateRow

// Apply replays one record.
func (p Projection) Apply(r *leaf.StateRecord) {
	if r.Op == leaf.OpDelete {
		delete(p, r.Key())
		return
	}
	p[r.Key()] = store.StateRow{Entity: r.Entity, ID: r.ID, Doc: r.Doc, Index: r.Index}
}

// Compare checks the stored state table against the projection and
// describes the first difference: a row no record backs, a row that differs
// from its record, or a record whose change the table lacks.
func (p Projection) Compare(rows []store.StateRow) error {
	seen := make(map[leaf.StateKey]bool, len(rows))
	for _, row := range rows {
		k := leaf.StateKey{Entity: row.Entity, ID: row.ID}
		want, ok := p[k]
		switch {
		case seen[k]:
			return fmt.Errorf("state row %s is stored twice", k)
		case !ok:
			return fmt.Errorf("state row %s has no record in the ledger (inserted behind Custos's back, or deleted by a record)", k)
		case row.Index != want.Index:
			return fmt.Errorf("state row %s says record %d set it, but the ledger's latest record for it is %d", k, row.Index, want.Index)
		case !bytes.Equal(row.Doc, want.Doc):
			return fmt.Errorf("state row %s differs from record %d that set it (altered): stored %s, recorded %s", k, want.Index, row.Doc, want.Doc)
		}
		seen[k] = true
	}
	for k, want := range p {
		if !seen[k] {
			return fmt.Errorf("state row %s is missing: record %d set it (deleted behind Custos's back)", k, want.Index)
		}
	}
	return nil
}
