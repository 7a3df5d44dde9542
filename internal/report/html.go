package report

// HTML: a readable, printable document, from html/template and the
// embedded templates. The same document, printed by Chromium, is the PDF.

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"io"
)

//go:embed templates/*.tmpl
var templateFiles embed.FS

// pageTemplate is parsed once; parsing can fail only if the embedded files
// are broken, which every test of this package would show.
var pageTemplate = template.Must(template.New("report.html.tmpl").ParseFS(templateFiles, "templates/*.tmpl"))

// HTML is the format of the printable HTML document.
func HTML() Format {
	return Format{Name: "html", MediaType: "text/html; charset=utf-8", Extension: ".html", Render: renderHTML}
}

func renderHTML(_ context.Context, w io.Writer, r Report) error {
	d, err := documentOf(r)
	if err != nil {
		return err
	}
	return writeHTML(w, &d)
}

// writeHTML executes the page template, streaming to w.
func writeHTML(w io.Writer, d *document) error {
	if err := pageTemplate.Execute(w, d); err != nil {
		return fmt.Errorf("report.html: %w", err)
	}
	return nil
}

// PDF is the format of the HTML document printed by p's headless Chromium.
// When p has no browser, rendering answers p.Available's error (kind
// Unavailable, naming what is missing) before doing any work.
func PDF(p *Printer) Format {
	return Format{Name: "pdf", MediaType: "application/pdf", Extension: ".pdf",
		Render: func(ctx context.Context, w io.Writer, r Report) error {
			if err := p.Available(); err != nil {
				return err
			}
			d, err := documentOf(r)
			if err != nil {
				return err
			}
			var doc bytes.Buffer
			if err := writeHTML(&doc, &d); err != nil {
				return err
			}
			return p.Print(ctx, w, doc.Bytes(), d.footer())
		}}
}
