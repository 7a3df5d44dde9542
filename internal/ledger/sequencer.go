package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

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
	reqs       chan *request

	// Owned by the run goroutine (and by Open before it starts).
	rng      *compact.Range
	nodes    uint64
	lastTS   time.Time
	lastCP   uint64
	lastCPAt time.Time

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

// Append sequences the records that the credential by submitted (audit
// events, then state records, in the same transaction) and returns their
// receipts, in that order, once durably committed. Events with no Kind are
// client events; the server sets KindServer on the events it writes about
// itself. Every record's leaf names by. A batch that carries state records
// also carries a signed checkpoint covering them, so every state record is
// anchored the moment it commits. If ctx ends first, Append returns ctx's
// error; the records may still commit, but they were not acknowledged.
func (s *Sequencer) Append(ctx context.Context, by string, events []custos.Event, states ...leaf.StateRecord) ([]custos.Receipt, error) {
	if len(events) == 0 && len(states) == 0 {
		return nil, nil
	}
	if by == "" {
		return nil, &custos.Error{Op: "ledger.append", Kind: custos.Internal, Err: errors.New("ledger: a record names the credential that submitted it")}
	}
	for i := range states {
		if err := leaf.ValidState(&states[i]); err != nil {
			return nil, &custos.Error{Op: "ledger.append", Kind: custos.Internal, Err: err}
		}
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
	rng      *compact.Range
	ts       time.Time
	receipts [][]custos.Receipt
}

// build assigns indices and the timestamp, hashes the leaves, collects the
// tree nodes they complete and a due checkpoint.
func (s *Sequencer) build(reqs []*request, now time.Time) *pending {
	p := &pending{b: &store.Batch{}, rng: cloneRange(s.rng), ts: now.UTC().Truncate(time.Microsecond)}
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
// write from the (now current) state; nil writes nothing.
func (s *Sequencer) write(ctx context.Context, batch func() *store.Batch) error {
	sw, shared := s.st.(store.SharedWriter)
	if !shared {
		b := batch()
		if b == nil {
			return nil
		}
		return s.st.Append(ctx, b)
	}
	return sw.AppendLocked(ctx, func(h store.Head) (*store.Batch, error) {
		if err := s.resync(ctx, h); err != nil {
			return nil, err
		}
		return batch(), nil
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

func (s *Sequencer) commit(reqs []*request) {
	start := s.cfg.Now()
	var p *pending
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CommitTimeout)
	err := s.write(ctx, func() *store.Batch {
		p = s.build(reqs, start)
		return p.b
	})
	cancel()
	n := 0
	if p != nil {
		n = len(p.b.Events) + len(p.b.States)
	}
	if s.cfg.Observe != nil {
		s.cfg.Observe(n, s.cfg.Now().Sub(start), err)
	}
	if err != nil {
		s.cfg.Logger.Error("ledger commit failed", "events", n, "err", err)
		err = &custos.Error{Op: "ledger.append", Kind: custos.Unavailable,
			Detail: "the ledger could not commit; nothing was stored, retry later", Err: err}
		for _, r := range reqs {
			r.resp <- result{err: err}
		}
		return
	}
	s.rng, s.lastTS = p.rng, p.ts
	s.nodes += uint64(len(p.b.Nodes))
	if p.b.Checkpoint != nil {
		s.lastCP, s.lastCPAt = p.b.Checkpoint.Size, p.b.Checkpoint.CreatedAt
	}
	for i, r := range reqs {
		r.resp <- result{receipts: p.receipts[i]}
	}
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
	now := s.cfg.Now().UTC()
	var cp *store.Checkpoint
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CommitTimeout)
	defer cancel()
	err := s.write(ctx, func() *store.Batch {
		var err error
		if cp, err = s.dueCheckpoint(s.rng, now, force); err != nil {
			s.cfg.Logger.Error("sign checkpoint", "err", err)
		}
		if cp == nil {
			return nil
		}
		return &store.Batch{Checkpoint: cp}
	})
	if err != nil {
		s.cfg.Logger.Error("store checkpoint", "err", err)
		return
	}
	if cp != nil {
		s.lastCP, s.lastCPAt = cp.Size, cp.CreatedAt
	}
}
