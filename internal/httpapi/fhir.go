package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/fhir"
	"github.com/custos-audit/custos/internal/store"
)

// The FHIR routes (internal/fhir) run behind the same authentication,
// body budget, bounded store, cursors and read records as /v1. fhirHost is
// what they see of the API.
type fhirHost struct{ a *API }

var _ fhir.Host = fhirHost{}

func (h fhirHost) Submitter(r *http.Request) string { return authn.Submitter(principalOf(r)) }

func (h fhirHost) RecordRead(r *http.Request, resourceID, patientID string, detail map[string]any) error {
	e, err := h.a.readEvent(r, readRecord{resourceID: resourceID, patientID: patientID, detail: detail})
	if err != nil {
		return &custos.Error{Op: "httpapi.recordRead", Kind: custos.Internal, Err: err}
	}
	_, err = h.a.ledger.Append(r.Context(), authn.Submitter(principalOf(r)), []custos.Event{e})
	return err
}

func (h fhirHost) EncodeCursor(c store.Cursor) string { return h.a.encodeCursor(c) }

func (h fhirHost) DecodeCursor(s string) (*store.Cursor, error) { return h.a.decodeCursor(s) }

func (h fhirHost) Status(k custos.Kind) int { return status(k) }

func (a *API) newFHIR() *fhir.Handler {
	return fhir.New(fhir.Config{Ledger: fhirLedger{a.ledger}, Store: a.st, Host: fhirHost{a}, Limits: a.cfg.Limits,
		MaxBatch: a.cfg.MaxBatch, MaxBodyBytes: a.cfg.MaxBodyBytes, Logger: a.log})
}

// isFHIR reports whether a request is for a /fhir route: its errors are
// answered as OperationOutcomes.
func isFHIR(r *http.Request) bool {
	return r.URL.Path == "/fhir" || strings.HasPrefix(r.URL.Path, "/fhir/")
}

// fhirLedger appends events only: no client writes state records.
type fhirLedger struct{ l Ledger }

func (f fhirLedger) Append(ctx context.Context, by string, events []custos.Event) ([]custos.Receipt, error) {
	return f.l.Append(ctx, by, events)
}
