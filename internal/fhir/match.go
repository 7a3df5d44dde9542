package fhir

import (
	"strings"

	"github.com/custos-audit/custos"
)

// The matchers of the parameters that are checked on each candidate
// record, against the record as an AuditEvent (view).

func codingMatch(cs []coding, toks []token) bool {
	for _, t := range toks {
		for _, c := range cs {
			if t.matches(string(c.System), string(c.Code)) {
				return true
			}
		}
	}
	return false
}

func conceptMatch(cc []codeableConcept, toks []token) bool {
	for _, c := range cc {
		if codingMatch(c.Coding, toks) {
			return true
		}
		for _, t := range toks {
			if !t.hasSystem && t.code == string(c.Text) {
				return true
			}
		}
	}
	return false
}

func identifierMatch(id *identifier, toks []token) bool {
	if id == nil {
		return false
	}
	for _, t := range toks {
		if t.matches(string(id.System), string(id.Value)) {
			return true
		}
	}
	return false
}

func patientIdentifierMatch(ae *auditEvent, toks []token) bool {
	for _, x := range ae.Extension {
		if x.URL == extPatient && x.ValueReference != nil && identifierMatch(x.ValueReference.Identifier, toks) {
			return true
		}
	}
	if i := patientEntity(ae); i >= 0 && ae.Entity[i].What != nil {
		return identifierMatch(ae.Entity[i].What.Identifier, toks)
	}
	return false
}

func agentIdentifierMatch(ae *auditEvent, toks []token) bool {
	for _, a := range ae.Agent {
		if a.Who != nil && identifierMatch(a.Who.Identifier, toks) {
			return true
		}
	}
	return false
}

// prefixFold is FHIR's default string match: a case-insensitive prefix.
func prefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func anyPrefix(s string, vals []string) bool {
	for _, v := range vals {
		if s != "" && prefixFold(s, v) {
			return true
		}
	}
	return false
}

func addressMatch(e *custos.Event, ae *auditEvent, vals []string) bool {
	for _, v := range vals {
		if ip, ok := canonicalIP(v); ok && ip == e.IPAddress {
			return true
		}
	}
	for _, a := range ae.Agent {
		if a.Network != nil && anyPrefix(string(a.Network.Address), vals) {
			return true
		}
	}
	return false
}

func entityMatch(ae *auditEvent, vals []string) bool {
	for _, en := range ae.Entity {
		if en.What == nil || en.What.Reference == "" {
			continue
		}
		ref := string(en.What.Reference)
		for _, v := range vals {
			if ref == v || strings.HasSuffix(ref, "/"+v) {
				return true
			}
		}
	}
	return false
}

// elementFilter matches the parameters that only a candidate's elements
// answer.
func elementFilter(p param, vals []string) filter {
	toks := tokens(vals)
	switch p.name {
	case "agent-name":
		return func(_ *custos.Event, ae *auditEvent) bool {
			for _, a := range ae.Agent {
				if anyPrefix(string(a.Name), vals) || (a.Who != nil && anyPrefix(string(a.Who.Display), vals)) {
					return true
				}
			}
			return false
		}
	case "agent-role":
		return func(_ *custos.Event, ae *auditEvent) bool {
			for _, a := range ae.Agent {
				if conceptMatch(a.Role, toks) || (a.Type != nil && conceptMatch([]codeableConcept{*a.Type}, toks)) {
					return true
				}
			}
			return false
		}
	case "entity-type", "entity-role":
		return func(_ *custos.Event, ae *auditEvent) bool {
			for _, en := range ae.Entity {
				c := en.Type
				if p.name == "entity-role" {
					c = en.Role
				}
				if c != nil && codingMatch([]coding{*c}, toks) {
					return true
				}
			}
			return false
		}
	case "site":
		return func(_ *custos.Event, ae *auditEvent) bool {
			return ae.Source != nil && anyPrefix(string(ae.Source.Site), vals)
		}
	case "type":
		return func(_ *custos.Event, ae *auditEvent) bool {
			return ae.Type != nil && codingMatch([]coding{*ae.Type}, toks)
		}
	case "subtype":
		return func(_ *custos.Event, ae *auditEvent) bool { return codingMatch(ae.Subtype, toks) }
	case "action":
		return func(_ *custos.Event, ae *auditEvent) bool {
			for _, t := range toks {
				if !t.hasSystem && string(ae.Action) == t.code {
					return true
				}
			}
			return false
		}
	}
	return func(*custos.Event, *auditEvent) bool { return false }
}
