package report

// The view of a report that the HTML and CSV renderings share: a document
// of sections, each with its title, the regulation it evidences, a few
// headline facts, charts and tables. Tables are row iterators over the
// model's slices, so a renderer writes each row as it goes and never holds
// a second copy of a large table. Every cell is a plain string; escaping is
// the renderer's job (html/template for HTML, neutralise for CSV).

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"iter"
	"strconv"
	"strings"
	"time"
)

// document is one report as rendered.
type document struct {
	Kind        Kind
	Title       string
	Period      string // "2026-11-01T00:00:00Z to 2026-12-01T00:00:00Z (exclusive)"
	From, To    string
	GeneratedAt string
	GeneratedBy string
	Generator   string // "custos v1.2.3"
	Checkpoint  string // "origin, size N, root <base64>"
	Note        string // the signed checkpoint note, as stored
	// IntegrityFailed puts the red banner at the top; Integrity is its
	// sentence and Problems what failed.
	IntegrityFailed bool
	Integrity       string
	Problems        []string
	Sections        []section
}

// section is one part of a report, in the order printed.
type section struct {
	ID         string // the anchor, and the prefix of its CSV files
	Title      string
	Regulation string
	Alert      bool   // drawn as a failure (integrity failed)
	Lead       string // a plain sentence at the head of the section
	Facts      []fact
	Charts     []template.HTML // built by svg.go from escaped parts
	Tables     []table
	Pre        string // a preformatted block (the signed checkpoint note)
}

// fact is one headline figure of a section.
type fact struct{ Label, Value string }

// column is one column of a table; Num right-aligns it.
type column struct {
	Title string
	Num   bool
}

// table is one table of a section, and one CSV file.
type table struct {
	Name      string // the CSV file's name without ".csv", unique in the report
	Caption   string
	Cols      []column
	Rows      iter.Seq[[]string]
	Truncated bool // the model listed only the first rows
	Empty     string
}

// rowsOf maps a slice to table rows lazily.
func rowsOf[T any](items []T, row func(T) []string) iter.Seq[[]string] {
	return func(yield func([]string) bool) {
		for _, it := range items {
			if !yield(row(it)) {
				return
			}
		}
	}
}

// chunkRows is how many rows one printed table holds: a long table is cut
// into tables of this many rows, each with its header, because Chromium's
// layout of one table across many pages grows faster than its length.
const chunkRows = 100

// Chunks cuts a table's rows into runs of at most chunkRows, numbered from
// 0, holding one run in memory at a time. An empty table yields nothing.
func (t *table) Chunks() iter.Seq2[int, [][]string] {
	return func(yield func(int, [][]string) bool) {
		buf := make([][]string, 0, chunkRows)
		i := 0
		for row := range t.Rows {
			buf = append(buf, row)
			if len(buf) == chunkRows {
				if !yield(i, buf) {
					return
				}
				i++
				buf = buf[:0]
			}
		}
		if len(buf) > 0 {
			yield(i, buf)
		}
	}
}

// countTable is the table of a breakdown: the key under its name, and the
// count.
func countTable(name, caption, keyTitle string, counts []Count) table {
	return table{
		Name: name, Caption: caption,
		Cols: []column{{Title: keyTitle}, {Title: "Count", Num: true}},
		Rows: rowsOf(counts, func(c Count) []string {
			return []string{keyLabel(c.Key), itoa(c.Count)}
		}),
		Empty: "None in the period.",
	}
}

// newDocument fills the parts every report has, from its header.
func newDocument(h *Header, defaultTitle string) document {
	d := document{
		Kind:        h.Kind,
		Title:       orDefault(h.Title, defaultTitle),
		From:        ts(h.Period.From),
		To:          ts(h.Period.To),
		GeneratedAt: ts(h.GeneratedAt),
		GeneratedBy: h.GeneratedBy,
		Generator:   strings.TrimSpace(orDefault(h.Generator.Name, "custos") + " " + h.Generator.Version),
		Checkpoint:  checkpointLine(h.Checkpoint),
		Note:        h.Checkpoint.Note,
	}
	d.Period = d.From + " to " + d.To + " (exclusive)"
	return d
}

// checkpointLine names a checkpoint in one line: origin, size and root.
func checkpointLine(c Checkpoint) string {
	if c.Size == 0 && len(c.RootHash) == 0 {
		return "none (the ledger had no signed checkpoint)"
	}
	return fmt.Sprintf("%s, tree size %d, root %s", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.RootHash))
}

// footer is the text printed at the foot of every PDF page.
func (d *document) footer() string {
	f := d.Title + " · " + d.From + " – " + d.To + " · " + d.Checkpoint
	if d.IntegrityFailed {
		f = "INTEGRITY FAILED · " + f
	}
	return f
}

// Cell formats.

// ts formats a time as RFC 3339 in UTC, "" for the zero time.
func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// tsp formats an optional time.
func tsp(t *time.Time) string {
	if t == nil {
		return ""
	}
	return ts(*t)
}

func itoa(n int64) string      { return strconv.FormatInt(n, 10) }
func utoa(n uint64) string     { return strconv.FormatUint(n, 10) }
func yesNo(b bool) string      { return map[bool]string{true: "yes", false: "no"}[b] }
func decimal(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }
func seconds(s float64) string {
	return strconv.FormatFloat(s, 'f', 1, 64) + " s"
}

// uptr formats an optional ledger index.
func uptr(p *uint64) string {
	if p == nil {
		return "none"
	}
	return utoa(*p)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// list joins a list for one cell, "none" when empty.
func list(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}
