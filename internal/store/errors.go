package store

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/custos-audit/custos"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// Cause says why a store operation failed, which decides what its caller
// does about it. This file is the one place where database errors are
// classified; the stores wrap what they return with Classify.
type Cause int

const (
	// CauseUnknown: neither of the others (a fault of ours, a damaged or
	// changed schema, an I/O error). Callers treat it like pushback: nothing
	// was stored, and nothing says the data is at fault.
	CauseUnknown Cause = iota
	// CausePushback: the database is down, busy, shutting down or slow
	// (connection refused or reset, serialization failure, deadlock, lock or
	// statement timeout, too many connections, SQLite BUSY/LOCKED, the
	// deadline passed) or the ledger moved under the writer (the fence).
	// The same write may succeed if retried later.
	CausePushback
	// CausePermanent: the database refused the data itself (PostgreSQL data
	// exceptions and integrity violations, SQLite constraint and too-big
	// errors). The same write fails again however often it is retried.
	CausePermanent
)

func (c Cause) String() string {
	switch c {
	case CausePushback:
		return "pushback"
	case CausePermanent:
		return "permanent"
	}
	return "unknown"
}

// ErrPermanent marks (errors.Is) a failure caused by the data written: the
// database refused it, and retrying the same write cannot succeed.
var ErrPermanent = errors.New("the database refused the data")

// ErrPushback marks (errors.Is) a failure caused by the database's state:
// down, busy or slow. Retrying later may succeed.
var ErrPushback = errors.New("the database is unavailable or busy")

// classified is an error marked with its cause.
type classified struct {
	err   error
	cause error // ErrPermanent or ErrPushback
}

func (c *classified) Error() string   { return c.err.Error() }
func (c *classified) Unwrap() []error { return []error{c.err, c.cause} }

// Classify returns err marked with its cause (ErrPermanent or ErrPushback,
// for errors.Is), or err itself when its cause is unknown or already marked.
// Stores call it on every error their append path returns.
func Classify(err error) error {
	if err == nil || errors.Is(err, ErrPermanent) || errors.Is(err, ErrPushback) {
		return err
	}
	switch classify(err) {
	case CausePermanent:
		return &classified{err: err, cause: ErrPermanent}
	case CausePushback:
		return &classified{err: err, cause: ErrPushback}
	}
	return err
}

// CauseOf reports why err happened: an explicit mark (ErrPermanent,
// ErrPushback) anywhere in its chain wins; otherwise the database's own
// error code decides.
func CauseOf(err error) Cause {
	switch {
	case err == nil:
		return CauseUnknown
	case errors.Is(err, ErrPushback):
		return CausePushback
	case errors.Is(err, ErrPermanent):
		return CausePermanent
	}
	return classify(err)
}

// IsPermanent reports whether err was caused by the data written.
func IsPermanent(err error) bool { return CauseOf(err) == CausePermanent }

// IsPushback reports whether err says the database is down, busy or slow.
func IsPushback(err error) bool { return CauseOf(err) == CausePushback }

func classify(err error) Cause {
	// A store's own verdict on the records (a state record that conflicts
	// with the state, say) is about the data.
	var ce *custos.Error
	if errors.As(err, &ce) {
		switch ce.Kind {
		case custos.Invalid, custos.Conflict, custos.TooLarge:
			return CausePermanent
		case custos.Unavailable:
			return CausePushback
		}
	}
	// Then the database's own verdict: a server error is never a network
	// error, whatever else the chain holds.
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pgCause(pg)
	}
	var lite sqliteError
	if errors.As(err, &lite) {
		return SQLiteCause(lite.Code())
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		pgconn.Timeout(err), pgconn.SafeToRetry(err),
		errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, puddle.ErrClosedPool),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, net.ErrClosed), errors.As(err, &ne):
		return CausePushback
	}
	var connect *pgconn.ConnectError
	if errors.As(err, &connect) {
		return CausePushback
	}
	return CauseUnknown
}

// sqliteError is modernc.org/sqlite's *Error: its result code, extended
// result codes on. (An interface, so that this package does not link the
// SQLite driver.)
type sqliteError interface {
	error
	Code() int
}

// The SQLite result codes classified (sqlite3.h; stable C API numbers).
const (
	sqliteBusy       = 5
	sqliteLocked     = 6
	sqliteInterrupt  = 9
	sqliteProtocol   = 15
	sqliteTooBig     = 18
	sqliteConstraint = 19
	sqliteMismatch   = 20

	// sqliteConstraintPrimaryKey is SQLITE_CONSTRAINT_PRIMARYKEY: every
	// primary key that an append can collide on is a ledger position (an
	// index, a tree node, a checkpoint size), the fence between writers, so
	// a collision means the head moved, not that the data is bad.
	sqliteConstraintPrimaryKey = sqliteConstraint | 6<<8
	// sqliteConstraintTrigger is SQLITE_CONSTRAINT_TRIGGER, a trigger's
	// RAISE. Custos's schema has no triggers: one that refuses rows was put
	// there by someone else (tampering, or a policy of the operator's), and
	// its refusal is no verdict on the data by the schema's rules. Like a
	// PostgreSQL trigger's RAISE EXCEPTION (P0001), its cause is unknown.
	sqliteConstraintTrigger = sqliteConstraint | 7<<8
)

// SQLiteCause classifies a SQLite result code (primary or extended).
func SQLiteCause(code int) Cause {
	switch code & 0xff {
	case sqliteBusy, sqliteLocked, sqliteInterrupt, sqliteProtocol:
		return CausePushback
	case sqliteConstraint:
		switch code {
		case sqliteConstraintPrimaryKey:
			return CausePushback
		case sqliteConstraintTrigger:
			return CauseUnknown
		}
		return CausePermanent
	case sqliteTooBig, sqliteMismatch:
		return CausePermanent
	}
	return CauseUnknown
}

// fenceTables are the tables whose primary key is a ledger position: a
// unique violation there is the fence between writers (another append
// took the position), not a fault of the data.
var fenceTables = map[string]bool{"tree_nodes": true, "state_records": true, "checkpoints": true, "events": true}

func pgCause(pg *pgconn.PgError) Cause {
	code := pg.Code
	switch {
	case code == "23505":
		table := pg.TableName
		if t, ok := strings.CutPrefix(table, "events_"); ok && t != "" {
			table = "events" // a monthly partition
		}
		if fenceTables[table] && strings.HasSuffix(pg.ConstraintName, "_pkey") {
			return CausePushback
		}
		return CausePermanent
	case code == "23514" && pg.ConstraintName == "":
		// "no partition of relation events found for row": the store did
		// not create the partition, which is not the data's fault.
		return CauseUnknown
	}
	switch PGCause(code) {
	case CausePermanent:
		return CausePermanent
	case CausePushback:
		return CausePushback
	}
	return CauseUnknown
}

// PGCause classifies a PostgreSQL SQLSTATE alone (without the table and
// constraint that tell the fence from other unique violations: see
// Classify).
func PGCause(sqlstate string) Cause {
	if len(sqlstate) != 5 {
		return CauseUnknown
	}
	switch sqlstate {
	case "55P03", // lock_not_available (lock_timeout)
		"55006",                            // object_in_use
		"57014",                            // query_canceled (statement_timeout)
		"57P01", "57P02", "57P03", "57P05": // admin/crash shutdown, cannot connect now, idle session timeout
		return CausePushback
	case "54000", "54001": // program_limit_exceeded (an index row too large), statement_too_complex
		return CausePermanent
	}
	switch sqlstate[:2] {
	case "22", // data exception: invalid byte sequence 22021, untranslatable character 22P05, …
		"23": // integrity constraint violation
		return CausePermanent
	case "08", // connection exception
		"40", // transaction rollback: serialization failure 40001, deadlock 40P01
		"53": // insufficient resources: too many connections 53300, disk full, out of memory
		return CausePushback
	}
	return CauseUnknown
}
