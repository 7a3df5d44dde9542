package store

import (
	"context"
	"fmt"

	"github.com/custos-audit/custos"
)

// DeliveryQuery finds the first event of the request that named a delivery
// key: the event's index, by submitter ($1) and key ($2).
const DeliveryQuery = `SELECT idx FROM deliveries WHERE submitted_by = $1 AND key = $2`

// DeliveryRowsQuery lists the deliveries table, for verification.
const DeliveryRowsQuery = `SELECT submitted_by, key, idx FROM deliveries ORDER BY idx`

// DeliveryRow is one row of the deliveries table.
type DeliveryRow struct {
	SubmittedBy, Key string
	Index            uint64
}

// ApplyDeliveries indexes, inside the caller's transaction, the events of a
// batch that name a delivery. A key its submitter used before is refused as
// custos.Conflict, so that the request at fault alone fails and nothing of
// it is stored. ph spells the n-th placeholder of the store's SQL dialect.
func ApplyDeliveries(ctx context.Context, exec Exec, ph func(int) string, events []custos.Event) error {
	var ins string
	for i := range events {
		e := &events[i]
		if e.Delivery == nil {
			continue
		}
		if ins == "" {
			ins = fmt.Sprintf(`INSERT INTO deliveries (submitted_by, key, idx) VALUES (%s, %s, %s)
				ON CONFLICT (submitted_by, key) DO NOTHING`, ph(1), ph(2), ph(3))
		}
		n, err := exec(ctx, ins, e.SubmittedBy, e.Delivery.Key, int64(e.Index))
		if err != nil {
			return fmt.Errorf("index delivery of event %d: %w", e.Index, err)
		}
		if n == 0 {
			return &custos.Error{Op: "store.delivery", Kind: custos.Conflict,
				Detail: "this Idempotency-Key was used before by the same credential"}
		}
	}
	return nil
}

// ScanDeliveryRow scans one row of DeliveryRowsQuery.
func ScanDeliveryRow(r Row) (DeliveryRow, error) {
	var d DeliveryRow
	var idx int64
	err := r.Scan(&d.SubmittedBy, &d.Key, &idx)
	d.Index = uint64(idx)
	return d, err
}

// ScanIndex scans a single ledger index.
func ScanIndex(r Row) (uint64, error) {
	var idx int64
	err := r.Scan(&idx)
	return uint64(idx), err
}

// One returns the first of rows, or custos.ErrNotFound when there is none:
// the answer of a point read.
func One[T any](rows []T, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	if len(rows) == 0 {
		return zero, custos.ErrNotFound
	}
	return rows[0], nil
}
