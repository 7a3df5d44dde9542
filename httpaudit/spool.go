package httpaudit

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// spool is the queue on disk: one file per segment, named by its sequence
// number, "<seq>.open" while it is appended to and "<seq>.batch" once
// sealed (fsynced, then renamed). Batches are delivered in sequence order;
// one Custos refused as invalid is renamed "<seq>.rejected" and kept for an
// operator. One process at a time may use a spool directory.
type spool struct {
	dir  string
	log  *slog.Logger
	lock *os.File // held while open

	mu      sync.Mutex
	sealed  []segInfo // ascending seq
	open    *os.File
	openSeg segInfo
	nextSeq uint64
	total   int64
	events  int
}

type segInfo struct {
	seq    uint64
	size   int64
	events int
}

func segName(seq uint64, ext string) string { return fmt.Sprintf("%020d.%s", seq, ext) }

// openSpool opens dir, creating it, and recovers what a previous process
// left: sealed batches are queued again, an open segment is cut after its
// last whole record and sealed.
func openSpool(dir string, log *slog.Logger) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("httpaudit: spool: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s, err := recoverSpool(dir, log)
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, err
	}
	s.lock = lock
	return s, nil
}

// recoverSpool reads what dir holds.
func recoverSpool(dir string, log *slog.Logger) (*spool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("httpaudit: spool: %w", err)
	}
	s := &spool{dir: dir, log: log, nextSeq: 1}
	for _, e := range ents {
		base, ext, ok := strings.Cut(e.Name(), ".")
		seq, perr := strconv.ParseUint(base, 10, 64)
		if !ok || perr != nil || e.IsDir() {
			continue
		}
		s.nextSeq = max(s.nextSeq, seq+1)
		switch ext {
		case "open":
			if err := s.recoverOpen(seq); err != nil {
				return nil, err
			}
		case "batch":
			if err := s.load(seq); err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(s.sealed, func(a, b segInfo) int { return cmp.Compare(a.seq, b.seq) })
	return s, syncDir(dir)
}

func (s *spool) path(seq uint64, ext string) string { return filepath.Join(s.dir, segName(seq, ext)) }

// recoverOpen seals the segment a stopped process was filling, without the
// record it may have been cut in.
func (s *spool) recoverOpen(seq uint64) error {
	p := s.path(seq, "open")
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("httpaudit: spool: %w", err)
	}
	_, recs, valid, derr := decodeSegment(data)
	if len(recs) == 0 {
		s.log.Info("httpaudit: spool: removing an empty open segment", "segment", seq, "err", derr)
		return os.Remove(p)
	}
	if derr != nil {
		s.log.Warn("httpaudit: spool: an open segment ends in a partial record; keeping the whole ones", "segment", seq, "events", len(recs), "err", derr)
		if err := os.Truncate(p, int64(valid)); err != nil {
			return fmt.Errorf("httpaudit: spool: %w", err)
		}
	}
	if err := syncFile(p); err != nil {
		return err
	}
	if err := os.Rename(p, s.path(seq, "batch")); err != nil {
		return fmt.Errorf("httpaudit: spool: %w", err)
	}
	s.add(segInfo{seq: seq, size: int64(valid), events: len(recs)})
	return nil
}

func (s *spool) load(seq uint64) error {
	data, err := os.ReadFile(s.path(seq, "batch"))
	if err != nil {
		return fmt.Errorf("httpaudit: spool: %w", err)
	}
	_, recs, _, derr := decodeSegment(data)
	if derr != nil {
		s.log.Error("httpaudit: spool: a sealed batch is damaged; setting it aside", "segment", seq, "err", derr)
		return os.Rename(s.path(seq, "batch"), s.path(seq, "rejected"))
	}
	s.add(segInfo{seq: seq, size: int64(len(data)), events: len(recs)})
	return nil
}

func (s *spool) add(si segInfo) {
	s.sealed = append(s.sealed, si)
	s.total += si.size
	s.events += si.events
}

func (s *spool) append(recs [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open == nil {
		seq := s.nextSeq
		f, err := os.OpenFile(s.path(seq, "open"), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("httpaudit: spool: %w", err)
		}
		hdr := encodeHeader(newKey())
		if _, err := f.Write(hdr); err != nil {
			f.Close()
			return fmt.Errorf("httpaudit: spool: %w", err)
		}
		s.nextSeq++
		s.open, s.openSeg = f, segInfo{seq: seq, size: int64(len(hdr))}
		s.total += int64(len(hdr))
	}
	var buf []byte
	for _, r := range recs {
		buf = appendRecord(buf, r)
	}
	// One write: the records are in the page cache, so they survive the
	// process being killed, as soon as it returns.
	if _, err := s.open.Write(buf); err != nil {
		return fmt.Errorf("httpaudit: spool: %w", err)
	}
	s.openSeg.size += int64(len(buf))
	s.openSeg.events += len(recs)
	s.total += int64(len(buf))
	s.events += len(recs)
	return nil
}

func (s *spool) openEvents() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openSeg.events
}

func (s *spool) openBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openSeg.size
}

// seal makes the open segment a batch: fsync, rename, fsync the directory.
func (s *spool) seal() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open == nil || s.openSeg.events == 0 {
		return nil
	}
	f, si := s.open, s.openSeg
	s.open, s.openSeg = nil, segInfo{}
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(s.path(si.seq, "open"), s.path(si.seq, "batch"))
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		// The segment stays on disk as it is; the next start recovers it.
		s.total -= si.size
		s.events -= si.events
		return fmt.Errorf("httpaudit: spool: seal: %w", err)
	}
	s.sealed = append(s.sealed, si)
	return nil
}

func (s *spool) next() (*batch, error) {
	for {
		s.mu.Lock()
		if len(s.sealed) == 0 {
			s.mu.Unlock()
			return nil, nil
		}
		si := s.sealed[0]
		s.mu.Unlock()
		data, err := os.ReadFile(s.path(si.seq, "batch"))
		if err != nil {
			return nil, fmt.Errorf("httpaudit: spool: %w", err)
		}
		key, recs, _, derr := decodeSegment(data)
		if derr == nil {
			return &batch{seq: si.seq, key: key, recs: recs, size: si.size}, nil
		}
		s.log.Error("httpaudit: spool: a sealed batch is damaged; setting it aside", "segment", si.seq, "err", derr)
		if err := s.setAside(&batch{seq: si.seq}); err != nil {
			return nil, err
		}
	}
}

func (s *spool) drop(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sealed) > 0 && s.sealed[0].seq == seq {
		s.total -= s.sealed[0].size
		s.events -= s.sealed[0].events
		s.sealed = s.sealed[1:]
	}
}

func (s *spool) remove(b *batch) error {
	if err := os.Remove(s.path(b.seq, "batch")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("httpaudit: spool: %w", err)
	}
	s.drop(b.seq)
	return nil
}

func (s *spool) setAside(b *batch) error {
	if err := os.Rename(s.path(b.seq, "batch"), s.path(b.seq, "rejected")); err != nil {
		return fmt.Errorf("httpaudit: spool: %w", err)
	}
	s.drop(b.seq)
	return nil
}

func (s *spool) bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

func (s *spool) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events
}

// close leaves the open segment as it is (the next start seals it) and
// releases the directory.
func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.open != nil {
		err = s.open.Close()
		s.open = nil
	}
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
	return err
}

func syncFile(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("httpaudit: spool: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("httpaudit: spool: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("httpaudit: spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("httpaudit: spool: sync %s: %w", dir, err)
	}
	return nil
}
