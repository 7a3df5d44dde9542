package leaf

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// StateOp is what a state record does to its entity.
type StateOp string

// The state operations. A put carries the entity's whole new document; a
// create is a put that the store commits only if the entity does not exist
// yet (so two nodes racing to create one entity make one record); a delete
// removes it. Replaying the records in ledger order yields the state.
const (
	OpPut    StateOp = "put"
	OpCreate StateOp = "create"
	OpDelete StateOp = "delete"
)

// Puts reports whether the operation writes a document.
func (o StateOp) Puts() bool { return o == OpPut || o == OpCreate }

// StateRecord is a change to server state: an API key, and in later releases
// a role, a user, a grant, a block or a security event's status. Only the
// server writes one; its leaf kind (KindState) is one no ingest path can
// produce. Doc is the entity's whole document as canonical JSON (compact, as
// encoding/json writes a Go struct).
type StateRecord struct {
	Index       uint64
	Timestamp   time.Time
	SubmittedBy string
	Entity      string // "api_key", …
	ID          string
	Op          StateOp
	Doc         []byte // nil for a delete
}

// Key identifies the entity a state record changes.
func (r *StateRecord) Key() StateKey { return StateKey{Entity: r.Entity, ID: r.ID} }

// StateKey names one entity of server state.
type StateKey struct{ Entity, ID string }

func (k StateKey) String() string { return k.Entity + " " + k.ID }

// ValidState reports whether the record is a well-formed state record: a
// known operation, an entity and id, a JSON document exactly for a put.
func ValidState(r *StateRecord) error {
	switch {
	case r.Entity == "" || r.ID == "":
		return fmt.Errorf("%w: a state record names its entity and id", ErrMalformedLeaf)
	case r.Op.Puts() && !json.Valid(r.Doc):
		return fmt.Errorf("%w: a put carries a JSON document", ErrMalformedLeaf)
	case r.Op == OpDelete && r.Doc != nil:
		return fmt.Errorf("%w: a delete carries no document", ErrMalformedLeaf)
	case !r.Op.Puts() && r.Op != OpDelete:
		return fmt.Errorf("%w: unknown state operation %q", ErrMalformedLeaf, r.Op)
	}
	return nil
}

// EncodeState returns the version 2 canonical encoding of a state record:
//
//	version 0x02 | kind 0x02 | index (uint64 BE) | timestamp (int64 BE, µs)
//	| submitted_by | entity | id | op | doc
//
// every string as a uvarint length and its bytes. This layout must never
// change.
func EncodeState(r *StateRecord) []byte {
	b := make([]byte, 0, 64+len(r.Doc))
	b = append(b, Version2, KindState)
	b = binary.BigEndian.AppendUint64(b, r.Index)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Timestamp.UnixMicro()))
	for _, s := range []string{r.SubmittedBy, r.Entity, r.ID, string(r.Op), string(r.Doc)} {
		b = appendString(b, s)
	}
	return b
}

// StateHash returns the RFC 6962 leaf hash of a state record.
func StateHash(r *StateRecord) []byte { return Hasher.HashLeaf(EncodeState(r)) }

// DecodeState parses exactly the bytes EncodeState produces.
func DecodeState(leaf []byte) (*StateRecord, error) {
	d := decoder{b: leaf}
	if v, k := d.byte(), d.byte(); d.err == nil && (v != Version2 || k != KindState) {
		return nil, fmt.Errorf("%w: version %d kind %d is not a state record", ErrMalformedLeaf, v, k)
	}
	r := &StateRecord{}
	r.Index = d.uint64()
	r.Timestamp = time.UnixMicro(int64(d.uint64())).UTC()
	r.SubmittedBy, r.Entity, r.ID = d.string(), d.string(), d.string()
	r.Op = StateOp(d.string())
	if doc := d.string(); r.Op.Puts() {
		r.Doc = []byte(doc)
	} else if doc != "" {
		d.fail()
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return r, ValidState(r)
}
