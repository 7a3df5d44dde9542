// Package monitor runs the detection rules (internal/rules) on the ledger as
// it grows, on every node: it tails committed records in ledger order, feeds
// them to the engine, and records what the engine decides (security events,
// blocks, alert updates) back in the ledger as state records. It also holds
// the security events and blocks as the ledger says they are, for the API
// and for enforcement.
//
// Invariants:
//
//   - Every node observes the same records in the same order, so every node's
//     engine decides the same things with the same ids; a security event or
//     block is written with a create, so exactly one record exists per id
//     whichever node writes first. The others' creates conflict, harmlessly.
//   - Nothing is believed that the ledger does not say: security events and
//     blocks are replayed from the state feed (proven against signed
//     checkpoints), never read from a table.
//   - A restart replays the events of the engine's horizon before it takes
//     new ones, and writes only what the ledger does not hold yet: a burst cut
//     by a restart goes on counting and raises nothing twice.
//   - The audit events this node commits reach the rules from memory
//     (Committed), exactly as the store holds them; only the indices no
//     commit of this node covered (other nodes' commits on a shared store,
//     the backlog at a start, what fell out of the buffer) are read from the
//     store. Either way the rules see the same records in the same order.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/rules"
	"github.com/custos-audit/custos/internal/store"
)

// Store is what the monitor reads of the store.
type Store interface {
	Head(ctx context.Context) (store.Head, error)
	Event(ctx context.Context, index uint64) (custos.Event, error)
	ScanEvents(ctx context.Context, from uint64, fn func(custos.Event) error) error
	// ScanEventRange calls fn for every event with from <= index < to.
	ScanEventRange(ctx context.Context, from, to uint64, fn func(custos.Event) error) error
	// PatientDays counts each user's distinct patients per UTC day.
	PatientDays(ctx context.Context, from, to time.Time) ([]store.PatientDay, error)
}

// Appender records ledger records; the ledger's sequencer is one.
type Appender interface {
	Append(ctx context.Context, by string, events []custos.Event, states ...leaf.StateRecord) ([]custos.Receipt, error)
}

// StateFeed hands out state records once a signed checkpoint proves them.
type StateFeed interface {
	Since(ctx context.Context, after int64) ([]leaf.StateRecord, error)
}

// Config tunes the monitor. Zero fields take the defaults.
type Config struct {
	Rules  rules.Config
	Now    func() time.Time
	Logger *slog.Logger
	// Poll is how often the ledger is read for records other nodes (or
	// paths that do not Wake the monitor) committed (default 100 ms).
	Poll time.Duration
	// UpdateEvery is how often an open alert's count and last-seen are
	// recorded while hits keep coming (default 10 s).
	UpdateEvery time.Duration
	// Limits bound what applications report.
	Limits custos.Limits
	// Alerted, when set, is called after security events were recorded
	// (the alert outboxes deliver them).
	Alerted func()
	// Recent is how many of the audit events this node committed lately
	// (Committed) the monitor holds, to take them from memory rather than
	// read them back from the store (default DefaultRecent).
	Recent int
}

// Monitor tails the ledger through the rules.
type Monitor struct {
	st     Store
	ledger Appender
	feed   StateFeed
	eng    *rules.Engine
	cfg    Config
	now    func() time.Time
	log    *slog.Logger
	wake   chan struct{}

	step sync.Mutex // one pass over the ledger at a time

	mu        sync.RWMutex
	events    map[string]*stored
	blocks    map[string]*blockDoc
	next      uint64 // the next ledger index to observe
	lastState int64  // the last state record replayed
	pending   map[string]rules.Outcome
	written   map[string]time.Time // when each alert's count was last recorded
	lag       time.Duration

	recent   recent           // what this node committed lately
	observed [2]atomic.Uint64 // audit events passes took from memory, read from the store
}

// New replays the security events and blocks, rebuilds the engine from the
// events of its horizon, records what a crash may have left unrecorded, and
// returns the monitor; Run keeps it going.
func New(ctx context.Context, st Store, ledger Appender, feed StateFeed, cfg Config) (*Monitor, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	if cfg.UpdateEvery <= 0 {
		cfg.UpdateEvery = 10 * time.Second
	}
	if cfg.Limits.MaxChanges <= 0 {
		cfg.Limits = custos.DefaultLimits
	}
	if cfg.Recent <= 0 {
		cfg.Recent = DefaultRecent
	}
	m := &Monitor{st: st, ledger: ledger, feed: feed, eng: rules.New(cfg.Rules, cfg.Now), cfg: cfg, now: cfg.Now,
		log: cfg.Logger, wake: make(chan struct{}, 1), events: map[string]*stored{}, blocks: map[string]*blockDoc{},
		lastState: -1, pending: map[string]rules.Outcome{}, written: map[string]time.Time{}, recent: recent{max: cfg.Recent}}
	if err := m.start(ctx); err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	return m, nil
}

// Committed takes what this node's sequencer committed: the ledger indices
// [from, to) and their audit events, exactly as the store holds them, in
// index order; the other indices of the range are state records (see
// ledger.Sequencer.SetCommitted). A pass takes these events from memory
// and reads from the store only what no call told: other nodes' commits,
// the backlog at a start, what fell out of the buffer. It keeps events,
// and never modifies them; it returns at once.
func (m *Monitor) Committed(from, to uint64, events []custos.Event) { m.recent.add(from, to, events) }

// Wake asks for a pass at once: records were just committed.
func (m *Monitor) Wake() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run passes over the ledger whenever woken, and every Poll, until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.flush(context.Background(), true)
			return
		case <-t.C:
		case <-m.wake:
		}
		if err := m.Step(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("monitor pass failed; retrying", "error", err)
		}
	}
}

// Step observes every record committed since the last pass and records
// what the rules decide; when it returns, the tables hold what it recorded.
func (m *Monitor) Step(ctx context.Context) error {
	m.step.Lock()
	defer m.step.Unlock()
	for range 3 { // a pass that records something is followed by one that replays it
		wrote, err := m.pass(ctx)
		if err != nil || !wrote {
			return err
		}
	}
	return nil
}

// pass observes the records committed since the last pass, records what
// the rules decide, and reports whether it recorded anything.
func (m *Monitor) pass(ctx context.Context) (bool, error) {
	h, err := m.st.Head(ctx)
	if err != nil {
		return false, err
	}
	// An update carries its alert's totals, so only the newest of each
	// alert's updates in this pass matters (record keeps only that one
	// too). Catching up over a long tail, where an open alert sees a hit
	// on most events, would otherwise hold an Outcome per event.
	var out []rules.Outcome
	updates := map[string]int{} // alert ID → its update's place in out
	keep := func(os []rules.Outcome) {
		for _, o := range os {
			if o.Kind != rules.Update {
				out = append(out, o)
				continue
			}
			if i, ok := updates[o.SecurityEvent.ID]; ok {
				out[i] = o
				continue
			}
			updates[o.SecurityEvent.ID] = len(out)
			out = append(out, o)
		}
	}
	err = m.tail(ctx, h.Size, func(ev *custos.Event, rec *leaf.StateRecord) {
		if ev != nil {
			keep(m.eng.Observe(*ev))
			return
		}
		keep(m.replay(rec, true))
	})
	if err != nil {
		return false, err
	}
	wrote := m.record(ctx, out)
	return m.flush(ctx, false) || wrote, nil
}

// errStop ends a scan early: at the head read at a start, at the first event
// found.
var errStop = errors.New("stop")

// tail calls fn for every record in [m.next, size) in ledger order: audit
// events this node committed from memory (Committed), the others from the
// store, state records from the proving feed. fn must not modify the
// record, nor keep the pointer: the events in memory are shared.
func (m *Monitor) tail(ctx context.Context, size uint64, fn func(*custos.Event, *leaf.StateRecord)) error {
	m.mu.RLock()
	from, after := m.next, m.lastState
	m.mu.RUnlock()
	if from >= size {
		return nil
	}
	recs, err := m.feed.Since(ctx, after)
	if err != nil {
		return err
	}
	i := 0
	emitStates := func(upTo uint64) {
		for ; i < len(recs) && recs[i].Index < upTo && recs[i].Index < size; i++ {
			fn(nil, &recs[i])
			m.setLastState(int64(recs[i].Index))
		}
	}
	event := func(ev *custos.Event) {
		emitStates(ev.Index)
		fn(ev, nil)
		if lag := m.now().Sub(ev.Timestamp); ev.Index+1 == size {
			m.mu.Lock()
			m.lag = lag
			m.mu.Unlock()
		}
	}
	// Every index below at has been observed (or is a state record).
	at := from
	var memory, stored uint64
	defer func() { m.observed[0].Add(memory); m.observed[1].Add(stored) }()
	read := func(to uint64) error {
		if at >= to {
			return nil
		}
		err := m.st.ScanEventRange(ctx, at, to, func(ev custos.Event) error {
			event(&ev)
			stored++
			return nil
		})
		if err != nil {
			return err
		}
		at = to
		return nil
	}
	for _, s := range m.recent.within(from, size) {
		if err := read(s.from); err != nil { // what this node did not commit
			return err
		}
		evs := s.events
		j := sort.Search(len(evs), func(j int) bool { return evs[j].Index >= at })
		for ; j < len(evs) && evs[j].Index < size; j++ {
			event(&evs[j])
			memory++
		}
		at = max(at, min(s.to, size))
	}
	if err := read(size); err != nil {
		return err
	}
	emitStates(size)
	m.mu.Lock()
	m.next = size
	m.mu.Unlock()
	m.recent.forget(size)
	return nil
}

func (m *Monitor) setLastState(i int64) {
	m.mu.Lock()
	m.lastState = max(m.lastState, i)
	m.mu.Unlock()
}

// Blocked reports the block in force that covers ip, if any.
func (m *Monitor) Blocked(ip string) (custos.Block, bool) { return m.eng.Blocked(ip) }

// Lag is how far behind the newest event the last pass was.
func (m *Monitor) Lag() time.Duration {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.lag
}

// Observed counts the audit events the passes observed: taken from memory
// (this node's commits, Committed) and read from the store.
func (m *Monitor) Observed() (memory, store uint64) {
	return m.observed[0].Load(), m.observed[1].Load()
}

// Stats describe the engine's state.
func (m *Monitor) Stats() rules.Stats { return m.eng.Stats() }
