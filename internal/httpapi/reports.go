package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/authn"
	"github.com/custos-audit/custos/internal/report"
)

// The report routes. All three need reports:generate: a patient's access
// report and accounting of disclosures are compliance reports (a privacy
// officer answers a patient with them), not searches of the trail, and
// events:read would let every ingest-side reader compile them. Generating
// a report is recorded before it is answered: an EXPORT by the caller.

// hipaaReport answers GET /v1/reports/hipaa?from=…&to=…&format=….
func (a *API) hipaaReport(w http.ResponseWriter, r *http.Request) {
	f, from, to, err := a.reportQuery(r)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	rep, err := a.cfg.Reports.HIPAA(r.Context(), report.Request{From: from, To: to, GeneratedBy: authn.Actor(principalOf(r)).ID})
	if err != nil {
		a.problem(w, r, err)
		return
	}
	a.answerReport(w, r, f, rep, "", map[string]any{"report": "hipaa", "from": from.Format(time.RFC3339), "to": to.Format(time.RFC3339)})
}

// patientAccessReport answers GET /v1/patients/{id}/access-report.
func (a *API) patientAccessReport(w http.ResponseWriter, r *http.Request) {
	a.patientReport(w, r, "patient_access", func(ctx context.Context, req report.PatientRequest) (report.Report, error) {
		return a.cfg.Reports.PatientAccess(ctx, req)
	})
}

// patientDisclosures answers GET /v1/patients/{id}/disclosures.
func (a *API) patientDisclosures(w http.ResponseWriter, r *http.Request) {
	a.patientReport(w, r, "disclosures", func(ctx context.Context, req report.PatientRequest) (report.Report, error) {
		return a.cfg.Reports.Disclosures(ctx, req)
	})
}

func (a *API) patientReport(w http.ResponseWriter, r *http.Request, kind string,
	build func(context.Context, report.PatientRequest) (report.Report, error)) {
	f, from, to, err := a.reportQuery(r)
	if err != nil {
		a.problem(w, r, err)
		return
	}
	patient := r.PathValue("id")
	rep, err := build(r.Context(), report.PatientRequest{PatientID: patient, From: from, To: to, GeneratedBy: authn.Actor(principalOf(r)).ID})
	if err != nil {
		a.problem(w, r, err)
		return
	}
	a.answerReport(w, r, f, rep, patient, map[string]any{"report": kind})
}

// reportParams are the query parameters of the report routes.
var reportParams = map[string]bool{"from": true, "to": true, "format": true}

// reportQuery reads a report route's query string strictly (an unknown,
// repeated or empty parameter is refused, as for searches): the format and
// the period.
func (a *API) reportQuery(r *http.Request) (report.Format, time.Time, time.Time, error) {
	q, err := parseQueryOf(r.URL.RawQuery, reportParams)
	if err != nil {
		return report.Format{}, time.Time{}, time.Time{}, err
	}
	f, err := a.reportFormat(r, q)
	if err != nil {
		return report.Format{}, time.Time{}, time.Time{}, err
	}
	from, ferr := parseTime(q, "from")
	to, terr := parseTime(q, "to")
	if err := joinInvalid(ferr, terr); err != nil {
		return report.Format{}, time.Time{}, time.Time{}, err
	}
	return f, from, to, nil
}

// reportFormat picks the format from the format parameter or the Accept
// header; reports need a builder.
func (a *API) reportFormat(r *http.Request, q url.Values) (report.Format, error) {
	if a.cfg.Reports == nil {
		return report.Format{}, custos.Errorf("httpapi.report", custos.Unavailable, "reports are not configured on this server")
	}
	if len(q.Get("format")) > 16 {
		return report.Format{}, invalidParam("format", "one of "+strings.Join(a.reportFormats().Names(), ", "))
	}
	return a.reportFormats().Choose(q.Get("format"), r.Header.Get("Accept"))
}

func (a *API) reportFormats() report.Formats {
	if len(a.cfg.ReportFormats) == 0 {
		return report.Formats{report.JSON()}
	}
	return a.cfg.ReportFormats
}

// answerReport renders the report, records its generation (an EXPORT by the
// caller, durable before anything is answered), and answers it.
func (a *API) answerReport(w http.ResponseWriter, r *http.Request, f report.Format, rep report.Report, patient string, detail map[string]any) {
	var buf bytes.Buffer
	if err := f.Render(r.Context(), &buf, rep); err != nil {
		if custos.KindOf(err) == custos.Unavailable { // PDF without its browser: 503 naming it
			a.problem(w, r, err)
			return
		}
		a.problem(w, r, &custos.Error{Op: "httpapi.report", Kind: custos.Internal, Err: err})
		return
	}
	h := rep.ReportHeader()
	detail["format"], detail["checkpoint"] = f.Name, h.Checkpoint.Size
	changes, _ := json.Marshal(detail)
	e := custos.Event{Kind: custos.KindServer, User: authn.Actor(principalOf(r)), Action: custos.ActionExport, ResourceType: "Report",
		ResourceID: string(h.Kind), PatientID: patient, IPAddress: clientIP(r),
		UserAgent:     custos.Clip(r.UserAgent(), custos.MaxLength("user_agent")),
		RequestMethod: r.Method, RequestPath: custos.Clip(r.URL.Path, custos.MaxLength("request_path")),
		Changes: changes, StatusCode: http.StatusOK, Source: "custos"}
	if err := e.Normalize(a.cfg.Limits, ""); err != nil {
		a.problem(w, r, &custos.Error{Op: "httpapi.report", Kind: custos.Internal, Err: err})
		return
	}
	if _, err := a.ledger.Append(r.Context(), authn.Submitter(principalOf(r)), []custos.Event{e}); err != nil {
		a.problem(w, r, err)
		return
	}
	w.Header().Set("Content-Type", f.MediaType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`inline; filename="%s-%s%s"`, h.Kind, h.GeneratedAt.Format("20060102T150405Z"), f.Extension))
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}

// joinInvalid merges the fields of Invalid errors into one.
func joinInvalid(errs ...error) error {
	var out *custos.Error
	for _, err := range errs {
		if err == nil {
			continue
		}
		e, ok := err.(*custos.Error)
		if !ok {
			return err
		}
		if out == nil {
			out = &custos.Error{Op: e.Op, Kind: e.Kind, Detail: e.Detail}
		}
		out.Fields = append(out.Fields, e.Fields...)
	}
	if out == nil {
		return nil
	}
	return out
}
