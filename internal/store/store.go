// Package store declares what the ledger, the API and the verifier need from a
// database. The SQLite and PostgreSQL stores implement it and both pass the
// conformance suite in storetest.
//
// Invariants every store keeps: Append writes a batch (events, tree nodes, an
// optional checkpoint and key changes) in one transaction that is durable when
// Append returns nil, and writes nothing when it returns an error; events are
// only ever inserted, never updated or deleted.
package store

import (
	"context"
	"time"

	"github.com/custos-audit/custos"
)

// Node is one stored tree node: the hash of a perfect subtree at its
// post-order position (see ledger.NodePos).
type Node struct {
	Pos  uint64
	Hash []byte
}

// Checkpoint is a signed tree head as stored: the C2SP signed note and the
// size it commits to.
type Checkpoint struct {
	Size      uint64
	Note      []byte
	CreatedAt time.Time
}

// Key is a stored API key. Hash is SHA-256 of the secret token.
type Key struct {
	ID        string
	Name      string
	Scopes    []custos.Scope
	Hash      []byte
	CreatedAt time.Time
	CreatedBy string
	RevokedAt *time.Time
}

// KeyChange is a change to the API keys, written in the same transaction as
// the ledger record that describes it. Exactly one field is set.
type KeyChange struct {
	Insert *Key
	Revoke *KeyRevocation
}

// KeyRevocation revokes the key ID at time At.
type KeyRevocation struct {
	ID string
	At time.Time
}

// Batch is what the sequencer writes in one transaction. Events carry their
// assigned indices, contiguous from the store's current size; Nodes are the
// tree nodes those leaves complete, contiguous from the current node count.
type Batch struct {
	Events     []custos.Event
	Nodes      []Node
	Checkpoint *Checkpoint
	Keys       []KeyChange
}

// Head is the state the sequencer resumes from.
type Head struct {
	Size          uint64 // number of events
	NodeCount     uint64 // number of stored tree nodes
	LastTimestamp time.Time
}

// Writer is used only by the ledger's sequencer: the one writer.
type Writer interface {
	Head(ctx context.Context) (Head, error)
	Append(ctx context.Context, b *Batch) error
}

// SharedWriter is implemented by stores that several nodes share. AppendLocked
// runs one append under a database-wide lock: it reads the current head
// inside the transaction, asks build for the batch that extends it, writes
// that batch and commits, all while no other node can append. build may be
// called again if the transaction must be retried; it returns nil to write
// nothing.
type SharedWriter interface {
	AppendLocked(ctx context.Context, build func(Head) (*Batch, error)) error
}

// Query selects events. Empty strings and zero times do not filter. Results
// are newest first; After continues a previous page.
type Query struct {
	User, Action, ResourceType, ResourceID, PatientID, IPAddress, Outcome, Source string

	From, To time.Time // inclusive bounds on the ledger timestamp
	After    *Cursor   // return only events older than this position
	Limit    int
}

// Cursor is a position in the newest-first order: (timestamp, index).
type Cursor struct {
	Timestamp time.Time
	Index     uint64
}

// Reader answers queries from a read pool; it never blocks the writer.
type Reader interface {
	Event(ctx context.Context, index uint64) (custos.Event, error)
	Events(ctx context.Context, q Query) ([]custos.Event, error)
	Nodes(ctx context.Context, pos []uint64) ([][]byte, error)
	LatestCheckpoint(ctx context.Context) (*Checkpoint, error)
	Keys(ctx context.Context) ([]Key, error)
}

// Scanner streams the whole ledger in order, for verification. Each scan reads
// in bounded chunks; memory does not grow with the ledger.
type Scanner interface {
	ScanEvents(ctx context.Context, from uint64, fn func(custos.Event) error) error
	ScanNodes(ctx context.Context, fn func(Node) error) error
	ScanCheckpoints(ctx context.Context, fn func(Checkpoint) error) error
}

// Store is everything a store provides.
type Store interface {
	Writer
	Reader
	Scanner
	Ping(ctx context.Context) error
	Close() error
}
