package alert

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/custos-audit/custos"
)

// Kind says why an alert goes out. The set is append-only: receivers
// match on it.
type Kind string

// The kinds of alert.
const (
	// Raised: a security event was recorded (a rule raised it or an
	// application reported it).
	Raised Kind = "raised"
	// Updated: an open alert counted more hits (its count, last-seen or
	// severity changed).
	Updated Kind = "updated"
	// Status: the security event was acknowledged or resolved.
	Status Kind = "status"
)

// Alert is what goes out to a sink: one security event at one point of its
// life. An alert is immutable once it has left the ledger: the same ledger
// record always yields the same Alert, so a re-delivery carries the same
// DeliveryID.
type Alert struct {
	// ID is the security event's id. It is stable across the event's
	// life: its raise, its updates and its status changes share it.
	ID string `json:"id"`
	// Index is the ledger index of the record that raised or changed the
	// security event. Within a source it is unique and increasing: it is
	// the outbox's position.
	Index uint64 `json:"index"`
	// Kind says what the record did.
	Kind Kind `json:"kind"`
	// SecurityEvent is the security event as it stands after the record.
	SecurityEvent custos.SecurityEvent `json:"security_event"`
	// At is when the record was committed.
	At time.Time `json:"at"`
}

// DeliveryID names one delivery of one alert: "<id>:<kind>:<index>". It is
// the same on every attempt and every re-delivery, so a receiver dedupes
// on it. The id may itself contain colons; kind and index never do, so the
// id is everything before the last two.
func (a Alert) DeliveryID() string {
	return a.ID + ":" + string(a.Kind) + ":" + strconv.FormatUint(a.Index, 10)
}

// Sink sends alerts to one receiver.
//
// Deliver sends alerts, in order, and returns how many of them, from the
// first, are delivered: n == len(alerts) exactly when err is nil. When err
// is not nil, alerts[:n] are delivered and alerts[n] is not; nothing after
// alerts[n] was attempted. If err is a *PermanentError, alerts[n] can never
// be delivered (the receiver refused it for what it is); otherwise the
// failure is transient and alerts[n] is worth retrying. Deliver must honour
// ctx and must be safe to call again after any error (a sink reconnects by
// itself). Calls are never concurrent.
type Sink interface {
	// Name names the sink; the outbox stores its progress under it, so it
	// must stay the same across restarts.
	Name() string
	Deliver(ctx context.Context, alerts []Alert) (n int, err error)
}

// PermanentError is a sink's refusal of one alert that no retry can
// change: the outbox counts it, logs it and moves past the alert.
type PermanentError struct {
	DeliveryID string
	Err        error
}

func (e *PermanentError) Error() string {
	return fmt.Sprintf("delivery %s refused for good: %v", e.DeliveryID, e.Err)
}

func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is, or wraps, a *PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// retryAfter is implemented by transient errors that carry the receiver's
// own idea of when to try again (an HTTP Retry-After).
type retryAfter interface {
	RetryAfter() time.Duration
}
