package rules_test

import (
	"fmt"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/rules"
)

// The tailer feeds committed events in ledger order and records what comes
// out: here, five failed logins from one address within a minute.
func Example() {
	cfg, err := rules.ParseConfig([]byte("rules:\n  auth_failure:\n    enabled: false\n"))
	if err != nil {
		panic(err)
	}
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	e := rules.New(cfg, time.Now)
	for i := range 6 {
		ev := custos.Event{Index: uint64(100 + i), Timestamp: start.Add(time.Duration(i) * 10 * time.Second),
			Kind: custos.KindServer, User: custos.User{ID: "alice"}, Action: custos.ActionLogin,
			ResourceType: "Session", IPAddress: "203.0.113.7", Outcome: custos.OutcomeFailure, StatusCode: 401}
		for _, o := range e.Observe(ev) {
			switch o.Kind {
			case rules.Raise, rules.Update:
				fmt.Println(o.Kind, o.SecurityEvent.EventType, o.SecurityEvent.Severity, o.SecurityEvent.Rule, o.Count)
			case rules.BlockAddress:
				fmt.Println(o.Kind, o.Block.CIDR, o.Block.BlockedUntil.Sub(o.Block.CreatedAt), o.Block.CreatedBy)
			}
		}
	}
	// Output:
	// raise BRUTE_FORCE HIGH brute_force 5
	// block 203.0.113.7/32 24h0m0s rule:brute_force
	// update BRUTE_FORCE HIGH brute_force 6
}
