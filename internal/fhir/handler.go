// Package fhir serves the audit trail as HL7 FHIR R4 AuditEvents: it reads
// AuditEvents (one, or a batch or transaction Bundle) into Custos events
// that keep the resource as received; renders every record of the ledger,
// whatever way it came in, as an AuditEvent shaped as the IHE BALP profile
// that fits it; answers IHE ITI-81 searches; and describes all that in a
// CapabilityStatement.
//
// Invariants: a resource that is not valid R4 or that Custos cannot hold
// is refused with an OperationOutcome naming the element, and nothing of
// its request is stored (but for the other entries of a batch Bundle,
// which FHIR processes one by one); every read and search is recorded in
// the trail before it is answered; every resource served validates against
// the official R4 JSON schema (tested for every shape of record).
package fhir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
)

// Appender is what the handlers need of the ledger: the same append as
// POST /v1/events.
type Appender interface {
	Append(ctx context.Context, by string, events []custos.Event) ([]custos.Receipt, error)
}

// Reader is what the handlers need of the store: the bounded reads the
// API makes.
type Reader interface {
	Event(ctx context.Context, index uint64) (custos.Event, error)
	Events(ctx context.Context, q store.Query) ([]custos.Event, error)
	StateRecord(ctx context.Context, index uint64) (leaf.StateRecord, error)
}

// Host is what the handlers need of the API that serves them: who the
// caller is, how a read of the trail is recorded, the API's cursors and
// its one mapping from error kind to status.
type Host interface {
	// Submitter names the request's credential, as records record it.
	Submitter(r *http.Request) string
	// RecordRead appends the record of a read of the trail by this
	// request (a READ of AuditEvent), durably, before anything is
	// answered.
	RecordRead(r *http.Request, resourceID, patientID string, detail map[string]any) error
	EncodeCursor(store.Cursor) string
	DecodeCursor(string) (*store.Cursor, error)
	Status(custos.Kind) int
}

// Config is what the handlers depend on.
type Config struct {
	Ledger       Appender
	Store        Reader
	Host         Host
	Limits       custos.Limits
	MaxBatch     int   // entries of a Bundle at most
	MaxBodyBytes int64 // bytes of a request body at most
	Logger       *slog.Logger
}

// Handler serves the /fhir routes.
type Handler struct {
	ledger Appender
	st     Reader
	host   Host
	cfg    Config
	log    *slog.Logger
}

// New returns the handlers.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 10_000
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 16 << 20
	}
	if cfg.Limits.MaxChanges <= 0 {
		cfg.Limits = custos.DefaultLimits
	}
	return &Handler{ledger: cfg.Ledger, st: cfg.Store, host: cfg.Host, cfg: cfg, log: cfg.Logger}
}

// readBody reads a size-limited FHIR JSON body.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, &custos.Error{Op: opDecode, Kind: custos.TooLarge, Err: err,
			Detail: fmt.Sprintf("the request body is over %d bytes; nothing was stored", h.cfg.MaxBodyBytes)}
	case err != nil:
		return nil, &custos.Error{Op: opDecode, Kind: custos.Invalid, Detail: "the request body could not be read", Err: err}
	}
	return raw, nil
}

// Create serves POST /fhir/AuditEvent: FHIR's create interaction.
func (h *Handler) Create(w http.ResponseWriter, r *http.Request) {
	if err := checkFormat(r); err != nil {
		h.Problem(w, r, err)
		return
	}
	raw, err := h.readBody(w, r)
	if err != nil {
		h.Problem(w, r, err)
		return
	}
	e, err := DecodeResource(raw, "AuditEvent", h.cfg.Limits)
	if err != nil {
		h.Problem(w, r, err)
		return
	}
	receipts, err := h.ledger.Append(r.Context(), h.host.Submitter(r), []custos.Event{e})
	if err != nil {
		h.Problem(w, r, err)
		return
	}
	idx := receipts[0].Index
	w.Header().Set("Location", h.base(r)+"/AuditEvent/"+strconv.FormatUint(idx, 10)+"/_history/1")
	w.Header().Set("ETag", `W/"1"`)
	switch preferReturn(r) {
	case "minimal":
		w.WriteHeader(http.StatusCreated)
		return
	case "OperationOutcome":
		h.write(w, r, http.StatusCreated, &operationOutcome{ResourceType: "OperationOutcome", Issue: []issue{{Severity: "information",
			Code: "informational", Diagnostics: fString(fmt.Sprintf("stored at ledger index %d", idx))}}})
		return
	}
	// The resource as it is now served: what the client sent, with its
	// id and meta. Reading one's own write back is not a read of the trail.
	stored, err := h.st.Event(r.Context(), idx)
	if err == nil {
		var b []byte
		if b, err = Render(&stored); err == nil {
			w.Header().Set("Last-Modified", stored.Timestamp.UTC().Format(http.TimeFormat))
			h.write(w, r, http.StatusCreated, b)
			return
		}
	}
	// Stored, but not read back: say so, not fail the create.
	h.log.Warn("reading back a created AuditEvent", "index", idx, "err", err)
	w.WriteHeader(http.StatusCreated)
}

// preferReturn is the return preference of the Prefer header.
func preferReturn(r *http.Request) string {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range splitComma(v) {
			switch p {
			case "return=minimal":
				return "minimal"
			case "return=representation":
				return "representation"
			case "return=OperationOutcome":
				return "OperationOutcome"
			}
		}
	}
	return "representation"
}

// lenient reports whether the client asked for unknown search parameters
// to be ignored (Prefer: handling=lenient).
func lenient(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range splitComma(v) {
			if p == "handling=lenient" {
				return true
			}
		}
	}
	return false
}

// base is the URL of the FHIR endpoint as the client reached it.
func (h *Handler) base(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/fhir"
}

// Read serves GET /fhir/AuditEvent/{id}: every record of the ledger, by
// its index, as an AuditEvent. The read is recorded first, as a read of
// /v1/events/{index} is.
func (h *Handler) Read(w http.ResponseWriter, r *http.Request) {
	h.read(w, r, r.PathValue("id"))
}

// VRead serves GET /fhir/AuditEvent/{id}/_history/{vid}: a record has one
// version, 1, since the ledger never changes one.
func (h *Handler) VRead(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("vid") != "1" {
		h.Problem(w, r, custos.Errorf("fhir.vread", custos.NotFound, "a record of the ledger has one version, 1"))
		return
	}
	h.read(w, r, r.PathValue("id"))
}

func (h *Handler) read(w http.ResponseWriter, r *http.Request, id string) {
	if err := checkFormat(r); err != nil {
		h.Problem(w, r, err)
		return
	}
	idx, err := strconv.ParseUint(id, 10, 63)
	if err != nil || strconv.FormatUint(idx, 10) != id {
		h.Problem(w, r, custos.Errorf("fhir.read", custos.NotFound, "no AuditEvent has this id: ids are ledger indexes, non-negative integers"))
		return
	}
	e, err := h.st.Event(r.Context(), idx)
	if errors.Is(err, custos.ErrNotFound) {
		// Not an audit event: a state record, read as the server event it is.
		var st leaf.StateRecord
		if st, err = h.st.StateRecord(r.Context(), idx); err == nil {
			e = stateEvent(&st)
		}
	}
	if errors.Is(err, custos.ErrNotFound) {
		err = custos.Errorf("fhir.read", custos.NotFound, "no AuditEvent with id %d", idx)
	}
	if err != nil {
		h.Problem(w, r, err)
		return
	}
	b, err := Render(&e)
	if err != nil {
		h.Problem(w, r, &custos.Error{Op: "fhir.read", Kind: custos.Internal, Err: err})
		return
	}
	if err := h.host.RecordRead(r, id, "", nil); err != nil {
		h.Problem(w, r, err)
		return
	}
	w.Header().Set("ETag", `W/"1"`)
	w.Header().Set("Last-Modified", e.Timestamp.UTC().Format(http.TimeFormat))
	h.write(w, r, http.StatusOK, b)
}
