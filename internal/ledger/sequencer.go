package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
	"github.com/transparency-dev/merkle/compact"
)

// Config tunes the sequencer. Zero fields take the defaults.
type Config struct {
	MaxBatch           int           // events per transaction at most (default 16384)
	CheckpointEvery    uint64        // sign a checkpoint every this many leaves (default 1000)
	CheckpointInterval time.Duration // and at least this often while the log grows (default 1 s)
	CommitTimeout      time.Duration // bound on one commit (default 30 s)
	Now                func() time.Time
	Logger             *slog.Logger
	// Observe, when set, is told the size and duration of every commit.
	Observe func(events int, d time.Duration, err error)
	// LocalClock stamps records with Now even on a shared store, which
	// otherwise gives the ledger its clock: for tests that need a timeline
	// of their own. Never in production, where nodes would disagree.
	LocalClock bool
	// MaxClockSkew bounds how far this process's clock may be from the
	// store's (the ledger's one clock, on a shared store) before the node
	// reports itself unhealthy (default 2 s).
	MaxClockSkew time.Duration
	// Limits are the limits events are validated with at Append, whoever
	// calls it: the server's (--max-changes). A zero MaxChanges bounds the
	// form of changes but not its size.
	Limits custos.Limits
}

func (cfg Config) withDefaults() Config {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 16384
	}
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = 1000
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = time.Second
	}
	if cfg.CommitTimeout <= 0 {
		cfg.CommitTimeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// ErrClosed is returned by Append after Close.
var ErrClosed = &custos.Error{Op: "ledger.append", Kind: custos.Unavailable, Detail: "the ledger is shutting down"}

// Sequencer is this process's only writer of the ledger. Callers hand it
// events; it assigns indices and timestamps, groups whatever arrived together
// into one transaction (group commit), writes leaves, tree nodes and due
// checkpoints atomically, and answers each caller only after that transaction
// committed. On a store shared by several nodes, each node's sequencer
// appends under the store's lock, one at a time (see Open).
type Sequencer struct {
	st         store.Writer
	nodeReader NodeReader
	cps        checkpointReader
	signer     *Signer
	cfg        Config
	enrich     atomic.Pointer[func([]custos.Event) []custos.Event]
	committed  atomic.Pointer[func(from, to uint64, events []custos.Event)]
	reqs       chan *request

	// Owned by the run goroutine (and by Open before it starts).
	rng      *compact.Range
	nodes    uint64
	lastTS   time.Time
	lastCP   uint64
	lastCPAt time.Time

	health health // what the last commit said, for readiness

	mu      sync.Mutex
	closed  bool
	done    chan struct{}
	stopped chan struct{}
}

type request struct {
	by     string
	events []custos.Event
	states []leaf.StateRecord
	resp   chan result
}

type result struct {
	receipts []custos.Receipt
	err      error
}

type checkpointReader interface {
	LatestCheckpoint(context.Context) (*store.Checkpoint, error)
}

// Open resumes the ledger from the store's head. It refuses to start when the
// stored tree does not match the latest checkpoint, so that a damaged store is
// never extended into a fork.
//
// When the store is a store.SharedWriter (several nodes on one database),
// every commit runs under the store's append lock and first brings this
// sequencer up to the head that the other nodes left.
func Open(ctx context.Context, st store.Writer, nodes NodeReader, cps checkpointReader, signer *Signer, cfg Config) (*Sequencer, error) {
	cfg = cfg.withDefaults()
	s := &Sequencer{st: st, nodeReader: nodes, cps: cps, signer: signer, cfg: cfg, reqs: make(chan *request, 1024),
		done: make(chan struct{}), stopped: make(chan struct{})}
	// On a shared store the head is read under the append lock, so that
	// other nodes' appends cannot tear it.
	var err error
	if sw, ok := st.(store.SharedWriter); ok {
		err = sw.AppendLocked(ctx, func(h store.Head) (*store.Batch, error) { return nil, s.load(ctx, h) })
	} else {
		var h store.Head
		if h, err = st.Head(ctx); err == nil {
			err = s.load(ctx, h)
		}
	}
	if err != nil {
		return nil, err
	}
	// Records a crash left unsigned are covered at once: verify treats an
	// uncovered tail older than the interval as suspect.
	s.checkpoint(true)
	go s.run()
	return s, nil
}

// load sets the sequencer to the head h, after checking that the stored tree
// matches the latest checkpoint.
func (s *Sequencer) load(ctx context.Context, h store.Head) error {
	if want := NodeCount(h.Size); h.NodeCount != want {
		return fmt.Errorf("ledger: store holds %d tree nodes for %d leaves, want %d: run custos verify", h.NodeCount, h.Size, want)
	}
	rng, err := LoadRange(ctx, s.nodeReader, h.Size)
	if err != nil {
		return fmt.Errorf("ledger: load tree: %w", err)
	}
	s.rng, s.nodes, s.lastTS = rng, h.NodeCount, h.LastTimestamp
	cp, err := s.cps.LatestCheckpoint(ctx)
	if errors.Is(err, custos.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger: read latest checkpoint: %w", err)
	}
	if err := s.checkCheckpoint(ctx, s.nodeReader, cp, h.Size); err != nil {
		return err
	}
	s.lastCP, s.lastCPAt = cp.Size, cp.CreatedAt
	return nil
}

// checkCheckpoint makes sure the stored tree still matches the latest
// checkpoint before anything is appended to it.
func (s *Sequencer) checkCheckpoint(ctx context.Context, nodes NodeReader, cp *store.Checkpoint, size uint64) error {
	parsed, err := OpenCheckpoint(cp.Note, s.signer.VerifierKey())
	if err != nil {
		return fmt.Errorf("ledger: latest checkpoint does not verify with this signing key (wrong --key-file?): %w", err)
	}
	if parsed.Size > size {
		return fmt.Errorf("ledger: latest checkpoint covers %d leaves but the store holds %d: the store was truncated; run custos verify", parsed.Size, size)
	}
	root, err := RootAt(ctx, nodes, parsed.Size)
	if err != nil {
		return fmt.Errorf("ledger: root at %d: %w", parsed.Size, err)
	}
	if !bytes.Equal(root, parsed.Hash) {
		return fmt.Errorf("ledger: stored tree at size %d does not match the latest checkpoint: run custos verify", parsed.Size)
	}
	return nil
}

// SetEnrich sets what adds the server's knowledge to events on every ingest
// path before they are validated and sequenced (the emergency-grant flags
// of authn.Directory.FlagEmergency). f returns events, or a changed copy;
// it never writes the caller's slice.
func (s *Sequencer) SetEnrich(f func([]custos.Event) []custos.Event) { s.enrich.Store(&f) }

// SetCommitted sets what is told of every commit of records, as soon as
// the store has committed it (store.Batch.Committed) and before its callers
// are answered: the ledger indices [from, to) it wrote, and its audit
// events in index order, exactly as the store now holds them (what
// ScanEvents reads back for those indices). Every index of the range that
// no event has holds a state record. Commits are told one at a time, in
// ledger order; a commit whose outcome is unknown (the database did not
// answer) is not told, nor are other nodes'.
//
// f runs on the sequencer's goroutine, in front of every append: it must
// return at once. It may keep events, which nothing writes again, but must
// not modify them.
func (s *Sequencer) SetCommitted(f func(from, to uint64, events []custos.Event)) {
	s.committed.Store(&f)
}

// Append sequences the records that the credential by submitted (audit
// events, then state records, in the same transaction) and returns their
// receipts, in that order, once durably committed. Events with no Kind are
// client events; the server sets KindServer on the events it writes about
// itself. Every record's leaf names by. A batch that carries state records
// also carries a signed checkpoint covering them, so every state record is
// anchored the moment it commits. If ctx ends first, Append returns ctx's
// error; the records may still commit, but they were not acknowledged.
//
// Append accepts only valid records, whoever the caller: each event is
// validated and brought to its stored form (custos.Event.Normalize with
// Config.Limits) and each state record checked, on the caller's goroutine,
// before anything is queued; an invalid record is answered custos.Invalid
// naming the field ("[2].changes", "states[0].id"), and nothing is stored.
// The caller's slices are not modified.
//
// The other answers: custos.Unavailable (retry later) when the database is
// down or busy, and nothing was stored; custos.Invalid (or the store's own
// kind, such as custos.Conflict) when the database refused this request's
// records themselves. A refusal fails only the request at fault: the
// requests committed in the same group are retried without it.
func (s *Sequencer) Append(ctx context.Context, by string, events []custos.Event, states ...leaf.StateRecord) ([]custos.Receipt, error) {
	if len(events) == 0 && len(states) == 0 {
		return nil, nil
	}
	if by == "" || !validText(by) {
		return nil, &custos.Error{Op: "ledger.append", Kind: custos.Internal,
			Err: fmt.Errorf("ledger: a record names the credential that submitted it, as text (got %q)", by)}
	}
	if f := s.enrich.Load(); f != nil && len(events) > 0 {
		events = (*f)(events)
	}
	events, err := s.validate(events, states)
	if err != nil {
		return nil, err
	}
	r := &request{by: by, events: events, states: states, resp: make(chan result, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	select {
	case s.reqs <- r:
		s.mu.Unlock()
	case <-ctx.Done():
		s.mu.Unlock()
		return nil, ctx.Err()
	}
	select {
	case res := <-r.resp:
		return res.receipts, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// validate checks the records of one request at the ledger's door and
// returns the events in their stored form (normalized copies). Every field
// at fault is named, prefixed "[i]." by the event's position when the
// request carries several records, and "states[j]." for state records.
func (s *Sequencer) validate(events []custos.Event, states []leaf.StateRecord) ([]custos.Event, error) {
	lim := s.cfg.Limits
	if lim.MaxChanges <= 0 {
		lim.MaxChanges = math.MaxInt
	}
	var fields []custos.FieldError
	add := func(field, msg string) { fields = append(fields, custos.FieldError{Field: field, Message: msg}) }
	out := make([]custos.Event, len(events))
	for i := range events {
		// The prefix is spelt only for a field at fault: valid events cost
		// no formatting.
		prefix := ""
		fault := func(field, msg string) {
			if prefix == "" && len(events)+len(states) > 1 {
				prefix = fmt.Sprintf("[%d].", i)
			}
			add(prefix+field, msg)
		}
		e := events[i] // Normalize replaces fields, never writes into the caller's slices
		if err := e.Normalize(lim, ""); err != nil {
			var ce *custos.Error
			if !errors.As(err, &ce) || len(ce.Fields) == 0 {
				fault("event", err.Error())
			} else {
				for _, f := range ce.Fields {
					fault(f.Field, f.Message)
				}
			}
		}
		// What the database stores as text must be text: changes is
		// compacted JSON, whose strings Normalize does not check.
		if len(e.Changes) > 0 && !utf8.Valid(e.Changes) {
			fault("changes", "must be valid UTF-8")
		}
		switch e.Kind {
		case "":
			e.Kind = custos.KindClient
		case custos.KindClient, custos.KindServer:
		default:
			fault("kind", `must be "client" or "server"`)
		}
		if d := e.Disclosure; d != nil {
			for _, f := range []struct{ name, v string }{{"recipient", d.Recipient}, {"address", d.Address}, {"purpose", d.Purpose}} {
				if !utf8.ValidString(f.v) || strings.IndexByte(f.v, 0) >= 0 {
					fault("disclosure."+f.name, "must be valid UTF-8 without NUL characters")
				}
			}
			if *d == (custos.Disclosure{}) {
				fault("disclosure", "must name a recipient, an address or a purpose")
			}
		}
		if o := e.Original; o != nil {
			if o.Format == "" || !validText(o.Format) {
				fault("original.format", "is required: a media type")
			}
			if len(o.Data) == 0 {
				fault("original.data", "is required")
			}
		}
		if d := e.Delivery; d != nil {
			if i > 0 {
				fault("delivery", "only the first event of a request names its delivery")
			}
			if err := ValidDelivery(d, len(events)); err != nil {
				fault("delivery", err.Error())
			}
		}
		e.Index, e.Timestamp, e.SubmittedBy, e.LeafVersion = 0, time.Time{}, "", leaf.Current
		storedForm(&e)
		if len(fields) == 0 {
			if err := leaf.Valid(&e); err != nil {
				fault("event", err.Error()) // a rule above is missing; never stored
			}
		}
		out[i] = e
	}
	for j := range states {
		st := &states[j]
		prefix := fmt.Sprintf("states[%d].", j)
		if err := leaf.ValidState(st); err != nil {
			add(strings.TrimSuffix(prefix, "."), err.Error())
		}
		if !validText(st.Entity) {
			add(prefix+"entity", "must be valid UTF-8 without control characters")
		}
		if !validText(st.ID) {
			add(prefix+"id", "must be valid UTF-8 without control characters")
		}
		if !utf8.Valid(st.Doc) || bytes.IndexByte(st.Doc, 0) >= 0 || bytes.Contains(st.Doc, []byte(`\u0000`)) {
			add(prefix+"doc", "must be valid UTF-8 without NUL characters")
		}
	}
	if len(fields) > 0 {
		return nil, &custos.Error{Op: "ledger.append", Kind: custos.Invalid, Detail: "the records are invalid; nothing was stored", Fields: fields}
	}
	return out, nil
}

// storedForm makes e what the store reads back of it (times in whole
// microseconds in UTC, roles a list even when there are none), and the
// sequencer's own: the slices and pointers a caller may reuse are copied,
// since committed events outlive Append (SetCommitted). Changes need no
// copy: Normalize compacted them into a buffer of its own.
func storedForm(e *custos.Event) {
	if e.OccurredAt != nil {
		t := time.UnixMicro(e.OccurredAt.UnixMicro()).UTC()
		e.OccurredAt = &t
	}
	e.User.Roles = append([]string{}, e.User.Roles...)
	if d := e.Disclosure; d != nil {
		c := *d
		e.Disclosure = &c
	}
	if o := e.Original; o != nil {
		c := *o
		c.Data = bytes.Clone(o.Data)
		e.Original = &c
	}
	if d := e.Delivery; d != nil {
		c := *d
		e.Delivery = &c
	}
}

// validText reports whether s is valid UTF-8 without NUL or other C0
// control characters but tab: text every store keeps as it is.
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' && r != '\t' })
}

// Close stops accepting appends, commits what was already queued and waits.
func (s *Sequencer) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.mu.Unlock()
	<-s.stopped
}

func (s *Sequencer) run() {
	defer close(s.stopped)
	tick := time.NewTicker(s.cfg.CheckpointInterval / 4)
	defer tick.Stop()
	for {
		select {
		case r := <-s.reqs:
			s.commit(s.gather(r))
		case <-tick.C:
			s.checkpoint(false)
		case <-s.done:
			for {
				select {
				case r := <-s.reqs:
					s.commit(s.gather(r))
				default:
					s.checkpoint(true) // a clean stop leaves the whole log signed
					return
				}
			}
		}
	}
}

// gather takes whatever else is already waiting, up to MaxBatch events.
func (s *Sequencer) gather(first *request) []*request {
	batch := []*request{first}
	n := len(first.events) + len(first.states)
	for n < s.cfg.MaxBatch {
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
			n += len(r.events) + len(r.states)
		default:
			return batch
		}
	}
	return batch
}

// pending is a batch built on the committed state, not yet written.
type pending struct {
	b        *store.Batch
	from     uint64 // the first index it writes
	rng      *compact.Range
	ts       time.Time
	receipts [][]custos.Receipt
	told     bool // SetCommitted's function was told of it
}

// tell tells SetCommitted's function of p, once p has committed.
func (s *Sequencer) tell(p *pending) {
	if f := s.committed.Load(); f != nil && !p.told && p.rng.End() > p.from {
		(*f)(p.from, p.rng.End(), p.b.Events)
	}
	p.told = true
}

// build assigns indices and the timestamp, hashes the leaves, collects the
// tree nodes they complete and a due checkpoint.
func (s *Sequencer) build(reqs []*request, now time.Time) *pending {
	p := &pending{b: &store.Batch{}, from: s.rng.End(), rng: cloneRange(s.rng), ts: now.UTC().Truncate(time.Microsecond)}
	// Told as soon as readers can see it: a monitor that reads the head
	// in between would read the commit back from the store instead.
	p.b.Committed = func() { s.tell(p) }
	if p.ts.Before(s.lastTS) {
		p.ts = s.lastTS // timestamps never go back, so ledger order is time order
	}
	p.receipts = make([][]custos.Receipt, len(reqs))
	appendLeaf := func(h []byte) {
		if err := p.rng.Append(h, func(id compact.NodeID, hash []byte) {
			p.b.Nodes = append(p.b.Nodes, store.Node{Pos: NodePos(id), Hash: hash})
		}); err != nil {
			panic(err) // appending to a range that begins at 0 cannot fail
		}
	}
	for i, r := range reqs {
		p.receipts[i] = make([]custos.Receipt, 0, len(r.events)+len(r.states))
		for j := range r.events {
			e := r.events[j]
			e.Index, e.Timestamp, e.LeafVersion, e.SubmittedBy = p.rng.End(), p.ts, leaf.Current, r.by
			if e.Kind == "" {
				e.Kind = custos.KindClient
			}
			h := leaf.LeafHash(&e)
			appendLeaf(h)
			p.b.Events = append(p.b.Events, e)
			p.receipts[i] = append(p.receipts[i], custos.Receipt{Index: e.Index, LeafHash: h})
		}
		for j := range r.states {
			st := r.states[j]
			st.Index, st.Timestamp, st.SubmittedBy = p.rng.End(), p.ts, r.by
			h := leaf.StateHash(&st)
			appendLeaf(h)
			p.b.States = append(p.b.States, st)
			p.receipts[i] = append(p.receipts[i], custos.Receipt{Index: st.Index, LeafHash: h})
		}
	}
	// State changes are anchored at once: a checkpoint covers them in the
	// same transaction, so readers on every node can prove them.
	if cp, err := s.dueCheckpoint(p.rng, p.ts, len(p.b.States) > 0); err != nil {
		s.cfg.Logger.Error("sign checkpoint", "err", err)
	} else {
		p.b.Checkpoint = cp
	}
	return p
}

// write runs one append: under the store's lock, after catching up with the
// head, when the store is shared; directly otherwise. batch builds what to
// write from the (now current) state at the ledger's time now — the store's
// clock when it has one (every node then stamps records alike), this
// process's otherwise; nil writes nothing.
func (s *Sequencer) write(ctx context.Context, batch func(now time.Time) *store.Batch) error {
	sw, shared := s.st.(store.SharedWriter)
	if !shared {
		b := batch(s.cfg.Now())
		if b == nil {
			return nil
		}
		return s.st.Append(ctx, b)
	}
	return sw.AppendLocked(ctx, func(h store.Head) (*store.Batch, error) {
		if err := s.resync(ctx, h); err != nil {
			return nil, err
		}
		now := s.cfg.Now()
		if !h.Now.IsZero() && !s.cfg.LocalClock {
			s.health.clock(now.Sub(h.Now), s.cfg.MaxClockSkew, s.cfg.Logger)
			now = h.Now
		}
		return batch(now), nil
	})
}

// resync brings the in-memory tree, timestamp and checkpoint position to the
// store's head, which other nodes (or a commit whose outcome this node never
// heard) may have moved.
func (s *Sequencer) resync(ctx context.Context, h store.Head) error {
	if h.Size != s.rng.End() || h.NodeCount != s.nodes {
		if want := NodeCount(h.Size); h.NodeCount != want {
			return fmt.Errorf("ledger: store holds %d tree nodes for %d leaves, want %d: run custos verify", h.NodeCount, h.Size, want)
		}
		rng, err := LoadRange(ctx, s.nodeReader, h.Size)
		if err != nil {
			return fmt.Errorf("ledger: load tree: %w", err)
		}
		s.rng, s.nodes = rng, h.NodeCount
	}
	if h.LastTimestamp.After(s.lastTS) {
		s.lastTS = h.LastTimestamp
	}
	cp, err := s.cps.LatestCheckpoint(ctx)
	switch {
	case errors.Is(err, custos.ErrNotFound):
	case err != nil:
		return fmt.Errorf("ledger: read latest checkpoint: %w", err)
	case cp.Size != s.lastCP:
		s.lastCP, s.lastCPAt = cp.Size, cp.CreatedAt
	}
	return nil
}

// commit writes a group of requests in one transaction and answers each.
//
// When the database refuses the group for a permanent reason (the data of
// some request: store.IsPermanent), retrying it whole would fail again and
// fail every request in it. Instead the group is split in two halves, each
// committed on its own (the first before the second, so indices stay
// contiguous), and so on down until the request at fault stands alone: it
// alone is refused, every other one is acknowledged. Any other failure
// (pushback: the database is down or busy, or an unknown cause) fails the
// whole group with custos.Unavailable, nothing stored. Each attempt builds
// on a copy of the committed state, and the state changes only once an
// attempt has durably committed.
func (s *Sequencer) commit(reqs []*request) {
	p, err := s.attempt(reqs)
	switch {
	case err == nil:
		for i, r := range reqs {
			r.resp <- result{receipts: p.receipts[i]}
		}
	case store.IsPermanent(err) && len(reqs) > 1:
		s.cfg.Logger.Warn("the database refused a group commit; committing its requests apart to find the one at fault",
			"requests", len(reqs), "err", err)
		mid := len(reqs) / 2
		s.commit(reqs[:mid])
		s.commit(reqs[mid:])
	case store.IsPermanent(err):
		s.cfg.Logger.Warn("the database refused a request's records", "records", len(reqs[0].events)+len(reqs[0].states), "err", err)
		reqs[0].resp <- result{err: refused(err)}
	default:
		err = &custos.Error{Op: "ledger.append", Kind: custos.Unavailable,
			Detail: "the ledger could not commit; nothing was stored, retry later", Err: err}
		for _, r := range reqs {
			r.resp <- result{err: err}
		}
	}
}

// attempt writes reqs in one transaction (which outlives the requests'
// contexts, bounded by CommitTimeout) and, once it committed, moves the
// sequencer's state to the new head.
func (s *Sequencer) attempt(reqs []*request) (*pending, error) {
	start := s.cfg.Now()
	var p *pending
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CommitTimeout)
	err := s.write(ctx, func(now time.Time) *store.Batch {
		p = s.build(reqs, now)
		return p.b
	})
	cancel()
	s.health.commit(err)
	n := 0
	if p != nil {
		n = len(p.b.Events) + len(p.b.States)
	}
	if s.cfg.Observe != nil {
		s.cfg.Observe(n, s.cfg.Now().Sub(start), err)
	}
	if err != nil {
		if !store.IsPermanent(err) {
			s.cfg.Logger.Error("ledger commit failed", "events", n, "requests", len(reqs), "cause", store.CauseOf(err).String(), "err", err)
		}
		return nil, err
	}
	s.rng, s.lastTS = p.rng, p.ts
	s.nodes += uint64(len(p.b.Nodes))
	if p.b.Checkpoint != nil {
		s.lastCP, s.lastCPAt = p.b.Checkpoint.Size, p.b.Checkpoint.CreatedAt
	}
	s.tell(p) // unless the store did at its commit
	return p, nil
}

// refused is the answer to a request whose records the database refused on
// their own: the store's own kind when it gave one (a conflict), otherwise
// Invalid. Nothing of the request was stored.
func refused(err error) error {
	var e *custos.Error
	if errors.As(err, &e) && e.Kind != custos.Internal && e.Kind != custos.Unavailable {
		return &custos.Error{Op: "ledger.append", Kind: e.Kind, Detail: e.Detail, Fields: e.Fields, Err: err}
	}
	return &custos.Error{Op: "ledger.append", Kind: custos.Invalid,
		Detail: "the database refused the records of this request as invalid; nothing of it was stored", Err: err}
}

// dueCheckpoint signs a checkpoint for rng when the log grew since the last
// one and one is due: every CheckpointEvery leaves, CheckpointInterval after
// the last one, or now (force).
func (s *Sequencer) dueCheckpoint(rng *compact.Range, now time.Time, force bool) (*store.Checkpoint, error) {
	size := rng.End()
	if size == s.lastCP {
		return nil, nil
	}
	byCount := size-s.lastCP >= s.cfg.CheckpointEvery
	byTime := now.Sub(s.lastCPAt) >= s.cfg.CheckpointInterval
	if !force && !byCount && !byTime {
		return nil, nil
	}
	if now.Before(s.lastCPAt) {
		now = s.lastCPAt // checkpoints are dated in order, whatever the clock does
	}
	signed, err := s.signer.Sign(size, Root(rng))
	if err != nil {
		return nil, err
	}
	return &store.Checkpoint{Size: size, Note: signed, CreatedAt: now}, nil
}

// checkpoint publishes a checkpoint of the committed tree when one is due (or
// force), so an idle log still gets a checkpoint of its tail.
func (s *Sequencer) checkpoint(force bool) {
	var cp *store.Checkpoint
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CommitTimeout)
	defer cancel()
	err := s.write(ctx, func(now time.Time) *store.Batch {
		now = now.UTC().Truncate(time.Microsecond)
		var err error
		if cp, err = s.dueCheckpoint(s.rng, now, force); err != nil {
			s.cfg.Logger.Error("sign checkpoint", "err", err)
		}
		if cp == nil {
			return nil
		}
		return &store.Batch{Checkpoint: cp}
	})
	s.health.commit(err) // a node that cannot take the lock even to sign is not ready
	if err != nil {
		s.cfg.Logger.Error("store checkpoint", "err", err)
		return
	}
	if cp != nil {
		s.lastCP, s.lastCPAt = cp.Size, cp.CreatedAt
	}
}

// Healthy reports why this node cannot append now — its last commit failed
// for a reason other than the data (the database is down, or another node
// held the append lock past its tenure), or its clock is further from the
// ledger's than MaxClockSkew — or nil. Readiness reports it.
func (s *Sequencer) Healthy() error { return s.health.err() }

// ClockSkew is this process's clock minus the ledger's, as last measured
// (zero when the store has no clock of its own).
func (s *Sequencer) ClockSkew() time.Duration { return s.health.skew() }
