package leaf

import (
	"encoding/binary"
	"time"

	"github.com/custos-audit/custos"
)

// encodeEventV1 returns the version 1 canonical encoding of an audit event:
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
func encodeEventV1(e *custos.Event) []byte {
	return appendEventV1(make([]byte, 0, 256+len(e.Changes)), e)
}

func appendEventV1(b []byte, e *custos.Event) []byte {
	b = append(b, Version1, KindAuditEvent)
	b = binary.BigEndian.AppendUint64(b, e.Index)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Timestamp.UnixMicro()))
	return appendEventBody(b, e)
}

// appendEventBody appends the fields of an audit event from occurred_at to
// break_glass_reason, as versions 1 and 2 lay them out.
func appendEventBody(b []byte, e *custos.Event) []byte {
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

// decodeEventBody reads what appendEventBody wrote.
func (d *decoder) eventBody(e *custos.Event) {
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
}
