package monitor

import (
	"context"
	"encoding/json"

	"github.com/custos-audit/custos/internal/alert"
	"github.com/custos-audit/custos/internal/leaf"
)

// The alert outboxes read what to send from the ledger and record how far
// each sink got in it: no alert is lost while a receiver is down or Custos
// restarts, and nothing is kept outside the ledger.

// EntityAlertProgress records, per sink, the ledger index of the last
// alert delivered. Frozen: it is in the ledger.
const EntityAlertProgress = "alert_progress"

// Alerts returns the security-event records with an index above after, as
// alerts, in ledger order: a raise, an update of the count, a status change.
func (m *Monitor) Alerts(ctx context.Context, after uint64) ([]alert.Alert, error) {
	recs, err := m.feed.Since(ctx, int64(after))
	if err != nil {
		return nil, err
	}
	var out []alert.Alert
	for _, r := range recs {
		if r.Entity != EntitySecurityEvent || r.Op == leaf.OpDelete {
			continue
		}
		var d eventDoc
		if json.Unmarshal(r.Doc, &d) != nil {
			continue
		}
		kind := alert.Updated
		switch {
		case r.Op == leaf.OpCreate:
			kind = alert.Raised
		case d.Change == changeStatus:
			kind = alert.Status
		}
		s := stored{doc: d, index: r.Index, at: r.Timestamp}
		out = append(out, alert.Alert{ID: d.ID, Index: r.Index, Kind: kind, SecurityEvent: s.view().SecurityEvent, At: r.Timestamp})
	}
	return out, nil
}

// Progress stores each sink's position as a state record of the ledger.
type Progress struct{ m *Monitor }

// Progress returns the store of the sinks' positions.
func (m *Monitor) Progress() Progress { return Progress{m} }

type progressDoc struct {
	Sink  string `json:"sink"`
	Index uint64 `json:"index"`
}

// Load returns the sink's last saved position.
func (p Progress) Load(ctx context.Context, sink string) (uint64, bool, error) {
	recs, err := p.m.feed.Since(ctx, -1)
	if err != nil {
		return 0, false, err
	}
	var at uint64
	found := false
	for _, r := range recs {
		if r.Entity != EntityAlertProgress || r.ID != sink {
			continue
		}
		var d progressDoc
		if json.Unmarshal(r.Doc, &d) == nil {
			at, found = d.Index, true
		}
	}
	return at, found, nil
}

// Save records the sink's position.
func (p Progress) Save(ctx context.Context, sink string, index uint64) error {
	b, _ := json.Marshal(progressDoc{Sink: sink, Index: index})
	_, err := p.m.ledger.Append(ctx, "custos", nil, leaf.StateRecord{Entity: EntityAlertProgress, ID: sink, Op: leaf.OpPut, Doc: b})
	return err
}

var _ alert.Progress = Progress{}
