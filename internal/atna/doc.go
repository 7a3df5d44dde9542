// Package atna receives IHE ATNA audit records (ITI-20): DICOM PS3.15
// AuditMessage XML carried in RFC 5424 syslog messages, over TLS with mutual
// authentication and RFC 5425 octet-counting framing, or over UDP per RFC 5426
// when an operator opts in.
//
// It owns the path from the wire to the ledger: the frame reader, the syslog
// header (github.com/leodido/go-syslog/v4), the DICOM parser (encoding/xml,
// no DTD, no entity but the five predefined ones, bounded size and depth),
// the mapping to custos.Event, and the per-connection group commit into the
// same sequencer as HTTP ingest, under the submitter "atna:<certificate
// subject>".
//
// Invariants:
//   - a message is stored whole, with the XML exactly as received
//     (custos.Event.Original), or not at all;
//   - a refused message is logged and counted by reason, never stored, and
//     its text (which may hold PHI) is never logged;
//   - a connection whose frame boundary is lost (a bad length, a frame over
//     the limit, a frame that is not syslog) is closed, so no later frame is
//     read from the wrong offset;
//   - syslog carries no acknowledgement: a frame read from the socket waits
//     at most about two group commits in memory, at most 2 × MaxBatch + 1
//     frames per connection and Config.MemoryBudget bytes in all (see
//     Receiver).
package atna
