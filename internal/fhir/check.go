package fhir

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/custos-audit/custos"
)

// The checker walks a decoded resource and applies the rules of R4 that a
// JSON decoder does not: every primitive value matches its type's regular
// expression (https://hl7.org/fhir/R4/datatypes.html), no string or array is
// empty, required elements are present, coded elements with a required
// binding hold one of their codes, and the invariants that an AuditEvent
// can break (ext-1, sev-1). Each problem names its element as a FHIRPath
// such as AuditEvent.agent[0].requestor.

var (
	reInstant  = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$`)
	reDateTime = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$`)
	reDate     = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$`)
	reTime     = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?$`)
	reBase64   = regexp.MustCompile(`^(\s*([0-9a-zA-Z+/=]){4}\s*)+$`)
	reDecimal  = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)
)

// problems collects the elements at fault.
type problems struct {
	fields []custos.FieldError
	root   string // the path of the value walked
	stack  []seg  // where the walker is below it
}

// seg is one step of the walker's path: an element, maybe an index.
type seg struct {
	name string
	idx  int // index in an array, or -1
}

// here is the FHIRPath of the element the walker is at, built only for a
// problem, so that a valid resource costs no string building.
func (p *problems) here() string {
	s := p.root
	for _, g := range p.stack {
		if s != "" {
			s += "."
		}
		s += g.name
		if g.idx >= 0 {
			s += "[" + strconv.Itoa(g.idx) + "]"
		}
	}
	return s
}

func (p *problems) push(name string, idx int) { p.stack = append(p.stack, seg{name, idx}) }
func (p *problems) pop()                      { p.stack = p.stack[:len(p.stack)-1] }

func (p *problems) add(path, format string, args ...any) {
	if len(p.fields) < maxProblems {
		p.fields = append(p.fields, custos.FieldError{Field: path, Message: fmt.Sprintf(format, args...)})
	}
}

// maxProblems bounds the issues reported for one resource.
const maxProblems = 20

// checker is implemented by types with rules beyond their elements'. It
// returns up to two problems, each at a suffix of the element's path (""
// for the element itself); an empty message is no problem. Returned by
// value, they cost nothing when there are none.
type checker interface {
	check() [2]probAt
}

type probAt struct{ suffix, msg string }

// fieldInfo is what the walker needs to know of a struct field.
type fieldInfo struct {
	index    int
	name     string
	required bool
}

var fieldCache sync.Map // reflect.Type → []fieldInfo

func fieldsOf(t reflect.Type) []fieldInfo {
	if v, ok := fieldCache.Load(t); ok {
		return v.([]fieldInfo)
	}
	var out []fieldInfo
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			name = "" // embedded element: walked in place
		}
		out = append(out, fieldInfo{index: i, name: name, required: f.Tag.Get("fhir") == "required"})
	}
	v, _ := fieldCache.LoadOrStore(t, out)
	return v.([]fieldInfo)
}

var (
	typeString   = reflect.TypeFor[fString]()
	typeCode     = reflect.TypeFor[fCode]()
	typeURI      = reflect.TypeFor[fURI]()
	typeID       = reflect.TypeFor[fID]()
	typeInstant  = reflect.TypeFor[fInstant]()
	typeDateTime = reflect.TypeFor[fDateTime]()
	typeDate     = reflect.TypeFor[fDate]()
	typeTime     = reflect.TypeFor[fTime]()
	typeBase64   = reflect.TypeFor[fBase64]()
	typeMarkdown = reflect.TypeFor[fMarkdown]()
	typeXHTML    = reflect.TypeFor[fXHTML]()
	typeDecimal  = reflect.TypeFor[fDecimal]()
	typePositive = reflect.TypeFor[fPositive]()
	typeUnsigned = reflect.TypeFor[fUnsigned]()
	rawType      = reflect.TypeFor[json.RawMessage]()
)

// walk checks v, a struct, found at path.
func walk(v reflect.Value, path string, p *problems) {
	p.root, p.stack = path, p.stack[:0]
	walkAt(v, p)
}

func walkAt(v reflect.Value, p *problems) {
	for _, f := range fieldsOf(v.Type()) {
		fv := v.Field(f.index)
		if f.name == "" {
			walkAt(fv, p)
			continue
		}
		p.push(f.name, -1)
		walkField(fv, f.required, p)
		p.pop()
	}
}

func walkField(fv reflect.Value, required bool, p *problems) {
	switch fv.Kind() {
	case reflect.Pointer:
		if fv.IsNil() {
			if required {
				p.add(p.here(), "is required")
			}
			return
		}
		if e := fv.Elem(); e.Kind() == reflect.Struct {
			walkStructAt(e, fv, p)
		} else {
			primitive(e, p)
		}
	case reflect.Slice:
		if fv.Type() == rawType {
			return // a resource of a Bundle entry, decoded on its own
		}
		if fv.Len() == 0 {
			if required {
				p.add(p.here(), "is required")
			} else if !fv.IsNil() {
				p.add(p.here(), "must not be an empty array; leave the element out")
			}
			return
		}
		top := &p.stack[len(p.stack)-1]
		for i := range fv.Len() {
			top.idx = i
			if e := fv.Index(i); e.Kind() == reflect.Struct {
				walkStructAt(e, e.Addr(), p)
			} else {
				primitive(e, p)
			}
			top = &p.stack[len(p.stack)-1] // the stack may have grown
		}
	case reflect.String:
		if fv.Len() == 0 {
			if required {
				p.add(p.here(), "is required")
			}
			return
		}
		primitive(fv, p)
	}
}

func walkStruct(v, ptr reflect.Value, path string, p *problems) {
	p.root, p.stack = path, p.stack[:0]
	walkStructAt(v, ptr, p)
}

func walkStructAt(v, ptr reflect.Value, p *problems) {
	walkAt(v, p)
	if c, ok := ptr.Interface().(checker); ok {
		for _, pr := range c.check() {
			if pr.msg != "" {
				p.add(p.here()+pr.suffix, "%s", pr.msg)
			}
		}
	}
}

// primitive checks one primitive value against its type's rules.
func primitive(v reflect.Value, p *problems) {
	switch t := v.Type(); t {
	case typePositive:
		if v.Int() < 1 {
			p.add(p.here(), "must be a positive integer")
		}
		return
	case typeUnsigned:
		if v.Int() < 0 {
			p.add(p.here(), "must be a non-negative integer")
		}
		return
	}
	if v.Kind() != reflect.String {
		return // booleans and integers: the decoder checked their JSON type
	}
	s := v.String()
	switch v.Type() {
	case typeString, typeMarkdown, typeXHTML:
		if strings.TrimSpace(s) == "" {
			p.add(p.here(), "must not be empty or only whitespace")
		} else if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' && r != '\t' && r != '\n' && r != '\r' }) {
			p.add(p.here(), "must not contain control characters")
		} else if !utf8.ValidString(s) {
			p.add(p.here(), "must be valid UTF-8")
		}
	case typeCode:
		if !isCode(s) {
			p.add(p.here(), "must be a code: text without leading, trailing or repeated whitespace")
		}
	case typeURI:
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			p.add(p.here(), "must be a URI: text without whitespace")
		}
	case typeID:
		if !IsID(s) {
			p.add(p.here(), "must be an id: 1 to 64 letters, digits, '-' or '.'")
		}
	case typeInstant:
		if !reInstant.MatchString(s) || !parsable(s) {
			p.add(p.here(), "must be an instant: a time with seconds and a zone, such as 2026-11-25T08:00:00Z")
		}
	case typeDateTime:
		if !reDateTime.MatchString(s) || (len(s) > 10 && !parsable(s)) {
			p.add(p.here(), "must be a dateTime: YYYY, YYYY-MM, YYYY-MM-DD or a time with seconds and a zone")
		}
	case typeDate:
		if !reDate.MatchString(s) {
			p.add(p.here(), "must be a date: YYYY, YYYY-MM or YYYY-MM-DD")
		}
	case typeTime:
		if !reTime.MatchString(s) {
			p.add(p.here(), "must be a time: hh:mm:ss")
		}
	case typeBase64:
		if !reBase64.MatchString(s) {
			p.add(p.here(), "must be base64")
		}
	case typeDecimal:
		if !reDecimal.MatchString(s) {
			p.add(p.here(), "must be a decimal number")
		}
	}
}

// parsable reports whether a full time also exists on the calendar: the
// regular expressions accept 2026-02-30.
func parsable(s string) bool {
	s = strings.Replace(s, ":60", ":59", 1) // a leap second
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

// oneOf checks a code with a required binding, at suffix.
func oneOf(suffix string, c fCode, valueSet string, codes ...string) probAt {
	if c == "" {
		return probAt{}
	}
	for _, x := range codes {
		if string(c) == x {
			return probAt{}
		}
	}
	return probAt{suffix, fmt.Sprintf("must be a code of %s: one of %s", valueSet, strings.Join(codes, ", "))}
}

func (a *auditEvent) check() [2]probAt {
	return [2]probAt{oneOf(".action", a.Action, "AuditEventAction", "C", "R", "U", "D", "E"),
		oneOf(".outcome", a.Outcome, "AuditEventOutcome", "0", "4", "8", "12")}
}

func (n *network) check() [2]probAt {
	return [2]probAt{oneOf(".type", n.Type, "AuditEventAgentNetworkType", "1", "2", "3", "4", "5")}
}

func (n *narrative) check() [2]probAt {
	out := [2]probAt{oneOf(".status", n.Status, "NarrativeStatus", "generated", "extensions", "additional", "empty")}
	if n.Div != "" && !strings.HasPrefix(string(n.Div), "<div") {
		out[1] = probAt{".div", "must be an XHTML div element"}
	}
	return out
}

func (i *identifier) check() [2]probAt {
	return [2]probAt{oneOf(".use", i.Use, "IdentifierUse", "usual", "official", "temp", "secondary", "old")}
}

// sev-1: an entity has a name or a query, not both.
func (e *entity) check() [2]probAt {
	if e.Name != "" && e.Query != "" {
		return [2]probAt{{"", "may have a name or a query, not both (sev-1)"}}
	}
	return [2]probAt{}
}

// A detail has exactly one value.
func (d *entityDetail) check() [2]probAt {
	if (d.ValueString == "") == (d.ValueBase64Binary == "") {
		return [2]probAt{{"", "must have exactly one of valueString and valueBase64Binary"}}
	}
	return [2]probAt{}
}

// ext-1: an extension has a value or extensions, not both; and at most one
// value.
func (x *extension) check() [2]probAt {
	n := 0
	v := reflect.ValueOf(x).Elem()
	t := v.Type()
	for i := range t.NumField() {
		if strings.HasPrefix(t.Field(i).Name, "Value") && !v.Field(i).IsZero() {
			n++
		}
	}
	switch {
	case n > 1:
		return [2]probAt{{"", "must have one value[x], not several"}}
	case n == 1 && len(x.Extension) > 0:
		return [2]probAt{{"", "must have either extensions or a value, not both (ext-1)"}}
	case n == 0 && len(x.Extension) == 0:
		return [2]probAt{{"", "must have either extensions or a value (ext-1)"}}
	}
	return [2]probAt{}
}

func (c *contained) check() [2]probAt {
	if c.ResourceType != "OperationOutcome" {
		return [2]probAt{{".resourceType", "must be OperationOutcome: the only resource Custos accepts contained in an AuditEvent"}}
	}
	return [2]probAt{}
}

func (i *issue) check() [2]probAt {
	return [2]probAt{oneOf(".severity", i.Severity, "IssueSeverity", "fatal", "error", "warning", "information")}
}

// isCode reports whether s is a code: no leading, trailing or repeated
// whitespace, and no whitespace but single spaces.
func isCode(s string) bool {
	if s == "" || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\t', '\n', '\f', '\r':
			return false
		case ' ':
			if s[i+1] == ' ' {
				return false
			}
		}
	}
	return true
}

// IsID reports whether s is a FHIR id: 1 to 64 of [A-Za-z0-9-.].
func IsID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
