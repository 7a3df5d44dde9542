package report

// Charts drawn on the server as inline SVG, so that an HTML report needs no
// script, no web font and no remote asset, and prints (and becomes a PDF)
// exactly as it shows. Every label comes from audit events, which clients
// write: every piece of text is escaped here, and the output is returned as
// template.HTML only because it was built from escaped parts.

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Chart geometry, in SVG user units (the SVG scales to the page width).
const (
	chartWidth     = 640
	barRowHeight   = 20
	barLabelWidth  = 190
	barValueWidth  = 70
	chartTitleH    = 22
	maxBars        = 25 // a bar chart shows at most this many rows
	maxLabelRunes  = 30 // labels longer than this are cut, the full text in a <title>
	seriesHeight   = 220
	seriesLeftPad  = 56
	seriesBottomPd = 36
	maxXTicks      = 8
)

// The palette: a bar colour and the colour of its text, readable in print.
const (
	barColour   = "#3b6ea8"
	failColour  = "#b3261e"
	gridColour  = "#d0d4da"
	textColour  = "#1f2328"
	mutedColour = "#57606a"
)

// barChart draws counts as horizontal bars, one row per key, in the order
// given (the model sorts breakdowns by count). It shows at most maxBars rows
// and says how many it left out. An empty breakdown draws nothing.
func barChart(title string, counts []Count) template.HTML {
	if len(counts) == 0 {
		return ""
	}
	shown := counts
	if len(shown) > maxBars {
		shown = shown[:maxBars]
	}
	var most int64
	for _, c := range shown {
		most = max(most, c.Count)
	}
	rows := len(shown)
	more := len(counts) - len(shown)
	h := chartTitleH + rows*barRowHeight + 8
	if more > 0 {
		h += barRowHeight
	}
	var b strings.Builder
	openSVG(&b, title, chartWidth, h)
	plotW := float64(chartWidth - barLabelWidth - barValueWidth)
	for i, c := range shown {
		y := chartTitleH + i*barRowHeight
		w := 0.0
		if most > 0 {
			w = plotW * float64(c.Count) / float64(most)
		}
		if c.Count > 0 && w < 1 {
			w = 1 // a non-zero count is always visible
		}
		label, cut := shorten(keyLabel(c.Key))
		fmt.Fprintf(&b, `<g><text x="%d" y="%d" text-anchor="end" font-size="11" fill="%s">`,
			barLabelWidth-6, y+14, textColour)
		if cut {
			fmt.Fprintf(&b, `<title>%s</title>`, esc(c.Key))
		}
		fmt.Fprintf(&b, `%s</text>`, esc(label))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%s" height="%d" fill="%s"/>`,
			barLabelWidth, y+3, num(w), barRowHeight-6, barColour)
		fmt.Fprintf(&b, `<text x="%s" y="%d" font-size="11" fill="%s">%d</text></g>`,
			num(float64(barLabelWidth)+w+5), y+14, textColour, c.Count)
	}
	if more > 0 {
		y := chartTitleH + rows*barRowHeight
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" font-style="italic" fill="%s">… and %d more (see the table)</text>`,
			barLabelWidth, y+14, mutedColour, more)
	}
	b.WriteString("</svg>")
	return template.HTML(b.String())
}

// timeSeries draws one count per day (keys "2006-01-02", in order, every
// day of the period) as vertical bars over a time axis, with horizontal grid
// lines at round values. colour is the bars' fill.
func timeSeries(title string, days []Count, colour string) template.HTML {
	if len(days) == 0 {
		return ""
	}
	var most int64
	for _, d := range days {
		most = max(most, d.Count)
	}
	top, step := niceScale(most)
	plotW := float64(chartWidth - seriesLeftPad - 12)
	plotH := float64(seriesHeight - chartTitleH - seriesBottomPd)
	x0, y0 := float64(seriesLeftPad), float64(chartTitleH)+plotH // the origin, bottom left
	var b strings.Builder
	openSVG(&b, title, chartWidth, seriesHeight)
	for v := int64(0); v <= top; v += step { // grid and y labels
		y := y0 - plotH*float64(v)/float64(top)
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="0.5"/>`,
			num(x0), num(y), num(x0+plotW), num(y), gridColour)
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="end" font-size="10" fill="%s">%d</text>`,
			num(x0-4), num(y+3), mutedColour, v)
	}
	slot := plotW / float64(len(days))
	gap := math.Min(2, slot/4)
	for i, d := range days {
		if d.Count == 0 {
			continue
		}
		h := plotH * float64(d.Count) / float64(top)
		fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s: %d</title></rect>`,
			num(x0+float64(i)*slot+gap/2), num(y0-h), num(slot-gap), num(h), colour, esc(d.Key), d.Count)
	}
	every := (len(days) + maxXTicks - 1) / maxXTicks
	for i := 0; i < len(days); i += every { // x labels: at most maxXTicks dates
		x := x0 + (float64(i)+0.5)*slot
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`, num(x), num(y0), num(x), num(y0+4), mutedColour)
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" font-size="10" fill="%s">%s</text>`,
			num(x), num(y0+16), mutedColour, esc(days[i].Key))
	}
	fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`, num(x0), num(y0), num(x0+plotW), num(y0), mutedColour)
	b.WriteString("</svg>")
	return template.HTML(b.String())
}

// openSVG starts an inline SVG that scales to the width of the page, with
// its title drawn and given as the accessible name.
func openSVG(b *strings.Builder, title string, w, h int) {
	fmt.Fprintf(b, `<svg class="chart" viewBox="0 0 %d %d" width="100%%" role="img" aria-label="%s" font-family="sans-serif">`,
		w, h, esc(title))
	fmt.Fprintf(b, `<title>%s</title>`, esc(title))
	fmt.Fprintf(b, `<text x="0" y="14" font-size="13" font-weight="bold" fill="%s">%s</text>`, textColour, esc(title))
}

// niceScale returns the top of a y axis at or above max and a round step
// between its grid lines (1, 2 or 5 times a power of ten), about 4 of them.
func niceScale(most int64) (top, step int64) {
	if most <= 0 {
		return 1, 1
	}
	raw := float64(most) / 4
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	step = int64(pow)
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			step = int64(m * pow)
			break
		}
	}
	if step < 1 {
		step = 1
	}
	top = (most + step - 1) / step * step
	return top, step
}

// keyLabel names an empty key, which a breakdown uses for "not given".
func keyLabel(k string) string {
	if k == "" {
		return "(none)"
	}
	return k
}

// shorten cuts s to maxLabelRunes runes with an ellipsis; cut reports
// whether it did.
func shorten(s string) (out string, cut bool) {
	if utf8.RuneCountInString(s) <= maxLabelRunes {
		return s, false
	}
	r := []rune(s)
	return string(r[:maxLabelRunes-1]) + "…", true
}

// esc escapes text for SVG content and attribute values inside HTML, and
// replaces the control characters XML forbids (a client may send them) with
// U+FFFD, so that every chart is also well-formed XML.
func esc(s string) string {
	return html.EscapeString(strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f || r == 0xfffe || r == 0xffff {
			return utf8.RuneError
		}
		return r
	}, s))
}

// num formats a coordinate with one decimal, so output is stable.
func num(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }
