package httpaudit

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
)

// The spool's segment format. A segment is one batch: a header naming the
// batch's idempotency key, then records, each a 4-byte big-endian payload
// length, the payload's CRC-32C (4 bytes, big-endian) and the payload (one
// event as JSON). Segments are appended to while open and never change once
// sealed. This format must only ever be read back by a newer version: change
// segMagic if it changes.
const (
	segMagic     = "custos-httpaudit-spool 1\n"
	keyLen       = 32 // hex characters
	recHeader    = 8
	maxRecord    = 4 << 20
	segHeaderLen = len(segMagic) + len("key ") + keyLen + 1
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var (
	errNotSegment = errors.New("not a spool segment")
	errTorn       = errors.New("the segment ends inside a record")
	errCorrupt    = errors.New("a record's checksum does not match")
)

// newKey returns a fresh idempotency key: 128 random bits in hex.
func newKey() string {
	var b [keyLen / 2]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func encodeHeader(key string) []byte {
	return []byte(segMagic + "key " + key + "\n")
}

// appendRecord appends one framed record to dst.
func appendRecord(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(payload, crcTable))
	return append(dst, payload...)
}

// decodeSegment reads a segment: its key, its records (sub-slices of data)
// and the length of the valid prefix. A segment cut inside a record (a
// write the process did not finish) returns the records before the cut and
// errTorn; a checksum mismatch stops at that record with errCorrupt.
func decodeSegment(data []byte) (key string, recs [][]byte, valid int, err error) {
	if len(data) < segHeaderLen || string(data[:len(segMagic)]) != segMagic ||
		string(data[len(segMagic):len(segMagic)+4]) != "key " || data[segHeaderLen-1] != '\n' {
		return "", nil, 0, errNotSegment
	}
	key = string(data[len(segMagic)+4 : segHeaderLen-1])
	if _, err := hex.DecodeString(key); err != nil || len(key) != keyLen {
		return "", nil, 0, fmt.Errorf("%w: bad key", errNotSegment)
	}
	off := segHeaderLen
	for off < len(data) {
		if len(data)-off < recHeader {
			return key, recs, off, errTorn
		}
		n := binary.BigEndian.Uint32(data[off:])
		sum := binary.BigEndian.Uint32(data[off+4:])
		if n > maxRecord {
			return key, recs, off, fmt.Errorf("%w: record of %d bytes", errCorrupt, n)
		}
		if uint64(len(data)-off-recHeader) < uint64(n) {
			return key, recs, off, errTorn
		}
		p := data[off+recHeader : off+recHeader+int(n)]
		if crc32.Checksum(p, crcTable) != sum {
			return key, recs, off, errCorrupt
		}
		recs = append(recs, p)
		off += recHeader + int(n)
	}
	return key, recs, off, nil
}
