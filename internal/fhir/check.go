package fhir

import (
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
	reCode     = regexp.MustCompile(`^[^\s]+( [^\s]+)*$`)
	reID       = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
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
}

func (p *problems) add(path, format string, args ...any) {
	if len(p.fields) < maxProblems {
		p.fields = append(p.fields, custos.FieldError{Field: path, Message: fmt.Sprintf(format, args...)})
	}
}

// maxProblems bounds the issues reported for one resource.
const maxProblems = 20

// checker is implemented by types with rules beyond their elements'.
type checker interface {
	check(path string, p *problems)
}

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
	checkerType  = reflect.TypeFor[checker]()
)

// walk checks v, a struct, found at path.
func walk(v reflect.Value, path string, p *problems) {
	for _, f := range fieldsOf(v.Type()) {
		fv := v.Field(f.index)
		if f.name == "" {
			walk(fv, path, p)
			continue
		}
		fp := path + "." + f.name
		switch fv.Kind() {
		case reflect.Pointer:
			if fv.IsNil() {
				if f.required {
					p.add(fp, "is required")
				}
				continue
			}
			if e := fv.Elem(); e.Kind() == reflect.Struct {
				walkStruct(e, fv, fp, p)
			} else {
				primitive(e, fp, p)
			}
		case reflect.Slice:
			if fv.Len() == 0 {
				if f.required {
					p.add(fp, "is required")
				} else if !fv.IsNil() {
					p.add(fp, "must not be an empty array; leave the element out")
				}
				continue
			}
			for i := range fv.Len() {
				ip := fp + "[" + strconv.Itoa(i) + "]"
				if e := fv.Index(i); e.Kind() == reflect.Struct {
					walkStruct(e, e.Addr(), ip, p)
				} else {
					primitive(e, ip, p)
				}
			}
		case reflect.String:
			if fv.Len() == 0 {
				if f.required {
					p.add(fp, "is required")
				}
				continue
			}
			primitive(fv, fp, p)
		}
	}
}

func walkStruct(v, ptr reflect.Value, path string, p *problems) {
	walk(v, path, p)
	if ptr.Type().Implements(checkerType) {
		ptr.Interface().(checker).check(path, p)
	}
}

// primitive checks one primitive value against its type's rules.
func primitive(v reflect.Value, path string, p *problems) {
	switch t := v.Type(); t {
	case typePositive:
		if v.Int() < 1 {
			p.add(path, "must be a positive integer")
		}
		return
	case typeUnsigned:
		if v.Int() < 0 {
			p.add(path, "must be a non-negative integer")
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
			p.add(path, "must not be empty or only whitespace")
		} else if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' && r != '\t' && r != '\n' && r != '\r' }) {
			p.add(path, "must not contain control characters")
		} else if !utf8.ValidString(s) {
			p.add(path, "must be valid UTF-8")
		}
	case typeCode:
		if !reCode.MatchString(s) {
			p.add(path, "must be a code: text without leading, trailing or repeated whitespace")
		}
	case typeURI:
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			p.add(path, "must be a URI: text without whitespace")
		}
	case typeID:
		if !reID.MatchString(s) {
			p.add(path, "must be an id: 1 to 64 letters, digits, '-' or '.'")
		}
	case typeInstant:
		if !reInstant.MatchString(s) || !parsable(s) {
			p.add(path, "must be an instant: a time with seconds and a zone, such as 2026-11-25T08:00:00Z")
		}
	case typeDateTime:
		if !reDateTime.MatchString(s) || (len(s) > 10 && !parsable(s)) {
			p.add(path, "must be a dateTime: YYYY, YYYY-MM, YYYY-MM-DD or a time with seconds and a zone")
		}
	case typeDate:
		if !reDate.MatchString(s) {
			p.add(path, "must be a date: YYYY, YYYY-MM or YYYY-MM-DD")
		}
	case typeTime:
		if !reTime.MatchString(s) {
			p.add(path, "must be a time: hh:mm:ss")
		}
	case typeBase64:
		if !reBase64.MatchString(s) {
			p.add(path, "must be base64")
		}
	case typeDecimal:
		if !reDecimal.MatchString(s) {
			p.add(path, "must be a decimal number")
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

// oneOf checks a code with a required binding.
func oneOf(p *problems, path string, c fCode, valueSet string, codes ...string) {
	if c == "" {
		return
	}
	for _, x := range codes {
		if string(c) == x {
			return
		}
	}
	p.add(path, "must be a code of %s: one of %s", valueSet, strings.Join(codes, ", "))
}

func (a *auditEvent) check(path string, p *problems) {
	oneOf(p, path+".action", a.Action, "AuditEventAction", "C", "R", "U", "D", "E")
	oneOf(p, path+".outcome", a.Outcome, "AuditEventOutcome", "0", "4", "8", "12")
}

func (n *network) check(path string, p *problems) {
	oneOf(p, path+".type", n.Type, "AuditEventAgentNetworkType", "1", "2", "3", "4", "5")
}

func (n *narrative) check(path string, p *problems) {
	oneOf(p, path+".status", n.Status, "NarrativeStatus", "generated", "extensions", "additional", "empty")
	if n.Div != "" && !strings.HasPrefix(string(n.Div), "<div") {
		p.add(path+".div", "must be an XHTML div element")
	}
}

func (i *identifier) check(path string, p *problems) {
	oneOf(p, path+".use", i.Use, "IdentifierUse", "usual", "official", "temp", "secondary", "old")
}

// sev-1: an entity has a name or a query, not both.
func (e *entity) check(path string, p *problems) {
	if e.Name != "" && e.Query != "" {
		p.add(path, "may have a name or a query, not both (sev-1)")
	}
}

// A detail has exactly one value.
func (d *entityDetail) check(path string, p *problems) {
	if (d.ValueString == "") == (d.ValueBase64Binary == "") {
		p.add(path, "must have exactly one of valueString and valueBase64Binary")
	}
}

// ext-1: an extension has a value or extensions, not both; and at most one
// value.
func (x *extension) check(path string, p *problems) {
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
		p.add(path, "must have one value[x], not several")
	case n == 1 && len(x.Extension) > 0:
		p.add(path, "must have either extensions or a value, not both (ext-1)")
	case n == 0 && len(x.Extension) == 0:
		p.add(path, "must have either extensions or a value (ext-1)")
	}
}

func (c *contained) check(path string, p *problems) {
	if c.ResourceType != "OperationOutcome" {
		p.add(path+".resourceType", "must be OperationOutcome: the only resource Custos accepts contained in an AuditEvent")
	}
}

func (i *issue) check(path string, p *problems) {
	oneOf(p, path+".severity", i.Severity, "IssueSeverity", "fatal", "error", "warning", "information")
}
