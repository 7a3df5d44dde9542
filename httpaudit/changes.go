package httpaudit

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/custos-audit/custos"
)

// redacted replaces the value of every redacted field.
const redacted = "[REDACTED]"

// body is the start of a request body, captured before the handler ran.
type body struct {
	data      []byte
	truncated bool
	ctype     string
}

// replayBody gives the handler the captured bytes, then the rest.
type replayBody struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// capture reads up to MaxBody+1 bytes of r's body and puts them back in
// front of the rest, so the handler reads the body unchanged.
func (a *Auditor) capture(r *http.Request) *body {
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(min(r.ContentLength, a.cfg.MaxBody+1)))
	}
	_, err := buf.ReadFrom(io.LimitReader(r.Body, a.cfg.MaxBody+1))
	rest := r.Body.(io.Reader)
	if err != nil {
		rest = errReader{err}
	}
	data := buf.Bytes()
	r.Body = replayBody{io.MultiReader(bytes.NewReader(data), rest), r.Body}
	b := &body{data: data, ctype: r.Header.Get("Content-Type")}
	if int64(len(data)) > a.cfg.MaxBody {
		b.data, b.truncated = data[:a.cfg.MaxBody], true
	}
	return b
}

// redactSet holds the normalized names of the redacted fields.
func redactSet(extra []string) map[string]bool {
	m := map[string]bool{}
	for _, n := range slices.Concat(DefaultRedact, extra) {
		m[normName(n)] = true
	}
	return m
}

func normName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' {
			return -1
		}
		return r
	}, strings.ToLower(s))
}

// isRedacted: a configured name, ignoring case, '-' and '_', or any name
// containing "password".
func (a *Auditor) isRedacted(name string) bool {
	n := normName(name)
	return a.redact[n] || strings.Contains(n, "password")
}

// redactValue replaces redacted fields at any depth, in place.
func (a *Auditor) redactValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if a.isRedacted(k) {
				t[k] = redacted
			} else {
				t[k] = a.redactValue(x)
			}
		}
	case []any:
		for i, x := range t {
			t[i] = a.redactValue(x)
		}
	}
	return v
}

// redactQuery returns the query with redacted parameters' values replaced.
func (a *Auditor) redactQuery(raw string) string {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "(unparsable query)"
	}
	hit := false
	for k := range q {
		if a.isRedacted(k) {
			q[k], hit = []string{redacted}, true
		}
	}
	if !hit {
		return raw
	}
	return q.Encode()
}

func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, &json.SyntaxError{Offset: dec.InputOffset()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &json.SyntaxError{Offset: dec.InputOffset()}
	}
	return v, nil
}

// isJSONType: application/json and the +json types.
func isJSONType(ctype string) bool {
	mt, _, err := mime.ParseMediaType(ctype)
	return err == nil && (mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// bodyNote describes a body that is not recorded as JSON.
func bodyNote(kind string, b *body) map[string]any {
	n := map[string]any{"body": kind, "bytes": len(b.data)}
	if b.ctype != "" {
		n["content_type"] = custos.Clip(b.ctype, 100)
	}
	return n
}

// changesFor builds a write's changes: the application's own, a diff from
// the previous state to the new one, or the request body; always redacted.
// Bodies that are not JSON, are malformed or were cut are described, never
// recorded: their fields cannot be redacted.
func (a *Auditor) changesFor(ann *notes, b *body, method string) json.RawMessage {
	if ann.changes != nil {
		v, err := decodeJSON(ann.changes)
		if err != nil {
			return a.encodeChanges(map[string]any{"changes": "malformed JSON from the application"})
		}
		return a.encodeChanges(a.redactValue(v))
	}
	var newState any
	hasNew := false
	switch {
	case ann.current != nil:
		v, err := decodeJSON(ann.current)
		if err != nil {
			return a.encodeChanges(map[string]any{"changes": "malformed JSON from the application"})
		}
		newState, hasNew = v, true
	case b != nil && b.truncated:
		return a.encodeChanges(map[string]any{"body": "truncated", "bytes_captured": len(b.data), "content_type": custos.Clip(b.ctype, 100)})
	case b != nil && len(b.data) > 0:
		if b.ctype != "" && !isJSONType(b.ctype) {
			return a.encodeChanges(bodyNote("not JSON", b))
		}
		v, err := decodeJSON(b.data)
		if err != nil {
			return a.encodeChanges(bodyNote("malformed JSON", b))
		}
		newState, hasNew = v, true
	}
	if ann.previous == nil {
		if !hasNew {
			return nil
		}
		return a.encodeChanges(a.redactValue(newState))
	}
	prev, err := decodeJSON(ann.previous)
	if err != nil {
		return a.encodeChanges(map[string]any{"changes": "malformed previous state from the application"})
	}
	if mt, _, _ := mime.ParseMediaType(ctypeOf(b)); method == http.MethodPatch && mt == "application/merge-patch+json" && ann.current == nil {
		newState = mergePatch(prev, newState)
	}
	if !hasNew && method != http.MethodDelete {
		return nil
	}
	ops := diff(nil, prev, newState, []patchOp{})
	for i := range ops {
		a.redactOp(&ops[i])
	}
	return a.encodeChanges(ops)
}

func ctypeOf(b *body) string {
	if b == nil {
		return ""
	}
	return b.ctype
}

// encodeChanges marshals v, or describes it when it exceeds what Custos
// takes by default.
func (a *Auditor) encodeChanges(v any) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil
	}
	out := bytes.TrimRight(buf.Bytes(), "\n")
	// Custos refuses NUL in changes; a client could otherwise send one to
	// have its write's event refused.
	out = bytes.ReplaceAll(out, []byte(`\u0000`), []byte(`\ufffd`))
	if len(out) > custos.DefaultLimits.MaxChanges {
		return json.RawMessage(`{"changes":"too large","bytes":` + strconv.Itoa(len(out)) + `}`)
	}
	return out
}

// patchOp is one change: a JSON Patch (RFC 6902) operation that also
// carries the old value.
type patchOp struct {
	op, path         string
	old, value       any
	hasOld, hasValue bool
}

func (p patchOp) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"op":`)
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(p.op)
	b.WriteString(`,"path":`)
	enc.Encode(p.path)
	if p.hasOld {
		b.WriteString(`,"old":`)
		if err := enc.Encode(p.old); err != nil {
			return nil, err
		}
	}
	if p.hasValue {
		b.WriteString(`,"value":`)
		if err := enc.Encode(p.value); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func opRemove(path string, old any) patchOp {
	return patchOp{op: "remove", path: path, old: old, hasOld: true}
}
func opAdd(path string, v any) patchOp {
	return patchOp{op: "add", path: path, value: v, hasValue: true}
}
func opReplace(path string, old, v any) patchOp {
	return patchOp{op: "replace", path: path, old: old, value: v, hasOld: true, hasValue: true}
}

// diff lists the operations from a to b, at JSON Pointer path.
func diff(path []string, a, b any, out []patchOp) []patchOp {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := make([]string, 0, len(am)+len(bm))
		for k := range am {
			keys = append(keys, k)
		}
		for k := range bm {
			if _, ok := am[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			av, ina := am[k]
			bv, inb := bm[k]
			p := append(slices.Clip(path), k)
			switch {
			case !inb:
				out = append(out, opRemove(pointer(p), av))
			case !ina:
				out = append(out, opAdd(pointer(p), bv))
			default:
				out = diff(p, av, bv, out)
			}
		}
		return out
	}
	aa, aok := a.([]any)
	ba, bok := b.([]any)
	if aok && bok && len(aa) == len(ba) {
		for i := range aa {
			out = diff(append(slices.Clip(path), strconv.Itoa(i)), aa[i], ba[i], out)
		}
		return out
	}
	if jsonEqual(a, b) {
		return out
	}
	if b == nil && a != nil && len(path) == 0 {
		return append(out, opRemove("", a))
	}
	return append(out, opReplace(pointer(path), a, b))
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

func pointer(p []string) string {
	var b strings.Builder
	for _, s := range p {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// redactOp hides the values of an operation on a redacted field, and the
// redacted fields inside the values of any other.
func (a *Auditor) redactOp(op *patchOp) {
	for _, seg := range strings.Split(op.path, "/") {
		if seg != "" && a.isRedacted(strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")) {
			if op.hasOld {
				op.old = redacted
			}
			if op.hasValue {
				op.value = redacted
			}
			return
		}
	}
	op.old, op.value = a.redactValue(op.old), a.redactValue(op.value)
}

// mergePatch applies an RFC 7396 merge patch.
func mergePatch(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	out := map[string]any{}
	if ok {
		for k, v := range tm {
			out[k] = v
		}
	}
	for k, v := range pm {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = mergePatch(out[k], v)
		}
	}
	return out
}
