package store

import (
	"strings"
	"testing"
)

func table(name string, attrs ...SchemaAttr) SchemaObject {
	return SchemaObject{Kind: "table", Name: name, Attrs: attrs}
}

func TestDiffSchema(t *testing.T) {
	events := func(coll string) SchemaObject {
		return table("events",
			SchemaAttr{"column idx", "type", "INTEGER"}, SchemaAttr{"column idx", "collation", ""},
			SchemaAttr{"column patient_id", "type", "TEXT"}, SchemaAttr{"column patient_id", "collation", coll},
			SchemaAttr{"", "definition", "CREATE TABLE events (…)"})
	}
	trigger := SchemaObject{Kind: "trigger", Name: "hide", On: "events", Attrs: []SchemaAttr{{"", "definition", "CREATE TRIGGER hide …"}}}
	want := []SchemaObject{events(""), table("tree_nodes")}
	for _, tt := range []struct {
		name string
		got  []SchemaObject
		want string // "" for no problem
	}{
		{"same", []SchemaObject{table("tree_nodes"), events("")}, ""},
		{"collation", []SchemaObject{events("nocase"), table("tree_nodes")},
			`schema: table "events": column patient_id has collation "nocase", the migrations declare none`},
		{"extra object", []SchemaObject{events(""), table("tree_nodes"), trigger},
			`schema: trigger "hide" on "events": not created by the migrations`},
		{"missing object", []SchemaObject{events("")}, `schema: table "tree_nodes": missing (the migrations create it)`},
		{"object before what belongs to it", []SchemaObject{trigger, events("nocase"), table("tree_nodes")},
			`schema: table "events": column patient_id has collation "nocase"`},
		{"missing part", []SchemaObject{table("events", SchemaAttr{"column idx", "type", "INTEGER"}, SchemaAttr{"column idx", "collation", ""},
			SchemaAttr{"", "definition", "CREATE TABLE events (…)"}), table("tree_nodes")},
			`schema: table "events": column patient_id is missing (the migrations create it)`},
		{"extra part", []SchemaObject{func() SchemaObject {
			o := events("")
			o.Attr("column hidden", "type", "INTEGER")
			return o
		}(), table("tree_nodes")}, `schema: table "events": column hidden is not created by the migrations`},
		{"extra attribute", []SchemaObject{func() SchemaObject {
			o := events("")
			o.Attr("", "row level security", "enabled")
			return o
		}(), table("tree_nodes")}, `schema: table "events": has row level security "enabled", which the migrations do not declare`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := DiffSchema(want, tt.got)
			switch {
			case tt.want == "" && p != nil:
				t.Fatalf("DiffSchema = %v, want nil", p)
			case tt.want != "" && p == nil:
				t.Fatalf("DiffSchema = nil, want %s", tt.want)
			case tt.want != "" && !strings.HasPrefix(p.Error(), tt.want):
				t.Fatalf("DiffSchema = %s\nwant        %s", p, tt.want)
			}
		})
	}
}

func TestShowValuesCutsLongDefinitions(t *testing.T) {
	long := "CREATE TABLE events (" + strings.Repeat("a TEXT, ", 60)
	got := showValues(long+"patient_id TEXT COLLATE NOCASE)", long+"patient_id TEXT)")
	for i, v := range got {
		if len(v) > maxShown+10 || !strings.HasPrefix(v, "…") {
			t.Errorf("value %d shown as %s, want at most ~%d characters from near the difference", i, v, maxShown)
		}
	}
	if !strings.Contains(got[0], "COLLATE NOCASE") {
		t.Errorf("%s does not show the difference", got[0])
	}
	if got := showValues("", "x"); got != [2]string{"none", `"x"`} {
		t.Errorf("showValues(\"\", \"x\") = %v", got)
	}
}

func TestNormalizeSQL(t *testing.T) {
	for _, tt := range []struct{ a, b string }{
		{"CREATE TABLE t (\n\ta INTEGER, -- a comment\n\tb TEXT /* another */ )", "CREATE TABLE t(a INTEGER,b TEXT)"},
		{`CREATE VIEW v AS SELECT '--not a comment' AS "x y"`, `CREATE VIEW v AS SELECT '--not a comment' AS "x y"`},
		{`SELECT 'it''s', [a b], "q""q"`, `SELECT  'it''s' , [a b] , "q""q"`},
	} {
		if a, b := NormalizeSQL(tt.a), NormalizeSQL(tt.b); a != b {
			t.Errorf("NormalizeSQL:\n%s\n%s\nwant equal", a, b)
		}
	}
	for _, tt := range []struct{ a, b string }{
		{"CREATE TABLE t (a TEXT)", "CREATE TABLE t (a TEXT COLLATE NOCASE)"},
		{"SELECT 'a  b'", "SELECT 'a b'"},
		{"SELECT ab", "SELECT a b"},
	} {
		if NormalizeSQL(tt.a) == NormalizeSQL(tt.b) {
			t.Errorf("NormalizeSQL makes %q and %q equal", tt.a, tt.b)
		}
	}
}
