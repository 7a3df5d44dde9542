package ledger

import (
	"context"
	"errors"
	"sync"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
)

// auditChunk is how many consecutive ledger indices one reader handles. With
// its one look-ahead row it matches the SQLite store's read size (5,000
// rows), so no row is decoded twice; correctness does not depend on it.
const auditChunk = 4999

// leafChunk is the stored events whose index lies in [k·auditChunk,
// (k+1)·auditChunk), with their recomputed leaf hashes.
type leafChunk struct {
	events []custos.Event
	hashes [][]byte
	more   bool // some event lies beyond this chunk
	err    error
}

var errChunkFull = errors.New("chunk full")

// readLeaves streams the events in index order, read and hashed by `workers`
// goroutines in parallel, each on its own range. The stream is exactly what
// one sequential scan would give; memory holds at most 2·workers chunks.
// Every goroutine it starts is counted in wg, so that the caller can wait
// for them after cancelling ctx: none outlives the audit.
func readLeaves(ctx context.Context, sc store.Scanner, workers int, wg *sync.WaitGroup) <-chan leafChunk {
	order := make(chan chan leafChunk, workers)
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(order)
		for k := uint64(0); ; k++ {
			ch := make(chan leafChunk, 1)
			select {
			case order <- ch:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func(k uint64) { defer wg.Done(); ch <- readChunk(ctx, sc, k) }(k)
		}
	}()
	out := make(chan leafChunk, workers)
	go func() {
		defer wg.Done()
		defer close(out)
		for ch := range order {
			c := <-ch
			select {
			case out <- c:
			case <-ctx.Done():
				return
			}
			if c.err != nil || !c.more {
				return
			}
		}
	}()
	return out
}

func readChunk(ctx context.Context, sc store.Scanner, k uint64) leafChunk {
	from, to := k*auditChunk, (k+1)*auditChunk
	c := leafChunk{events: make([]custos.Event, 0, auditChunk), hashes: make([][]byte, 0, auditChunk)}
	sums := make([]byte, 0, auditChunk*32) // the chunk's hashes, in one allocation
	var scratch []byte
	err := sc.ScanEvents(ctx, from, func(e custos.Event) error {
		if e.Index >= to {
			c.more = true
			return errChunkFull
		}
		c.events = append(c.events, e)
		n := len(sums)
		sums, scratch = leaf.AppendLeafHash(sums, scratch, &c.events[len(c.events)-1])
		c.hashes = append(c.hashes, sums[n:len(sums):len(sums)])
		return nil
	})
	if err != nil && !errors.Is(err, errChunkFull) {
		c.err = err
	}
	return c
}

// streamNodes runs ScanNodes on its own goroutine and hands its nodes over in
// batches, so that reading nodes overlaps with checking events.
func streamNodes(ctx context.Context, sc store.Scanner, wg *sync.WaitGroup) (next func() (store.Node, bool), errp *error) {
	ch := make(chan []store.Node, 4)
	var scanErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ch)
		batch := make([]store.Node, 0, 1024)
		err := sc.ScanNodes(ctx, func(n store.Node) error {
			batch = append(batch, n)
			if len(batch) == cap(batch) {
				select {
				case ch <- batch:
				case <-ctx.Done():
					return ctx.Err()
				}
				batch = make([]store.Node, 0, 1024)
			}
			return nil
		})
		if err == nil && len(batch) > 0 {
			select {
			case ch <- batch:
			case <-ctx.Done():
			}
		}
		scanErr = err
	}()
	var cur []store.Node
	next = func() (store.Node, bool) {
		for len(cur) == 0 {
			b, ok := <-ch
			if !ok {
				return store.Node{}, false
			}
			cur = b
		}
		n := cur[0]
		cur = cur[1:]
		return n, true
	}
	return next, &scanErr
}
