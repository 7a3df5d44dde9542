package report_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/custos-audit/custos"
	"github.com/custos-audit/custos/internal/report"
)

func offered() report.Formats {
	html := report.Format{Name: "html", MediaType: "text/html; charset=utf-8", Extension: ".html",
		Render: func(context.Context, io.Writer, report.Report) error { return nil }}
	return report.Formats{report.JSON(), html}
}

func TestChoose(t *testing.T) {
	for _, tc := range []struct {
		name, accept, want string
		kind               custos.Kind
	}{
		{"", "", "json", 0},
		{"", "*/*", "json", 0},
		{"", "text/html", "html", 0},
		{"", "application/pdf;q=0, text/html;q=0.5", "html", 0},
		{"", "application/json;q=0", "", custos.NotAcceptable},
		{"", "image/png", "", custos.NotAcceptable},
		{"HTML", "application/json", "html", 0},
		{"pdf", "", "", custos.NotAcceptable},
		{"xml", "", "", custos.Invalid},
	} {
		f, err := offered().Choose(tc.name, tc.accept)
		var e *custos.Error
		switch {
		case tc.want != "" && (err != nil || f.Name != tc.want):
			t.Errorf("Choose(%q, %q) = %q, %v; want %s", tc.name, tc.accept, f.Name, err, tc.want)
		case tc.want == "" && (!errors.As(err, &e) || e.Kind != tc.kind || e.Fields[0].Field != "format"):
			t.Errorf("Choose(%q, %q) = %q, %v; want a %v error naming format", tc.name, tc.accept, f.Name, err, tc.kind)
		}
	}
}

// FuzzChoose: whatever the parameter and Accept header, Choose picks an
// offered format or answers a 4xx error naming "format"; it never panics.
func FuzzChoose(f *testing.F) {
	for _, s := range [][2]string{{"", "text/html;q=0.9, */*;q=0.1"}, {"json", ""}, {"", "application/*"}, {"pdf", "x;q=abc"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, accept string) {
		fs := offered()
		got, err := fs.Choose(name, accept)
		if err == nil {
			if _, ok := fs.Lookup(got.Name); !ok {
				t.Fatalf("chose %q, not offered", got.Name)
			}
			return
		}
		var e *custos.Error
		if !errors.As(err, &e) || (e.Kind != custos.Invalid && e.Kind != custos.NotAcceptable) || len(e.Fields) != 1 || e.Fields[0].Field != "format" {
			t.Fatalf("Choose(%q, %q): %v", name, accept, err)
		}
	})
}
