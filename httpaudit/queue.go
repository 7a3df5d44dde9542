package httpaudit

import "sync"

// queue holds events between the writer and the deliverer: one open
// segment being filled, then sealed batches in order.
type queue interface {
	// append adds encoded events to the open segment, opening one (with a
	// new key) if none is.
	append(recs [][]byte) error
	// openEvents and openBytes describe the open segment.
	openEvents() int
	openBytes() int64
	// seal turns a non-empty open segment into a batch.
	seal() error
	// next returns the oldest batch, or nil.
	next() (*batch, error)
	// remove drops an acknowledged batch; setAside keeps a refused one
	// out of the way (on disk: renamed, no longer counted).
	remove(b *batch) error
	setAside(b *batch) error
	bytes() int64
	pending() int
	close() error
}

// batch is a sealed segment.
type batch struct {
	seq  uint64
	key  string
	recs [][]byte
	size int64
}

// memQueue is the queue without a spool directory.
type memQueue struct {
	mu     sync.Mutex
	sealed []*batch
	open   *batch
	seq    uint64
	total  int64
	events int
}

func newMemQueue() *memQueue { return &memQueue{} }

func (m *memQueue) append(recs [][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open == nil {
		m.seq++
		m.open = &batch{seq: m.seq, key: newKey()}
	}
	for _, r := range recs {
		m.open.recs = append(m.open.recs, r)
		m.open.size += int64(len(r) + recHeader)
		m.total += int64(len(r) + recHeader)
	}
	m.events += len(recs)
	return nil
}

func (m *memQueue) openEvents() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open == nil {
		return 0
	}
	return len(m.open.recs)
}

func (m *memQueue) openBytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open == nil {
		return 0
	}
	return m.open.size
}

func (m *memQueue) seal() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open != nil && len(m.open.recs) > 0 {
		m.sealed = append(m.sealed, m.open)
		m.open = nil
	}
	return nil
}

func (m *memQueue) next() (*batch, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sealed) == 0 {
		return nil, nil
	}
	return m.sealed[0], nil
}

func (m *memQueue) remove(b *batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sealed) > 0 && m.sealed[0] == b {
		m.sealed = m.sealed[1:]
		m.total -= b.size
		m.events -= len(b.recs)
	}
	return nil
}

func (m *memQueue) setAside(b *batch) error { return m.remove(b) }

func (m *memQueue) bytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total
}

func (m *memQueue) pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.events
}

func (m *memQueue) close() error { return nil }
