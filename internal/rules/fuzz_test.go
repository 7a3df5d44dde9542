package rules_test

import (
	"errors"
	"testing"
	"time"

	"github.com/custos-audit/custos/internal/rules"
)

// FuzzParseConfig: any input is either refused with a ConfigError or gives
// a configuration the engine runs, every window positive and every
// threshold at least one. Seeds in testdata/fuzz/FuzzParseConfig.
func FuzzParseConfig(f *testing.F) {
	f.Add(rules.DefaultYAML)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := rules.ParseConfig(data)
		if err != nil {
			var ce *rules.ConfigError
			if !errors.As(err, &ce) || ce.Reason == "" {
				t.Fatalf("not a ConfigError: %v", err)
			}
			return
		}
		for _, r := range []rules.Threshold{cfg.BruteForce, cfg.SlowBruteForce, cfg.PasswordSpraying, cfg.AccountGuessing, cfg.FailuresThenSuccess} {
			if r.Window <= 0 || r.Threshold < 1 || r.Threshold > rules.MaxThreshold || !r.Severity.Valid() || r.Block < 0 {
				t.Fatalf("accepted %+v", r)
			}
		}
		if len(cfg.UnauthorizedAccess.Levels) == 0 || cfg.IPv6Prefix < cfg.BlockLimits.MinBitsIPv6 {
			t.Fatalf("accepted %+v", cfg)
		}
		fd := newFeed(t, cfg)
		for i := range 12 {
			fd.at(time.Duration(i)*time.Second, login("u", "2001:db8::1", false))
			fd.at(time.Duration(i)*time.Second, exportOf("u", 10))
		}
	})
}
