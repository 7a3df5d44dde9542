// Package rules owns streaming detection: the default rules of Custos's
// security monitoring, their configuration (a YAML file, DefaultYAML), and
// the Engine that runs them over committed records and decides which
// security events to raise, which open alerts to update and which address
// keys to block. It does no I/O: the caller feeds it committed records in
// ledger order and records its Outcomes back into the ledger.
//
// # Time
//
// Every decision is taken in event time, never by the wall clock. An
// event's time is its occurred_at when the client sent one no later than
// the ledger timestamp, else the ledger timestamp (a client clock ahead of
// the server's cannot push an event into the future). The watermark is the
// latest event time seen. An event at most LateAllowance behind the
// watermark is on time: it enters every window at its own time and may
// complete a threshold there, even out of order. An event further behind is
// late: it is still counted at its own time by every window that reaches
// back to it — it updates an open alert, and a later on-time event may
// cross a threshold with it — but it never opens an alert or a block on its
// own; a window that has moved past it ignores it; and the PHI baseline
// ignores an access dated on a day the user has already left (Stats counts
// both kinds).
//
// # Invariants
//
//   - Determinism: the outcomes, ids included, are a function of the
//     configuration and of the records in ledger order, nothing else. Two
//     nodes running the same rules over the same ledger derive the same
//     security events and blocks with the same ids (ID), so the ledger can
//     keep exactly one of each whichever node records it.
//   - One open alert per (rule, key). A hit while it is open updates its
//     count and last-seen (Update) and never raises a second one; it closes
//     once its key has been quiet for the rule's window, or when resolved.
//     Rules that raise once per event (auth_failure, data_export,
//     configuration_change) have no open alert.
//   - A key under a block in force raises nothing new from the address rules
//     (brute_force, slow_brute_force, password_spraying); its open alerts
//     still count. failures_then_success still fires: a success from a
//     blocked key means the block was not enforced where it happened.
//   - An allow-listed key is evaluated and reported (Outcome.AllowListed)
//     and never blocked. No block is ever wider than Config.BlockLimits.
//   - An address key is an IPv4 address, or the IPv6 address masked to
//     Config.IPv6Prefix (/64 by default): rotating the low bits is one key.
//   - Memory grows with active keys, not with events: each key holds at most
//     a threshold's worth of entries per rule, and keys idle (in event time)
//     for longer than every window that could need them are evicted.
//   - Rebuild replays the stored window and takes every decision again:
//     a restart forgets nothing, raises nothing twice, and returns what the
//     ledger lacks.
//
// The engine is safe for concurrent use, but records must come from one
// tailer, in ledger order.
package rules
