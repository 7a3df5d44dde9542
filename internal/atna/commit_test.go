package atna_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/atna"
	"github.com/custos-audit/custos/internal/atna/atnatest"
	"github.com/custos-audit/custos/internal/leaf"
)

// flakyLedger answers Unavailable to the first fails appends, refuses any
// batch holding the patient "refuse-me" as Invalid, and keeps the rest.
type flakyLedger struct {
	mu     sync.Mutex
	fails  int
	kept   []custos.Event
	called int
}

func (l *flakyLedger) Append(_ context.Context, by string, events []custos.Event, _ ...leaf.StateRecord) ([]custos.Receipt, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.called++
	if l.fails != 0 {
		l.fails--
		return nil, &custos.Error{Op: "ledger.append", Kind: custos.Unavailable, Detail: "the database is busy"}
	}
	for _, e := range events {
		if e.PatientID == "refuse-me" {
			return nil, &custos.Error{Op: "ledger.append", Kind: custos.Invalid, Detail: "the records are invalid"}
		}
	}
	l.kept = append(l.kept, events...)
	return make([]custos.Receipt, len(events)), nil
}

func (l *flakyLedger) patients() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.kept {
		out = append(out, e.PatientID)
	}
	return out
}

func serveFake(t *testing.T, app atna.Appender, logs *syncBuffer) (*atna.Receiver, *atnatest.PKI, string) {
	t.Helper()
	pki := atnatest.NewPKI(t, t.TempDir())
	tc, err := atna.ServerTLS(pki.ServerCert, pki.ServerKey, pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	r := atna.New(app, atna.Config{TLS: tc, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go r.ServeTLS(ln)
	return r, pki, ln.Addr().String()
}

func withPatient(p string) []byte {
	return bytes.Replace(good(), []byte(patientSecret), []byte(p), 1)
}

// TestCommitRetriesAndIsolates: a busy ledger is retried until it takes
// the batch (nothing lost, nothing twice); a batch it refuses is split so
// that only the message at fault is refused; Close commits what was read.
func TestCommitRetriesAndIsolates(t *testing.T) {
	led := &flakyLedger{fails: 3}
	logs := &syncBuffer{}
	r, pki, addr := serveFake(t, led, logs)
	conn, err := tlsDial(addr, pki)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, p := range []string{"a", "b", "refuse-me", "c"} {
		buf.Write(syslogFrame(withPatient(p)))
	}
	conn.Write(buf.Bytes())
	conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for len(led.patients()) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(led.patients(), ","); got != "a,b,c" {
		t.Errorf("kept %s, want a,b,c", got)
	}
	if !strings.Contains(logs.String(), "commit failed; retrying") || !strings.Contains(logs.String(), "reason=invalid") {
		t.Errorf("the retries and the refusal are not logged:\n%s", logs)
	}
}

// TestCloseGivesUp: when the ledger never takes a batch, Close returns at
// its deadline and logs how many messages were lost.
func TestCloseGivesUp(t *testing.T) {
	led := &flakyLedger{fails: -1} // always busy
	logs := &syncBuffer{}
	r, pki, addr := serveFake(t, led, logs)
	conn, err := tlsDial(addr, pki)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(syslogFrame(good()))
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "commit failed") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := r.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want the deadline", err)
	}
	if !strings.Contains(logs.String(), "messages lost at shutdown") {
		t.Errorf("the loss is not logged:\n%s", logs)
	}
}
