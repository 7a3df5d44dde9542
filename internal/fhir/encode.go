package fhir

import (
	"strconv"
	"unicode/utf8"
)

// A writer of the AuditEvents that build renders: the same JSON that
// encoding/json writes for these types (elements in struct order, empty
// ones left out), without reflection; a search renders dozens of records
// per request. The extension, narrative and contained elements, which
// build never fills, are not written.

type jsonOut struct {
	b     []byte
	first bool // no member written yet in the current object
}

func (o *jsonOut) open(c byte) { o.b = append(o.b, c); o.first = true }

func (o *jsonOut) close(c byte) { o.b = append(o.b, c); o.first = false }

func (o *jsonOut) key(k string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

// str writes a member whose value is a string, unless it is empty.
func (o *jsonOut) str(k, v string) {
	if v == "" {
		return
	}
	o.key(k)
	o.b = appendJSONString(o.b, v)
}

func (o *jsonOut) boolean(k string, v *bool) {
	if v == nil {
		return
	}
	o.key(k)
	o.b = strconv.AppendBool(o.b, *v)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaping what JSON
// requires (and U+2028, U+2029, as encoding/json does); invalid UTF-8
// becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func (o *jsonOut) coding(k string, c *coding) {
	if c == nil {
		return
	}
	o.key(k)
	o.codingValue(c)
}

func (o *jsonOut) codingValue(c *coding) {
	o.open('{')
	o.str("id", string(c.ID))
	o.str("system", string(c.System))
	o.str("version", string(c.Version))
	o.str("code", string(c.Code))
	o.str("display", string(c.Display))
	o.boolean("userSelected", c.UserSelected)
	o.close('}')
}

// array writes "k": [one(&xs[0]), …], nothing when xs is empty.
func array[T any](o *jsonOut, k string, xs []T, one func(*T)) {
	if len(xs) == 0 {
		return
	}
	o.key(k)
	o.open('[')
	for i := range xs {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		one(&xs[i])
	}
	o.close(']')
}

func (o *jsonOut) codings(k string, cs []coding) { array(o, k, cs, o.codingValue) }

func (o *jsonOut) concept(c *codeableConcept) {
	o.open('{')
	o.codings("coding", c.Coding)
	o.str("text", string(c.Text))
	o.close('}')
}

func (o *jsonOut) concepts(k string, cs []codeableConcept) { array(o, k, cs, o.concept) }

func (o *jsonOut) identifier(k string, id *identifier) {
	if id == nil {
		return
	}
	o.key(k)
	o.open('{')
	o.str("use", string(id.Use))
	if id.Type != nil {
		o.key("type")
		o.concept(id.Type)
	}
	o.str("system", string(id.System))
	o.str("value", string(id.Value))
	o.close('}')
}

func (o *jsonOut) reference(k string, r *reference) {
	if r == nil {
		return
	}
	o.key(k)
	o.open('{')
	o.str("reference", string(r.Reference))
	o.str("type", string(r.Type))
	o.identifier("identifier", r.Identifier)
	o.str("display", string(r.Display))
	o.close('}')
}

// auditEventJSON writes an AuditEvent that build made.
func auditEventJSON(ae *auditEvent) []byte {
	o := &jsonOut{b: make([]byte, 0, 2048)}
	o.open('{')
	o.str("resourceType", ae.ResourceType)
	o.str("id", string(ae.ID))
	if m := ae.Meta; m != nil {
		o.key("meta")
		o.open('{')
		o.str("versionId", string(m.VersionID))
		o.str("lastUpdated", string(m.LastUpdated))
		o.str("source", string(m.Source))
		if len(m.Profile) > 0 {
			o.key("profile")
			o.open('[')
			for i, p := range m.Profile {
				if i > 0 {
					o.b = append(o.b, ',')
				}
				o.b = appendJSONString(o.b, string(p))
			}
			o.close(']')
		}
		o.codings("security", m.Security)
		o.codings("tag", m.Tag)
		o.close('}')
	}
	o.coding("type", ae.Type)
	o.codings("subtype", ae.Subtype)
	o.str("action", string(ae.Action))
	if p := ae.Period; p != nil {
		o.key("period")
		o.open('{')
		o.str("start", string(p.Start))
		o.str("end", string(p.End))
		o.close('}')
	}
	o.str("recorded", string(ae.Recorded))
	o.str("outcome", string(ae.Outcome))
	o.str("outcomeDesc", string(ae.OutcomeDesc))
	o.concepts("purposeOfEvent", ae.PurposeOfEvent)
	array(o, "agent", ae.Agent, o.agent)
	if s := ae.Source; s != nil {
		o.key("source")
		o.open('{')
		o.str("site", string(s.Site))
		o.reference("observer", s.Observer)
		o.codings("type", s.Type)
		o.close('}')
	}
	array(o, "entity", ae.Entity, o.entity)
	o.close('}')
	return o.b
}

func (o *jsonOut) agent(a *agent) {
	o.open('{')
	if a.Type != nil {
		o.key("type")
		o.concept(a.Type)
	}
	o.concepts("role", a.Role)
	o.reference("who", a.Who)
	o.str("altId", string(a.AltID))
	o.str("name", string(a.Name))
	o.boolean("requestor", a.Requestor)
	if n := a.Network; n != nil {
		o.key("network")
		o.open('{')
		o.str("address", string(n.Address))
		o.str("type", string(n.Type))
		o.close('}')
	}
	o.concepts("purposeOfUse", a.PurposeOfUse)
	o.close('}')
}

func (o *jsonOut) entity(e *entity) {
	o.open('{')
	o.reference("what", e.What)
	o.coding("type", e.Type)
	o.coding("role", e.Role)
	o.coding("lifecycle", e.Lifecycle)
	o.str("name", string(e.Name))
	o.str("description", string(e.Description))
	o.str("query", string(e.Query))
	if len(e.Detail) > 0 {
		o.key("detail")
		o.open('[')
		for i, d := range e.Detail {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.open('{')
			o.str("type", string(d.Type))
			o.str("valueString", string(d.ValueString))
			o.str("valueBase64Binary", string(d.ValueBase64Binary))
			o.close('}')
		}
		o.close(']')
	}
	o.close('}')
}
