package fhir

import (
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// A search is a conjunction (a parameter given twice means both) of
// disjunctions (commas), as FHIR says. It runs as one or more store
// queries (one per value of the indexed parameter that has several, at
// most maxFanOut), merged newest first, then a match on each candidate
// for the parameters the store cannot answer.

const (
	maxFanOut   = 20   // values of one indexed parameter with commas
	scanBudget  = 5000 // candidates one page of a search examines at most
	fetchSize   = 500  // candidates read from the store at once when matching
	defaultPage = 100
	maxCount    = 10_000 // records _summary=count counts at most
)

// filter matches one candidate on what the store could not.
type filter func(e *custos.Event, ae *auditEvent) bool

// search is a parsed search.
type search struct {
	queries  []store.Query // with the same filters but one fan-out value each
	filters  []filter
	none     bool // the parameters contradict one another: nothing matches
	count    int
	summary  bool // _summary=count
	after    *store.Cursor
	params   url.Values // the search as given, for links and its record
	patients []string   // the patients searched, for the record
	warnings []string   // ignored parameters (Prefer: handling=lenient)
}

// sets collects, per indexed field, the values every occurrence allows.
type sets struct {
	patient, user, ip []string
	resource          [][2]string
	given             map[string]bool
}

// intersect narrows a set by one occurrence's values (AND of ORs on a
// field with one value per record).
func intersect(cur []string, vals []string, given bool) []string {
	if !given {
		return vals
	}
	var out []string
	for _, v := range vals {
		if slices.Contains(cur, v) {
			out = append(out, v)
		}
	}
	return out
}

func (s *sets) add(field string, vals []string) {
	given := s.given[field]
	s.given[field] = true
	switch field {
	case "patient":
		s.patient = intersect(s.patient, vals, given)
	case "user":
		s.user = intersect(s.user, vals, given)
	case "ip":
		s.ip = intersect(s.ip, vals, given)
	}
}

func (s *sets) addResource(vals [][2]string) {
	if !s.given["resource"] {
		s.resource = vals
	} else {
		var out [][2]string
		for _, v := range vals {
			if slices.Contains(s.resource, v) {
				out = append(out, v)
			}
		}
		s.resource = out
	}
	s.given["resource"] = true
}

// parseSearch parses the parameters of a search (the query string, and for
// POST _search the form body too).
func parseSearch(v url.Values, lenientMode bool, h *Handler) (*search, error) {
	s := &search{count: defaultPage, params: url.Values{}}
	st := sets{given: map[string]bool{}}
	var q store.Query
	for _, name := range slices.Sorted(maps.Keys(v)) {
		vals := v[name]
		base, modifier, hasMod := strings.Cut(name, ":")
		if hasMod {
			if _, known := paramByName[base]; known || resultParams[base] {
				return nil, invalidParam(name, "the modifier :"+modifier+" is not supported")
			}
		}
		if resultParams[name] {
			if err := s.result(name, vals, h); err != nil {
				return nil, err
			}
			if name != "_cursor" && name != "_format" && name != "_pretty" {
				s.params[name] = vals
			}
			continue
		}
		p, known := paramByName[name]
		if !known {
			if !printableName(name) {
				return nil, invalidParam("query", "holds a parameter whose name is not printable text; no such parameter exists")
			}
			if lenientMode {
				s.warnings = append(s.warnings, name)
				continue
			}
			return nil, invalidParam(name, "unknown search parameter for AuditEvent (see GET /fhir/metadata); with Prefer: handling=lenient it is ignored instead")
		}
		s.params[name] = vals
		for _, raw := range vals {
			if err := s.occurrence(p, raw, &st, &q); err != nil {
				return nil, err
			}
		}
	}
	if b, _ := json.Marshal(map[string]any{"query": s.params}); len(b) > custos.MinMaxChanges-512 {
		return nil, invalidParam("query", "the search is too long to record in the trail; narrow it")
	}
	return s, s.plan(&st, q)
}

func printableName(s string) bool {
	return len(s) <= 64 && checkValue("", s, 0) == nil
}

// result parses one of the parameters that shape the answer.
func (s *search) result(name string, vals []string, h *Handler) error {
	if len(vals) > 1 {
		return invalidParam(name, "given more than once")
	}
	v := vals[0]
	switch name {
	case "_count":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > store.MaxLimit || strconv.Itoa(n) != v {
			return invalidParam(name, "must be an integer from 0 to 1000 (0 answers the total only)")
		}
		if n == 0 {
			s.summary = true
		}
		s.count = max(n, 1)
	case "_sort":
		if v != "-date" && v != "-_lastUpdated" {
			return invalidParam(name, "only -date (newest first) is supported")
		}
	case "_summary":
		switch v {
		case "count":
			s.summary = true
		case "false":
		default:
			return invalidParam(name, "only count and false are supported")
		}
	case "_cursor":
		c, err := h.host.DecodeCursor(v)
		if err != nil {
			return invalidParam(name, "is not a cursor this server issued (altered or truncated); follow the next link as given, or start again")
		}
		s.after = c
	}
	return nil
}

// occurrence adds one occurrence of a parameter: its comma-separated
// values, any of which may match.
func (s *search) occurrence(p param, raw string, st *sets, q *store.Query) error {
	if err := checkValue(p.name, raw, maxQuery); err != nil {
		return err
	}
	vals := splitComma(raw)
	for _, v := range vals {
		if err := checkValue(p.name, v, 0); err != nil {
			return invalidParam(p.name, "holds an empty value between commas")
		}
	}
	switch p.name {
	case "date":
		if len(vals) > 1 {
			return invalidParam(p.name, "a comma (OR) is not supported for date: give a range with ge and le")
		}
		from, to, err := dateRange(p.name, vals[0])
		if err != nil {
			return err
		}
		if !from.IsZero() && (q.From.IsZero() || from.After(q.From)) {
			q.From = from
		}
		if !to.IsZero() && (q.To.IsZero() || to.Before(q.To)) {
			q.To = to
		}
	case "patient":
		ids := make([]string, len(vals))
		for i, v := range vals {
			id, ok := referenceID(v, "Patient")
			if !ok {
				return invalidParam(p.name, "must reference a Patient: Patient/{id} or {id}")
			}
			if err := checkValue(p.name, id, custos.MaxLength("patient_id")); err != nil {
				return err
			}
			ids[i] = id
		}
		st.add("patient", ids)
	case "patient.identifier":
		toks := tokens(vals)
		ids := make([]string, len(toks))
		for i, t := range toks {
			if t.code == "" {
				return invalidParam(p.name, "must give the identifier's value: [system|]value")
			}
			if err := checkValue(p.name, t.code, custos.MaxLength("patient_id")); err != nil {
				return err
			}
			ids[i] = t.code
		}
		st.add("patient", ids)
		s.filters = append(s.filters, func(_ *custos.Event, ae *auditEvent) bool { return patientIdentifierMatch(ae, toks) })
	case "agent":
		for _, v := range vals {
			if err := checkValue(p.name, v, custos.MaxLength("user.id")); err != nil {
				return err
			}
		}
		st.add("user", vals)
	case "agent.identifier":
		toks := tokens(vals)
		ids := make([]string, len(toks))
		for i, t := range toks {
			if t.code == "" {
				return invalidParam(p.name, "must give the identifier's value: [system|]value")
			}
			ids[i] = t.code
		}
		st.add("user", ids)
		s.filters = append(s.filters, func(_ *custos.Event, ae *auditEvent) bool { return agentIdentifierMatch(ae, toks) })
	case "address":
		ips := make([]string, 0, len(vals))
		for _, v := range vals {
			if ip, ok := canonicalIP(v); ok {
				ips = append(ips, ip)
			}
		}
		if len(ips) == len(vals) {
			st.add("ip", ips)
		} else {
			s.filters = append(s.filters, func(e *custos.Event, ae *auditEvent) bool { return addressMatch(e, ae, vals) })
		}
	case "entity":
		return s.entity(vals, st)
	case "outcome":
		toks := tokens(vals)
		outcomes := map[string]bool{}
		for _, t := range toks {
			if t.hasSystem && t.system != "" && t.system != "http://hl7.org/fhir/audit-event-outcome" {
				return invalidParam(p.name, "must be a code of http://hl7.org/fhir/audit-event-outcome")
			}
			switch t.code {
			case "0":
				outcomes["success"] = true
			case "4", "8", "12":
				outcomes["failure"] = true
			default:
				return invalidParam(p.name, "must be 0, 4, 8 or 12")
			}
		}
		if len(outcomes) == 1 {
			for o := range outcomes {
				if q.Outcome != "" && q.Outcome != o {
					s.none = true
				}
				q.Outcome = o
			}
		}
		s.filters = append(s.filters, func(_ *custos.Event, ae *auditEvent) bool {
			for _, t := range toks {
				if string(ae.Outcome) == t.code || (ae.Outcome == "" && t.code == "0") {
					return true
				}
			}
			return false
		})
	case "source":
		if len(vals) > 1 {
			s.filters = append(s.filters, func(e *custos.Event, _ *auditEvent) bool { return slices.Contains(vals, e.Source) })
			break
		}
		if err := checkValue(p.name, vals[0], custos.MaxLength("source")); err != nil {
			return err
		}
		if q.Source != "" && q.Source != vals[0] {
			s.none = true
		}
		q.Source = vals[0]
	default:
		s.filters = append(s.filters, elementFilter(p, vals))
	}
	return nil
}

func tokens(vals []string) []token {
	out := make([]token, len(vals))
	for i, v := range vals {
		out[i] = parseToken(v)
	}
	return out
}

// entity adds an entity parameter: Patient references as patient, other
// typed references as the indexed resource, bare ids on each candidate.
func (s *search) entity(vals []string, st *sets) error {
	var pats []string
	var res [][2]string
	for _, v := range vals {
		typ, id := splitRef(v)
		switch {
		case typ == "Patient":
			pats = append(pats, id)
		case IsID(typ) && id != "" && len(typ) <= custos.MaxLength("resource_type") && len(id) <= custos.MaxLength("resource_id"):
			res = append(res, [2]string{typ, id})
		}
	}
	switch {
	case len(pats) == len(vals):
		st.add("patient", pats)
	case len(res) == len(vals):
		st.addResource(res)
	default:
		s.filters = append(s.filters, func(_ *custos.Event, ae *auditEvent) bool { return entityMatch(ae, vals) })
	}
	return nil
}

// plan turns the sets into store queries and filters.
func (s *search) plan(st *sets, q store.Query) error {
	if (st.given["patient"] && len(st.patient) == 0) || (st.given["user"] && len(st.user) == 0) ||
		(st.given["ip"] && len(st.ip) == 0) || (st.given["resource"] && len(st.resource) == 0) {
		s.none = true
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.From.After(q.To) {
		s.none = true
	}
	s.patients = st.patient
	if s.none {
		return nil // answered empty without reading the store
	}
	fan := ""
	single := func(field string, vals []string, set func(string)) {
		switch {
		case len(vals) == 1:
			set(vals[0])
		case len(vals) > 1 && fan == "" && len(vals) <= maxFanOut:
			fan = field
		case len(vals) > 1:
			vs := vals
			s.filters = append(s.filters, func(e *custos.Event, _ *auditEvent) bool {
				return slices.Contains(vs, map[string]string{"patient": e.PatientID, "user": e.User.ID, "ip": e.IPAddress}[field])
			})
		}
	}
	single("patient", st.patient, func(v string) { q.PatientID = v })
	switch {
	case len(st.resource) == 1:
		q.ResourceType, q.ResourceID = st.resource[0][0], st.resource[0][1]
	case len(st.resource) > 1 && fan == "" && len(st.resource) <= maxFanOut:
		fan = "resource"
	case len(st.resource) > 1:
		rs := st.resource
		s.filters = append(s.filters, func(e *custos.Event, _ *auditEvent) bool {
			return slices.Contains(rs, [2]string{e.ResourceType, e.ResourceID})
		})
	}
	single("user", st.user, func(v string) { q.User = v })
	single("ip", st.ip, func(v string) { q.IPAddress = v })
	q.After = s.after
	switch fan {
	case "patient":
		for _, v := range st.patient {
			f := q
			f.PatientID = v
			s.queries = append(s.queries, f)
		}
	case "user":
		for _, v := range st.user {
			f := q
			f.User = v
			s.queries = append(s.queries, f)
		}
	case "ip":
		for _, v := range st.ip {
			f := q
			f.IPAddress = v
			s.queries = append(s.queries, f)
		}
	case "resource":
		for _, v := range st.resource {
			f := q
			f.ResourceType, f.ResourceID = v[0], v[1]
			s.queries = append(s.queries, f)
		}
	default:
		s.queries = []store.Query{q}
	}
	// Every query the store runs is answered from an index or a bounded
	// scan, and so is every search that matches on each candidate.
	for _, f := range s.queries {
		if err := store.CheckQueryBounded(f); err != nil {
			return boundError(err)
		}
		if len(s.filters) > 0 && !bounded(f) {
			return invalidParam("query", "no index serves these parameters: add patient, patient.identifier, agent, agent.identifier, "+
				"an IP address, or entity=Type/id, or a date range (ge and le) at most 31 days wide")
		}
	}
	return nil
}

// bounded reports whether a search that matches on each candidate reads a
// bounded set: an index drives it, or its dates span at most 31 days.
func bounded(q store.Query) bool {
	if q.Indexed() {
		return true
	}
	end := q.To
	if end.IsZero() {
		end = time.Now()
	}
	return !q.From.IsZero() && end.Sub(q.From) <= store.MaxScanWindow
}

// boundError renames the store's fields to search parameters.
func boundError(err error) error {
	ce, ok := err.(*custos.Error)
	if !ok {
		return err
	}
	out := *ce
	out.Fields = nil
	for _, f := range ce.Fields {
		f.Field = map[string]string{"outcome": "outcome", "source": "source", "action": "action",
			"resource_type": "entity", "resource_id": "entity"}[f.Field]
		f.Message = "no index serves this parameter: add patient, agent, an IP address, or entity=Type/id, or a date range (ge and le) at most 31 days wide"
		out.Fields = append(out.Fields, f)
	}
	return &out
}
