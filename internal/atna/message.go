package atna

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// Limits bound what the DICOM parser reads. Zero fields take the defaults.
type Limits struct {
	MaxBytes int // bytes of XML at most (default DefaultMaxXML)
	MaxDepth int // element nesting at most, the root being 1 (default DefaultMaxDepth)
}

// The default limits. Real audit messages are a few kilobytes, nested four
// deep (AuditMessage / ParticipantObjectIdentification /
// ParticipantObjectDescription / SOPClass).
const (
	DefaultMaxXML   = 48 << 10
	DefaultMaxDepth = 16
)

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxXML
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
}

// Code is a coded value of DICOM PS3.15: csd-code (or the legacy code),
// codeSystemName, and originalText (or the legacy displayName).
type Code struct {
	Code, System, Text string
}

// Participant is an ActiveParticipant.
type Participant struct {
	UserID, AlternativeUserID, UserName string
	Requestor                           bool
	NetworkAccessPointID                string
	NetworkAccessPointType              string // "1" machine name, "2" IP address, …
	Roles                               []Code
}

// Object is a ParticipantObjectIdentification.
type Object struct {
	ID       string
	TypeCode string // "1" person, "2" system object, …
	Role     string // ParticipantObjectTypeCodeRole: "1" patient, …
	IDType   Code
}

// Message is the part of a DICOM PS3.15 AuditMessage that Custos maps; the
// message itself is kept whole in the ledger.
type Message struct {
	ActionCode    string // EventActionCode: C, R, U, D or E
	DateTime      string // EventDateTime as written
	Outcome       string // EventOutcomeIndicator: 0, 4, 8 or 12
	EventID       Code
	EventTypes    []Code
	PurposesOfUse []Code
	Participants  []Participant
	SourceID      string // AuditSourceIdentification/@AuditSourceID
	SiteID        string // AuditSourceIdentification/@AuditEnterpriseSiteID
	Objects       []Object
}

// ParseMessage parses a DICOM PS3.15 AuditMessage with encoding/xml under
// lim. It refuses, with a *Rejection: more than lim.MaxBytes bytes
// (ReasonTooLarge); any directive, so a DOCTYPE and with it every DTD and
// external entity (ReasonDoctype); elements nested deeper than lim.MaxDepth
// (ReasonTooDeep); XML that is not well-formed, an entity other than the
// five predefined ones, an encoding other than UTF-8 (ReasonXML); a root
// other than AuditMessage or a message without EventIdentification, EventID
// or AuditSourceIdentification (ReasonInvalid).
func ParseMessage(data []byte, lim Limits) (*Message, error) {
	lim = lim.withDefaults()
	if len(data) > lim.MaxBytes {
		return nil, reject(ReasonTooLarge, fmt.Sprintf("%d bytes of XML, the limit is %d", len(data), lim.MaxBytes))
	}
	p := parser{d: xml.NewDecoder(bytes.NewReader(data)), lim: lim, m: &Message{}}
	p.d.Strict = true
	p.d.Entity = nil        // the five predefined entities only
	p.d.CharsetReader = nil // UTF-8 (and its US-ASCII subset) only
	if err := p.run(); err != nil {
		return nil, err
	}
	return p.m, p.m.check()
}

// parser walks the tokens once, keeping the path of open elements.
type parser struct {
	d     *xml.Decoder
	lim   Limits
	m     *Message
	stack []xml.Name
	root  bool // the root element was seen
	seen  struct{ event, source bool }
}

func (p *parser) run() error {
	for {
		tok, err := p.d.RawToken()
		if err == io.EOF {
			if !p.root {
				return reject(ReasonXML, "no root element")
			}
			if len(p.stack) > 0 {
				return p.syntax("unexpected end of the document")
			}
			return nil
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return &Rejection{Reason: ReasonXML, Detail: "not well-formed", Line: se.Line}
			}
			return reject(ReasonXML, "unreadable XML")
		}
		switch t := tok.(type) {
		case xml.Directive:
			return &Rejection{Reason: ReasonDoctype, Detail: "a DOCTYPE or other declaration is not accepted", Line: p.line()}
		case xml.StartElement:
			if err := p.start(t); err != nil {
				return err
			}
		case xml.EndElement:
			if n := len(p.stack); n == 0 || p.stack[n-1] != t.Name {
				return p.syntax("an end tag does not match its start tag")
			}
			p.stack = p.stack[:len(p.stack)-1]
		case xml.CharData:
			if len(p.stack) == 0 && len(bytes.TrimSpace(t)) > 0 {
				return p.syntax("text outside the root element")
			}
		}
	}
}

func (p *parser) line() int {
	line, _ := p.d.InputPos()
	return line
}

func (p *parser) syntax(detail string) error {
	return &Rejection{Reason: ReasonXML, Detail: detail, Line: p.line()}
}

func (p *parser) start(t xml.StartElement) error {
	if len(p.stack) == 0 {
		if p.root {
			return p.syntax("a second root element")
		}
		p.root = true
		if t.Name.Local != "AuditMessage" {
			return &Rejection{Reason: ReasonInvalid, Detail: "the root element is not AuditMessage", Line: p.line()}
		}
	}
	p.stack = append(p.stack, t.Name)
	if len(p.stack) > p.lim.MaxDepth {
		return &Rejection{Reason: ReasonTooDeep, Detail: fmt.Sprintf("elements nest deeper than %d", p.lim.MaxDepth), Line: p.line()}
	}
	p.element(len(p.stack), t)
	return nil
}

// element records what Custos maps: attributes of the second level
// elements and the codes under them. Everything else is skipped (and kept,
// with the whole message, in the ledger).
func (p *parser) element(depth int, t xml.StartElement) {
	m := p.m
	switch depth {
	case 2:
		switch t.Name.Local {
		case "EventIdentification":
			p.seen.event = true
			m.ActionCode, m.DateTime, m.Outcome = attr(t, "EventActionCode"), attr(t, "EventDateTime"), attr(t, "EventOutcomeIndicator")
		case "ActiveParticipant":
			m.Participants = append(m.Participants, Participant{
				UserID: attr(t, "UserID"), AlternativeUserID: attr(t, "AlternativeUserID"), UserName: attr(t, "UserName"),
				Requestor:            attr(t, "UserIsRequestor") == "true" || attr(t, "UserIsRequestor") == "1",
				NetworkAccessPointID: attr(t, "NetworkAccessPointID"), NetworkAccessPointType: attr(t, "NetworkAccessPointTypeCode"),
			})
		case "AuditSourceIdentification":
			if !p.seen.source { // the first one is the audit source
				p.seen.source = true
				m.SourceID, m.SiteID = attr(t, "AuditSourceID"), attr(t, "AuditEnterpriseSiteID")
			}
		case "ParticipantObjectIdentification":
			m.Objects = append(m.Objects, Object{ID: attr(t, "ParticipantObjectID"),
				TypeCode: attr(t, "ParticipantObjectTypeCode"), Role: attr(t, "ParticipantObjectTypeCodeRole")})
		}
	case 3:
		parent := p.stack[1].Local
		switch {
		case parent == "EventIdentification" && t.Name.Local == "EventID":
			m.EventID = code(t)
		case parent == "EventIdentification" && t.Name.Local == "EventTypeCode":
			m.EventTypes = append(m.EventTypes, code(t))
		case parent == "EventIdentification" && t.Name.Local == "PurposeOfUse":
			m.PurposesOfUse = append(m.PurposesOfUse, code(t))
		case parent == "ActiveParticipant" && t.Name.Local == "RoleIDCode" && len(m.Participants) > 0:
			pt := &m.Participants[len(m.Participants)-1]
			pt.Roles = append(pt.Roles, code(t))
		case parent == "ParticipantObjectIdentification" && t.Name.Local == "ParticipantObjectIDTypeCode" && len(m.Objects) > 0:
			m.Objects[len(m.Objects)-1].IDType = code(t)
		}
	}
}

// check makes sure the elements every mapping needs are there.
func (m *Message) check() error {
	switch {
	case m.EventID.Code == "":
		return reject(ReasonInvalid, "EventIdentification/EventID with a code is required")
	case m.Outcome == "":
		return reject(ReasonInvalid, "EventIdentification/@EventOutcomeIndicator is required")
	case m.DateTime == "":
		return reject(ReasonInvalid, "EventIdentification/@EventDateTime is required")
	case m.SourceID == "":
		return reject(ReasonInvalid, "AuditSourceIdentification/@AuditSourceID is required")
	}
	return nil
}

// attr returns the value of the attribute with the local name, or "".
func attr(t xml.StartElement, local string) string {
	for _, a := range t.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// code reads a coded value in the current (csd-code, originalText) or the
// legacy (code, displayName) attributes.
func code(t xml.StartElement) Code {
	c := Code{Code: attr(t, "csd-code"), System: attr(t, "codeSystemName"), Text: attr(t, "originalText")}
	if c.Code == "" {
		c.Code = attr(t, "code")
	}
	if c.Text == "" {
		c.Text = attr(t, "displayName")
	}
	return c
}
