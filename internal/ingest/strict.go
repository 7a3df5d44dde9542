package ingest

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// The strict scan runs over a JSON text before encoding/json decodes it and
// refuses what encoding/json would accept but read as something other than
// what the text says:
//
//   - a key given twice in one object, at any depth (encoding/json keeps the
//     last one; inside changes the stored JSON would mean two things);
//   - in an object that maps to a record (an event, its user, a key
//     request), a key that is not exactly a field's name: encoding/json
//     matches names case-insensitively, with Unicode folding ("ACTION",
//     "Patient_ID", "ſource");
//   - invalid UTF-8 anywhere, and \u escapes of lone UTF-16 surrogates
//     (encoding/json turns both into U+FFFD in strings, and keeps them as
//     sent in json.RawMessage);
//   - control characters that validation does not already refuse: DEL and
//     the C1 controls (U+0080–U+009F) in text fields, and every control
//     character but tab, line feed and carriage return inside free JSON
//     (changes).
//
// It is one pass over the bytes, without allocation for keys that hold no
// escape. It does not judge syntax: at the first syntax error it stops and
// leaves the report to encoding/json, which decodes next. Everything before
// that point is a valid JSON prefix, so what it reports is real.

// maxDepth matches encoding/json's nesting limit and bounds the recursion.
const maxDepth = 10000

// errSyntax stops the scan: encoding/json reports the error.
var errSyntax = errors.New("ingest: malformed JSON, left to the decoder")

type fieldKind uint8

const (
	kindPlain  fieldKind = iota // any JSON; its strings are text
	kindRecord                  // an object (or an array of objects) with a schema
	kindFree                    // free JSON, kept as sent (json.RawMessage)
)

// schema is the set of exact key names of an object that maps to a Go
// struct, from its json tags.
type schema struct {
	names []string
	index map[string]int
	kinds []fieldKind
	sub   []*schema // for kindRecord
	// reserved are names that are not fields but mean something, with the
	// message for them.
	reserved map[string]string
	// table is an open-addressed hash of names (index+1; 0 is empty): a
	// lookup costs a fraction of a map's, and there is one per key.
	table []uint16
}

// lookup returns the index of the field named k.
func (s *schema) lookup(k []byte) (int, bool) {
	if len(k) == 0 || s.table == nil {
		i, ok := s.index[string(k)]
		return i, ok
	}
	mask := uint(len(s.table) - 1)
	for h := keyHash(k) & mask; ; h = (h + 1) & mask {
		e := s.table[h]
		if e == 0 {
			return 0, false
		}
		if string(k) == s.names[e-1] {
			return int(e - 1), true
		}
	}
}

func keyHash(k []byte) uint {
	n := uint(len(k))
	return n*0x9E3779B1 ^ uint(k[0])*131 ^ uint(k[n-1])*17 ^ uint(k[n/2])<<7
}

func (s *schema) buildTable() {
	if len(s.names) >= 1<<14 {
		return // the map serves
	}
	size := 16
	for size < 4*len(s.names) {
		size *= 2
	}
	s.table = make([]uint16, size)
	mask := uint(size - 1)
	for i, n := range s.names {
		if n == "" {
			continue // looked up in the map
		}
		h := keyHash([]byte(n)) & mask
		for s.table[h] != 0 {
			h = (h + 1) & mask
		}
		s.table[h] = uint16(i + 1)
	}
}

var (
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textType        = reflect.TypeFor[encoding.TextUnmarshaler]()
	schemas         sync.Map // reflect.Type → *schema
)

// schemaFor returns the schema of struct type t (or a pointer to one).
func schemaFor(t reflect.Type) *schema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s, ok := schemas.Load(t); ok {
		return s.(*schema)
	}
	s, _ := schemas.LoadOrStore(t, buildSchema(t, map[reflect.Type]*schema{}))
	return s.(*schema)
}

func buildSchema(t reflect.Type, building map[reflect.Type]*schema) *schema {
	if s, ok := building[t]; ok {
		return s
	}
	s := &schema{index: map[string]int{}}
	building[t] = s
	s.addFields(t, building)
	s.buildTable()
	return s
}

// addFields adds t's fields as encoding/json names them: the tag's name or
// the Go name; fields of embedded structs without a tag are promoted unless
// an outer field has the name.
func (s *schema) addFields(t reflect.Type, building map[reflect.Type]*schema) {
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		kind, sub := kindOf(ft, building)
		s.add(name, kind, sub)
	}
	for _, et := range embedded {
		inner := &schema{index: map[string]int{}}
		inner.addFields(et, building)
		for i, n := range inner.names {
			if _, taken := s.index[n]; !taken {
				s.add(n, inner.kinds[i], inner.sub[i])
			}
		}
	}
}

func (s *schema) add(name string, kind fieldKind, sub *schema) {
	if _, dup := s.index[name]; dup {
		return
	}
	s.index[name] = len(s.names)
	s.names = append(s.names, name)
	s.kinds = append(s.kinds, kind)
	s.sub = append(s.sub, sub)
}

func kindOf(t reflect.Type, building map[reflect.Type]*schema) (fieldKind, *schema) {
	if t == rawMessageType {
		return kindFree, nil
	}
	if decodesItself(t) {
		return kindPlain, nil
	}
	e := t
	for e.Kind() == reflect.Pointer {
		e = e.Elem()
	}
	if e.Kind() == reflect.Slice || e.Kind() == reflect.Array {
		if decodesItself(e) {
			return kindPlain, nil
		}
		e = e.Elem()
		for e.Kind() == reflect.Pointer {
			e = e.Elem()
		}
	}
	if e.Kind() == reflect.Struct && !decodesItself(e) {
		return kindRecord, buildSchema(e, building)
	}
	return kindPlain, nil
}

func decodesItself(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Implements(unmarshalerType) || p.Implements(unmarshalerType) ||
		t.Implements(textType) || p.Implements(textType)
}

// loc names where the scan is: a field of a record, maybe an element of
// its array.
type loc struct {
	parent string // path of the enclosing record ("" for the event itself)
	name   string // the field ("" for the record itself)
	idx    int    // index in the field's array, or -1
}

func (l loc) path() string {
	p := l.name
	if l.parent != "" {
		p = l.parent + "." + l.name
	}
	if l.idx >= 0 {
		p += "[" + strconv.Itoa(l.idx) + "]"
	}
	return p
}

type scanner struct {
	b     []byte
	i     int
	depth int
	elem  int      // the event's index in a batch, or -1
	keys  [][]byte // the keys of the generic objects being scanned, a stack
}

// scanBatch checks an application/json body: one object of schema sc or an
// array of them. It stops after max elements: the decoder refuses more. It
// returns how many elements it saw.
func scanBatch(b []byte, sc *schema, max int) (int, error) {
	s := scanner{b: b, elem: -1}
	s.ws()
	if s.i >= len(b) || b[s.i] != '[' {
		return 1, s.result(s.element(sc))
	}
	s.i++
	s.ws()
	if s.i < len(b) && b[s.i] == ']' {
		return 0, nil
	}
	for n := 0; n < max; n++ {
		s.elem = n
		if err := s.element(sc); err != nil {
			return n, s.result(err)
		}
		s.ws()
		if s.i >= len(b) || b[s.i] != ',' {
			return n + 1, nil // the end, or a syntax error for the decoder
		}
		s.i++
	}
	return max, nil
}

// scanOne checks one JSON value that should be an object of schema sc;
// elem is its index in a batch, or -1.
func scanOne(b []byte, sc *schema, elem int) error {
	s := scanner{b: b, elem: elem}
	return s.result(s.element(sc))
}

func (s *scanner) result(err error) error {
	if err == errSyntax {
		return nil
	}
	return err
}

func (s *scanner) element(sc *schema) error {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '{' {
		return s.record(sc, loc{idx: -1})
	}
	return s.value(kindPlain, loc{idx: -1})
}

func (s *scanner) fail(l loc, msg string) error {
	field := l.path()
	if s.elem >= 0 {
		p := "[" + strconv.Itoa(s.elem) + "]"
		if field == "" {
			field = p
		} else {
			field = p + "." + field
		}
	}
	return invalid(field, msg)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// expect consumes c after optional white space.
func (s *scanner) expect(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// record scans an object that maps to schema sc, at l.
func (s *scanner) record(sc *schema, l loc) error {
	if s.depth++; s.depth > maxDepth {
		return errSyntax
	}
	s.i++ // '{'
	parent := l.path()
	var seen uint64
	var seenMany []bool
	if len(sc.names) > 64 {
		seenMany = make([]bool, len(sc.names))
	}
	if s.expect('}') {
		s.depth--
		return nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return errSyntax
		}
		k, ok := s.plainString()
		if !ok {
			var err error
			if k, err = s.str(kindRecord, l, true); err != nil {
				return err
			}
		}
		f, ok := sc.lookup(k)
		if !ok {
			return s.unknown(sc, l, parent, k)
		}
		fl := loc{parent: parent, name: sc.names[f], idx: -1}
		if seenMany != nil {
			if seenMany[f] {
				return s.fail(fl, "given twice; a field appears once in an object")
			}
			seenMany[f] = true
		} else {
			if seen&(1<<f) != 0 {
				return s.fail(fl, "given twice; a field appears once in an object")
			}
			seen |= 1 << f
		}
		if !s.expect(':') {
			return errSyntax
		}
		var err error
		switch sc.kinds[f] {
		case kindRecord:
			s.ws()
			switch {
			case s.i < len(s.b) && s.b[s.i] == '{':
				err = s.record(sc.sub[f], fl)
			case s.i < len(s.b) && s.b[s.i] == '[':
				err = s.records(sc.sub[f], fl)
			default:
				err = s.value(kindPlain, fl)
			}
		case kindFree:
			err = s.value(kindFree, fl)
		default:
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == '"' {
				if _, ok := s.plainString(); ok {
					break
				}
			}
			err = s.value(kindPlain, fl)
		}
		if err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return errSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			s.depth--
			return nil
		default:
			return errSyntax
		}
	}
}

// records scans an array whose objects map to schema sc.
func (s *scanner) records(sc *schema, l loc) error {
	if s.depth++; s.depth > maxDepth {
		return errSyntax
	}
	s.i++ // '['
	if s.expect(']') {
		s.depth--
		return nil
	}
	for n := 0; ; n++ {
		el := loc{parent: l.parent, name: l.name, idx: n}
		s.ws()
		var err error
		if s.i < len(s.b) && s.b[s.i] == '{' {
			err = s.record(sc, el)
		} else {
			err = s.value(kindPlain, el)
		}
		if err != nil {
			return err
		}
		if s.expect(']') {
			s.depth--
			return nil
		}
		if !s.expect(',') {
			return errSyntax
		}
	}
}

// unknown reports key k, not a field of sc, in the record at l.
func (s *scanner) unknown(sc *schema, l loc, parent string, k []byte) error {
	name := string(k)
	fl := loc{parent: parent, name: name, idx: -1}
	if msg, ok := sc.reserved[name]; ok {
		return s.fail(fl, msg)
	}
	msg := "unknown field"
	for _, n := range sc.names {
		if strings.EqualFold(n, name) {
			msg = fmt.Sprintf("unknown field; field names are case-sensitive: did you mean %q?", n)
			break
		}
	}
	if !printable(name) {
		return s.fail(l, msg+" "+quoteKey(k))
	}
	return s.fail(fl, msg)
}

// printable reports whether a client's key may be echoed as a field name.
func printable(s string) bool {
	return len(s) <= 100 && utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// quoteKey quotes a key for a message, in ASCII and at most about 100
// characters.
func quoteKey(k []byte) string {
	if len(k) > 100 {
		return strconv.QuoteToASCII(string(k[:100])) + "…"
	}
	return strconv.QuoteToASCII(string(k))
}

// value scans any JSON value at l. In kindFree every object is checked for
// duplicate keys and every string for control characters; in kindPlain
// objects are checked for duplicates too (the decoder refuses them as the
// wrong type anyway).
func (s *scanner) value(mode fieldKind, l loc) error {
	s.ws()
	if s.i >= len(s.b) {
		return errSyntax
	}
	switch s.b[s.i] {
	case '{':
		return s.object(mode, l)
	case '[':
		return s.array(mode, l)
	case '"':
		_, err := s.str(mode, l, false)
		return err
	}
	start := s.i
	for s.i < len(s.b) && literal[s.b[s.i]] {
		s.i++
	}
	if s.i == start {
		return errSyntax
	}
	return nil
}

func (s *scanner) array(mode fieldKind, l loc) error {
	if s.depth++; s.depth > maxDepth {
		return errSyntax
	}
	s.i++ // '['
	if s.expect(']') {
		s.depth--
		return nil
	}
	for n := 0; ; n++ {
		el := l
		if mode == kindPlain && l.name != "" && l.idx < 0 {
			el.idx = n // user.roles[2]
		}
		if err := s.value(mode, el); err != nil {
			return err
		}
		if s.expect(']') {
			s.depth--
			return nil
		}
		if !s.expect(',') {
			return errSyntax
		}
	}
}

// smallObject is how many keys an object holds before its duplicate check
// moves from a linear search to a map.
const smallObject = 16

func (s *scanner) object(mode fieldKind, l loc) error {
	if s.depth++; s.depth > maxDepth {
		return errSyntax
	}
	s.i++ // '{'
	if s.expect('}') {
		s.depth--
		return nil
	}
	base := len(s.keys)
	var many map[string]struct{}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return errSyntax
		}
		k, err := s.str(mode, l, true)
		if err != nil {
			return err
		}
		dup := false
		if many != nil {
			_, dup = many[string(k)]
			many[string(k)] = struct{}{}
		} else {
			for _, p := range s.keys[base:] {
				if bytes.Equal(p, k) {
					dup = true
					break
				}
			}
			s.keys = append(s.keys, k)
			if len(s.keys)-base > smallObject {
				many = make(map[string]struct{}, 4*smallObject)
				for _, p := range s.keys[base:] {
					many[string(p)] = struct{}{}
				}
				s.keys = s.keys[:base]
			}
		}
		if dup {
			return s.fail(l, "the key "+quoteKey(k)+" is given twice in one object; the stored JSON must mean one thing")
		}
		if !s.expect(':') {
			return errSyntax
		}
		if err := s.value(mode, l); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return errSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			s.keys = s.keys[:base]
			s.depth--
			return nil
		default:
			return errSyntax
		}
	}
}

// plainString is the fast path for the string at s.i: when it holds only
// plain bytes (printable ASCII without escapes), it consumes it and returns
// its text; otherwise it consumes nothing and str must scan it.
func (s *scanner) plainString() ([]byte, bool) {
	b := s.b
	j := s.i + 1
	for j < len(b) && plain[b[j]] {
		j++
	}
	if j < len(b) && b[j] == '"' {
		k := b[s.i+1 : j]
		s.i = j + 1
		return k, true
	}
	return nil, false
}

// str scans the string at s.i (its opening quote), checking its UTF-8 and,
// by mode, its control characters. For a key it returns the key's text:
// the bytes as sent when they hold no escape, or the unescaped text.
// mode kindRecord marks the key of a record, which is either a field's
// name or refused as unknown.
func (s *scanner) str(mode fieldKind, l loc, key bool) ([]byte, error) {
	b := s.b
	start := s.i + 1
	escaped := false
	for i := start; i < len(b); {
		// Plain bytes one at a time, and past the first sixteen (a long
		// text) eight at a time.
		j := i
		for j < len(b) && plain[b[j]] {
			if j++; j-i == 16 {
				for j+8 <= len(b) && plain8(binary.LittleEndian.Uint64(b[j:])) {
					j += 8
				}
				i = j
			}
		}
		i = j
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			s.i = i + 1
			raw := b[start:i]
			if key && escaped {
				return unescape(raw), nil
			}
			return raw, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return nil, errSyntax
			}
			switch b[i+1] {
			case '"', '\\', '/':
				i += 2
			case 'b', 'f', 'n', 'r', 't':
				if err := s.control(mode, l, key, escapes[b[i+1]]); err != nil {
					return nil, err
				}
				i += 2
			case 'u':
				r, ok := hex4(b[i+2:])
				if !ok {
					return nil, errSyntax
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if r < 0xDC00 && i+6 <= len(b) && b[i] == '\\' && b[i+1] == 'u' {
						if r2, ok := hex4(b[i+2:]); ok && r2 >= 0xDC00 && r2 <= 0xDFFF {
							i += 6
							continue
						}
					}
					return nil, s.badUTF8(mode, l, key, "the \\u escape of a lone UTF-16 surrogate is not a character")
				}
				if r < ' ' || r >= 0x7F && r <= 0x9F {
					if err := s.control(mode, l, key, r); err != nil {
						return nil, err
					}
				}
			default:
				return nil, errSyntax
			}
		case c < ' ':
			return nil, errSyntax // raw control characters are not JSON
		case c < utf8.RuneSelf: // DEL
			if err := s.control(mode, l, key, rune(c)); err != nil {
				return nil, err
			}
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, s.badUTF8(mode, l, key, "")
			}
			if r <= 0x9F {
				if err := s.control(mode, l, key, r); err != nil {
					return nil, err
				}
			}
			i += size
		}
	}
	return nil, errSyntax
}

func (s *scanner) badUTF8(mode fieldKind, l loc, key bool, why string) error {
	msg := "must be valid UTF-8"
	if key && mode == kindRecord {
		msg = "holds a field name that is not valid UTF-8"
	}
	if why != "" {
		msg += " (" + why + ")"
	}
	return s.fail(l, msg)
}

// control checks control character r (C0, DEL or C1) found in a string.
func (s *scanner) control(mode fieldKind, l loc, key bool, r rune) error {
	switch {
	case mode == kindFree:
		switch r {
		case '\t', '\n', '\r':
			return nil
		case 0:
			return s.fail(l, "must not contain NUL characters")
		}
		return s.fail(l, "must not contain control characters other than tab, line feed and carriage return")
	case key:
		// A record's key with a control character is unknown; a
		// plain value's object is the wrong type.
		return nil
	case r >= 0x7F:
		// C0 controls are validation's to refuse, with every other
		// field at fault.
		return s.fail(l, "must not contain control characters")
	}
	return nil
}

// plain marks the bytes a string holds as they are: printable ASCII but the
// quote and the backslash.
var plain, literal [256]bool

// escapes maps the letter of a one-letter escape to its character.
var escapes = [256]rune{'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

func init() {
	for c := ' '; c < 0x7F; c++ {
		plain[c] = c != '"' && c != '\\'
	}
	for _, c := range "0123456789+-." {
		literal[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		literal[c] = true // a misspelt literal is the decoder's to report
	}
	for c := 'A'; c <= 'Z'; c++ {
		literal[c] = true
	}
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plain8 reports whether the eight bytes of x are all plain: none is
// non-ASCII, a C0 control, DEL, a quote or a backslash.
func plain8(x uint64) bool {
	q := x ^ ones*'"'
	bs := x ^ ones*'\\'
	del := x ^ ones*0x7F
	// A byte below ' ', or equal to one of the three (xor zero), sets its
	// high bit in v - ones*n without having it set in the operand.
	bad := x | (x-ones*' ')&^x | (q-ones)&^q | (bs-ones)&^bs | (del-ones)&^del
	return bad&highs == 0
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// unescape decodes the body of a JSON string that str has checked.
func unescape(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch e := raw[i+1]; e {
		case 'u':
			r, _ := hex4(raw[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				r2, _ := hex4(raw[i+2:])
				r = utf16.DecodeRune(r, r2)
				i += 6
			}
			out = utf8.AppendRune(out, r)
		case 'b', 'f', 'n', 'r', 't':
			out = append(out, byte(escapes[e]))
			i += 2
		default: // " \ /
			out = append(out, e)
			i += 2
		}
	}
	return out
}
