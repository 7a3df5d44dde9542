package report

import (
	"cmp"
	"container/heap"
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// sortCounts orders a breakdown: Count descending, then Key ascending.
func sortCounts(cs []Count) []Count {
	slices.SortFunc(cs, func(a, b Count) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return cs
}

// tally collects a small breakdown (actions, roles, sources: bounded by
// the vocabulary, not by the events).
type tally map[string]int64

func (t tally) add(k string, n int64) {
	if n > 0 {
		t[k] += n
	}
}

func (t tally) counts() []Count {
	out := make([]Count, 0, len(t))
	for k, n := range t {
		out = append(out, Count{Key: k, Count: n})
	}
	return sortCounts(out)
}

// top keeps the n largest counts of a stream of groups (users, addresses:
// as many as there are, so never all kept): a min-heap of n.
type top struct {
	n int
	h countHeap
}

func newTop(n int) *top { return &top{n: n} }

func (t *top) add(k string, c int64) {
	if c <= 0 {
		return
	}
	x := Count{Key: k, Count: c}
	if len(t.h) < t.n {
		heap.Push(&t.h, x)
		return
	}
	if less(t.h[0], x) {
		t.h[0] = x
		heap.Fix(&t.h, 0)
	}
}

func (t *top) counts() []Count {
	out := slices.Clone([]Count(t.h))
	if out == nil {
		out = []Count{}
	}
	return sortCounts(out)
}

// less orders counts by rank: a smaller count, or an equal count with a
// later key, ranks lower.
func less(a, b Count) bool {
	if a.Count != b.Count {
		return a.Count < b.Count
	}
	return a.Key > b.Key
}

type countHeap []Count

func (h countHeap) Len() int           { return len(h) }
func (h countHeap) Less(i, j int) bool { return less(h[i], h[j]) }
func (h countHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *countHeap) Push(x any)        { *h = append(*h, x.(Count)) }
func (h *countHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// roleKeys splits a stored roles array (a group key of store.ByRoles) into
// its roles; an event with no role counts under "(none)".
func roleKeys(k string) []string {
	var roles []string
	json.Unmarshal([]byte(k), &roles)
	if len(roles) == 0 {
		return []string{"(none)"}
	}
	return slices.Compact(slices.Sorted(slices.Values(roles)))
}

// dayKey turns a store.ByDay key (days since the epoch) into "2006-01-02".
func dayKey(k string) string {
	n, _ := strconv.ParseInt(k, 10, 64)
	return time.Unix(n*86400, 0).UTC().Format(time.DateOnly)
}

// everyDay lists the days of [from, to) with their counts, zero included,
// so that a chart shows quiet days.
func everyDay(from, to time.Time, t tally) []Count {
	out := []Count{}
	for d := from.UTC().Truncate(24 * time.Hour); d.Before(to); d = d.Add(24 * time.Hour) {
		k := d.Format(time.DateOnly)
		out = append(out, Count{Key: k, Count: t[k]})
	}
	return out
}

// nonNil returns s, or an empty slice for nil, so that JSON shows [] and
// never null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
