package monitor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/rules"
)

// replay applies one state record to the tables and, when live, to the
// engine: a reported security event is observed, a block applied, a lift
// or a resolution told. It returns what the engine decides.
func (m *Monitor) replay(r *leaf.StateRecord, live bool) []rules.Outcome {
	switch r.Entity {
	case EntitySecurityEvent:
		var d eventDoc
		if err := json.Unmarshal(r.Doc, &d); err != nil || d.ID != r.ID {
			m.log.Warn("security event record skipped", "index", r.Index)
			return nil
		}
		m.mu.Lock()
		old, seen := m.events[d.ID]
		s := &stored{doc: d, index: r.Index, at: r.Timestamp}
		if seen { // the event keeps the index and time it was raised at
			s.index, s.at = old.index, old.at
		}
		m.events[d.ID] = s
		m.mu.Unlock()
		switch {
		case !live:
		case !seen && d.Rule == "": // reported by an application
			v := s.view().SecurityEvent
			return m.eng.ObserveSecurityEvent(v)
		case d.Status == custos.StatusResolved && (!seen || old.doc.Status != custos.StatusResolved):
			m.eng.Resolve(d.ID)
		}
	case EntityBlock:
		var d blockDoc
		if err := json.Unmarshal(r.Doc, &d); err != nil || d.ID != r.ID {
			m.log.Warn("block record skipped", "index", r.Index)
			return nil
		}
		m.mu.Lock()
		m.blocks[d.ID] = &d
		m.mu.Unlock()
		if live {
			m.applyBlock(&d)
		}
	}
	return nil
}

// applyBlock tells the engine of a recorded block, and of its lift.
func (m *Monitor) applyBlock(d *blockDoc) {
	b, err := d.block()
	if err == nil {
		err = m.eng.ApplyBlock(b)
	}
	if err != nil {
		m.log.Warn("block record not applied", "id", d.ID, "error", err)
		return
	}
	if d.LiftedAt != "" {
		m.eng.Lift(d.ID, parse(d.LiftedAt))
	}
}

// start replays the records, then the events of the engine's horizon, and
// records what the engine decides that the ledger does not hold yet (what
// a crash left unwritten).
func (m *Monitor) start(ctx context.Context) error {
	h, err := m.st.Head(ctx)
	if err != nil {
		return err
	}
	recs, err := m.feed.Since(ctx, -1)
	if err != nil {
		return err
	}
	horizon := m.now().Add(-m.eng.Horizon())
	from, err := m.firstSince(ctx, h.Size, horizon)
	if err != nil {
		return err
	}
	// State before the horizon: tables only; blocks of the last 30 days
	// into the engine (repeat offenders), resolutions as they stand.
	var reported []custos.SecurityEvent
	for i := range recs {
		r := &recs[i]
		if r.Index >= h.Size {
			break
		}
		m.replay(r, false)
		m.lastState = int64(r.Index)
	}
	m.mu.RLock()
	for _, d := range m.blocks {
		end := parse(d.BlockedUntil)
		if d.LiftedAt != "" {
			end = parse(d.LiftedAt)
		}
		if end.After(m.now().Add(-30 * 24 * time.Hour)) {
			m.applyBlock(d)
		}
	}
	for _, s := range m.events {
		if s.doc.Rule == "" && s.index >= from {
			reported = append(reported, s.view().SecurityEvent)
		}
	}
	m.mu.RUnlock()
	sortByIndex(reported)
	// The PHI baseline spans weeks: the days before the horizon's are
	// seeded from the store's counts, oldest first.
	if err := m.seedBaseline(ctx, from); err != nil {
		return err
	}
	// The events of the horizon, in chunks, with the reports among them.
	recorded := func(id string) bool {
		m.mu.RLock()
		defer m.mu.RUnlock()
		_, se := m.events[id]
		_, bl := m.blocks[id]
		return se || bl
	}
	var out []rules.Outcome
	const chunk = 10_000
	batch := make([]custos.Event, 0, chunk)
	drain := func(upTo uint64) {
		j := 0
		for j < len(reported) && reported[j].Index < upTo {
			j++
		}
		out = append(out, m.eng.Rebuild(batch, reported[:j], recorded)...)
		reported = reported[j:]
		batch = batch[:0]
	}
	err = m.st.ScanEvents(ctx, from, func(ev custos.Event) error {
		if ev.Index >= h.Size {
			return errStop
		}
		batch = append(batch, ev)
		if len(batch) == chunk {
			drain(ev.Index + 1)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	drain(h.Size)
	m.next = h.Size
	// Resolutions recorded after the horizon's events were raised again by
	// the rebuild: tell the engine.
	m.mu.RLock()
	for id, s := range m.events {
		if s.doc.Status == custos.StatusResolved {
			m.eng.Resolve(id)
		}
	}
	m.mu.RUnlock()
	if m.record(ctx, out) || m.flush(ctx, true) {
		if _, err := m.pass(ctx); err != nil { // replay what was recorded
			return err
		}
	}
	return nil
}

// firstSince returns the index of the first event at or after t: a binary
// search on the ledger's timestamps, which grow with the index. State
// records have no row among the events; the search steps over them.
func (m *Monitor) firstSince(ctx context.Context, size uint64, t time.Time) (uint64, error) {
	lo, hi := uint64(0), size
	for lo < hi {
		mid := lo + (hi-lo)/2
		ts, at, err := m.timeAtOrAfter(ctx, mid, hi)
		if err != nil {
			return 0, err
		}
		if at == hi || !ts.Before(t) {
			hi = mid
		} else {
			lo = at + 1
		}
	}
	return lo, nil
}

// timeAtOrAfter returns the timestamp of the first event at index ≥ i (and
// < end) and its index; end when there is none.
func (m *Monitor) timeAtOrAfter(ctx context.Context, i, end uint64) (time.Time, uint64, error) {
	var ts time.Time
	at := end
	err := m.st.ScanEvents(ctx, i, func(ev custos.Event) error {
		if ev.Index < end {
			ts, at = ev.Timestamp, ev.Index
		}
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return time.Time{}, 0, err
	}
	return ts, at, nil
}

func sortByIndex(s []custos.SecurityEvent) {
	slices.SortFunc(s, func(a, b custos.SecurityEvent) int { return cmp.Compare(a.Index, b.Index) })
}

// seedBaseline gives the engine each user's distinct patients per day for
// the baseline's days before the first replayed event's day.
func (m *Monitor) seedBaseline(ctx context.Context, from uint64) error {
	b := m.cfg.Rules.UnusualPHIAccess
	if !b.Enabled || b.HistoryDays <= 0 {
		return nil
	}
	end := m.now().UTC()
	if ts, at, err := m.timeAtOrAfter(ctx, from, ^uint64(0)); err != nil {
		return err
	} else if at != ^uint64(0) {
		end = ts.UTC()
	}
	end = end.Truncate(24 * time.Hour)
	days, err := m.st.PatientDays(ctx, end.AddDate(0, 0, -b.HistoryDays), end)
	if err != nil {
		return err
	}
	for _, d := range days {
		m.eng.SeedBaseline(d.UserID, d.Roles, d.Day, d.Patients)
	}
	return nil
}
