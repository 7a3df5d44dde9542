// Package ledger owns the append-only Merkle log that every Custos record is a
// leaf of: the canonical leaf encoding, RFC 6962 hashing, the positions of
// stored tree nodes, proofs, signed checkpoints, and the sequencer that is the
// only writer.
//
// Invariants: the encoding of version 1 never changes (golden vectors in
// encoding_test.go guard it); leaves are appended in index order with no gaps;
// an append is acknowledged only after the store committed it together with
// its tree nodes.
package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/custos-audit/custos"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Leaf encoding versions and record kinds. THESE BYTES FEED THE HASH: never
// change their meaning; add new versions or kinds instead.
const (
	Version1       byte = 0x01
	KindAuditEvent byte = 0x01
)

// Hasher is the RFC 6962 SHA-256 hasher of the ledger.
var Hasher = rfc6962.DefaultHasher

// LeafHash returns the RFC 6962 leaf hash of the event's canonical encoding.
func LeafHash(e *custos.Event) []byte {
	return Hasher.HashLeaf(EncodeEvent(e))
}

// EncodeEvent returns the version 1 canonical encoding of an audit event:
//
//	version (1 byte) | kind (1 byte) | index (uint64 BE) | timestamp (int64 BE, µs since epoch)
//	| occurred_at (0x00, or 0x01 + int64 BE µs) | user.id | user.name | roles (uvarint count, strings)
//	| action | resource_type | resource_id | patient_id | ip_address | user_agent
//	| request_method | request_path | changes (0x00, or 0x01 + bytes) | outcome
//	| status_code (uvarint) | source | request_id | session_id | purpose_of_use
//	| break_glass (0x00 or 0x01) | break_glass_reason
//
// where every string and byte string is a uvarint length followed by its bytes.
// This layout must never change.
func EncodeEvent(e *custos.Event) []byte {
	b := make([]byte, 0, 256+len(e.Changes))
	b = append(b, Version1, KindAuditEvent)
	b = binary.BigEndian.AppendUint64(b, e.Index)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Timestamp.UnixMicro()))
	if e.OccurredAt != nil {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint64(b, uint64(e.OccurredAt.UnixMicro()))
	} else {
		b = append(b, 0)
	}
	b = appendString(b, e.User.ID)
	b = appendString(b, e.User.Name)
	b = binary.AppendUvarint(b, uint64(len(e.User.Roles)))
	for _, r := range e.User.Roles {
		b = appendString(b, r)
	}
	for _, s := range []string{string(e.Action), e.ResourceType, e.ResourceID, e.PatientID,
		e.IPAddress, e.UserAgent, e.RequestMethod, e.RequestPath} {
		b = appendString(b, s)
	}
	if e.Changes != nil {
		b = append(b, 1)
		b = appendString(b, string(e.Changes))
	} else {
		b = append(b, 0)
	}
	b = appendString(b, string(e.Outcome))
	b = binary.AppendUvarint(b, uint64(e.StatusCode))
	for _, s := range []string{e.Source, e.RequestID, e.SessionID, e.PurposeOfUse} {
		b = appendString(b, s)
	}
	if e.BreakGlass {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return appendString(b, e.BreakGlassReason)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// ErrMalformedLeaf is returned by DecodeEvent for bytes that are not a
// canonical version 1 audit event.
var ErrMalformedLeaf = errors.New("malformed leaf")

// DecodeEvent parses the canonical encoding made by EncodeEvent. It accepts
// exactly the bytes EncodeEvent produces: re-encoding the result yields the
// input.
func DecodeEvent(leaf []byte) (*custos.Event, error) {
	d := decoder{b: leaf}
	if v, k := d.byte(), d.byte(); d.err == nil && (v != Version1 || k != KindAuditEvent) {
		return nil, fmt.Errorf("%w: version %d kind %d", ErrMalformedLeaf, v, k)
	}
	e := &custos.Event{}
	e.Index = d.uint64()
	e.Timestamp = time.UnixMicro(int64(d.uint64())).UTC()
	if d.flag() {
		t := time.UnixMicro(int64(d.uint64())).UTC()
		e.OccurredAt = &t
	}
	e.User.ID, e.User.Name = d.string(), d.string()
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.b)) {
			d.fail()
		} else {
			e.User.Roles = make([]string, n)
			for i := range e.User.Roles {
				e.User.Roles[i] = d.string()
			}
		}
	}
	e.Action = custos.Action(d.string())
	for _, p := range []*string{&e.ResourceType, &e.ResourceID, &e.PatientID, &e.IPAddress,
		&e.UserAgent, &e.RequestMethod, &e.RequestPath} {
		*p = d.string()
	}
	if d.flag() {
		e.Changes = []byte(d.string())
	}
	e.Outcome = custos.Outcome(d.string())
	e.StatusCode = int(d.uvarint())
	for _, p := range []*string{&e.Source, &e.RequestID, &e.SessionID, &e.PurposeOfUse} {
		*p = d.string()
	}
	e.BreakGlass = d.flag()
	e.BreakGlassReason = d.string()
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	if d.err != nil {
		return nil, d.err
	}
	return e, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = ErrMalformedLeaf
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// flag reads a presence or boolean byte, which must be 0 or 1.
func (d *decoder) flag() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail()
	return false
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	// Refuse overlong (non-minimal) varints so that the encoding is canonical.
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
