package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/atna/atnatest"
	"github.com/custos-audit/custos/internal/store/sqlite"
)

var atnaListeningRE = regexp.MustCompile(`msg="atna is listening" transport=tls addr=(\S+)`)

// atnaMessage is a small DICOM audit message whose patient names the
// connection and the message's place in it.
func atnaMessage(conn, seq int) []byte {
	return fmt.Appendf(nil, `<AuditMessage><EventIdentification EventActionCode="R" EventDateTime="2026-11-26T10:00:00Z" EventOutcomeIndicator="0"><EventID csd-code="110110" codeSystemName="DCM" originalText="Patient Record"/></EventIdentification><ActiveParticipant UserID="sender-%d" UserIsRequestor="true" NetworkAccessPointID="198.51.100.7" NetworkAccessPointTypeCode="2"/><AuditSourceIdentification AuditSourceID="crash-test"/><ParticipantObjectIdentification ParticipantObjectID="c%d-%d" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"/></AuditMessage>`, conn, conn, seq)
}

// TestATNACrash sends DICOM audit messages over 8 mutually authenticated
// TLS connections to the real binary (configured through CUSTOS_ATNA_*),
// kills it with SIGKILL under load, and measures what syslog, which has no
// acknowledgement, loses: the messages the senders wrote to their sockets
// that are not in the ledger after a restart. Each connection's stored
// messages must be a prefix of what it sent (nothing reordered or skipped,
// nothing invented), and verify must pass. The figures are logged (-v).
//
// The senders write as fast as they can, filling every socket buffer on
// the way, unless CUSTOS_ATNA_CRASH_RATE sets a steady rate (messages/s for
// all 8 connections together) that the server keeps up with.
func TestATNACrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	var pace time.Duration // between two messages of one connection
	if s := os.Getenv("CUSTOS_ATNA_CRASH_RATE"); s != "" {
		rate, err := strconv.Atoi(s)
		if err != nil || rate < 8 {
			t.Fatalf("CUSTOS_ATNA_CRASH_RATE=%q: want messages/s, at least 8", s)
		}
		pace = time.Second * 8 / time.Duration(rate)
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	pki := atnatest.NewPKI(t, t.TempDir())
	t.Setenv("CUSTOS_ATNA_TLS", "127.0.0.1:0")
	t.Setenv("CUSTOS_ATNA_CERT", pki.ServerCert)
	t.Setenv("CUSTOS_ATNA_KEY", pki.ServerKey)
	t.Setenv("CUSTOS_ATNA_CLIENT_CA", pki.CA)
	p := startServe(t, bin, dir)
	m := atnaListeningRE.FindStringSubmatch(p.log.String())
	if m == nil {
		p.cmd.Process.Kill()
		t.Fatalf("no ATNA listener in the log:\n%s", p.log)
	}
	const conns = 8
	written := make([]int, conns) // frames each sender's socket accepted
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for c := range conns {
		conn, err := tls.Dial("tcp", m[1], pki.ClientTLS(&pki.Client))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := bufio.NewWriterSize(conn, 16<<10)
			next := time.Now()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				if pace > 0 {
					next = next.Add(pace)
					time.Sleep(time.Until(next))
				}
				w.Write(atnatest.Frame(atnaMessage(c, seq)))
				if w.Flush() != nil {
					return // the server is gone
				}
				written[c] = seq + 1
			}
		}()
	}
	killAfter := time.Duration(800+rand.IntN(1200)) * time.Millisecond
	time.Sleep(killAfter)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	close(stop)
	wg.Wait()

	stored := storedPerConnection(t, dir, conns)
	sent, kept, worst := 0, 0, 0
	for c := range conns {
		got := stored[c]
		for i, seq := range got {
			if seq != i {
				t.Fatalf("connection %d: stored message %d is its %dth: not a prefix of what it sent", c, i, seq)
			}
		}
		if len(got) > written[c] {
			t.Fatalf("connection %d: %d stored, only %d written", c, len(got), written[c])
		}
		sent, kept = sent+written[c], kept+len(got)
		worst = max(worst, written[c]-len(got))
	}
	if kept == 0 {
		t.Fatalf("nothing was stored before the kill at %s:\n%s", killAfter, p.log)
	}
	t.Logf("rate %s; killed after %s: %d messages written to 8 sockets, %d stored; lost %d (%.2f%%), at most %d on one connection",
		cmp.Or(os.Getenv("CUSTOS_ATNA_CRASH_RATE"), "unlimited"), killAfter, sent, kept, sent-kept, 100*float64(sent-kept)/float64(sent), worst)
	out, err := exec.Command(bin, "verify", "--data", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("custos verify after the crash: %v\n%s", err, out)
	}
}

// storedPerConnection reads the ledger and returns, per connection, the
// sequence numbers of its stored messages in ledger order.
func storedPerConnection(t *testing.T, dir string, conns int) [][]int {
	t.Helper()
	// Reopen through a server start, as an operator would, so a crash
	// leaves nothing a restart cannot take up.
	st, err := sqlite.Open(context.Background(), dir, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := make([][]int, conns)
	err = st.ScanEvents(context.Background(), 0, func(e custos.Event) error {
		if e.Original == nil {
			return nil
		}
		var c, seq int
		if _, err := fmt.Sscanf(e.PatientID, "c%d-%d", &c, &seq); err != nil || c < 0 || c >= conns {
			return fmt.Errorf("event %d: patient %q was never sent", e.Index, e.PatientID)
		}
		if !bytes.Equal(e.Original.Data, atnaMessage(c, seq)) || e.SubmittedBy != "atna:pacs-1" {
			return fmt.Errorf("event %d: not stored as sent", e.Index)
		}
		out[c] = append(out[c], seq)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
