package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/monitor"
	"github.com/custos-audit/custos/internal/rules"
	"github.com/custos-audit/custos/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// startMonitor rebuilds the monitor from the ledger with the rules' settings
// rc. It returns nil when monitoring is off.
func startMonitor(ctx context.Context, cfg serverConfig, rc rules.Config, st store.Store, seq *ledger.Sequencer, signer *ledger.Signer,
	log *slog.Logger, reg *prometheus.Registry, alerted func()) (*monitor.Monitor, error) {
	if !cfg.monitor {
		return nil, nil
	}
	mon, err := monitor.New(ctx, st, seq, ledger.NewStateFeed(st, signer.VerifierKey()), monitor.Config{
		Rules: rc, Now: cfg.now, Logger: log, Limits: custos.Limits{MaxChanges: cfg.maxChanges}, Alerted: alerted})
	if err != nil {
		return nil, err
	}
	// What this node commits reaches the rules from memory; the store is
	// read for the rest (other nodes' appends on a shared store).
	seq.SetCommitted(mon.Committed)
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custos_monitor_lag_seconds",
			Help: "How far behind the newest committed event the detection rules were at their last pass."},
			func() float64 { return mon.Lag().Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "custos_monitor_events_total",
			Help:        "Audit events the detection rules observed, by where they came from: memory (this node's commits) or store (other nodes' commits, and this node's that fell out of the buffer).",
			ConstLabels: prometheus.Labels{"from": "memory"}},
			func() float64 { n, _ := mon.Observed(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "custos_monitor_events_total",
			Help:        "Audit events the detection rules observed, by where they came from: memory (this node's commits) or store (other nodes' commits, and this node's that fell out of the buffer).",
			ConstLabels: prometheus.Labels{"from": "store"}},
			func() float64 { _, n := mon.Observed(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custos_monitor_keys",
			Help: "Keys (addresses, users, sessions) the detection rules hold state for."},
			func() float64 { s := mon.Stats(); return float64(s.Addresses + s.Users + s.Sessions) }),
	)
	return mon, nil
}

// loadRules reads the rules file, or the defaults when none is named.
func loadRules(path string) (rules.Config, error) {
	if path == "" {
		return rules.DefaultConfig(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return rules.Config{}, fmt.Errorf("--rules: %w", err)
	}
	c, err := rules.ParseConfig(b)
	if err != nil {
		return rules.Config{}, fmt.Errorf("--rules %s: %w", path, err)
	}
	return c, nil
}
