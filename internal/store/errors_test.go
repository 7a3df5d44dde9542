package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/store"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// liteErr stands for modernc.org/sqlite's *Error: a message and a result
// code (the real ones are checked in the sqlite package's tests).
type liteErr int

func (e liteErr) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e liteErr) Code() int     { return int(e) }

func pgErr(code, table, constraint string) error {
	return fmt.Errorf("postgres: copy events: %w", &pgconn.PgError{Severity: "ERROR", Code: code, TableName: table, ConstraintName: constraint})
}

// TestClassify: every error the append path can meet has one cause, decided
// here and nowhere else.
func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want store.Cause
	}{
		{"nil", nil, store.CauseUnknown},
		{"unknown", errors.New("something else"), store.CauseUnknown},
		// PostgreSQL: the data.
		{"invalid byte sequence", pgErr("22021", "", ""), store.CausePermanent},
		{"untranslatable character", pgErr("22P05", "", ""), store.CausePermanent},
		{"value too long", pgErr("22001", "events", ""), store.CausePermanent},
		{"not null", pgErr("23502", "events", ""), store.CausePermanent},
		{"check", pgErr("23514", "events", "events_no_poison"), store.CausePermanent},
		{"unique, not a ledger position", pgErr("23505", "api_keys", "api_keys_hash_key"), store.CausePermanent},
		{"index row too large", pgErr("54000", "events", ""), store.CausePermanent},
		// PostgreSQL: the fence is pushback, the head moved.
		{"fence tree_nodes", pgErr("23505", "tree_nodes", "tree_nodes_pkey"), store.CausePushback},
		{"fence state_records", pgErr("23505", "state_records", "state_records_pkey"), store.CausePushback},
		{"fence checkpoints", pgErr("23505", "checkpoints", "checkpoints_pkey"), store.CausePushback},
		{"fence events partition", pgErr("23505", "events_2026_11", "events_2026_11_pkey"), store.CausePushback},
		// PostgreSQL: not the data's fault.
		{"no partition for the row", pgErr("23514", "events", ""), store.CauseUnknown},
		{"undefined table", pgErr("42P01", "", ""), store.CauseUnknown},
		{"internal error", pgErr("XX000", "", ""), store.CauseUnknown},
		{"trigger raise", pgErr("P0001", "", ""), store.CauseUnknown},
		// PostgreSQL: pushback.
		{"admin shutdown", pgErr("57P01", "", ""), store.CausePushback},
		{"statement timeout", pgErr("57014", "", ""), store.CausePushback},
		{"lock timeout", pgErr("55P03", "", ""), store.CausePushback},
		{"serialization failure", pgErr("40001", "", ""), store.CausePushback},
		{"deadlock", pgErr("40P01", "", ""), store.CausePushback},
		{"too many connections", pgErr("53300", "", ""), store.CausePushback},
		{"connection failure", pgErr("08006", "", ""), store.CausePushback},
		// The network and the pool.
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, store.CausePushback},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), store.CausePushback},
		{"unexpected EOF", fmt.Errorf("postgres: commit: %w", io.ErrUnexpectedEOF), store.CausePushback},
		{"conn closed", fmt.Errorf("postgres: begin: %w", pgconn.ErrConnClosed), store.CausePushback},
		{"pool closed", fmt.Errorf("postgres: begin: %w", puddle.ErrClosedPool), store.CausePushback},
		{"deadline", fmt.Errorf("sqlite: begin: %w", context.DeadlineExceeded), store.CausePushback},
		// SQLite.
		{"sqlite busy", liteErr(5), store.CausePushback},
		{"sqlite busy snapshot", liteErr(5 | 2<<8), store.CausePushback},
		{"sqlite locked", liteErr(6), store.CausePushback},
		{"sqlite interrupt", liteErr(9), store.CausePushback},
		{"sqlite constraint check", liteErr(19 | 1<<8), store.CausePermanent},
		{"sqlite constraint not null", liteErr(19 | 5<<8), store.CausePermanent},
		{"sqlite constraint trigger", liteErr(19 | 7<<8), store.CauseUnknown}, // not ours: see SQLiteCause
		{"sqlite constraint unique", liteErr(19 | 8<<8), store.CausePermanent},
		{"sqlite primary key is the fence", liteErr(19 | 6<<8), store.CausePushback},
		{"sqlite too big", liteErr(18), store.CausePermanent},
		{"sqlite mismatch", liteErr(20), store.CausePermanent},
		{"sqlite I/O error", liteErr(10), store.CauseUnknown},
		{"sqlite corrupt", liteErr(11), store.CauseUnknown},
		// A store's own verdict.
		{"conflict", fmt.Errorf("postgres: %w", &custos.Error{Kind: custos.Conflict, Detail: "api_key x exists already"}), store.CausePermanent},
		// Explicit marks win.
		{"marked permanent", fmt.Errorf("x: %w", store.ErrPermanent), store.CausePermanent},
		{"marked pushback", fmt.Errorf("x: %w", store.ErrPushback), store.CausePushback},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := store.CauseOf(tt.err); got != tt.want {
				t.Fatalf("CauseOf(%v) = %v, want %v", tt.err, got, tt.want)
			}
			c := store.Classify(tt.err)
			if got := store.CauseOf(c); got != tt.want {
				t.Fatalf("CauseOf(Classify(%v)) = %v, want %v", tt.err, got, tt.want)
			}
			if store.IsPermanent(c) != (tt.want == store.CausePermanent) || store.IsPushback(c) != (tt.want == store.CausePushback) {
				t.Fatalf("IsPermanent/IsPushback disagree with the cause %v", tt.want)
			}
			if tt.err == nil {
				return
			}
			if !errors.Is(c, tt.err) || c.Error() != tt.err.Error() {
				t.Fatalf("Classify hides the error: %v", c)
			}
			if errors.Is(c, store.ErrPermanent) != (tt.want == store.CausePermanent) ||
				errors.Is(c, store.ErrPushback) != (tt.want == store.CausePushback) {
				t.Fatalf("Classify(%v) marks it wrongly", tt.err)
			}
			var pg *pgconn.PgError
			if errors.As(tt.err, &pg) && !errors.As(c, &pg) {
				t.Fatal("Classify hides the PgError")
			}
		})
	}
}
