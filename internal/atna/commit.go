package atna

import (
	"context"
	"time"

	"github.com/custos-audit/custos"
)

// decoded is a message ready for the ledger, with the credential that sent
// it.
type decoded struct {
	by    string
	event custos.Event
}

// size is what the message holds of the receiver's memory budget.
func (d decoded) size() int64 { return int64(len(d.event.Original.Data)) }

// committer appends one connection's messages in group commits: a batch
// commits while the next gathers in a channel of MaxBatch messages, which
// blocks the reader (and, through TCP, the sender) when full.
type committer struct {
	r         *Receiver
	transport string
	ch        chan decoded
	done      chan struct{}
}

func (r *Receiver) newCommitter(transport string) *committer {
	c := &committer{r: r, transport: transport, ch: make(chan decoded, r.cfg.MaxBatch), done: make(chan struct{})}
	go c.run()
	return c
}

// add queues a message, waiting first for its bytes in the memory budget.
func (c *committer) add(d decoded) {
	c.r.mem.Acquire(context.Background(), d.size()) // never fails without a deadline
	c.ch <- d
}

// close commits what was added and waits.
func (c *committer) close() {
	close(c.ch)
	<-c.done
}

func (c *committer) run() {
	defer close(c.done)
	max := c.r.cfg.MaxBatch
	batch := make([]decoded, 0, max)
	events := make([]custos.Event, 0, max)
	for d := range c.ch {
		batch = append(batch[:0], d)
	gather:
		for len(batch) < max {
			select {
			case d, ok := <-c.ch:
				if !ok {
					break gather
				}
				batch = append(batch, d)
			default:
				break gather
			}
		}
		// One append per run of the same submitter (UDP mixes senders).
		for len(batch) > 0 {
			n := 1
			for n < len(batch) && batch[n].by == batch[0].by {
				n++
			}
			events = events[:0]
			for _, d := range batch[:n] {
				events = append(events, d.event)
			}
			c.commit(batch[0].by, events)
			var held int64
			for _, d := range batch[:n] {
				held += d.size()
			}
			c.r.mem.Release(held)
			batch = batch[n:]
		}
	}
}

// commit appends events until they are durable. The ledger's answers:
// Invalid (a message the ledger refuses though it decoded) is isolated by
// appending one by one; anything else (the database is down, busy) is
// retried with backoff, the reader blocked meanwhile, until the receiver
// gives up at Close.
func (c *committer) commit(by string, events []custos.Event) {
	backoff := 50 * time.Millisecond
	for {
		// The append outlives the connection: a message read is committed
		// even if its sender has gone. The sequencer bounds the commit.
		_, err := c.r.app.Append(context.Background(), by, events)
		if err == nil {
			c.r.m.accepted.WithLabelValues(c.transport).Add(float64(len(events)))
			return
		}
		switch custos.KindOf(err) {
		case custos.Invalid, custos.TooLarge, custos.Conflict:
			if len(events) > 1 {
				for i := range events {
					c.commit(by, events[i:i+1])
				}
				return
			}
			c.r.refuse(c.transport, nil, by, reject(ReasonInvalid, "the ledger refused the message"), err)
			return
		}
		c.r.log.Warn("atna: commit failed; retrying", "client", by, "messages", len(events), "err", err.Error(), "retry_in", backoff.String())
		select {
		case <-time.After(backoff):
		case <-c.r.abandon:
			c.r.log.Error("atna: messages lost at shutdown: the ledger did not take them", "client", by, "messages", len(events))
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}
