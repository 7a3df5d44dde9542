package atna

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/custos-audit/custos"
)

// Format is the media type under which the DICOM XML is kept in the ledger
// (custos.Event.Original.Format).
const Format = "application/dicom+xml"

// DICOM (DCM) audit event IDs of PS3.16 CID 150, by code: the event's
// resource_type when the sender names a known code.
var dcmEvents = map[string]string{
	"110100": "Application Activity",
	"110101": "Audit Log Used",
	"110102": "Begin Transferring DICOM Instances",
	"110103": "DICOM Instances Accessed",
	"110104": "DICOM Instances Transferred",
	"110105": "DICOM Study Deleted",
	"110106": "Export",
	"110107": "Import",
	"110108": "Network Entry",
	"110109": "Order Record",
	"110110": "Patient Record",
	"110111": "Procedure Record",
	"110112": "Query",
	"110113": "Security Alert",
	"110114": "User Authentication",
}

// Decode parses one DICOM audit message and maps it to an event carrying
// the XML as its original (data itself, which the caller must not change
// afterwards; a leading BOM is dropped). The event is validated
// (custos.Event.Normalize), so a batch of decoded events is refused by the
// ledger only for a fault of the ledger's.
func Decode(data []byte, lim Limits) (custos.Event, error) {
	data = bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF")) // RFC 5424 MSG-UTF8 starts with a BOM
	m, err := ParseMessage(data, lim)
	if err != nil {
		return custos.Event{}, err
	}
	e, err := m.Event()
	if err != nil {
		return custos.Event{}, err
	}
	e.Original = &custos.Original{Format: Format, Data: data}
	if err := e.Normalize(custos.DefaultLimits, ""); err != nil {
		// Every field is clipped and cleaned above; this is a bug.
		return custos.Event{}, reject(ReasonInvalid, "the mapped event is invalid: "+fieldsOf(err))
	}
	return e, nil
}

// Event maps the message to a Custos event:
//
//   - user: the first ActiveParticipant with UserIsRequestor true — its
//     UserID (else AlternativeUserID, else UserName), UserName, and its
//     RoleIDCode texts as roles; with no requestor, the audit source acted;
//   - ip_address: that participant's NetworkAccessPointID when its type is
//     2 (IP address) and it is one;
//   - patient_id: the first ParticipantObjectIdentification with
//     ParticipantObjectTypeCodeRole 1 (patient), its first repetition (HL7
//     "~"), or only its ID component (before "^") when the whole is longer
//     than a patient_id can be;
//   - action: LOGIN / LOGOUT for User Authentication (DCM 110114) with
//     EventTypeCode Login (110122) / Logout (110123), EXPORT for Export
//     (110106), IMPORT for Import (110107), else by EventActionCode: C
//     CREATE, R READ, U UPDATE, D DELETE, E (execute: queries, application
//     activity) or none READ;
//   - outcome: EventOutcomeIndicator 0 success; 4, 8, 12 failure;
//   - resource_type: the EventID's name; resource_id: the first other
//     participant object's ID when it fits;
//   - source: AuditSourceID; purpose_of_use: the first PurposeOfUse code;
//     occurred_at: EventDateTime (UTC when it names no zone).
//
// Text is cleaned of control characters and clipped to the field's
// length: the message as received stays whole in the ledger.
func (m *Message) Event() (custos.Event, error) {
	var e custos.Event
	switch m.Outcome {
	case "0":
		e.Outcome = custos.OutcomeSuccess
	case "4", "8", "12":
		e.Outcome = custos.OutcomeFailure
	default:
		return e, reject(ReasonInvalid, "EventOutcomeIndicator must be 0, 4, 8 or 12")
	}
	at, err := parseDateTime(m.DateTime)
	if err != nil {
		return e, reject(ReasonInvalid, "EventDateTime is not an xs:dateTime")
	}
	e.OccurredAt = &at
	if e.Action, err = m.action(); err != nil {
		return e, err
	}
	e.ResourceType = text(m.eventName(), custos.MaxLength("resource_type"))
	e.Source = text(m.SourceID, custos.MaxLength("source"))
	if len(m.PurposesOfUse) > 0 {
		e.PurposeOfUse = text(m.PurposesOfUse[0].Code, 100)
	}
	e.User = m.user()
	e.IPAddress = m.address()
	e.PatientID, e.ResourceID = m.objects()
	return e, nil
}

func (m *Message) action() (custos.Action, error) {
	if isDCM(m.EventID) {
		switch m.EventID.Code {
		case "110114":
			for _, t := range m.EventTypes {
				if isDCM(t) && t.Code == "110123" {
					return custos.ActionLogout, nil
				}
			}
			return custos.ActionLogin, nil
		case "110106":
			return custos.ActionExport, nil
		case "110107":
			return custos.ActionImport, nil
		}
	}
	switch m.ActionCode {
	case "C":
		return custos.ActionCreate, nil
	case "R", "E", "":
		return custos.ActionRead, nil
	case "U":
		return custos.ActionUpdate, nil
	case "D":
		return custos.ActionDelete, nil
	}
	return "", reject(ReasonInvalid, "EventActionCode must be C, R, U, D or E")
}

// isDCM reports whether c is in the DICOM code system (by name, OID, or
// unnamed, as older senders write it).
func isDCM(c Code) bool {
	return c.System == "DCM" || c.System == "1.2.840.10008.2.16.4" || c.System == ""
}

func (m *Message) eventName() string {
	if isDCM(m.EventID) {
		if n, ok := dcmEvents[m.EventID.Code]; ok {
			return n
		}
	}
	if strings.TrimSpace(m.EventID.Text) != "" {
		return m.EventID.Text
	}
	return strings.TrimSpace(m.EventID.System + " " + m.EventID.Code)
}

func (m *Message) requestor() *Participant {
	for i := range m.Participants {
		if m.Participants[i].Requestor {
			return &m.Participants[i]
		}
	}
	return nil
}

func (m *Message) user() custos.User {
	u := custos.User{Roles: []string{}}
	p := m.requestor()
	if p != nil {
		u.ID = firstText(p.UserID, p.AlternativeUserID, p.UserName)
		u.Name = text(p.UserName, 255)
		for _, r := range p.Roles {
			if role := text(firstText(r.Text, r.Code), 64); role != "" && len(u.Roles) < 32 && !contains(u.Roles, role) {
				u.Roles = append(u.Roles, role)
			}
		}
	}
	if u.ID == "" {
		u.ID = m.SourceID // no identified requestor: the audit source acted
	}
	u.ID = text(u.ID, custos.MaxLength("user.id"))
	return u
}

func (m *Message) address() string {
	p := m.requestor()
	if p == nil || p.NetworkAccessPointType != "2" {
		return ""
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(p.NetworkAccessPointID))
	if err != nil || ip.Zone() != "" {
		return ""
	}
	return ip.Unmap().String()
}

// objects returns the patient's ID and the first other object's ID.
func (m *Message) objects() (patient, resource string) {
	seen := false
	for _, o := range m.Objects {
		id := strings.TrimSpace(o.ID)
		if o.Role == "1" && !seen {
			seen = true
			patient = patientID(id)
			continue
		}
		if resource == "" && o.Role != "1" {
			if r := text(id, 1<<10); len([]rune(r)) <= custos.MaxLength("resource_id") {
				resource = r
			}
		}
	}
	return patient, resource
}

// patientID shortens an HL7 CX value to what a patient_id holds: the first
// repetition, or its ID component when the whole is too long.
func patientID(id string) string {
	max := custos.MaxLength("patient_id")
	id, _, _ = strings.Cut(id, "~")
	id = text(id, 1<<10)
	if len([]rune(id)) > max {
		id, _, _ = strings.Cut(id, "^")
	}
	return text(id, max)
}

// parseDateTime reads an xs:dateTime; one without a zone is taken as UTC.
func parseDateTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t, err = time.ParseInLocation("2006-01-02T15:04:05", s, time.UTC)
	}
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// text returns s trimmed, valid UTF-8, without control characters (each
// becomes a space) and at most max characters long.
func text(s string, max int) string {
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		s = strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f {
				return ' '
			}
			return r
		}, s)
	}
	return custos.Clip(strings.TrimSpace(s), max)
}

func firstText(vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// fieldsOf names the fields of a validation error, without their values.
func fieldsOf(err error) string {
	var ce *custos.Error
	if !errors.As(err, &ce) || len(ce.Fields) == 0 {
		return "event"
	}
	names := make([]string, len(ce.Fields))
	for i, f := range ce.Fields {
		names[i] = f.Field
	}
	return strings.Join(names, ", ")
}
