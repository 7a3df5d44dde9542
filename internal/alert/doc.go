// Package alert owns the delivery of security alerts to the outside: the
// Alert that goes out, the Sink contract, two sinks (Webhook and Syslog),
// and the Outbox that drives one sink from the ledger so that no alert is
// lost while a receiver is down or Custos restarts.
//
// # Delivery guarantees
//
// An Outbox reads alerts from a Source (Custos's ledger, which is durable
// before an alert exists) in ledger-index order and hands them to its
// sink in that order. After each batch it saves, in a Progress, the index
// of the last alert the sink is done with. So:
//
//   - In order. An alert is attempted only after every alert before it
//     was delivered or refused for good. A transient failure (network,
//     timeout, 5xx, 408, 429) retries the same alert, with exponential
//     backoff and jitter between Backoff.Min and Backoff.Max (1 s … 5 min),
//     or the receiver's Retry-After if longer, for ever: nothing behind it
//     overtakes it.
//   - At least once. Nothing is lost to a receiver that is down, however
//     long, or to a restart of Custos: the position is saved only after
//     the sink reported delivery, and a new Outbox resumes after the
//     saved position (Progress.Load).
//   - What can be duplicated: the alerts delivered after the last
//     successful Progress.Save. A crash (or a failed save followed by a
//     crash) between a delivery and its save re-delivers them on restart:
//     at most one batch (OutboxConfig.BatchSize) when saves succeed, more
//     only while saves are failing (Stats.Saved stays behind
//     Stats.Position). A webhook request whose 2xx answer is lost (a
//     timeout after the receiver acted) is sent again. A re-delivery
//     carries the same delivery id (Alert.DeliveryID): receivers dedupe
//     on it. A clean shutdown (Run's context cancelled) saves what was
//     delivered first, and duplicates nothing.
//   - What can be lost: an alert the receiver refused for good — a webhook
//     answer of 4xx other than 408 and 429 — is skipped so that one bad
//     alert cannot block the queue for ever: it is logged (without its
//     contents), counted in Stats.FailedPermanent and recorded in
//     Stats.LastError; an operator watches that counter. Plain and TLS
//     syslog have no acknowledgement: a message counts as delivered when
//     written to the connection, and those written as the receiver dies
//     (its own buffers, or a connection it dropped after our last check)
//     are lost. The sink checks, before each batch, that the receiver has
//     not closed the connection, which narrows but cannot close that
//     window; RELP would close it. A receiver that accepts the connection
//     and then drops it unread (rsyslog does so, after the TLS handshake,
//     to a client certificate whose name it does not permit) is caught by
//     watching each new connection for SyslogConfig.Settle before writing:
//     ErrRefused, retried, nothing lost.
//
// # The webhook
//
// Each alert is one POST of a JSON Payload (the Alert's fields and its
// delivery_id) with the headers
//
//	Content-Type: application/json
//	Custos-Delivery-Id: <id>:<kind>:<index>
//	Custos-Timestamp: <Unix seconds when sent>
//	Custos-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//	Idempotency-Key: <the delivery id>
//
// A receiver verifies the signature over the timestamp and the raw body
// in constant time, refuses a timestamp more than a few minutes from its
// clock (a captured request cannot be replayed later), remembers the
// delivery ids it accepted (a replay within the window, or a
// re-delivery, is acknowledged and ignored), then answers 2xx. In Go,
// with the standard library only:
//
//	func verify(secret []byte, r *http.Request, body []byte) bool {
//		ts := r.Header.Get("Custos-Timestamp")
//		mac := hmac.New(sha256.New, secret)
//		mac.Write([]byte(ts + "."))
//		mac.Write(body)
//		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
//		if !hmac.Equal([]byte(want), []byte(r.Header.Get("Custos-Signature"))) {
//			return false
//		}
//		sec, err := strconv.ParseInt(ts, 10, 64)
//		return err == nil && time.Since(time.Unix(sec, 0)).Abs() <= 5*time.Minute
//	}
//
// Verify does the same.
//
// # Syslog
//
// Each alert is one RFC 5424 message, octet-counted (RFC 6587), over TCP
// or TLS (RFC 5425): APP-NAME custos, MSGID the event type, severity from
// the event's severity (informational for a status change), the alert's
// fields as structured data under the SD-ID custos@<PEN>, and the
// description as the message. It carries what the security event carries
// (user and address included) and nothing of the audit events behind it.
package alert
