package report

import (
	"context"
	"encoding/json"
	"io"
	"strconv"
	"strings"

	"github.com/custos-audit/custos"
)

// Report is any of the three reports: *HIPAA, *PatientAccess or
// *Disclosures. A Renderer type-switches on it.
type Report interface {
	// ReportHeader returns the header every report carries.
	ReportHeader() *Header
}

// ReportHeader returns the report's header.
func (h *Header) ReportHeader() *Header { return h }

var (
	_ Report = (*HIPAA)(nil)
	_ Report = (*PatientAccess)(nil)
	_ Report = (*Disclosures)(nil)
)

// Renderer writes one report in one format. It returns ErrUnsupported
// (wrapped or not) for a kind of report it does not render. ctx bounds
// renderers that run a process (PDF through a headless browser).
type Renderer func(ctx context.Context, w io.Writer, r Report) error

// Format is one output format of the reports: its name (as the "format"
// parameter and the --format flag give it), its media type (as an Accept
// header asks for it), the file extension of a saved report, and the
// renderer.
type Format struct {
	Name      string // "json", "csv", "html", "pdf"
	MediaType string // "application/json", "application/zip", "text/html; charset=utf-8", "application/pdf"
	Extension string // ".json", ".zip", ".html", ".pdf"
	Render    Renderer
}

// Formats is the set of formats a server or command offers, wired in one
// place (the command line): JSON from this package, the others from the
// renderers' package.
type Formats []Format

// Lookup returns the format named name (case-insensitive).
func (fs Formats) Lookup(name string) (Format, bool) {
	for _, f := range fs {
		if strings.EqualFold(f.Name, name) {
			return f, true
		}
	}
	return Format{}, false
}

// Names lists the formats' names in order.
func (fs Formats) Names() []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Name
	}
	return out
}

// JSON is the contract format: the model's JSON encoding, indented.
func JSON() Format {
	return Format{Name: "json", MediaType: "application/json", Extension: ".json", Render: renderJSON}
}

func renderJSON(_ context.Context, w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// formatTypes are the media types each report format answers to in an
// Accept header: every format the reports have, offered or not.
var formatTypes = []struct {
	name  string
	types []string
}{
	{"json", []string{"application/json"}},
	{"csv", []string{"application/zip", "text/csv"}},
	{"html", []string{"text/html"}},
	{"pdf", []string{"application/pdf"}},
}

// Choose picks the format of a report: the one named (the "format"
// parameter, the --format flag) when name is not empty, else the first
// offered one the Accept header admits (JSON for none, or */*). An unknown
// name is Invalid; a format the reports have but this build does not offer,
// or an Accept header nothing offered satisfies, is NotAcceptable; both name
// the field "format".
func (fs Formats) Choose(name, accept string) (Format, error) {
	const op = "report.format"
	if name != "" {
		if f, ok := fs.Lookup(name); ok {
			return f, nil
		}
		for _, ft := range formatTypes {
			if strings.EqualFold(ft.name, name) {
				return Format{}, &custos.Error{Op: op, Kind: custos.NotAcceptable, Detail: "the " + ft.name + " format is not available in this build",
					Fields: []custos.FieldError{{Field: "format", Message: "one of " + strings.Join(fs.Names(), ", ")}}}
			}
		}
		return Format{}, &custos.Error{Op: op, Kind: custos.Invalid, Detail: "unknown report format",
			Fields: []custos.FieldError{{Field: "format", Message: "one of " + strings.Join(fs.Names(), ", ")}}}
	}
	if strings.TrimSpace(accept) == "" {
		accept = "*/*"
	}
	for _, r := range strings.Split(accept, ",") {
		mt, params, _ := strings.Cut(strings.TrimSpace(r), ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		if refused(params) {
			continue
		}
		for _, f := range fs {
			if mt == "*/*" || mt == "application/*" && strings.HasPrefix(f.MediaType, "application/") || accepts(f.Name, mt) {
				return f, nil
			}
		}
	}
	return Format{}, &custos.Error{Op: op, Kind: custos.NotAcceptable, Detail: "no report format matches the Accept header",
		Fields: []custos.FieldError{{Field: "format", Message: "one of " + strings.Join(fs.Names(), ", ")}}}
}

// accepts reports whether the format named name answers to media type mt.
func accepts(name, mt string) bool {
	for _, ft := range formatTypes {
		if ft.name == name {
			for _, t := range ft.types {
				if t == mt {
					return true
				}
			}
		}
	}
	return false
}

// refused reports whether media type parameters give q=0: "not this".
func refused(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "q") {
			q, err := strconv.ParseFloat(v, 64)
			return err == nil && q == 0
		}
	}
	return false
}
