package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/report"
)

// `custos report hipaa|patient` writes a compliance report: computed on the
// store itself (a stopped SQLite store, or PostgreSQL beside running nodes),
// or fetched from a running server with --server and --token. Either way the
// report's generation is recorded in the ledger before it is written out.

// reportCmdFlags are the flags of both report subcommands.
type reportCmdFlags struct {
	access                  accessFlags
	reports                 reportFlags
	rulesFile               string
	from, to, format, out   string
	patient                 string
	disclosures, noProgress bool
}

func reportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "hipaa" && args[0] != "patient") {
		fmt.Fprintln(stderr, "usage: custos report hipaa --from T --to T [--format json] [--out FILE]\n"+
			"       custos report patient --patient-id ID [--disclosures] [--from T] [--to T] [--format json] [--out FILE]\n"+
			"('custos report <sub> -h' for every flag)")
		return exitUsageErr
	}
	sub := args[0]
	fs := flag.NewFlagSet("report "+sub, flag.ContinueOnError)
	var c reportCmdFlags
	c.access.flags(fs)
	c.reports.flags(fs)
	fs.StringVar(&c.rulesFile, "rules", "", "the detection rules' YAML, for the unusual PHI access baseline (default: the built-in rules)")
	fs.StringVar(&c.from, "from", "", "start of the period, RFC 3339 (inclusive)")
	fs.StringVar(&c.to, "to", "", "end of the period, RFC 3339 (exclusive)")
	fs.StringVar(&c.format, "format", "json", "json (and csv, html, pdf where this build offers them)")
	fs.StringVar(&c.out, "out", "", "write the report to this file (default: standard output)")
	fs.BoolVar(&c.noProgress, "quiet", false, "do not show progress on standard error")
	if sub == "patient" {
		fs.StringVar(&c.patient, "patient-id", "", "the patient")
		fs.BoolVar(&c.disclosures, "disclosures", false, "the accounting of disclosures (45 CFR 164.528) rather than the access report")
	}
	if ok, code := parse(fs, args[1:], stderr); !ok {
		return code
	}
	if err := c.run(ctx, sub, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "custos report %s: %s\n", sub, explain(err))
		return exitError
	}
	return exitOK
}

func (c *reportCmdFlags) run(ctx context.Context, sub string, stdout, stderr io.Writer) error {
	from, err := flagTime("from", c.from)
	if err != nil {
		return err
	}
	to, err := flagTime("to", c.to)
	if err != nil {
		return err
	}
	f, err := c.reports.formats(ctx, nil).Choose(c.format, "")
	if err != nil && c.access.server == "" {
		return err
	}
	if err == nil && c.access.server == "" {
		if err := c.reports.available(f); err != nil {
			return err // before any work: no browser, no PDF
		}
	}
	var body []byte
	if c.access.server != "" {
		body, err = c.fetch(ctx, sub, from, to)
	} else {
		body, err = c.local(ctx, sub, f, from, to, stderr)
	}
	if err != nil {
		return err
	}
	if c.out == "" {
		_, err = stdout.Write(body)
		return err
	}
	if err := os.WriteFile(c.out, body, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "report written to %s (%d bytes)\n", c.out, len(body))
	return nil
}

// flagTime parses an RFC 3339 flag; "" is the zero time.
func flagTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, &custos.Error{Op: "report", Kind: custos.Invalid, Detail: "invalid --" + name,
			Fields: []custos.FieldError{{Field: name, Message: "must be an RFC 3339 time such as 2026-03-01T00:00:00Z"}}}
	}
	return t.UTC(), nil
}

// local computes the report on the store, records its generation (an
// EXPORT by the operator), and returns it rendered.
func (c *reportCmdFlags) local(ctx context.Context, sub string, f report.Format, from, to time.Time, stderr io.Writer) ([]byte, error) {
	rc, err := loadRules(c.rulesFile)
	if err != nil {
		return nil, err
	}
	off, err := openOffline(ctx, c.access.cfg, false)
	if err != nil {
		return nil, err
	}
	defer off.close()
	b := c.reports.builder(off.st, off.signer.VerifierKey(), rc, nil)
	by := operator()
	start := time.Now()
	progress := func(step, steps int, name string) {
		if !c.noProgress {
			fmt.Fprintf(stderr, "[%d/%d] %s (%.1fs)\n", step, steps, name, time.Since(start).Seconds())
		}
	}
	var rep report.Report
	patient := ""
	switch {
	case sub == "hipaa":
		rep, err = b.HIPAA(ctx, report.Request{From: from, To: to, GeneratedBy: by.ID, Progress: progress})
	case c.disclosures:
		patient = c.patient
		rep, err = b.Disclosures(ctx, report.PatientRequest{PatientID: c.patient, From: from, To: to, GeneratedBy: by.ID})
	default:
		patient = c.patient
		rep, err = b.PatientAccess(ctx, report.PatientRequest{PatientID: c.patient, From: from, To: to, GeneratedBy: by.ID})
	}
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := f.Render(ctx, &buf, rep); err != nil {
		return nil, err
	}
	h := rep.ReportHeader()
	changes, _ := json.Marshal(map[string]any{"report": h.Kind, "from": h.Period.From, "to": h.Period.To,
		"format": f.Name, "checkpoint": h.Checkpoint.Size})
	ev := custos.Event{Kind: custos.KindServer, User: authn.Actor(by), Action: custos.ActionExport, ResourceType: "Report",
		ResourceID: string(h.Kind), PatientID: patient, Changes: changes, Outcome: custos.OutcomeSuccess, Source: "custos"}
	if err := ev.Normalize(custos.DefaultLimits, ""); err != nil {
		return nil, err
	}
	if _, err := off.seq.Append(ctx, authn.Submitter(by), []custos.Event{ev}); err != nil {
		return nil, fmt.Errorf("record the report's generation: %w", err)
	}
	if !c.noProgress {
		fmt.Fprintf(stderr, "%s computed in %.1fs over checkpoint %d\n", h.Title, time.Since(start).Seconds(), h.Checkpoint.Size)
	}
	if hr, ok := rep.(*report.HIPAA); ok && hr.Warning != "" {
		fmt.Fprintln(stderr, "WARNING: "+hr.Warning)
	}
	return buf.Bytes(), nil
}

// fetch asks a running server for the report.
func (c *reportCmdFlags) fetch(ctx context.Context, sub string, from, to time.Time) ([]byte, error) {
	if c.access.token == "" {
		return nil, errors.New("--server needs --token (or CUSTOS_TOKEN)")
	}
	q := url.Values{"format": {c.format}}
	if !from.IsZero() {
		q.Set("from", from.Format(time.RFC3339Nano))
	}
	if !to.IsZero() {
		q.Set("to", to.Format(time.RFC3339Nano))
	}
	path := "/v1/reports/hipaa"
	if sub == "patient" {
		path = "/v1/patients/" + url.PathEscape(c.patient) + "/access-report"
		if c.disclosures {
			path = "/v1/patients/" + url.PathEscape(c.patient) + "/disclosures"
		}
	}
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(c.access.server, "/")+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.access.token)
	resp, err := (&http.Client{Timeout: 10 * time.Minute}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, problemMessage(b))
	}
	return b, nil
}
