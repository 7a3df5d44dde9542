package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
)

// SearchReader is the query path the API uses.
type SearchReader interface {
	Event(ctx context.Context, index uint64) (custos.Event, error)
	Events(ctx context.Context, q store.Query) ([]custos.Event, error)
}

// SearchCheck runs, for records spread evenly over the ledger (samples of
// them, and the newest), a search by each indexed field through the same
// query path the API answers from, and fails on a record that one of them
// would not return: however a record is hidden (a collation, a stored type,
// a trigger, a damaged index), a search that should find it must.
func SearchCheck(ctx context.Context, r SearchReader, size uint64, samples int) (*Problem, error) {
	if size == 0 || samples <= 0 {
		return nil, nil
	}
	step := max(size/uint64(samples), 1)
	for idx := uint64(0); idx < size; idx += step {
		if p, err := searchOne(ctx, r, idx); p != nil || err != nil {
			return p, err
		}
	}
	return searchOne(ctx, r, size-1)
}

func searchOne(ctx context.Context, r SearchReader, idx uint64) (*Problem, error) {
	e, err := r.Event(ctx, idx)
	if errors.Is(err, custos.ErrNotFound) {
		return nil, nil // a state record: not searchable
	}
	if err != nil {
		return nil, err
	}
	// Positioned just after the record in the newest-first order, a search
	// that can find it returns it first: one seek per field.
	at := e.Timestamp
	base := store.Query{From: at, To: at, After: &store.Cursor{Timestamp: at, Index: idx + 1}, Limit: 1}
	for _, f := range []struct {
		name string
		set  func(q *store.Query) bool
	}{
		{"user", func(q *store.Query) bool { q.User = e.User.ID; return true }},
		{"action", func(q *store.Query) bool { q.Action = string(e.Action); return true }},
		{"resource_type and resource_id", func(q *store.Query) bool {
			q.ResourceType, q.ResourceID = e.ResourceType, e.ResourceID
			return e.ResourceID != ""
		}},
		{"patient_id", func(q *store.Query) bool { q.PatientID = e.PatientID; return e.PatientID != "" }},
		{"ip_address", func(q *store.Query) bool { q.IPAddress = e.IPAddress; return e.IPAddress != "" }},
		{"source", func(q *store.Query) bool { q.Source = e.Source; return e.Source != "" }},
	} {
		q := base
		if !f.set(&q) {
			continue
		}
		page, err := r.Events(ctx, q)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 || page[0].Index != idx {
			return &Problem{Index: idx, Reason: fmt.Sprintf("a search by %s does not return this record (hidden from searches by how it is stored or compared)", f.name)}, nil
		}
	}
	return nil, nil
}
