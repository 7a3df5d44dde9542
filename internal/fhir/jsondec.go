package fhir

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonDecoder reads FHIR's JSON into the types of types.go in one pass, as
// strictly as /v1/events reads events and as FHIR asks: an object's keys
// are exactly the element names and each is given once; no null, no empty
// string, no empty object where an element is; valid UTF-8 and no lone
// surrogate; numbers only where a number is; nothing after the value. It
// stops at the first problem and names its element. (encoding/json reads
// keys case-insensitively and keeps the last of two; a strict scan before
// it cost a pass, and its reflection most of the time of a Bundle.)
type jsonDecoder struct {
	b     []byte
	i     int
	path  problems // the path stack, for errors
	err   *problemAt
	infos map[reflect.Type]*structInfo
}

type problemAt struct{ path, msg string }

const maxJSONDepth = 64

// structInfo is a struct type's fields by their JSON names.
type structInfo struct {
	names  map[string]int // name → index in fields
	fields []jsonField
}

type jsonField struct {
	name  string
	index []int // reflect field index path (through the embedded element)
}

var structInfos sync.Map // reflect.Type → *structInfo

func infoOf(t reflect.Type) *structInfo {
	if v, ok := structInfos.Load(t); ok {
		return v.(*structInfo)
	}
	si := &structInfo{names: map[string]int{}}
	var add func(t reflect.Type, prefix []int)
	add = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			idx := append(append([]int{}, prefix...), i)
			name, _, _ := cutComma(f.Tag.Get("json"))
			if f.Anonymous && name == "" {
				add(f.Type, idx)
				continue
			}
			if name == "" || name == "-" {
				continue
			}
			si.names[name] = len(si.fields)
			si.fields = append(si.fields, jsonField{name: name, index: idx})
		}
	}
	add(t, nil)
	v, _ := structInfos.LoadOrStore(t, si)
	return v.(*structInfo)
}

func cutComma(s string) (string, string, bool) {
	if i := bytes.IndexByte([]byte(s), ','); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

var (
	numberType = reflect.TypeFor[json.Number]()
)

// decodeJSON decodes raw into v, a pointer to a struct, and returns the
// element at fault (relative to the root, which is "") and why.
func decodeJSON(raw []byte, v any) *problemAt {
	d := &jsonDecoder{b: raw}
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return &problemAt{"", "must be a JSON object"}
	}
	d.value(reflect.ValueOf(v).Elem(), 0)
	if d.err == nil {
		d.ws()
		if d.i < len(d.b) {
			d.fail("unexpected data after the JSON object")
		}
	}
	return d.err
}

// info caches infoOf for one decode.
func (d *jsonDecoder) info(t reflect.Type) *structInfo {
	if si, ok := d.infos[t]; ok {
		return si
	}
	if d.infos == nil {
		d.infos = map[reflect.Type]*structInfo{}
	}
	si := infoOf(t)
	d.infos[t] = si
	return si
}

func (d *jsonDecoder) fail(msg string) {
	if d.err == nil {
		d.err = &problemAt{d.path.here(), msg}
	}
}

func (d *jsonDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonDecoder) syntax() {
	if d.i >= len(d.b) {
		d.fail("the JSON ends too early")
		return
	}
	d.fail("malformed JSON at byte " + strconv.Itoa(d.i))
}

// value decodes the JSON value at d.i into v.
func (d *jsonDecoder) value(v reflect.Value, depth int) {
	if depth > maxJSONDepth {
		d.fail("is nested too deeply")
		return
	}
	d.ws()
	if d.i >= len(d.b) {
		d.syntax()
		return
	}
	c := d.b[d.i]
	if c == 'n' {
		d.fail("is null; FHIR leaves absent elements out")
		return
	}
	t := v.Type()
	switch {
	case t == rawType:
		start := d.i
		d.skip(depth)
		if d.err == nil {
			v.SetBytes(d.b[start:d.i])
		}
	case t == numberType:
		s, ok := d.number()
		if !ok {
			d.fail("must be a JSON number")
			return
		}
		v.SetString(s)
	case t.Kind() == reflect.Pointer:
		e := reflect.New(t.Elem())
		d.value(e.Elem(), depth+1)
		v.Set(e)
	case t.Kind() == reflect.Struct:
		d.object(v, depth)
	case t.Kind() == reflect.Slice:
		d.array(v, depth)
	case t.Kind() == reflect.String:
		if c != '"' {
			d.fail("must be a JSON string")
			return
		}
		s, ok := d.str()
		if !ok {
			return
		}
		if s == "" {
			d.fail(`is an empty string ""; FHIR leaves absent elements out`)
			return
		}
		v.SetString(s)
	case t.Kind() == reflect.Bool:
		switch {
		case bytes.HasPrefix(d.b[d.i:], []byte("true")):
			v.SetBool(true)
			d.i += 4
		case bytes.HasPrefix(d.b[d.i:], []byte("false")):
			d.i += 5
		default:
			d.fail("must be a JSON boolean")
		}
	case t.Kind() == reflect.Int32 || t.Kind() == reflect.Int64:
		s, ok := d.number()
		n, err := strconv.ParseInt(s, 10, t.Bits())
		if !ok || err != nil {
			d.fail("must be a JSON integer")
			return
		}
		v.SetInt(n)
	default:
		d.fail("cannot be decoded") // a type types.go does not use
	}
}

func (d *jsonDecoder) object(v reflect.Value, depth int) {
	if d.b[d.i] != '{' {
		d.fail("must be a JSON object")
		return
	}
	d.i++
	si := d.info(v.Type())
	var seen uint64
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		d.fail("is an empty object; FHIR leaves absent elements out")
		return
	}
	for d.err == nil {
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			d.syntax()
			return
		}
		var k string
		f, known := 0, false
		if kb, plain := d.plainKey(); plain {
			if f, known = si.names[string(kb)]; known {
				k = si.fields[f].name // no allocation for a known key
			} else {
				k = string(kb)
			}
		} else {
			var ok bool
			if k, ok = d.str(); !ok {
				return
			}
			f, known = si.names[k]
		}
		d.path.push(k, -1)
		switch {
		case !known:
			d.fail(unknownMessage(k, si))
		case seen&(1<<f) != 0:
			d.fail("given twice; an element appears once in an object")
		}
		if d.err != nil {
			return
		}
		seen |= 1 << f
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			d.syntax()
			return
		}
		d.i++
		d.value(v.FieldByIndex(si.fields[f].index), depth+1)
		d.path.pop()
		d.ws()
		if d.i >= len(d.b) {
			d.syntax()
			return
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return
		default:
			d.syntax()
			return
		}
	}
}

// unknownMessage explains a key that is no element of the type.
func unknownMessage(k string, si *structInfo) string {
	if !utf8.ValidString(k) || len(k) > 100 {
		return "is not an element of this FHIR R4 type"
	}
	for n := range si.names {
		if len(n) == len(k) && bytes.EqualFold([]byte(n), []byte(k)) {
			return "is not an element of this FHIR R4 type; element names are case-sensitive: did you mean " + strconv.Quote(n) + "?"
		}
	}
	return unknownElement(k, "is not an element of this FHIR R4 type")
}

func (d *jsonDecoder) array(v reflect.Value, depth int) {
	if d.b[d.i] != '[' {
		d.fail("must be a JSON array")
		return
	}
	d.i++
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		d.fail("must not be an empty array; leave the element out")
		return
	}
	top := len(d.path.stack) - 1
	elem := v.Type().Elem()
	out := reflect.MakeSlice(v.Type(), 0, 2)
	for n := 0; d.err == nil; n++ {
		if top >= 0 {
			d.path.stack[top].idx = n
		}
		out = reflect.Append(out, reflect.Zero(elem))
		d.value(out.Index(n), depth+1)
		if d.err != nil {
			return
		}
		d.ws()
		if d.i >= len(d.b) {
			d.syntax()
			return
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			if top >= 0 {
				d.path.stack[top].idx = -1
			}
			v.Set(out)
			return
		default:
			d.syntax()
			return
		}
	}
}

// plainKey reads a JSON string at d.i without escapes and of printable
// ASCII, the common case of a key, without allocating; else it reads
// nothing.
func (d *jsonDecoder) plainKey() ([]byte, bool) {
	for j := d.i + 1; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			kb := d.b[d.i+1 : j]
			d.i = j + 1
			return kb, true
		case c == '\\' || c < ' ' || c >= 0x7f:
			return nil, false
		}
	}
	return nil, false
}

// str reads a JSON string at d.i ('"'), unescaped.
func (d *jsonDecoder) str() (string, bool) {
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			s := d.b[start:j]
			d.i = j + 1
			if !utf8.Valid(s) {
				d.fail("must be valid UTF-8")
				return "", false
			}
			return string(s), true
		case c == '\\':
			return d.escaped(start)
		case c < ' ':
			d.i = j
			d.fail("holds a control character that JSON requires escaped")
			return "", false
		}
	}
	d.i = len(d.b)
	d.syntax()
	return "", false
}

// escaped reads a string with escapes from start, the byte after '"'.
func (d *jsonDecoder) escaped(start int) (string, bool) {
	var out []byte
	j := start
	for j < len(d.b) {
		c := d.b[j]
		switch {
		case c == '"':
			d.i = j + 1
			if !utf8.Valid(out) {
				d.fail("must be valid UTF-8")
				return "", false
			}
			return string(out), true
		case c < ' ':
			d.i = j
			d.fail("holds a control character that JSON requires escaped")
			return "", false
		case c != '\\':
			out = append(out, c)
			j++
			continue
		}
		if j+1 >= len(d.b) {
			break
		}
		switch e := d.b[j+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(d.b[j+2:])
			if !ok {
				d.i = j
				d.syntax()
				return "", false
			}
			j += 6
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if j+1 < len(d.b) && d.b[j] == '\\' && d.b[j+1] == 'u' {
					r2, ok = hex4(d.b[j+2:])
				}
				dec := utf16.DecodeRune(r, r2)
				if !ok || dec == utf8.RuneError {
					d.i = j
					d.fail("holds a lone UTF-16 surrogate (\\u escape), which is no character")
					return "", false
				}
				r = dec
				j += 6
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			d.i = j
			d.syntax()
			return "", false
		}
		j += 2
	}
	d.i = len(d.b)
	d.syntax()
	return "", false
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 32)
	return rune(n), err == nil
}

// number reads a JSON number's text.
func (d *jsonDecoder) number() (string, bool) {
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			d.i++
			continue
		}
		break
	}
	s := string(d.b[start:d.i])
	return s, s != "" && reDecimal.MatchString(s)
}

// skip passes over one JSON value (a resource inside a Bundle, decoded on
// its own later), checking only that it is well formed.
func (d *jsonDecoder) skip(depth int) {
	if depth > maxJSONDepth {
		d.fail("is nested too deeply")
		return
	}
	d.ws()
	if d.i >= len(d.b) {
		d.syntax()
		return
	}
	switch c := d.b[d.i]; {
	case c == '{' || c == '[':
		closeC := byte('}')
		if c == '[' {
			closeC = ']'
		}
		d.i++
		d.ws()
		if d.i < len(d.b) && d.b[d.i] == closeC {
			d.i++
			return
		}
		for d.err == nil {
			if c == '{' {
				d.ws()
				if d.i >= len(d.b) || d.b[d.i] != '"' {
					d.syntax()
					return
				}
				if !d.skipStr() {
					return
				}
				d.ws()
				if d.i >= len(d.b) || d.b[d.i] != ':' {
					d.syntax()
					return
				}
				d.i++
			}
			d.skip(depth + 1)
			d.ws()
			if d.i >= len(d.b) {
				d.syntax()
				return
			}
			switch d.b[d.i] {
			case ',':
				d.i++
			case closeC:
				d.i++
				return
			default:
				d.syntax()
				return
			}
		}
	case c == '"':
		d.skipStr()
	case c == 't' && bytes.HasPrefix(d.b[d.i:], []byte("true")):
		d.i += 4
	case c == 'f' && bytes.HasPrefix(d.b[d.i:], []byte("false")):
		d.i += 5
	case c == 'n' && bytes.HasPrefix(d.b[d.i:], []byte("null")):
		d.i += 4
	default:
		if _, ok := d.number(); !ok {
			d.syntax()
		}
	}
}

// skipStr passes over a JSON string at d.i without building it: the
// resource it is in is decoded on its own, which checks its text.
func (d *jsonDecoder) skipStr() bool {
	for j := d.i + 1; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return true
		case c == '\\':
			j++
		case c < ' ':
			d.i = j
			d.fail("holds a control character that JSON requires escaped")
			return false
		}
	}
	d.i = len(d.b)
	d.syntax()
	return false
}
