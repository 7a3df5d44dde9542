package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
)

// EventColumns are the events table's columns in the order EventArgs and
// EventRow.Dest use; both SQL stores share the layout.
const EventColumns = `idx, ts, occurred_at, user_id, user_name, user_roles, action, resource_type,
	resource_id, patient_id, ip_address, user_agent, request_method, request_path, changes, outcome,
	status_code, source, request_id, session_id, purpose_of_use, break_glass, break_glass_reason,
	leaf_version, leaf_kind, submitted_by, ext`

// QualifiedEventColumns are EventColumns of the events table aliased e.
var QualifiedEventColumns = "e." + strings.Join(strings.Split(strings.Join(strings.Fields(EventColumns), ""), ","), ", e.")

// EventColumnCount is the number of EventColumns.
const EventColumnCount = 27

// EventArgs appends e's column values to args, in EventColumns order: times
// as µs since the epoch, empty patient and address as NULL, roles and changes
// as the JSON text that is hashed, the leaf kind as its byte, and the
// extension section as the bytes that are hashed (NULL when there is none).
func EventArgs(args []any, e *custos.Event) []any {
	roles := e.User.Roles
	if roles == nil {
		roles = []string{}
	}
	rolesJSON, _ := json.Marshal(roles) // a []string always marshals
	var occurred, changes, patient, ip any
	if e.OccurredAt != nil {
		occurred = e.OccurredAt.UnixMicro()
	}
	if e.Changes != nil {
		changes = string(e.Changes)
	}
	if e.PatientID != "" {
		patient = e.PatientID
	}
	if e.IPAddress != "" {
		ip = e.IPAddress
	}
	version, kind := int64(leaf.Version1), int64(leaf.KindAuditEvent)
	var ext any
	if e.LeafVersion == leaf.Version2 {
		version = int64(leaf.Version2)
		if e.Kind == custos.KindServer {
			kind = int64(leaf.KindServerEvent)
		}
		if b := leaf.EncodeExt(e); len(b) > 1 {
			ext = b
		}
	}
	return append(args, int64(e.Index), e.Timestamp.UnixMicro(), occurred, e.User.ID, e.User.Name,
		string(rolesJSON), string(e.Action), e.ResourceType, e.ResourceID, patient,
		ip, e.UserAgent, e.RequestMethod, e.RequestPath, changes, string(e.Outcome),
		e.StatusCode, e.Source, e.RequestID, e.SessionID, e.PurposeOfUse, e.BreakGlass, e.BreakGlassReason,
		version, kind, e.SubmittedBy, ext)
}

// eventRow receives one row of EventColumns.
type eventRow struct {
	e                    custos.Event
	idx, ts              int64
	occurred             *int64
	roles                string
	patient, ip, changes *string
	action, outcome      string
	statusCode           int64
	version, kind        int64
	ext                  []byte
}

// dest returns the scan destinations in EventColumns order.
func (r *eventRow) dest() []any {
	e := &r.e
	return []any{&r.idx, &r.ts, &r.occurred, &e.User.ID, &e.User.Name, &r.roles, &r.action, &e.ResourceType,
		&e.ResourceID, &r.patient, &r.ip, &e.UserAgent, &e.RequestMethod, &e.RequestPath, &r.changes, &r.outcome,
		&r.statusCode, &e.Source, &e.RequestID, &e.SessionID, &e.PurposeOfUse, &e.BreakGlass, &e.BreakGlassReason,
		&r.version, &r.kind, &e.SubmittedBy, &r.ext}
}

// event returns the scanned event.
func (r *eventRow) event() (custos.Event, error) {
	e := r.e
	e.Index, e.Timestamp = uint64(r.idx), time.UnixMicro(r.ts).UTC()
	e.Action, e.Outcome, e.StatusCode = custos.Action(r.action), custos.Outcome(r.outcome), int(r.statusCode)
	if r.occurred != nil {
		t := time.UnixMicro(*r.occurred).UTC()
		e.OccurredAt = &t
	}
	if roles, ok := plainStrings(r.roles); ok {
		e.User.Roles = roles
	} else if err := json.Unmarshal([]byte(r.roles), &e.User.Roles); err != nil {
		return e, fmt.Errorf("%w: event %d: user_roles is not a JSON array: %v", ErrCorruptRow, r.idx, err)
	}
	if r.patient != nil {
		e.PatientID = *r.patient
	}
	if r.ip != nil {
		e.IPAddress = *r.ip
	}
	if r.changes != nil {
		e.Changes = json.RawMessage(*r.changes)
	}
	switch {
	case r.version == int64(leaf.Version1) && r.kind == int64(leaf.KindAuditEvent):
		e.LeafVersion, e.Kind = leaf.Version1, custos.KindClient
		if len(r.ext) > 0 {
			return e, fmt.Errorf("%w: event %d: a version 1 record has no extensions", ErrCorruptRow, r.idx)
		}
	case r.version == int64(leaf.Version2) && r.kind == int64(leaf.KindAuditEvent):
		e.LeafVersion, e.Kind = leaf.Version2, custos.KindClient
	case r.version == int64(leaf.Version2) && r.kind == int64(leaf.KindServerEvent):
		e.LeafVersion, e.Kind = leaf.Version2, custos.KindServer
	default:
		return e, fmt.Errorf("%w: event %d: leaf version %d kind %d", ErrCorruptRow, r.idx, r.version, r.kind)
	}
	if err := leaf.DecodeExt(r.ext, &e); err != nil {
		return e, fmt.Errorf("%w: event %d: extensions: %v", ErrCorruptRow, r.idx, err)
	}
	return e, nil
}

// plainStrings decodes, without encoding/json, a JSON array of strings in
// the compact form EventArgs writes when no string needs an escape:
// `[]`, `["a"]`, `["a","b"]`. For such text it returns exactly what
// json.Unmarshal into a nil []string gives (a non-nil empty slice for `[]`);
// for any other text (whitespace, escapes, control characters, invalid
// UTF-8, null) it returns false and the caller unmarshals.
func plainStrings(s string) ([]string, bool) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, false
	}
	body := s[1 : len(s)-1]
	if body == "" {
		return []string{}, true
	}
	n := strings.Count(body, `","`) + 1
	out := make([]string, 0, n)
	for len(body) > 0 {
		if body[0] != '"' {
			return nil, false
		}
		end := 1
		for end < len(body) && body[end] != '"' {
			if c := body[end]; c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
				if c < utf8.RuneSelf {
					return nil, false
				}
				r, size := utf8.DecodeRuneInString(body[end:])
				if r == utf8.RuneError && size == 1 {
					return nil, false
				}
				end += size
				continue
			}
			end++
		}
		if end == len(body) {
			return nil, false // unterminated
		}
		out = append(out, body[1:end])
		body = body[end+1:]
		if len(body) > 0 {
			if body[0] != ',' || len(body) == 1 {
				return nil, false
			}
			body = body[1:]
		}
	}
	return out, true
}

// keyRow receives one row of KeyColumns.
type keyRow struct {
	k       Key
	scopes  string
	created int64
	revoked *int64
}

// KeyColumns are the api_keys columns ScanKey reads.
const KeyColumns = `id, name, scopes, hash, created_at, created_by, revoked_at`

// dest returns the scan destinations in KeyColumns order.
func (r *keyRow) dest() []any {
	return []any{&r.k.ID, &r.k.Name, &r.scopes, &r.k.Hash, &r.created, &r.k.CreatedBy, &r.revoked}
}

// key returns the scanned key.
func (r *keyRow) key() (Key, error) {
	k := r.k
	if err := json.Unmarshal([]byte(r.scopes), &k.Scopes); err != nil {
		return k, fmt.Errorf("key %s scopes: %w", k.ID, err)
	}
	k.CreatedAt = time.UnixMicro(r.created).UTC()
	if r.revoked != nil {
		t := time.UnixMicro(*r.revoked).UTC()
		k.RevokedAt = &t
	}
	return k, nil
}
