package monitor

import (
	"sort"
	"sync"

	"github.com/custos-audit/custos"
)

// DefaultRecent is how many of the audit events this node committed lately
// a monitor holds by default (Config.Recent). A pass waits for its own
// records to commit behind the clients' requests: under a saturating ingest
// (25,000 events/s, 32 clients of 500-event requests on SQLite) a pass took
// up to 6.6 s, 150,000 events, and a buffer of 65,536 had the monitor read
// a quarter of all events back from the store. A held event costs its
// 424-byte struct and its text, some 0.6 KB (150 MB for a full buffer),
// and only while the monitor is that far behind.
const DefaultRecent = 262_144

// recent holds what this node's sequencer committed lately (Committed):
// for each commit, the span of ledger indices it wrote and its audit
// events as the store holds them. A pass takes the events of the spans it
// covers from here and reads from the store only the indices between
// spans: other nodes' commits on a shared store, and commits told late or
// dropped from here. Within a span an index without an event is a state
// record (the state feed gives it), so nothing of a span is read.
//
// The spans follow each other in ledger order and do not overlap. They are
// bounded by a count of events (and of spans, for commits of state records
// alone): the oldest go first. A pass forgets the spans it has passed.
type recent struct {
	mu     sync.Mutex
	spans  []span
	events int // the events the spans hold
	max    int
}

// span is one commit of this node: the indices [from, to) and its audit
// events, in index order.
type span struct {
	from, to uint64
	events   []custos.Event
}

// add holds the events of a commit of [from, to).
func (r *recent) add(from, to uint64, events []custos.Event) {
	if from >= to {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.spans); n > 0 && from < r.spans[n-1].to {
		r.drop(n) // not after the last one: a sequencer that started over
	}
	r.spans = append(r.spans, span{from, to, events})
	r.events += len(events)
	k := 0
	for k < len(r.spans) && (r.events > r.max || len(r.spans)-k > r.max) {
		r.events -= len(r.spans[k].events)
		k++
	}
	r.drop(k)
}

// within returns the spans that overlap [from, to), in ledger order.
func (r *recent) within(from, to uint64) []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := sort.Search(len(r.spans), func(i int) bool { return r.spans[i].to > from })
	var out []span
	for ; i < len(r.spans) && r.spans[i].from < to; i++ {
		out = append(out, r.spans[i])
	}
	return out
}

// forget drops the spans that end at or before index below: a pass is past
// them.
func (r *recent) forget(below uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := 0
	for k < len(r.spans) && r.spans[k].to <= below {
		r.events -= len(r.spans[k].events)
		k++
	}
	r.drop(k)
}

// drop removes the oldest k spans (their events counted out already when k
// is less than all of them).
func (r *recent) drop(k int) {
	if k == len(r.spans) {
		r.events = 0
	}
	clear(r.spans[:k]) // the events go with them
	r.spans = r.spans[k:]
}
