package rules

// Bounded sliding-window state. Times are event times in Unix nanoseconds.
// Every list holds at most a rule's threshold entries, so the state of a key
// is bounded whatever the rate of its events.

// times is a sorted list of the newest hit times of one key.
type times []int64

// add inserts t in order, drops entries at or before horizon, keeps the
// newest max entries, and returns t's position (-1 when t itself was
// dropped as too old).
func (ts *times) add(t, horizon int64, max int) int {
	s := *ts
	drop := 0
	for drop < len(s) && s[drop] <= horizon {
		drop++
	}
	if drop > 0 {
		s = s[:copy(s, s[drop:])]
	}
	if t <= horizon {
		*ts = s
		return -1
	}
	i := len(s)
	for i > 0 && s[i-1] > t {
		i--
	}
	s = append(s, 0)
	copy(s[i+1:], s[i:])
	s[i] = t
	if len(s) > max {
		s = s[:copy(s, s[1:])]
		i--
	}
	*ts = s
	return i
}

// crossed reports whether the entry at position i lies in a run of k
// entries spanning less than window: the hit at i completed a threshold.
func (ts times) crossed(i, k int, window int64) bool {
	if i < 0 || k > len(ts) {
		return false
	}
	for j := max(0, i-k+1); j <= i && j+k-1 < len(ts); j++ {
		if ts[j+k-1]-ts[j] < window {
			return true
		}
	}
	return false
}

// count reports how many entries fall in (end-window, end].
func (ts times) count(end, window int64) int {
	n := 0
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i] <= end && ts[i] > end-window {
			n++
		} else if ts[i] <= end-window {
			break
		}
	}
	return n
}

// mark is one distinct thing (a user, an address key: a 64-bit hash) and the
// latest time it was seen.
type mark struct {
	h uint64
	t int64
}

// distinct is a bounded set of distinct things with their latest time.
type distinct []mark

// touch records h at t, drops marks at or before horizon, keeps the max most
// recent marks, and reports whether h is new to the set.
func (d *distinct) touch(h uint64, t, horizon int64, max int) bool {
	s := (*d)[:0]
	found := false
	for _, m := range *d {
		if m.h == h {
			found = true
			m.t = maxInt(m.t, t)
		}
		if m.t > horizon {
			s = append(s, m)
		}
	}
	if !found && t > horizon {
		s = append(s, mark{h, t})
	}
	if len(s) > max {
		oldest := 0
		for i, m := range s {
			if m.t < s[oldest].t {
				oldest = i
			}
		}
		s = append(s[:oldest], s[oldest+1:]...)
	}
	*d = s
	return !found
}

// count reports how many marks fall in (end-window, end].
func (d distinct) count(end, window int64) int {
	n := 0
	for _, m := range d {
		if m.t <= end && m.t > end-window {
			n++
		}
	}
	return n
}

// newest is the latest mark time, or min when empty.
func (d distinct) newest(min int64) int64 {
	for _, m := range d {
		min = maxInt(min, m.t)
	}
	return min
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// hash is 64-bit FNV-1a: stable across processes and nodes, no allocation.
func hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// first is the earliest entry in (end-window, end], or end when none.
func (ts times) first(end, window int64) int64 {
	for _, t := range ts {
		if t > end-window && t <= end {
			return t
		}
	}
	return end
}

// first is the earliest mark in (end-window, end], or end when none.
func (d distinct) first(end, window int64) int64 {
	f := end
	for _, m := range d {
		if m.t > end-window && m.t < f {
			f = m.t
		}
	}
	return f
}
