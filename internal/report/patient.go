package report

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// PatientRequest asks for a patient's access report or accounting of
// disclosures. Zero From and To mean the retention period (six years by
// default) up to now.
type PatientRequest struct {
	PatientID   string
	From, To    time.Time
	GeneratedBy string
}

// checkPatient validates a patient request and fills its period.
func (b *Builder) checkPatient(req *PatientRequest) error {
	var fields []custos.FieldError
	id := req.PatientID
	if id == "" || len(id) > 256 || !utf8.ValidString(id) || strings.ContainsFunc(id, unicode.IsControl) {
		fields = append(fields, custos.FieldError{Field: "patient_id", Message: "is required: at most 256 bytes of UTF-8, no control characters"})
	}
	if req.To.IsZero() {
		req.To = b.cfg.Now().UTC()
	}
	if req.From.IsZero() {
		req.From = req.To.Add(-b.cfg.Retention)
	}
	switch {
	case !req.From.Before(req.To):
		fields = append(fields, custos.FieldError{Field: "from", Message: "must be before to"})
	case req.To.Sub(req.From) > b.cfg.Retention:
		fields = append(fields, custos.FieldError{Field: "from", Message: "the period may be at most the retention period (" +
			strconv.Itoa(int(b.cfg.Retention/(24*time.Hour))) + " days) long"})
	}
	if len(fields) == 0 {
		return nil
	}
	return &custos.Error{Op: "report.patient", Kind: custos.Invalid, Detail: "invalid patient report request", Fields: fields}
}

// PatientAccess computes a patient's access report: every audit event
// naming the patient in the period, below the checkpoint, newest first,
// read from the patient index (with its unindexed tail, on SQLite). A
// patient no event names gets an empty report, never an error: the report
// does not say whether a patient exists.
func (b *Builder) PatientAccess(ctx context.Context, req PatientRequest) (*PatientAccess, error) {
	if err := b.checkPatient(&req); err != nil {
		return nil, err
	}
	h, err := b.header(ctx, KindAccess, "Patient access report", req.From, req.To, req.GeneratedBy)
	if err != nil {
		return nil, err
	}
	r := &PatientAccess{Header: h, Regulation: RegPatientAudit, PatientID: req.PatientID, Accesses: []Access{}}
	users, actions := tally{}, tally{}
	err = b.search(ctx, store.Query{PatientID: req.PatientID, From: r.Period.From, To: r.Period.To.Add(-time.Microsecond)}, h.Checkpoint.Size,
		func(e *custos.Event) bool {
			r.Total++
			users.add(e.User.ID, 1)
			actions.add(string(e.Action), 1)
			if len(r.Accesses) == b.cfg.MaxListed {
				r.Truncated = true
				return true // keep counting
			}
			r.Accesses = append(r.Accesses, Access{Index: e.Index, Timestamp: e.Timestamp.UTC(), UserID: e.User.ID, UserName: e.User.Name,
				Roles: nonNil(e.User.Roles), Action: string(e.Action), ResourceType: e.ResourceType, ResourceID: e.ResourceID,
				Outcome: string(e.Outcome), IPAddress: e.IPAddress, Source: e.Source, PurposeOfUse: e.PurposeOfUse,
				BreakGlass: e.BreakGlass, BreakGlassReason: e.BreakGlassReason})
			return true
		})
	if err != nil {
		return nil, err
	}
	r.ByUser, r.ByAction = users.counts(), actions.counts()
	return r, nil
}

// Disclosures computes a patient's accounting of disclosures (45 CFR
// 164.528): the EXPORT events naming the patient that carry a recipient,
// newest first. Like PatientAccess, an unknown patient's is empty.
func (b *Builder) Disclosures(ctx context.Context, req PatientRequest) (*Disclosures, error) {
	if err := b.checkPatient(&req); err != nil {
		return nil, err
	}
	h, err := b.header(ctx, KindDisclosures, "Accounting of disclosures", req.From, req.To, req.GeneratedBy)
	if err != nil {
		return nil, err
	}
	r := &Disclosures{Header: h, Regulation: RegDisclosures, PatientID: req.PatientID, Disclosures: []Disclosure{}}
	q := store.Query{PatientID: req.PatientID, Action: string(custos.ActionExport), From: r.Period.From, To: r.Period.To.Add(-time.Microsecond)}
	err = b.search(ctx, q, h.Checkpoint.Size, func(e *custos.Event) bool {
		if e.Disclosure == nil || e.Disclosure.Recipient == "" {
			return true
		}
		r.Total++
		if len(r.Disclosures) == b.cfg.MaxListed {
			r.Truncated = true
			return true
		}
		r.Disclosures = append(r.Disclosures, disclosureOf(e))
		return true
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}
