package report

import (
	"context"
	"encoding/json"
	"io"
	"strings"
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
