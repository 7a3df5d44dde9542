package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/store"
	"github.com/custos-audit/custos/internal/witness"
	"github.com/prometheus/client_golang/prometheus"
)

// checkBeforeStart refuses to extend a store that fails the cheap checks:
// its schema is the migrations' own, its records are contiguous, and its
// unsigned tail is no more than a crash leaves. (ledger.Open then checks the
// latest checkpoint; CheckState the state tables; the witnesses the size.)
func checkBeforeStart(ctx context.Context, st store.Store, cfg ledger.Config) error {
	if err := checkSchema(ctx, st); err != nil {
		return fmt.Errorf("%w; refusing to start: run custos verify", err)
	}
	return ledger.CheckBeforeStart(ctx, st, cfg)
}

// recordLogKey checks the state tables against the ledger and the signing
// key against the one the ledger records, recording it on the first start.
func recordLogKey(ctx context.Context, st store.Store, seq *ledger.Sequencer, signer *ledger.Signer) error {
	p, err := ledger.CheckState(ctx, st, signer.VerifierKey())
	if err != nil {
		return err
	}
	if rec, err := p.RecordedKey(); err != nil || rec != "" {
		return err
	}
	_, err = seq.Append(ctx, "custos", nil, ledger.LogKeyRecord(signer.VerifierKey()))
	return err
}

func parseWitnesses(specs []string) ([]*witness.Witness, error) {
	var out []*witness.Witness
	for _, s := range specs {
		w, err := witness.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("--witness %q: %w", s, err)
		}
		out = append(out, w)
	}
	return out, nil
}

// witnessBeforeStart offers the latest stored checkpoint to the witnesses
// before the server signs anything: a witness that has seen a larger tree,
// or refuses this one, proves the store was rolled back or forked, and the
// server refuses to start. A witness that is down does not stop the start;
// the witnesser retries it.
func witnessBeforeStart(ctx context.Context, wit *ledger.Witnesser) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	wit.Round(rctx)
	if c := wit.Critical(); c != "" {
		return fmt.Errorf("CRITICAL: %s; refusing to start: run custos verify with a trusted checkpoint", c)
	}
	return nil
}

// startWitnessing runs the witnesser and exports its state as metrics.
func (s *server) startWitnessing(reg *prometheus.Registry) {
	wctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go s.wit.Run(wctx)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "custos_witness_critical", Help: "1 when a witness refused the log's checkpoints: it went backwards or forked.",
	}, func() float64 {
		if s.wit.Critical() != "" {
			return 1
		}
		return 0
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "custos_witness_unwitnessed_seconds", Help: "Seconds since the oldest witness last cosigned a checkpoint.",
	}, func() float64 {
		var worst float64
		for _, st := range s.wit.Status() {
			if st.LastOK.IsZero() {
				continue
			}
			worst = max(worst, time.Since(st.LastOK).Seconds())
		}
		return worst
	}))
}

// critical is what makes the readiness probe fail: a CRITICAL witness
// alert, a node that cannot append, or a clock off from the ledger's.
func (s *server) critical() string {
	if s.wit != nil {
		if c := s.wit.Critical(); c != "" {
			return "CRITICAL: " + c
		}
	}
	if err := s.seq.Healthy(); err != nil {
		return err.Error()
	}
	return ""
}
