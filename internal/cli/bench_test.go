package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestBenchSmoke runs both modes of custos bench briefly against an
// in-process server: they load it, report, and count no errors.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs load against a server")
	}
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--data", dir, "--duration", "1s", "--batch", "50", "--concurrency", "4"},
		{"--data", dir, "--mode", "query", "--preload", "3000", "--patients", "100", "--duration", "1s", "--concurrency", "4"},
	} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), append([]string{"bench"}, args...), &out, &errb); code != exitOK {
			t.Fatalf("bench %v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
		for _, line := range strings.Split(out.String(), "\n") {
			if f := strings.Fields(line); len(f) > 0 && (f[0] == "http" || f[0] == "raw" || f[0] == "query" || f[0] == "preload") {
				if !strings.Contains(line, " 0 errors") || f[1] == "0" {
					t.Errorf("bench %v: %s", args, line)
				}
			}
		}
		if !strings.Contains(out.String(), "events/s") {
			t.Errorf("bench %v printed no rates:\n%s", args, out.String())
		}
	}
}

// TestReportBenchSmoke: custos bench --mode report loads a small month and
// times the reports, counting every event it loaded into the month.
func TestReportBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("loads a store")
	}
	var out, errb bytes.Buffer
	args := []string{"bench", "--mode", "report", "--data", t.TempDir(), "--preload", "20000", "--patients", "500"}
	if code := Main(context.Background(), args, &out, &errb); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"hipaa one month run 3: 20000 events in the month", "integrity ok true", "patient access report"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
}
