// Package custos speaks the domain of the Custos audit trail: the records kept
// in the ledger (audit events), the permissions that guard them, and the kinds
// of error every layer reports.
//
// The package has no I/O and depends only on the standard library. Everything
// that stores, serves or verifies records lives in sub-packages that adapt a
// dependency (SQLite, HTTP, ...) to these types.
package custos

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies an error so that every surface (HTTP, CLI) can answer it the
// same way. Kinds are append-only: never renumber or rename one.
type Kind int

// The kinds of error. The zero value, Internal, is the safe default: its
// details are never shown to a client.
const (
	Internal         Kind = iota // a fault of ours; details stay in the logs
	Invalid                      // the request is malformed or fails validation
	NotFound                     // the named thing does not exist
	Unauthenticated              // no valid credential was presented
	PermissionDenied             // the credential lacks the permission
	TooLarge                     // the body, a field or a batch is over a limit
	UnsupportedMedia             // the content type is not one we read
	Unavailable                  // a dependency is down; the client may retry
	Conflict                     // the request conflicts with the current state
	NotAcceptable                // no representation the client accepts (a report format not offered)
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case NotFound:
		return "not found"
	case Unauthenticated:
		return "unauthenticated"
	case PermissionDenied:
		return "permission denied"
	case TooLarge:
		return "too large"
	case UnsupportedMedia:
		return "unsupported media type"
	case Unavailable:
		return "unavailable"
	case Conflict:
		return "conflict"
	case NotAcceptable:
		return "not acceptable"
	default:
		return "internal error"
	}
}

// FieldError names one field of a request and what is wrong with it. Field is
// a JSON path such as "ip_address" or "[3].user.id" for the fourth event of a
// batch.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is the error type of Custos: an operation, a kind, the underlying
// error and, for invalid input, the fields at fault. Its Detail is safe to show
// to a client; Err is not (it may hold SQL or paths).
type Error struct {
	Op     string       // the operation, e.g. "ingest.decode"
	Kind   Kind         // the classification
	Detail string       // a client-safe explanation
	Fields []FieldError // for Invalid: the fields at fault
	Err    error        // the underlying error, for logs only
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString(e.Kind.String())
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	for _, f := range e.Fields {
		fmt.Fprintf(&b, "; %s: %s", f.Field, f.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of the given kind whose client-safe detail is the
// formatted message.
func Errorf(op string, kind Kind, format string, args ...any) *Error {
	return &Error{Op: op, Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// KindOf reports the kind of err: the kind of the outermost *Error in its
// chain, or Internal when there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// ErrNotFound is returned by stores when a record does not exist.
var ErrNotFound = &Error{Kind: NotFound, Detail: "not found"}
