package ledger

import (
	"context"
	"fmt"
	"math/bits"

	"github.com/custos-audit/custos/internal/leaf"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// NodePos is the position at which the hash of a perfect subtree is stored:
// its rank in the post-order in which a compact range emits nodes while leaves
// are appended. Positions grow with the log, so the node table is append-only
// in key order, and a full scan in position order replays the tree as
// Verify rebuilds it.
//
// Node (level, index) is emitted while leaf m = (index+1)·2^level − 1 is
// appended: after the 2m − popcount(m) nodes of the first m leaves, the leaf
// itself, then one merge per level.
func NodePos(id compact.NodeID) uint64 {
	m := (id.Index+1)<<id.Level - 1
	return 2*m - uint64(bits.OnesCount64(m)) + uint64(id.Level)
}

// LeafPos is the position of leaf index's hash.
func LeafPos(index uint64) uint64 { return NodePos(compact.NewNodeID(0, index)) }

// NodeCount is the number of stored nodes of a tree of size leaves.
func NodeCount(size uint64) uint64 {
	return 2*size - uint64(bits.OnesCount64(size))
}

// NodeReader fetches stored node hashes by position. It must return one hash
// per position, in order, or an error.
type NodeReader interface {
	Nodes(ctx context.Context, pos []uint64) ([][]byte, error)
}

func readNodes(ctx context.Context, r NodeReader, ids []compact.NodeID) ([][]byte, error) {
	pos := make([]uint64, len(ids))
	for i, id := range ids {
		pos[i] = NodePos(id)
	}
	h, err := r.Nodes(ctx, pos)
	if err != nil {
		return nil, err
	}
	if len(h) != len(ids) {
		return nil, fmt.Errorf("ledger: read %d nodes, want %d", len(h), len(ids))
	}
	return h, nil
}

// InclusionProof returns the RFC 6962 inclusion proof of leaf index in the
// tree of the given size, from O(log n) stored nodes.
func InclusionProof(ctx context.Context, r NodeReader, index, size uint64) ([][]byte, error) {
	n, err := proof.Inclusion(index, size)
	return buildProof(ctx, r, n, err)
}

// ConsistencyProof returns the RFC 6962 consistency proof between two tree
// sizes, from O(log n) stored nodes.
func ConsistencyProof(ctx context.Context, r NodeReader, size1, size2 uint64) ([][]byte, error) {
	n, err := proof.Consistency(size1, size2)
	return buildProof(ctx, r, n, err)
}

// buildProof reads the proof's nodes and rehashes its ephemeral node.
func buildProof(ctx context.Context, r NodeReader, n proof.Nodes, err error) ([][]byte, error) {
	if err != nil {
		return nil, err
	}
	h, err := readNodes(ctx, r, n.IDs)
	if err != nil {
		return nil, err
	}
	return n.Rehash(h, Hasher.HashChildren)
}

// LoadRange rebuilds the compact range [0, size) from the stored nodes on its
// right border: O(log n) reads.
func LoadRange(ctx context.Context, r NodeReader, size uint64) (*compact.Range, error) {
	ids := compact.RangeNodes(0, size, nil)
	h, err := readNodes(ctx, r, ids)
	if err != nil {
		return nil, err
	}
	return rangeFactory.NewRange(0, size, h)
}

// RootAt returns the root hash of the tree of the given size from the stored
// nodes; the empty tree's root for size 0.
func RootAt(ctx context.Context, r NodeReader, size uint64) ([]byte, error) {
	if size == 0 {
		return Hasher.EmptyRoot(), nil
	}
	rng, err := LoadRange(ctx, r, size)
	if err != nil {
		return nil, err
	}
	return rng.GetRootHash(nil)
}

// Hasher is the RFC 6962 SHA-256 hasher of the ledger (see package leaf).
var Hasher = leaf.Hasher

var rangeFactory = &compact.RangeFactory{Hash: Hasher.HashChildren}

// NewEmptyRange returns the compact range of the empty tree.
func NewEmptyRange() *compact.Range { return rangeFactory.NewEmptyRange(0) }

// cloneRange copies a compact range so that a failed commit can roll back.
func cloneRange(r *compact.Range) *compact.Range {
	h := make([][]byte, len(r.Hashes()))
	copy(h, r.Hashes())
	c, err := rangeFactory.NewRange(r.Begin(), r.End(), h)
	if err != nil {
		panic(err) // a range always rebuilds from its own hashes
	}
	return c
}

// Root returns the root of a compact range starting at 0, or the empty root.
func Root(r *compact.Range) []byte {
	if r.End() == 0 {
		return Hasher.EmptyRoot()
	}
	h, err := r.GetRootHash(nil)
	if err != nil {
		panic(err) // ranges here always begin at 0
	}
	return h
}
