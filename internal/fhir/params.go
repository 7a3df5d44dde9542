package fhir

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// paramType is a FHIR search parameter type.
type paramType int

const (
	ptDate paramType = iota
	ptToken
	ptReference
	ptString
)

// param is a search parameter Custos answers, and what the
// CapabilityStatement says of it.
type param struct {
	name string
	typ  paramType
	doc  string
}

// params are the AuditEvent search parameters of ITI-81 that Custos
// answers, in the order the CapabilityStatement lists them. "Indexed"
// parameters narrow the search in the store; the others are matched on
// each candidate record, which needs an indexed parameter or a date range
// of at most 31 days (the same rule as /v1/events).
var params = []param{
	{"date", ptDate, "When Custos recorded the event (the ledger's timestamp, meta.lastUpdated), which for a resource received as FHIR is when it was received, not its recorded element. Prefixes eq, ge, gt, le, lt; partial dates (YYYY, YYYY-MM, YYYY-MM-DD) and full times. Indexed. No comma (OR)."},
	{"patient", ptReference, "The patient: Patient/{id}, {id}, or an absolute URL ending in Patient/{id}; matched against the one patient Custos indexes per event (the patient entity, or the R5 AuditEvent.patient extension). Indexed."},
	{"patient.identifier", ptToken, "The patient by identifier: [system|]value; the value is matched in the index, the system on the record. Indexed."},
	{"agent", ptReference, "The user: matched exactly against the user Custos recorded (for a resource received as FHIR: the requestor agent's who.identifier.value, else who.reference, else who.display). Indexed."},
	{"agent.identifier", ptToken, "The user by identifier: [system|]value; the value is matched against the recorded user in the index, the system on the record's agents. Indexed."},
	{"agent-name", ptString, "An agent's name (or, for records not received as FHIR, the user's name): case-insensitive prefix. Matched on each candidate."},
	{"agent-role", ptToken, "An agent's role: [system|]code, or the role's text. Matched on each candidate."},
	{"address", ptString, "An agent's network address. An IP address is matched exactly against the address Custos indexes (the requestor's, else the first agent's IP address); other text is a case-insensitive prefix of any agent's address, matched on each candidate."},
	{"entity", ptReference, "An entity: Type/id. A Patient is matched as patient is; another type against the resource Custos indexes (the first entity that is not the patient); a bare id on each candidate."},
	{"entity-type", ptToken, "An entity's type: [system|]code. Matched on each candidate."},
	{"entity-role", ptToken, "An entity's role: [system|]code. Matched on each candidate."},
	{"outcome", ptToken, "The outcome: 0, 4, 8 or 12 (system http://hl7.org/fhir/audit-event-outcome). Matched in the store (success or failure), then on each candidate."},
	{"source", ptReference, "The observer that recorded the event, exactly as Custos recorded it (source: its identifier's value, else reference, else display). Not indexed: needs an indexed parameter or a date range."},
	{"site", ptString, "The source's site: case-insensitive prefix. Matched on each candidate."},
	{"type", ptToken, "The event type: [system|]code. Matched on each candidate."},
	{"subtype", ptToken, "The event subtype: [system|]code. Matched on each candidate."},
	{"action", ptToken, "The action code: C, R, U, D or E. Matched on each candidate."},
}

var paramByName = func() map[string]param {
	m := map[string]param{}
	for _, p := range params {
		m[p.name] = p
	}
	return m
}()

// resultParams are the parameters that shape the answer.
var resultParams = map[string]bool{"_count": true, "_sort": true, "_summary": true, "_format": true, "_pretty": true, "_cursor": true}

// maxQuery bounds the text of a search: its record in the trail must fit.
const maxQuery = 2048

// splitComma splits a value at commas that are not escaped as \, and
// unescapes \, \| and \\ (FHIR search escaping).
func splitComma(s string) []string {
	var out []string
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && (s[i+1] == ',' || s[i+1] == '\\' || s[i+1] == '$'):
			b.WriteByte(s[i+1])
			i++
		case c == ',':
			out = append(out, strings.TrimSpace(b.String()))
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	return append(out, strings.TrimSpace(b.String()))
}

// token is a parsed token value: system|code, |code, system| or code.
type token struct {
	system, code string
	hasSystem    bool // a '|' was given: system is checked (empty: none)
}

func parseToken(s string) token {
	sys, code, ok := strings.Cut(s, "|")
	if !ok {
		return token{code: s}
	}
	return token{system: sys, code: code, hasSystem: true}
}

// matches reports whether a coding matches the token.
func (t token) matches(system, code string) bool {
	if t.hasSystem && t.system != system {
		return false
	}
	return t.code == "" || t.code == code
}

// dateRange is the instant range a date value with its prefix selects.
func dateRange(name, v string) (from, to time.Time, err error) {
	prefix := "eq"
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		prefix, v = v[:2], v[2:]
	}
	start, end, ok := dateBounds(v)
	if !ok {
		return from, to, invalidParam(name, "must be a date: YYYY, YYYY-MM, YYYY-MM-DD or a full time with a zone, after an optional prefix eq, ge, gt, le or lt")
	}
	switch prefix {
	case "eq":
		return start, end, nil
	case "ge":
		return start, time.Time{}, nil
	case "gt":
		return end.Add(time.Microsecond), time.Time{}, nil
	case "le":
		return time.Time{}, end, nil
	case "lt":
		return time.Time{}, start.Add(-time.Microsecond), nil
	}
	return from, to, invalidParam(name, "has a prefix Custos does not support: use eq, ge, gt, le or lt")
}

// dateBounds is the first and last microsecond a partial date or time
// covers, in UTC (a date without a zone is a UTC date).
func dateBounds(v string) (start, end time.Time, ok bool) {
	if len(v) > 40 {
		return start, end, false
	}
	switch {
	case reDate.MatchString(v):
		layouts := map[int]string{4: "2006", 7: "2006-01", 10: "2006-01-02"}
		t, err := time.Parse(layouts[len(v)], v)
		if err != nil {
			return start, end, false
		}
		switch len(v) {
		case 4:
			end = t.AddDate(1, 0, 0)
		case 7:
			end = t.AddDate(0, 1, 0)
		default:
			end = t.AddDate(0, 0, 1)
		}
		return t, end.Add(-time.Microsecond), true
	case reDateTime.MatchString(v) && parsable(v):
		t, _ := time.Parse(time.RFC3339Nano, v)
		t = t.UTC()
		// A time names its whole precision: to the second, or to the
		// fraction given.
		prec := time.Second
		if i := strings.IndexByte(v, '.'); i >= 0 {
			digits := 0
			for _, c := range v[i+1:] {
				if c < '0' || c > '9' {
					break
				}
				digits++
			}
			prec = time.Duration(1)
			for range max(0, 9-digits) {
				prec *= 10
			}
		}
		return t, t.Add(prec).Add(-time.Microsecond).Truncate(time.Microsecond), true
	}
	return start, end, false
}

// referenceID is the id a reference value names for a type: "Type/id",
// an absolute URL ending so, or a bare id.
func referenceID(v, typ string) (string, bool) {
	t, id := splitRef(v)
	if t == "" {
		if strings.Contains(v, "/") {
			return "", false
		}
		return v, true
	}
	return id, t == typ
}

// checkValue refuses what no record holds: control characters, invalid
// UTF-8, and values longer than the field they are matched against.
func checkValue(name, v string, maxLen int) error {
	switch {
	case v == "":
		return invalidParam(name, "must not be empty; to search without this parameter, leave it out")
	case !utf8.ValidString(v):
		return invalidParam(name, "must be valid UTF-8")
	case strings.ContainsFunc(v, unicode.IsControl):
		return invalidParam(name, "must not contain control characters")
	case maxLen > 0 && utf8.RuneCountInString(v) > maxLen:
		return invalidParam(name, fmt.Sprintf("must be at most %d characters (no record has a longer one)", maxLen))
	}
	return nil
}

func canonicalIP(s string) (string, bool) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return "", false
	}
	return ip.Unmap().String(), true
}
