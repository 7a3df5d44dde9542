package report

import (
	"context"
	"slices"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/leaf"
	"github.com/custos-audit/custos/internal/store"
)

// userTimeline is when a user's account was not active: the intervals
// [start, end) during which they were suspended or terminated.
type userTimeline struct {
	status   string
	inactive []inactive
}

type inactive struct {
	status     string
	start, end time.Time // end zero: still
}

// userRecord follows a user's status through their records, and notes the
// period's status changes.
func (b *Builder) userRecord(r *HIPAA, users map[string]*userTimeline, rec *leaf.StateRecord, u userDoc) {
	t := users[rec.ID]
	if t == nil {
		t = &userTimeline{status: StatusActive}
		users[rec.ID] = t
	}
	if u.Status == t.status {
		return
	}
	at := rec.Timestamp.UTC()
	if t.status != StatusActive && len(t.inactive) > 0 {
		t.inactive[len(t.inactive)-1].end = at
	}
	if u.Status != StatusActive {
		t.inactive = append(t.inactive, inactive{status: u.Status, start: at})
	}
	old := t.status
	t.status = u.Status
	if !in(at, r.Period.From, r.Period.To) {
		return
	}
	c := AccountChange{Index: rec.Index, Timestamp: at, UserID: rec.ID, Status: u.Status, Reason: u.StatusReason, By: rec.SubmittedBy}
	wf := &r.Workforce
	switch {
	case u.Status == StatusSuspended:
		wf.Suspended = append(wf.Suspended, c)
	case u.Status == StatusTerminated:
		wf.Terminated = append(wf.Terminated, c)
	case u.Status == StatusActive && old == StatusSuspended:
		wf.Reinstated = append(wf.Reinstated, c)
	}
}

// The statuses of a user account (internal/authn).
const (
	StatusActive     = "active"
	StatusSuspended  = "suspended"
	StatusTerminated = "terminated"
)

// afterTermination finds the audit events by users while their accounts
// were suspended or terminated, within the period: one indexed search per
// such interval.
func (b *Builder) afterTermination(ctx context.Context, r *HIPAA, users map[string]*userTimeline) error {
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range users {
			if !yield(id) {
				return
			}
		}
	})
	wf, lm := &r.Workforce, &r.LoginMonitoring
	for _, id := range ids {
		for _, iv := range users[id].inactive {
			from, to := maxTime(iv.start, r.Period.From), r.Period.To
			if !iv.end.IsZero() && iv.end.Before(to) {
				to = iv.end
			}
			if !from.Before(to) {
				continue
			}
			err := b.searchUser(ctx, id, from, to, r.Checkpoint.Size, func(e *custos.Event) bool {
				a := InactiveLogin{Index: e.Index, Timestamp: e.Timestamp.UTC(), UserID: id, Status: iv.status,
					Action: string(e.Action), IPAddress: e.IPAddress, Source: e.Source}
				if e.Action == custos.ActionLogin && e.Outcome == custos.OutcomeSuccess && len(lm.InactiveLogins) < b.cfg.MaxListed {
					lm.InactiveLogins = append(lm.InactiveLogins, a)
				}
				if len(wf.ActivityAfterTermination) == b.cfg.MaxListed {
					wf.Truncated = true
					return false
				}
				wf.ActivityAfterTermination = append(wf.ActivityAfterTermination, a)
				return true
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// searchUser calls fn with a user's events in [from, to) below size, newest
// first, until fn returns false.
func (b *Builder) searchUser(ctx context.Context, user string, from, to time.Time, size uint64, fn func(*custos.Event) bool) error {
	return b.search(ctx, store.Query{User: user, From: from, To: to.Add(-time.Microsecond)}, size, fn)
}

// search pages through an indexed query, newest first, skipping events at
// or beyond the checkpoint, until fn returns false.
func (b *Builder) search(ctx context.Context, q store.Query, size uint64, fn func(*custos.Event) bool) error {
	q.Limit = store.MaxLimit
	for {
		evs, err := b.src.Events(ctx, q)
		if err != nil {
			return err
		}
		for i := range evs {
			if evs[i].Index >= size {
				continue
			}
			if !fn(&evs[i]) {
				return nil
			}
		}
		if len(evs) < q.Limit {
			return nil
		}
		last := evs[len(evs)-1]
		q.After = &store.Cursor{Timestamp: last.Timestamp, Index: last.Index}
	}
}
