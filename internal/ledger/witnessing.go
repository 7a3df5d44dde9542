package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/witness"
)

// WitnessSource is what the witnesser reads and writes: the latest
// checkpoint, the nodes that prove consistency, and where cosignatures go.
type WitnessSource interface {
	NodeReader
	LatestCheckpoint(ctx context.Context) (*store.Checkpoint, error)
	store.Cosigner
}

// WitnessStatus is what one witness last said.
type WitnessStatus struct {
	Name     string
	Size     uint64    // the size it has cosigned, as far as known
	Critical string    // non-empty when it refused the log: it went backwards or forked
	LastErr  string    // the last other failure (unreachable, …), "" after a success
	LastOK   time.Time // the last cosignature
}

// Witnesser offers each new checkpoint, with a consistency proof, to the
// configured witnesses (C2SP tlog-witness) and stores their cosignatures
// with it. A witness that answers with a larger size, or refuses the proof,
// has seen another history of this log: a CRITICAL alert (log, metrics and
// readiness). A witness that is down is retried; checkpoints stay
// unwitnessed meanwhile and ingest goes on.
type Witnesser struct {
	src      WitnessSource
	ws       []*witness.Witness
	hc       *http.Client
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu     sync.Mutex
	status []WitnessStatus
}

// NewWitnesser returns a witnesser for ws; interval is how often it looks for
// a new checkpoint.
func NewWitnesser(src WitnessSource, ws []*witness.Witness, interval time.Duration, log *slog.Logger) *Witnesser {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := make([]WitnessStatus, len(ws))
	for i, w := range ws {
		st[i].Name = w.Name
	}
	return &Witnesser{src: src, ws: ws, hc: &http.Client{Timeout: 10 * time.Second}, log: log,
		interval: interval, now: time.Now, status: st}
}

// Status returns what every witness last said.
func (w *Witnesser) Status() []WitnessStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]WitnessStatus(nil), w.status...)
}

// Critical returns the first CRITICAL alert, or "".
func (w *Witnesser) Critical() string {
	for _, s := range w.Status() {
		if s.Critical != "" {
			return fmt.Sprintf("witness %s: %s", s.Name, s.Critical)
		}
	}
	return ""
}

// Run offers checkpoints until ctx ends.
func (w *Witnesser) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		w.Round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Round offers the latest checkpoint to every witness that has not cosigned
// it yet, and stores what they return.
func (w *Witnesser) Round(ctx context.Context) {
	cp, err := w.src.LatestCheckpoint(ctx)
	if err != nil {
		if !errors.Is(err, custos.ErrNotFound) {
			w.log.Warn("witnessing: read the latest checkpoint", "err", err)
		}
		return
	}
	for i, wit := range w.ws {
		st := w.Status()[i]
		if st.Critical != "" || (st.LastErr == "" && st.Size == cp.Size && !st.LastOK.IsZero()) {
			continue
		}
		line, size, err := w.offer(ctx, wit, st.Size, cp)
		w.mu.Lock()
		s := &w.status[i]
		s.Size = size
		switch {
		case err == nil:
			s.LastErr, s.LastOK = "", w.now()
		case errors.Is(err, ErrWitnessFork):
			s.Critical = err.Error()
			w.log.Error("CRITICAL: a witness has seen another history of this log: it went backwards or forked; run custos verify with a trusted checkpoint",
				"witness", wit.Name, "err", err, "alert", "CRITICAL")
		default:
			s.LastErr = err.Error()
			w.log.Warn("witnessing: checkpoint stays unwitnessed for now", "witness", wit.Name, "size", cp.Size, "err", err)
		}
		w.mu.Unlock()
		if err == nil {
			cp.Cosignatures = mergeLines(cp.Cosignatures, line)
			if err := w.src.AddCosignatures(ctx, cp.Size, cp.Cosignatures); err != nil {
				w.log.Warn("witnessing: store cosignature", "witness", wit.Name, "err", err)
			}
		}
	}
}

// ErrWitnessFork says a witness has seen another history of this log: a
// larger tree than the store's, or one that this tree does not extend.
var ErrWitnessFork = errors.New("the witness refused the log")

// offer submits cp to one witness from the size it is believed to have,
// following its answer once when it has another size. It returns the
// cosignature line and the witness's size.
func (w *Witnesser) offer(ctx context.Context, wit *witness.Witness, old uint64, cp *store.Checkpoint) ([]byte, uint64, error) {
	for try := 0; ; try++ {
		if old > cp.Size {
			return nil, old, fmt.Errorf("%w: it has cosigned size %d, but the log's latest checkpoint is size %d (the log was rolled back)", ErrWitnessFork, old, cp.Size)
		}
		var proof [][]byte
		if old > 0 && old < cp.Size {
			var err error
			if proof, err = ConsistencyProof(ctx, w.src, old, cp.Size); err != nil {
				return nil, old, fmt.Errorf("consistency proof %d→%d: %w", old, cp.Size, err)
			}
		}
		line, err := wit.AddCheckpoint(ctx, w.hc, old, proof, cp.Note)
		var conflict *witness.ConflictError
		switch {
		case err == nil:
			return line, cp.Size, nil
		case errors.As(err, &conflict) && try == 0 && conflict.Size != old:
			old = conflict.Size
			continue
		case errors.Is(err, witness.ErrInconsistent), errors.Is(err, witness.ErrConflict):
			return nil, old, fmt.Errorf("%w: %v", ErrWitnessFork, err)
		}
		return nil, old, err
	}
}

// mergeLines appends the signature lines of add that lines lacks.
func mergeLines(lines, add []byte) []byte {
	out := append([]byte(nil), lines...)
	have := map[string]bool{}
	for _, l := range splitLines(lines) {
		have[string(l)] = true
	}
	for _, l := range splitLines(add) {
		if !have[string(l)] {
			out, have[string(l)] = append(out, l...), true
		}
	}
	return out
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		if i < len(b) {
			i++
		}
		out = append(out, b[:i])
		b = b[i:]
	}
	return out
}

// WitnessSize asks a witness for the size it has cosigned for the log, and
// checks that the store's tree is consistent with what it cosigned: cp is
// offered from the store's own size (a witness there with the same root
// cosigns it again); a witness at a smaller size is offered cp with a
// consistency proof from its size (and so catches up, as the server would
// have it do); a witness at a larger size is returned as it is — the store
// was rolled back. A refusal is ErrWitnessFork.
func WitnessSize(ctx context.Context, wit *witness.Witness, hc *http.Client, cp *store.Checkpoint, nodes NodeReader) (uint64, error) {
	_, err := wit.AddCheckpoint(ctx, hc, cp.Size, nil, cp.Note)
	var conflict *witness.ConflictError
	switch {
	case err == nil:
		return cp.Size, nil
	case errors.As(err, &conflict) && conflict.Size > cp.Size:
		return conflict.Size, nil
	case errors.As(err, &conflict):
		var proof [][]byte
		if conflict.Size > 0 {
			if proof, err = ConsistencyProof(ctx, nodes, conflict.Size, cp.Size); err != nil {
				return 0, err
			}
		}
		if _, err = wit.AddCheckpoint(ctx, hc, conflict.Size, proof, cp.Note); err == nil {
			return cp.Size, nil
		}
		if errors.Is(err, witness.ErrInconsistent) || errors.Is(err, witness.ErrConflict) {
			return conflict.Size, fmt.Errorf("%w: the store's tree does not extend the one it cosigned at size %d: %v", ErrWitnessFork, conflict.Size, err)
		}
		return 0, err
	case errors.Is(err, witness.ErrInconsistent), errors.Is(err, witness.ErrConflict):
		return 0, fmt.Errorf("%w at size %d: %v", ErrWitnessFork, cp.Size, err)
	}
	return 0, err
}
