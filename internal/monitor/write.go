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
	raised := false
	var recs []leaf.StateRecord
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
			recs = append(recs, d.record(leaf.OpCreate))
			raised = true
		case rules.BlockAddress:
			b := o.Block
			d := blockDoc{ID: b.ID, CIDR: b.CIDR.String(), Reason: b.Reason, CreatedAt: stamp(b.CreatedAt),
				BlockedUntil: stamp(b.BlockedUntil), CreatedBy: b.CreatedBy, Rule: b.CreatedBy}
			if m.known(d.ID) {
				continue
			}
			recs = append(recs, d.record(leaf.OpCreate))
		case rules.Update:
			m.mu.Lock()
			m.pending[o.SecurityEvent.ID] = o
			m.mu.Unlock()
		}
	}
	wrote := m.write(ctx, recs)
	if raised && m.cfg.Alerted != nil {
		m.cfg.Alerted()
	}
	return wrote
}

// flush records the alert updates due: each alert's count and last-seen at
// most every UpdateEvery, all of them when final.
func (m *Monitor) flush(ctx context.Context, final bool) bool {
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
	var recs []leaf.StateRecord
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
		recs = append(recs, d.record(leaf.OpPut))
	}
	if final {
		clear(m.written)
	}
	return m.write(ctx, recs)
}

// writeChunk is the most state records the monitor appends at once.
const writeChunk = 256

// write appends the records, many to a commit: a burst of alerts (a
// catch-up over a long tail, an attack from many addresses) costs a few
// commits, not one each in front of every client's. A conflict (another
// node's create came first) is expected and dropped: a chunk that fails is
// written again one record at a time, so that only the record at fault is
// lost. It reports whether any record was written.
func (m *Monitor) write(ctx context.Context, recs []leaf.StateRecord) bool {
	wrote := false
	for len(recs) > 0 {
		n := min(len(recs), writeChunk)
		chunk := recs[:n]
		recs = recs[n:]
		_, err := m.ledger.Append(ctx, "custos", nil, chunk...)
		if err == nil {
			wrote = true
			continue
		}
		if len(chunk) > 1 && ctx.Err() == nil {
			for _, rec := range chunk {
				wrote = m.write(ctx, []leaf.StateRecord{rec}) || wrote
			}
			continue
		}
		if custos.KindOf(err) != custos.Conflict && ctx.Err() == nil { // a stop: the next start records it
			m.log.Warn("monitor could not record", "entity", chunk[0].Entity, "id", chunk[0].ID, "error", err)
		}
	}
	return wrote
}

// known reports whether a security event or block with id is recorded.
func (m *Monitor) known(id string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, se := m.events[id]
	_, bl := m.blocks[id]
	return se || bl
}
