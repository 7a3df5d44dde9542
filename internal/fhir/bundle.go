package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"

	"github.com/custos-audit/custos"
)

// bundleIn is a batch or transaction Bundle as received: its resources are
// decoded one by one (DecodeResource), each at its own path.
type bundleIn struct {
	ResourceType  string        `json:"resourceType"`
	ID            fID           `json:"id,omitempty"`
	Meta          *meta         `json:"meta,omitempty"`
	ImplicitRules fURI          `json:"implicitRules,omitempty"`
	Language      fCode         `json:"language,omitempty"`
	Identifier    *identifier   `json:"identifier,omitempty"`
	Type          fCode         `json:"type" fhir:"required"`
	Timestamp     fInstant      `json:"timestamp,omitempty"`
	Link          []bundleLink  `json:"link,omitempty"`
	Entry         []bundleEntry `json:"entry,omitempty"`
}

type bundleLink struct {
	element
	Relation fString `json:"relation" fhir:"required"`
	URL      fURI    `json:"url" fhir:"required"`
}

type bundleEntry struct {
	element
	Link     []bundleLink    `json:"link,omitempty"`
	FullURL  fURI            `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Request  *bundleRequest  `json:"request,omitempty"`
}

type bundleRequest struct {
	element
	Method          fCode    `json:"method" fhir:"required"`
	URL             fURI     `json:"url" fhir:"required"`
	IfNoneMatch     fString  `json:"ifNoneMatch,omitempty"`
	IfModifiedSince fInstant `json:"ifModifiedSince,omitempty"`
	IfMatch         fString  `json:"ifMatch,omitempty"`
	IfNoneExist     fString  `json:"ifNoneExist,omitempty"`
}

// bundleOut is a Bundle Custos answers: a batch or transaction response,
// or a searchset.
type bundleOut struct {
	ResourceType string     `json:"resourceType"`
	ID           string     `json:"id,omitempty"`
	Meta         *meta      `json:"meta,omitempty"`
	Type         string     `json:"type"`
	Total        *int       `json:"total,omitempty"`
	Link         []linkOut  `json:"link,omitempty"`
	Entry        []entryOut `json:"entry,omitempty"`
}

type linkOut struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type entryOut struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *searchOut      `json:"search,omitempty"`
	Response *responseOut    `json:"response,omitempty"`
}

type searchOut struct {
	Mode string `json:"mode"`
}

type responseOut struct {
	Status   string            `json:"status"`
	Location string            `json:"location,omitempty"`
	Etag     string            `json:"etag,omitempty"`
	Outcome  *operationOutcome `json:"outcome,omitempty"`
}

// decodeBundle reads and checks the Bundle's own elements.
func (h *Handler) decodeBundle(raw []byte) (*bundleIn, error) {
	var b bundleIn
	if pr := decodeJSON(raw, &b); pr != nil {
		if rt := resourceType(raw); rt != "Bundle" {
			return nil, bundleType(rt)
		}
		return nil, invalid(joinPath("Bundle", pr.path), pr.msg)
	}
	if b.ResourceType != "Bundle" {
		return nil, bundleType(b.ResourceType)
	}
	var p problems
	walk(reflect.ValueOf(&b).Elem(), "Bundle", &p)
	if len(p.fields) > 0 {
		return nil, &custos.Error{Op: opDecode, Kind: custos.Invalid, Detail: "the Bundle is not valid FHIR R4", Fields: p.fields}
	}
	if b.Type != "batch" && b.Type != "transaction" {
		return nil, invalid("Bundle.type", "must be batch or transaction: Custos takes AuditEvents to create, nothing else")
	}
	if len(b.Entry) > h.cfg.MaxBatch {
		return nil, custos.Errorf(opDecode, custos.TooLarge, "a Bundle may hold at most %d entries; nothing was stored", h.cfg.MaxBatch)
	}
	return &b, nil
}

func bundleType(rt string) error {
	if rt == "" {
		return invalid("Bundle.resourceType", "is required: POST /fhir takes a batch or transaction Bundle")
	}
	return invalid("Bundle.resourceType", "must be Bundle: POST /fhir takes a batch or transaction Bundle (got "+quoteShort(rt)+"); POST an AuditEvent to /fhir/AuditEvent")
}

// entryEvent decodes entry i: a POST of an AuditEvent.
func (h *Handler) entryEvent(en *bundleEntry, i int) (custos.Event, error) {
	path := fmt.Sprintf("Bundle.entry[%d]", i)
	if en.Request == nil {
		return custos.Event{}, invalid(path+".request", "is required in a batch or transaction")
	}
	if en.Request.Method != "POST" || (en.Request.URL != "AuditEvent" && !bytes.HasSuffix([]byte(en.Request.URL), []byte("/AuditEvent"))) {
		return custos.Event{}, invalid(path+".request", "must be a POST to AuditEvent: Custos only creates AuditEvents")
	}
	if en.Request.IfNoneExist != "" {
		return custos.Event{}, invalid(path+".request.ifNoneExist", "is not supported: every AuditEvent is a new record")
	}
	if len(en.Resource) == 0 {
		return custos.Event{}, invalid(path+".resource", "is required: the AuditEvent to create")
	}
	return DecodeResource(en.Resource, path+".resource", h.cfg.Limits)
}

// Bundle serves POST /fhir: a batch or transaction Bundle of AuditEvents
// to create. A transaction is stored whole or not at all; in a batch each
// entry succeeds or fails on its own, as FHIR says, and the valid entries
// are stored together in one append.
func (h *Handler) Bundle(w http.ResponseWriter, r *http.Request) {
	if err := checkFormat(r); err != nil {
		h.Problem(w, r, err)
		return
	}
	raw, err := h.readBody(w, r)
	if err != nil {
		h.Problem(w, r, err)
		return
	}
	b, err := h.decodeBundle(raw)
	if err != nil {
		h.Problem(w, r, err)
		return
	}
	tx := b.Type == "transaction"
	events := make([]custos.Event, 0, len(b.Entry))
	errs := make([]error, len(b.Entry))
	var failed []error
	for i := range b.Entry {
		e, err := h.entryEvent(&b.Entry[i], i)
		if err != nil {
			errs[i] = err
			failed = append(failed, err)
			continue
		}
		events = append(events, e)
	}
	if tx && len(failed) > 0 {
		h.Problem(w, r, joinErrors(failed))
		return
	}
	var receipts []custos.Receipt
	if len(events) > 0 {
		if receipts, err = h.ledger.Append(r.Context(), h.host.Submitter(r), events); err != nil {
			h.Problem(w, r, err)
			return
		}
	}
	out := bundleOut{ResourceType: "Bundle", Type: string(b.Type) + "-response", Entry: make([]entryOut, len(b.Entry))}
	k := 0
	for i := range b.Entry {
		if errs[i] != nil {
			code, oo := h.outcomeOf(errs[i])
			out.Entry[i].Response = &responseOut{Status: strconv.Itoa(code) + " " + http.StatusText(code), Outcome: oo}
			continue
		}
		out.Entry[i].Response = &responseOut{Status: "201 Created",
			Location: "AuditEvent/" + strconv.FormatUint(receipts[k].Index, 10) + "/_history/1", Etag: `W/"1"`}
		k++
	}
	h.write(w, r, http.StatusOK, &out)
}

// joinErrors reports the errors of a transaction's entries as one: every
// element at fault, 422 only when each entry is valid FHIR that Custos
// cannot hold.
func joinErrors(errs []error) error {
	out := &custos.Error{Op: opDecode, Kind: custos.Invalid, Detail: "the transaction has invalid entries; nothing was stored"}
	unprocessable := true
	for _, err := range errs {
		var ce *custos.Error
		if errors.As(err, &ce) {
			out.Fields = append(out.Fields, ce.Fields...)
		}
		var u *Unprocessable
		if !errors.As(err, &u) {
			unprocessable = false
		}
	}
	if unprocessable {
		return &Unprocessable{out}
	}
	return out
}

// encode writes the Bundle as JSON, its resources as they are: the
// encoder would check and compact each of them again.
func (b *bundleOut) encode() []byte {
	var buf bytes.Buffer
	head := *b
	head.Entry = nil
	hb := mustMarshal(&head)
	buf.Grow(len(hb) + 64 + len(b.Entry)*2048)
	buf.Write(hb[:len(hb)-1]) // without its closing brace
	if len(b.Entry) > 0 {
		buf.WriteString(`,"entry":[`)
		for i, en := range b.Entry {
			if i > 0 {
				buf.WriteByte(',')
			}
			res := en.Resource
			en.Resource = nil
			eb := mustMarshal(&en)
			if res == nil {
				buf.Write(eb)
				continue
			}
			buf.Write(eb[:len(eb)-1])
			if len(eb) > 2 {
				buf.WriteByte(',')
			}
			buf.WriteString(`"resource":`)
			buf.Write(res)
			buf.WriteByte('}')
		}
		buf.WriteByte(']')
	}
	buf.WriteByte('}')
	return buf.Bytes()
}
