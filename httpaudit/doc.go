// Package httpaudit is net/http middleware that records one Custos audit
// event per request: who (from the application's own authentication), did
// what (from the method, or a route's override), to which resource and
// patient (from Go 1.22 ServeMux patterns, FHIR-style paths, or the
// application), from where (the connection, or forwarding headers set by
// trusted proxies only), with which outcome, and for writes what changed
// (a redacted JSON diff or body).
//
// It imports only the standard library and Custos's root and client
// packages (a test enforces it), so any Go program can take it in.
//
// # Delivery
//
// Events leave the request path through a bounded channel; a writer
// goroutine computes a write's changes (decode, diff, redaction: nothing
// unredacted reaches the disk or Custos), brings every field within what
// Custos accepts, and appends the events to the spool, a directory of
// segment files. A segment is sealed into a batch after BatchSize events,
// FlushInterval, or a few MiB; each batch carries an idempotency key written
// with it, and is removed only after Custos acknowledged it, so batches are
// delivered in order, survive a crash or SIGKILL of the application (events
// are in the spool as soon as the writer wrote them; a sealed batch is
// fsynced and survives power loss too), and are never appended twice: a
// batch retried after a crash between Custos's commit and the application's
// removal sends the same key, and Custos answers the first receipts.
//
// Invariants:
//   - a batch's content and key never change once sealed;
//   - a batch is removed from the spool only after Custos acknowledged it
//     (or refused it as invalid, in which case it is set aside, never
//     dropped silently);
//   - the spool never exceeds SpoolMaxBytes; an event that does not fit is
//     dropped and counted, OnSpoolFull is called, and under RefuseRequests
//     later requests are answered 503 before their handler runs until the
//     spool drained below 90%;
//   - a fail-closed route's response leaves the process only after Custos
//     acknowledged its event.
//
// Without SpoolDir the queue is in memory only: the same order and bounds,
// but events not yet delivered are lost if the process dies.
package httpaudit
