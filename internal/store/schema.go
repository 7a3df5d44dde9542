package store

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// SchemaProblem is a difference between a database's schema, or the way it
// stores values, and what this release's migrations create. Anyone who can
// write to the database could otherwise hide records from searches or
// fabricate results without touching a single hashed row: a trigger, a view,
// a rule or a policy, a case-insensitive collation, a value stored with
// another type than the one its column declares.
type SchemaProblem struct {
	Object string // the object that differs, such as `table "events"`
	Reason string // what differs, such as `column patient_id has collation "nocase", the migrations declare none`
}

// Error says which object differs and how: `schema: <object>: <reason>`.
func (p *SchemaProblem) Error() string { return "schema: " + p.Object + ": " + p.Reason }

// SchemaObject is one object of a schema in the form the schema checks
// compare: objects match by Kind, On and Name, and then every attribute must
// be equal.
type SchemaObject struct {
	Kind  string // "table", "index", "trigger", …
	Name  string
	On    string       // the table a trigger, rule, policy or constraint belongs to, if any
	Attrs []SchemaAttr // compared in this order
}

// Object names o in a SchemaProblem: `trigger "hide" on "events"`.
func (o *SchemaObject) Object() string {
	s := fmt.Sprintf("%s %q", o.Kind, o.Name)
	if o.On != "" {
		s += fmt.Sprintf(" on %q", o.On)
	}
	return s
}

// Attr appends an attribute of the object itself (part "") or of one of its
// parts, such as "column patient_id".
func (o *SchemaObject) Attr(part, name, value string) {
	o.Attrs = append(o.Attrs, SchemaAttr{Part: part, Name: name, Value: value})
}

// SchemaAttr is one compared property of a SchemaObject or of one of its
// parts; an empty Value reads "none".
type SchemaAttr struct {
	Part, Name, Value string
}

func (o *SchemaObject) key() string { return o.Kind + "\x00" + o.On + "\x00" + o.Name }

// DiffSchema returns the first difference between the objects a database has
// (got) and those the migrations create (want), or nil when there is none.
// Objects are taken table by table (each table, then the objects that belong
// to it), by kind and name; within an object, the parts and attributes in
// want's order.
func DiffSchema(want, got []SchemaObject) *SchemaProblem {
	byKey := func(objs []SchemaObject) map[string]*SchemaObject {
		m := make(map[string]*SchemaObject, len(objs))
		for i := range objs {
			m[objs[i].key()] = &objs[i]
		}
		return m
	}
	wants, gots := byKey(want), byKey(got)
	all := make([]*SchemaObject, 0, len(want)+len(got))
	for i := range want {
		all = append(all, &want[i])
	}
	for i := range got {
		if wants[got[i].key()] == nil {
			all = append(all, &got[i])
		}
	}
	// Each table, then what belongs to it, by kind and name.
	group := func(o *SchemaObject) (string, int) {
		if o.On != "" {
			return o.On, 1
		}
		return o.Name, 0
	}
	slices.SortStableFunc(all, func(a, b *SchemaObject) int {
		ga, ra := group(a)
		gb, rb := group(b)
		return cmp.Or(cmp.Compare(ga, gb), cmp.Compare(ra, rb), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
	for _, o := range all {
		w, g := wants[o.key()], gots[o.key()]
		switch {
		case w == nil:
			return &SchemaProblem{Object: o.Object(), Reason: "not created by the migrations"}
		case g == nil:
			return &SchemaProblem{Object: o.Object(), Reason: "missing (the migrations create it)"}
		}
		if reason := diffAttrs(w.Attrs, g.Attrs); reason != "" {
			return &SchemaProblem{Object: o.Object(), Reason: reason}
		}
	}
	return nil
}

// diffAttrs describes the first difference between two attribute lists:
// a missing part, a changed or missing attribute, an extra part, an extra
// attribute.
func diffAttrs(want, got []SchemaAttr) string {
	type key struct{ part, name string }
	index := func(attrs []SchemaAttr) (map[key]string, map[string]bool) {
		vals, parts := map[key]string{}, map[string]bool{}
		for _, a := range attrs {
			vals[key{a.Part, a.Name}] = a.Value
			parts[a.Part] = true
		}
		return vals, parts
	}
	wantVals, wantParts := index(want)
	gotVals, gotParts := index(got)
	subject := func(part string) string {
		if part == "" {
			return "has"
		}
		return part + " has"
	}
	for _, a := range want {
		if !gotParts[a.Part] {
			return a.Part + " is missing (the migrations create it)"
		}
		v, ok := gotVals[key{a.Part, a.Name}]
		if !ok {
			return fmt.Sprintf("%s no %s, the migrations declare %s", subject(a.Part), a.Name, showValues(a.Value, "")[0])
		}
		if v != a.Value {
			vs := showValues(v, a.Value)
			return fmt.Sprintf("%s %s %s, the migrations declare %s", subject(a.Part), a.Name, vs[0], vs[1])
		}
	}
	for _, a := range got {
		if !wantParts[a.Part] {
			return a.Part + " is not created by the migrations"
		}
		if _, ok := wantVals[key{a.Part, a.Name}]; !ok {
			return fmt.Sprintf("%s %s %s, which the migrations do not declare", subject(a.Part), a.Name, showValues(a.Value, "")[0])
		}
	}
	return ""
}

// maxShown bounds how much of a long value (a definition) a problem quotes.
const maxShown = 160

// showValues quotes got and want for a message ("none" when empty). Long
// values are cut down to where they start to differ.
func showValues(got, want string) [2]string {
	start := 0
	if len(got) > maxShown || len(want) > maxShown {
		for start < len(got) && start < len(want) && got[start] == want[start] {
			start++
		}
		start = max(0, start-maxShown/4)
	}
	var out [2]string
	for i, v := range []string{got, want} {
		switch {
		case v == "":
			out[i] = "none"
		case len(v) > maxShown:
			cut := min(len(v), start+maxShown)
			s := fmt.Sprintf("%q", strings.ToValidUTF8(v[min(start, len(v)):cut], ""))
			if start > 0 {
				s = "…" + s
			}
			if cut < len(v) {
				s += "…"
			}
			out[i] = s
		default:
			out[i] = fmt.Sprintf("%q", v)
		}
	}
	return out
}

// SQLTokens splits SQL into tokens (words, numbers, quoted strings and
// identifiers in SQLite's four quoting styles, single punctuation
// characters), dropping white space and comments. It only tokenizes: joined
// again, the tokens compare two texts of SQL regardless of layout.
func SQLTokens(s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case strings.IndexByte(" \t\n\r\f", c) >= 0:
			i++
		case strings.HasPrefix(s[i:], "--"):
			if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(s)
			}
		case strings.HasPrefix(s[i:], "/*"):
			if j := strings.Index(s[i+2:], "*/"); j >= 0 {
				i += j + 4
			} else {
				i = len(s)
			}
		case c == '\'' || c == '"' || c == '`' || c == '[':
			end := c
			if c == '[' {
				end = ']'
			}
			j := i + 1
			for ; j < len(s); j++ {
				if s[j] == end {
					if end == ']' || j+1 == len(s) || s[j+1] != end {
						break
					}
					j++ // a doubled quote
				}
			}
			j = min(j+1, len(s))
			toks = append(toks, s[i:j])
			i = j
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			toks = append(toks, s[i:i+1])
			i++
		}
	}
	return toks
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// NormalizeSQL is SQL without comments, its tokens one space apart.
func NormalizeSQL(s string) string { return strings.Join(SQLTokens(s), " ") }
