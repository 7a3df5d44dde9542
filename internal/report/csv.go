package report

// CSV: one file per table, zipped, with README.txt first saying what the
// report is (period, generation time, generator, checkpoint, integrity)
// and what each file holds, and summary.csv holding every section's
// headline figures. Rows are written as the tables yield them, straight into
// the zip stream.
//
// Cells come from audit events, which clients write. A spreadsheet runs a
// cell that starts with = + - @ (or a tab or carriage return, which some
// strip first) as a formula, so such cells are written with a leading
// apostrophe (OWASP's advice against CSV injection).

import (
	"archive/zip"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"time"
)

// CSV is the format of the zipped CSV tables.
func CSV() Format {
	return Format{Name: "csv", MediaType: "application/zip", Extension: ".zip", Render: renderCSV}
}

func renderCSV(ctx context.Context, w io.Writer, r Report) error {
	d, err := documentOf(r)
	if err != nil {
		return err
	}
	if err := writeZip(ctx, w, &d, r.ReportHeader().GeneratedAt); err != nil {
		return fmt.Errorf("report.csv: %w", err)
	}
	return nil
}

// writeZip writes the document's tables as a zip of CSV files, each file
// stamped with modified (the report's generation time) so the archive is
// the same bytes for the same report.
func writeZip(ctx context.Context, w io.Writer, d *document, modified time.Time) error {
	zw := zip.NewWriter(w)
	create := func(name string) (io.Writer, error) {
		return zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: modified.UTC()})
	}
	f, err := create("README.txt")
	if err != nil {
		return err
	}
	if err := writeManifest(f, d); err != nil {
		return err
	}
	if f, err = create("summary.csv"); err != nil {
		return err
	}
	if err := writeSummary(f, d); err != nil {
		return err
	}
	for _, s := range d.Sections {
		for _, t := range s.Tables {
			if err := ctx.Err(); err != nil {
				return err
			}
			if f, err = create(t.Name + ".csv"); err != nil {
				return err
			}
			if err := writeTable(f, &t); err != nil {
				return fmt.Errorf("%s.csv: %w", t.Name, err)
			}
		}
	}
	return zw.Close()
}

// writeManifest writes README.txt: what the archive is and what it holds.
func writeManifest(w io.Writer, d *document) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", d.Title)
	fmt.Fprintf(&b, "Period:       %s\n", d.Period)
	fmt.Fprintf(&b, "Generated at: %s\n", d.GeneratedAt)
	if d.GeneratedBy != "" {
		fmt.Fprintf(&b, "Requested by: %s\n", d.GeneratedBy)
	}
	fmt.Fprintf(&b, "Generator:    %s\n", d.Generator)
	fmt.Fprintf(&b, "Checkpoint:   %s\n", d.Checkpoint)
	if d.Kind == KindHIPAA {
		if d.IntegrityFailed {
			fmt.Fprintf(&b, "Integrity:    FAILED. %s\n", d.Integrity)
			for _, p := range d.Problems {
				fmt.Fprintf(&b, "              - %s\n", p)
			}
		} else {
			fmt.Fprintf(&b, "Integrity:    verified\n")
		}
	}
	b.WriteString("\nFiles (UTF-8 CSV, RFC 4180, a header row first; times are RFC 3339 UTC;\n" +
		"a cell that would start with = + - or @ starts with an apostrophe):\n\n")
	b.WriteString("  summary.csv: every section's headline figures (section, item, value)\n")
	for _, s := range d.Sections {
		fmt.Fprintf(&b, "\n  %s (%s)\n", s.Title, s.Regulation)
		for _, t := range s.Tables {
			more := ""
			if t.Truncated {
				more = " (only the first entries are listed)"
			}
			fmt.Fprintf(&b, "    %s.csv: %s%s\n", t.Name, t.Caption, more)
		}
	}
	if d.Note != "" {
		fmt.Fprintf(&b, "\nThe signed checkpoint the report rests on (C2SP signed note, as stored):\n\n%s", d.Note)
	}
	_, err := io.WriteString(w, strings.ReplaceAll(b.String(), "\n", "\r\n"))
	return err
}

// writeSummary writes every section's facts, one per row.
func writeSummary(w io.Writer, d *document) error {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	cw.Write([]string{"section", "regulation", "item", "value"})
	for _, s := range d.Sections {
		for _, f := range s.Facts {
			cw.Write(neutraliseRow([]string{s.ID, s.Regulation, f.Label, f.Value}))
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeTable writes the header and every row of t, flushing as it goes.
func writeTable(w io.Writer, t *table) error {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	head := make([]string, len(t.Cols))
	for i, c := range t.Cols {
		head[i] = c.Title
	}
	cw.Write(head)
	for row := range t.Rows {
		if err := cw.Write(neutraliseRow(row)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// neutraliseRow neutralises every cell of row, in place.
func neutraliseRow(row []string) []string {
	for i, c := range row {
		row[i] = neutralise(c)
	}
	return row
}

// neutralise makes a cell that a spreadsheet would run as a formula plain
// text, by a leading apostrophe.
func neutralise(cell string) string {
	if cell == "" {
		return cell
	}
	switch cell[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + cell
	}
	return cell
}
