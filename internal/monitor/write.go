package monitor

import (
	"context"
	"maps"
	"slices"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/rules"
)

// record writes what the engine decided: new security events and blocks
// as creates (one per id, whichever node is first), alert updates later
// (flush). A record another node wrote first conflicts and is dropped.
func (m *Monitor) record(ctx context.Context, out []rules.Outcome) bool {
	raised, wrote := false, false
	for _, o := range out {
		switch o.Kind {
		case rules.Raise:
			d := eventDoc{ID: o.SecurityEvent.ID, EventType: o.SecurityEvent.EventType, Severity: o.SecurityEvent.Severity,
				Description: o.SecurityEvent.Description, User: o.SecurityEvent.User, IPAddress: o.SecurityEvent.IPAddress,
				AdditionalData: o.SecurityEvent.AdditionalData, Rule: o.SecurityEvent.Rule, Status: custos.StatusOpen,
				Count: o.Count, FirstSeen: stamp(o.FirstSeen), LastSeen: stamp(o.LastSeen), Cause: o.Cause, AllowListed: o.AllowListed}
			if m.known(d.ID) {
				continue
			}
			wrote = m.write(ctx, d.record(leaf.OpCreate)) || wrote
			raised = true
		case rules.BlockAddress:
			b := o.Block
			d := blockDoc{ID: b.ID, CIDR: b.CIDR.String(), Reason: b.Reason, CreatedAt: stamp(b.CreatedAt),
				BlockedUntil: stamp(b.BlockedUntil), CreatedBy: b.CreatedBy, Rule: b.CreatedBy}
			if m.known(d.ID) {
				continue
			}
			wrote = m.write(ctx, d.record(leaf.OpCreate)) || wrote
		case rules.Update:
			m.mu.Lock()
			m.pending[o.SecurityEvent.ID] = o
			m.mu.Unlock()
		}
	}
	if raised && m.cfg.Alerted != nil {
		m.cfg.Alerted()
	}
	return wrote
}

// flush records the alert updates due: each alert's count and last-seen at
// most every UpdateEvery, all of them when final.
func (m *Monitor) flush(ctx context.Context, final bool) bool {
	wrote := false
	now := m.now()
	m.mu.Lock()
	var due []rules.Outcome
	for _, id := range slices.Sorted(maps.Keys(m.pending)) {
		if final || now.Sub(m.written[id]) >= m.cfg.UpdateEvery {
			due = append(due, m.pending[id])
			delete(m.pending, id)
			m.written[id] = now
		}
	}
	m.mu.Unlock()
	for _, o := range due {
		m.mu.RLock()
		s, ok := m.events[o.SecurityEvent.ID]
		var d eventDoc
		if ok {
			d = s.doc
		}
		m.mu.RUnlock()
		if !ok { // its create is not replayed yet: next time
			m.mu.Lock()
			if _, newer := m.pending[o.SecurityEvent.ID]; !newer {
				m.pending[o.SecurityEvent.ID] = o
			}
			m.mu.Unlock()
			continue
		}
		if d.Count >= o.Count {
			continue // already as far
		}
		d.Count, d.LastSeen, d.Severity, d.Change = o.Count, stamp(o.LastSeen), o.SecurityEvent.Severity, changeCount
		wrote = m.write(ctx, d.record(leaf.OpPut)) || wrote
	}
	if final {
		clear(m.written)
	}
	return wrote
}

// write appends one state record; a conflict (another node's create came
// first) is expected and dropped.
func (m *Monitor) write(ctx context.Context, rec leaf.StateRecord) bool {
	_, err := m.ledger.Append(ctx, "custos", nil, rec)
	if err != nil && custos.KindOf(err) != custos.Conflict && ctx.Err() == nil { // a stop: the next start records it
		m.log.Warn("monitor could not record", "entity", rec.Entity, "id", rec.ID, "error", err)
	}
	return err == nil
}

// known reports whether a security event or block with id is recorded.
func (m *Monitor) known(id string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, se := m.events[id]
	_, bl := m.blocks[id]
	return se || bl
}
