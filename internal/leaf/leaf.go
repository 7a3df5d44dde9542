// Package leaf owns the frozen encodings of ledger records and their RFC 6962
// leaf hashes. It is shared by the ledger, which writes records, and by the
// public verify package, which an auditor reads and runs: it depends on
// nothing but the root package and the Merkle hasher.
//
// THESE BYTES FEED THE HASH. A published version never changes: golden
// vectors in leaf_test.go pin every one. New fields mean a new version, or a
// new extension tag in version 2 (see appendExt); old leaves keep verifying.
//
// Version 1 (the first release) encodes audit events only. Version 2 adds the
// record kind that no client can produce (server events and state records),
// the credential that submitted each record, and tagged extensions for the
// optional fields (disclosures, the record as originally received).
package leaf

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/custos-audit/custos"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Leaf encoding versions and record kinds.
const (
	Version1 byte = 0x01
	Version2 byte = 0x02

	KindAuditEvent  byte = 0x01 // an audit event a client sent
	KindState       byte = 0x02 // a change to server state (keys, roles, users, blocks, …)
	KindServerEvent byte = 0x03 // an audit event Custos wrote about its own operation
)

// Current is the version the ledger writes.
const Current = Version2

// Hasher is the RFC 6962 SHA-256 hasher of the ledger.
var Hasher = rfc6962.DefaultHasher

// ErrMalformedLeaf is returned for bytes that are not a canonical leaf, and
// by Valid for a record that no canonical leaf encodes.
var ErrMalformedLeaf = errors.New("malformed leaf")

// LeafHash returns the RFC 6962 leaf hash of the event's canonical encoding
// in its LeafVersion (0 is read as version 1, the encoding of the first
// release).
func LeafHash(e *custos.Event) []byte { return Hasher.HashLeaf(EncodeEvent(e)) }

// AppendLeafHash appends to dst the leaf hash LeafHash returns, using buf
// (returned, perhaps grown) for the encoding: for a caller that hashes many
// events, without an allocation per event.
func AppendLeafHash(dst, buf []byte, e *custos.Event) (hash, scratch []byte) {
	buf = append(buf[:0], rfc6962.RFC6962LeafHashPrefix)
	if e.LeafVersion == Version2 {
		buf = appendEventV2(buf, e)
	} else {
		buf = appendEventV1(buf, e)
	}
	sum := sha256.Sum256(buf)
	return append(dst, sum[:]...), buf
}

// EncodeEvent returns the canonical encoding of an audit event in its
// LeafVersion. Check Valid first: fields that the version cannot carry are
// not encoded.
func EncodeEvent(e *custos.Event) []byte {
	if e.LeafVersion == Version2 {
		return encodeEventV2(e)
	}
	return encodeEventV1(e)
}

// Valid reports whether the event is exactly what its version encodes:
// version 1 carries no kind but client, no submitter and no extensions;
// version 2 carries a known kind and only non-empty extension values.
func Valid(e *custos.Event) error {
	switch e.LeafVersion {
	case 0, Version1:
		if (e.Kind != "" && e.Kind != custos.KindClient) || e.SubmittedBy != "" || e.Disclosure != nil || e.Original != nil || e.Delivery != nil {
			return fmt.Errorf("%w: a version 1 leaf has no kind, submitter or extensions", ErrMalformedLeaf)
		}
	case Version2:
		if _, err := eventKind(e.Kind); err != nil {
			return err
		}
		if d := e.Disclosure; d != nil && *d == (custos.Disclosure{}) {
			return fmt.Errorf("%w: an empty disclosure is encoded as none", ErrMalformedLeaf)
		}
		if o := e.Original; o != nil && (o.Format == "" || len(o.Data) == 0) {
			return fmt.Errorf("%w: an original record needs a format and data", ErrMalformedLeaf)
		}
		if d := e.Delivery; d != nil && (d.Key == "" || d.Digest == "" || d.Count <= 0) {
			return fmt.Errorf("%w: a delivery needs a key, a digest and a count", ErrMalformedLeaf)
		}
	default:
		return fmt.Errorf("%w: unknown version %d", ErrMalformedLeaf, e.LeafVersion)
	}
	return nil
}

func eventKind(k custos.RecordKind) (byte, error) {
	switch k {
	case custos.KindClient:
		return KindAuditEvent, nil
	case custos.KindServer:
		return KindServerEvent, nil
	}
	return 0, fmt.Errorf("%w: unknown event kind %q", ErrMalformedLeaf, k)
}

// encodeEventV2 returns the version 2 canonical encoding of an audit event:
//
//	version 0x02 | kind (0x01 client, 0x03 server) | index (uint64 BE)
//	| timestamp (int64 BE, µs) | submitted_by | the version 1 fields from
//	occurred_at to break_glass_reason, in the same layout | extensions
//
// with extensions as appendExt writes them. This layout must never change.
func encodeEventV2(e *custos.Event) []byte {
	return appendEventV2(make([]byte, 0, 256+len(e.Changes)), e)
}

func appendEventV2(b []byte, e *custos.Event) []byte {
	kind, _ := eventKind(e.Kind) // Valid refuses an unknown kind; 0 never verifies
	b = append(b, Version2, kind)
	b = binary.BigEndian.AppendUint64(b, e.Index)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Timestamp.UnixMicro()))
	b = appendString(b, e.SubmittedBy)
	b = appendEventBody(b, e)
	return appendExt(b, e)
}

// DecodeEvent parses a canonical audit event leaf of either version. It
// accepts exactly the bytes EncodeEvent produces: re-encoding the result
// yields the input.
func DecodeEvent(leaf []byte) (*custos.Event, error) {
	d := decoder{b: leaf}
	v, k := d.byte(), d.byte()
	e := &custos.Event{LeafVersion: v}
	switch {
	case d.err != nil:
		return nil, d.err
	case v == Version1 && k == KindAuditEvent:
	case v == Version2 && k == KindAuditEvent:
		e.Kind = custos.KindClient
	case v == Version2 && k == KindServerEvent:
		e.Kind = custos.KindServer
	default:
		return nil, fmt.Errorf("%w: version %d kind %d is not an audit event", ErrMalformedLeaf, v, k)
	}
	e.Index = d.uint64()
	e.Timestamp = time.UnixMicro(int64(d.uint64())).UTC()
	if v == Version2 {
		e.SubmittedBy = d.string()
	}
	d.eventBody(e)
	if v == Version2 {
		d.ext(e)
	}
	return e, d.end()
}

// end fails unless every byte was read.
func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	return d.err
}
