package leaf

import (
	"encoding/binary"
	"strconv"

	"github.com/custos-audit/custos"
)

// Extension tags of version 2 audit events. A tag's meaning never changes;
// new optional fields take new tags, so they need no new version.
const (
	tagDisclosureRecipient = 1
	tagDisclosureAddress   = 2
	tagDisclosurePurpose   = 3
	tagOriginalFormat      = 4
	tagOriginalData        = 5
	tagDeliveryKey         = 6
	tagDeliveryDigest      = 7
	tagDeliveryCount       = 8 // decimal
)

// EncodeExt returns the extension section of a version 2 event:
//
//	count (uvarint) | count × (tag (uvarint) | value (uvarint length + bytes))
//
// with tags strictly increasing and only non-empty values present. An event
// with no extension encodes as the single byte 0x00. Stores keep these bytes
// as they are (NULL for none), so a verifier hashes them without knowing
// every tag.
func EncodeExt(e *custos.Event) []byte {
	return appendExt(nil, e)
}

// appendExt appends the extension section of e to b.
func appendExt(b []byte, e *custos.Event) []byte {
	if e.Disclosure == nil && e.Original == nil && e.Delivery == nil {
		return append(b, 0) // the common case, without allocating
	}
	type kv struct {
		tag uint64
		v   string
	}
	var fields []kv
	if d := e.Disclosure; d != nil {
		fields = append(fields, kv{tagDisclosureRecipient, d.Recipient}, kv{tagDisclosureAddress, d.Address},
			kv{tagDisclosurePurpose, d.Purpose})
	}
	if o := e.Original; o != nil {
		fields = append(fields, kv{tagOriginalFormat, o.Format}, kv{tagOriginalData, string(o.Data)})
	}
	if d := e.Delivery; d != nil {
		fields = append(fields, kv{tagDeliveryKey, d.Key}, kv{tagDeliveryDigest, d.Digest},
			kv{tagDeliveryCount, strconv.Itoa(d.Count)})
	}
	n := 0
	for _, f := range fields {
		if f.v != "" {
			n++
		}
	}
	b = binary.AppendUvarint(b, uint64(n))
	for _, f := range fields {
		if f.v != "" {
			b = binary.AppendUvarint(b, f.tag)
			b = appendString(b, f.v)
		}
	}
	return b
}

// DecodeExt sets the event's extension fields from an extension section as
// EncodeExt writes it; nil or empty means none.
func DecodeExt(b []byte, e *custos.Event) error {
	if len(b) == 0 {
		return nil
	}
	d := decoder{b: b}
	d.ext(e)
	return d.end()
}

// ext reads an extension section: canonical (strictly increasing known tags,
// non-empty values) or a failure.
func (d *decoder) ext(e *custos.Event) {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return
	}
	var last uint64
	for range n {
		tag := d.uvarint()
		v := d.string()
		if d.err != nil {
			return
		}
		if tag <= last || v == "" {
			d.fail()
			return
		}
		last = tag
		switch tag {
		case tagDisclosureRecipient, tagDisclosureAddress, tagDisclosurePurpose:
			if e.Disclosure == nil {
				e.Disclosure = &custos.Disclosure{}
			}
			*[]*string{&e.Disclosure.Recipient, &e.Disclosure.Address, &e.Disclosure.Purpose}[tag-tagDisclosureRecipient] = v
		case tagOriginalFormat:
			e.Original = &custos.Original{Format: v}
		case tagOriginalData:
			if e.Original == nil {
				d.fail() // data without its format
				return
			}
			e.Original.Data = []byte(v)
		case tagDeliveryKey:
			e.Delivery = &custos.Delivery{Key: v}
		case tagDeliveryDigest, tagDeliveryCount:
			if e.Delivery == nil {
				d.fail() // a delivery without its key
				return
			}
			if tag == tagDeliveryDigest {
				e.Delivery.Digest = v
			} else if n, err := strconv.Atoi(v); err != nil || n <= 0 || strconv.Itoa(n) != v {
				d.fail() // not the canonical decimal of a count
				return
			} else {
				e.Delivery.Count = n
			}
		default:
			d.fail() // a tag this release does not know
			return
		}
	}
	if e.Original != nil && len(e.Original.Data) == 0 {
		d.fail()
	}
	if e.Delivery != nil && (e.Delivery.Digest == "" || e.Delivery.Count == 0) {
		d.fail()
	}
}
