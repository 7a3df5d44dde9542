// Package store declares what the ledger, the API and the verifier need from a
// database. The SQLite and PostgreSQL stores implement it and both pass the
// conformance suite in storetest.
//
// Invariants every store keeps: Append writes a batch (events, state records
// and their projection, tree nodes, an optional checkpoint) in one transaction that is durable when
// Append returns nil, and writes nothing when it returns an error; events are
// only ever inserted, never updated or deleted.
package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
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
	// Cosignatures are witnesses' signature lines (C2SP tlog-cosignature)
	// for Note, added as they arrive: self-authenticating, not records.
	Cosignatures []byte
}

// Cosigner stores the cosignatures witnesses returned for a checkpoint.
type Cosigner interface {
	AddCosignatures(ctx context.Context, size uint64, lines []byte) error
}

// Key is an API key as the legacy api_keys table of the first release held
// it. Since state became a projection of the ledger, keys live in the state
// table; the legacy rows are adopted once (see LegacyKeys).
type Key struct {
	ID        string
	Name      string
	Scopes    []custos.Scope
	Hash      []byte
	CreatedAt time.Time
	CreatedBy string
	RevokedAt *time.Time
}

// StateRow is one row of the state table: the current document of one
// entity and the index of the state record that put it there.
type StateRow struct {
	Entity, ID string
	Doc        []byte
	Index      uint64
}

// Batch is what the sequencer writes in one transaction. Events and States
// carry their assigned indices, together contiguous from the store's current
// size; Nodes are the tree nodes those leaves complete, contiguous from the
// current node count. Each state record is applied to the state table in the
// same transaction (ApplyStates): state is a projection of the ledger.
type Batch struct {
	Events     []custos.Event
	States     []leaf.StateRecord
	Nodes      []Node
	Checkpoint *Checkpoint
	// Committed, when set, is called once the batch has committed (durable,
	// and visible to readers), before the store's own work after the commit
	// (SQLite's secondary index queue, which may wait), and never for a
	// batch that did not commit.
	Committed func()
}

// Head is the state the sequencer resumes from.
type Head struct {
	Size          uint64 // number of records
	NodeCount     uint64 // number of stored tree nodes
	LastTimestamp time.Time
	// Now is the store's clock, read inside the append transaction, when
	// the store is shared (PostgreSQL): the one clock every node stamps
	// records with. Zero when the process's own clock is the reference.
	Now time.Time
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
	// StateRecords returns the state records with index > after (-1 for
	// all), in index order.
	StateRecords(ctx context.Context, after int64) ([]leaf.StateRecord, error)
	// StateRecord returns the state record at index, or custos.ErrNotFound.
	StateRecord(ctx context.Context, index uint64) (leaf.StateRecord, error)
	// StateRows returns the state table, ordered by entity and id.
	StateRows(ctx context.Context) ([]StateRow, error)
	// LegacyKeys returns the rows of the first release's api_keys table,
	// which the server adopts into the ledger once and then empties.
	LegacyKeys(ctx context.Context) ([]Key, error)
	// RecordCount counts the stored records of every kind and returns the
	// size the newest index implies, read in one snapshot: they differ when
	// records were deleted or inserted behind Custos's back.
	RecordCount(ctx context.Context) (count, size uint64, err error)
	// PatientDays counts, per user and UTC day in [from, to), the distinct
	// patients their client events named.
	PatientDays(ctx context.Context, from, to time.Time) ([]PatientDay, error)
	// Delivery returns the index of the first event of the request that
	// submittedBy sent with the idempotency key, or custos.ErrNotFound.
	Delivery(ctx context.Context, submittedBy, key string) (uint64, error)
	// DeliveryRows returns the deliveries table in index order.
	DeliveryRows(ctx context.Context) ([]DeliveryRow, error)
}

// Scanner streams the whole ledger in order, for verification. Each scan reads
// in bounded chunks; memory does not grow with the ledger.
type Scanner interface {
	ScanEvents(ctx context.Context, from uint64, fn func(custos.Event) error) error
	// ScanEventRange calls fn for every event with from <= index < to, in
	// index order, reading no row beyond to.
	ScanEventRange(ctx context.Context, from, to uint64, fn func(custos.Event) error) error
	ScanNodes(ctx context.Context, fn func(Node) error) error
	ScanCheckpoints(ctx context.Context, fn func(Checkpoint) error) error
}

// Store is everything a store provides.
type Store interface {
	Writer
	Reader
	Scanner
	Cosigner
	Aggregator
	Ping(ctx context.Context) error
	Close() error
}

// PatientDay is how many distinct patients one user's client events named on
// one UTC day: what the PHI-access baseline is seeded from at a start.
type PatientDay struct {
	UserID   string
	Roles    []string
	Day      time.Time // midnight UTC
	Patients int
}

// PatientDaysQuery counts, per user and UTC day from $1 to $2 (ledger time,
// microseconds), the distinct patients their client events named. Both
// stores run it, with their own placeholders.
const PatientDaysQuery = `SELECT user_id, max(user_roles), ts / 86400000000 AS day, count(DISTINCT patient_id)
FROM events WHERE ts >= $1 AND ts < $2 AND leaf_kind = 1 AND patient_id IS NOT NULL AND patient_id <> ''
GROUP BY user_id, ts / 86400000000 ORDER BY day, user_id`

// ScanPatientDay reads one row of PatientDaysQuery.
func ScanPatientDay(r Row) (PatientDay, error) {
	var d PatientDay
	var roles string
	var day int64
	if err := r.Scan(&d.UserID, &roles, &day, &d.Patients); err != nil {
		return d, err
	}
	json.Unmarshal([]byte(roles), &d.Roles)
	d.Day = time.Unix(day*86400, 0).UTC()
	return d, nil
}
