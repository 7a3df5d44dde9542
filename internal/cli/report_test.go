package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/ledger"
	"github.com/custos-audit/custos/internal/ledger/ledgertest"
	"github.com/custos-audit/custos/internal/report"
	"github.com/custos-audit/custos/internal/store"
)

// TestReportCommand: `custos report` on a stopped store writes the report,
// shows progress on standard error, records its generation (an EXPORT), and
// refuses a bad period or format with exit 2, naming the flag.
func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l := ledgertest.Open(t, dir, "custos.test/report", ledger.Config{})
	if _, err := l.Seq.Append(ctx, "custos", nil, ledger.LogKeyRecord(l.Signer.VerifierKey())); err != nil {
		t.Fatal(err)
	}
	exp := custos.Event{User: custos.User{ID: "dr.grey", Roles: []string{"physician"}}, Action: custos.ActionExport,
		ResourceType: "DocumentReference", PatientID: "p-1", Outcome: custos.OutcomeSuccess, Source: "ehr",
		Disclosure: &custos.Disclosure{Recipient: "Acme Insurance", Purpose: "claim review"}}
	if _, err := l.Seq.Append(ctx, "apikey:ehr", []custos.Event{exp}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	from, to := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	var out, errb bytes.Buffer
	if code := Main(ctx, []string{"report", "hipaa", "--data", dir, "--from", from, "--to", to}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var h report.HIPAA
	if err := json.Unmarshal(out.Bytes(), &h); err != nil {
		t.Fatal(err)
	}
	if !h.Integrity.OK || h.DataAccess.Exports.Total != 1 || len(h.DataAccess.Exports.Disclosures) != 1 {
		t.Fatalf("report: %+v", h)
	}
	if !strings.Contains(errb.String(), "[7/7]") {
		t.Errorf("no progress on stderr: %s", errb.String())
	}
	out.Reset()
	if code := Main(ctx, []string{"report", "patient", "--disclosures", "--data", dir, "--patient-id", "p-1", "--quiet"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var d report.Disclosures
	if err := json.Unmarshal(out.Bytes(), &d); err != nil || d.Total != 1 {
		t.Fatalf("disclosures: %+v, %v", d, err)
	}
	for _, args := range [][]string{
		{"report", "hipaa", "--data", dir, "--from", to, "--to", from},
		{"report", "hipaa", "--data", dir, "--from", "yesterday", "--to", to},
		{"report", "hipaa", "--data", dir, "--from", from, "--to", to, "--format", "xml"},
	} {
		errb.Reset()
		if code := Main(ctx, args, &out, &errb); code != exitError || !strings.Contains(errb.String(), "from") && !strings.Contains(errb.String(), "format") {
			t.Errorf("%v: exit %d, %s", args, code, errb.String())
		}
	}
	// Each report generated was recorded: two EXPORTs by the operator.
	st := openStoreT(t, dir)
	evs, err := st.Events(ctx, store.Query{ResourceType: "Report", Action: string(custos.ActionExport), From: time.Now().Add(-time.Hour)})
	if err != nil || len(evs) != 2 || evs[0].ResourceID != "disclosures" || evs[1].ResourceID != "hipaa" || evs[0].PatientID != "p-1" {
		t.Fatalf("recorded generations: %+v, %v", evs, err)
	}
}

func openStoreT(t *testing.T, dir string) store.Store {
	t.Helper()
	st, _, err := openStore(context.Background(), serverConfig{data: dir}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
