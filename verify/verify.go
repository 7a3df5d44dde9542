// Package verify checks Custos evidence offline, with nothing but the log's
// public key: signed checkpoints (C2SP tlog-checkpoint, Ed25519 signed
// notes), RFC 6962 inclusion and consistency proofs, and the leaf hash of an
// event as the API returns it. It pulls in no database driver and no server.
package verify

import (
	"errors"
	"fmt"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a verified tree head.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
}

// OpenCheckpoint verifies a signed checkpoint (the body of GET
// /v1/checkpoint) against the log's public key (custos public-key).
func OpenCheckpoint(signed []byte, publicKey string) (*Checkpoint, error) {
	v, err := note.NewVerifier(publicKey)
	if err != nil {
		return nil, fmt.Errorf("verify: public key: %w", err)
	}
	cp, _, _, err := log.ParseCheckpoint(signed, v.Name(), v)
	if err != nil {
		return nil, fmt.Errorf("verify: checkpoint: %w", err)
	}
	return &Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash}, nil
}

// LeafHash recomputes the RFC 6962 leaf hash of an event as stored (with its
// index and timestamp), to compare with a receipt or a proof.
func LeafHash(e *custos.Event) []byte { return leaf.LeafHash(e) }

// ErrMismatch is returned when a proof does not lead to the expected root.
var ErrMismatch = errors.New("verify: proof does not match the checkpoint")

// Inclusion checks that the leaf at index is in the tree the checkpoint signs.
func Inclusion(cp *Checkpoint, index uint64, leafHash []byte, hashes [][]byte) error {
	if err := proof.VerifyInclusion(leaf.Hasher, index, cp.Size, leafHash, hashes, cp.Root); err != nil {
		return fmt.Errorf("%w: inclusion of %d in size %d: %v", ErrMismatch, index, cp.Size, err)
	}
	return nil
}

// Consistency checks that the newer checkpoint extends the older one: the log
// only grew between them.
func Consistency(older, newer *Checkpoint, hashes [][]byte) error {
	if older.Origin != newer.Origin {
		return fmt.Errorf("verify: checkpoints of two logs (%q, %q)", older.Origin, newer.Origin)
	}
	if err := proof.VerifyConsistency(leaf.Hasher, older.Size, newer.Size, hashes, older.Root, newer.Root); err != nil {
		return fmt.Errorf("%w: consistency %d→%d: %v", ErrMismatch, older.Size, newer.Size, err)
	}
	return nil
}
