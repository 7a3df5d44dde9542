package report

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzChartLabel: whatever a client writes as a user, role or resource
// type, the chart drawing it is well-formed XML holding only the chart's
// own elements.
func FuzzChartLabel(f *testing.F) {
	for _, s := range hostile {
		f.Add(s, int64(3))
	}
	f.Add("", int64(0))
	f.Add(strings.Repeat("é", 40), int64(1<<40))
	f.Fuzz(func(t *testing.T, label string, n int64) {
		if n < 0 {
			n = -n
		}
		if !utf8.ValidString(label) {
			return // the model holds valid UTF-8 (ingest refuses the rest)
		}
		checkSVG(t, string(barChart(label, []Count{{Key: label, Count: n}, {Key: "x", Count: 1}}))+
			string(timeSeries(label, []Count{{Key: label, Count: n}}, barColour)))
	})
}

// FuzzCSVCell: any cell reads back as written, behind an apostrophe when
// it would otherwise start a formula.
func FuzzCSVCell(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cell string) {
		if !utf8.ValidString(cell) {
			return
		}
		var b bytes.Buffer
		tb := table{Cols: []column{{Title: "c"}}, Rows: rowsOf([]string{cell}, func(s string) []string { return []string{s} })}
		if err := writeTable(&b, &tb); err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(&b).ReadAll()
		if err != nil {
			t.Fatalf("%q: %v", b.String(), err)
		}
		got := "" // a lone empty cell is an empty line, which readers skip
		if len(rows) > 1 {
			got = rows[1][0]
		}
		if got != "" && strings.ContainsRune("=+-@\t\r", rune(got[0])) {
			t.Errorf("%q starts a formula", got)
		}
		// csv.Reader drops carriage returns inside quotes (\r\n becomes \n).
		noCR := func(s string) string { return strings.ReplaceAll(s, "\r", "") }
		if want := neutralise(cell); noCR(got) != noCR(want) {
			t.Errorf("read back %q, want %q", got, want)
		}
	})
}
