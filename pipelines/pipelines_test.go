package pipelines

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// envOf returns an env lookup over m.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

var testEnv = envOf(map[string]string{
	"SRC_DSN": "postgres://app:s3cr3t-src@src.example:5432/shop",
	"DST_DSN": "host=dst.example dbname=shop user=app password='s3cr3t dst'",
})

func TestLoadValid(t *testing.T) {
	p, err := Load("testdata/valid.yaml", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := &Pipeline{
		Name:   "demo",
		Source: Endpoint{Type: "postgres", DSN: "postgres://app:s3cr3t-src@src.example:5432/shop"},
		Sink:   Endpoint{Type: "postgres", DSN: "host=dst.example dbname=shop user=app password='s3cr3t dst'"},
		Sync:   Sync{Schema: true, Full: true, Incremental: true},
		Objects: []Object{
			{Schema: "public", Line: 9},
			{Table: "sales.orders", Line: 10},
			{Table: `"Sales"."Order Items"`, Line: 11},
			{Table: "orders", Line: 12},
		},
		Copy:                Copy{Parallel: 8, ChunkRows: 50000, ToastCompression: "auto", SharedScanMaxMB: 4096},
		Stream:              Stream{Heartbeat: 10 * time.Second, SequenceSync: 30 * time.Second},
		Retry:               Retry{Connection: 720 * time.Minute, Other: 10 * time.Minute},
		OnConflictingTables: "error",
		StateDir:            "var/demo", // ../var/demo next to testdata/valid.yaml
		File:                "testdata/valid.yaml",
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got\n%#v\nwant\n%#v", p, want)
	}
}

func TestLoadDefaults(t *testing.T) {
	p, err := Load("testdata/minimal.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Pipeline{
		Name:                "minimal",
		Source:              Endpoint{Type: "postgres", DSN: "postgres://app@src/db"},
		Sink:                Endpoint{Type: "postgres", DSN: "host=dst dbname=db"},
		Sync:                Sync{Schema: true, Full: true, Incremental: false},
		Objects:             []Object{{Schema: "public", Line: 5}},
		Copy:                Copy{Parallel: 4, ChunkRows: 100000, ToastCompression: "auto", SharedScanMaxMB: 4096},
		Stream:              Stream{Heartbeat: 10 * time.Second, SequenceSync: 30 * time.Second},
		Retry:               Retry{Connection: 720 * time.Minute, Other: 10 * time.Minute},
		OnConflictingTables: "error",
		StateDir:            filepath.Join("testdata", "state", "minimal"),
		File:                "testdata/minimal.yaml",
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got\n%#v\nwant\n%#v", p, want)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string // the error's lines, in order
	}{
		{"unknown_key.yaml", []string{
			`testdata/unknown_key.yaml:3: sink: unknown key "typo" (valid keys: type, dsn)`,
			`testdata/unknown_key.yaml:6: objects[1]: unknown key "tabel" (valid keys: schema, table, where, rename, columns, operations)`,
			`testdata/unknown_key.yaml:6: objects[1]: give schema or table, e.g. "schema: public" or "table: sales.orders"`,
			`testdata/unknown_key.yaml:7: unknown key "colour" (valid keys: name, source, sink, sync, objects, transforms, rename, copy, stream, throttle, retry, metrics, alerts, on_conflicting_tables, ignore_checks, state_dir)`,
		}},
		{"missing_dsn.yaml", []string{
			`testdata/missing_dsn.yaml: sink.dsn is required (a PostgreSQL connection string, e.g. "${DST_DSN}")`,
		}},
		{"bad_yaml.yaml", []string{
			`testdata/bad_yaml.yaml:3: invalid YAML: found unexpected end of stream`,
		}},
		{"undefined_var.yaml", []string{
			`testdata/undefined_var.yaml:2: source.dsn: environment variable SRC_DSN is not set: export it (export SRC_DSN=...) or give a default (${SRC_DSN:-default})`,
			`testdata/undefined_var.yaml:3: sink.dsn: environment variable DB_NAME is not set: export it (export DB_NAME=...) or give a default (${DB_NAME:-default})`,
		}},
		{"bad_name.yaml", []string{
			`testdata/bad_name.yaml:1: name: "Demo-1" is not a valid name: it must match ^[a-z][a-z0-9_]{0,40}$ (a lower-case letter, then up to 40 lower-case letters, digits or _) because it becomes part of the replication slot name sluice_<name>`,
		}},
		{"schema_and_table.yaml", []string{
			`testdata/schema_and_table.yaml:5: objects[0]: give either schema or table, not both (use two items to copy a schema and a table)`,
			`testdata/schema_and_table.yaml:7: objects[1]: give schema or table, e.g. "schema: public" or "table: sales.orders"`,
		}},
		{"empty_objects.yaml", []string{
			`testdata/empty_objects.yaml:4: objects: the list is empty; list at least one schema or table, e.g. "- schema: public" or "- table: sales.orders"`,
		}},
		{"parallel_range.yaml", []string{
			`testdata/parallel_range.yaml:7: copy.parallel: must be between 1 and 64, got 100`,
			`testdata/parallel_range.yaml:8: copy.chunk_rows: must be at least 1000, got 10`,
		}},
		{"duplicate.yaml", []string{
			`testdata/duplicate.yaml:8: objects[3]: schema "public" is listed twice, at lines 5 (objects[0]) and 8; remove one`,
			`testdata/duplicate.yaml:9: objects[4]: table "public"."orders" is listed twice, at lines 6 (objects[1]) and 9; remove one`,
			`testdata/duplicate.yaml:10: objects[5]: table "public"."orders" is listed twice, at lines 6 (objects[1]) and 10; remove one`,
		}},
		{"wrong_type.yaml", []string{
			`testdata/wrong_type.yaml:7: copy.parallel: must be a whole number, got "lots"`,
			`testdata/wrong_type.yaml:9: sync.full: must be true or false, got "yes"`,
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			p, err := Load("testdata/"+tc.file, nil)
			if err == nil {
				t.Fatalf("no error; got %+v", p)
			}
			if p != nil {
				t.Errorf("got a pipeline along with the error: %+v", p)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

// header is a valid start of a file for the inline cases below.
const header = `name: demo
source: {dsn: "postgres://src/db"}
sink: {dsn: "postgres://dst/db"}
objects:
  - schema: public
`

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		env        map[string]string
		want       []string
	}{
		{"empty file", "", nil, []string{
			"p.yaml: the file is empty; a pipeline needs at least name, source, sink and objects"}},
		{"only comments", "# nothing\n", nil, []string{
			"p.yaml: the file is empty; a pipeline needs at least name, source, sink and objects"}},
		{"not a mapping", "- a\n- b\n", nil, []string{
			"p.yaml:1: must be a mapping with the keys name, source, sink, sync, objects, transforms, rename, copy, stream, throttle, retry, metrics, alerts, on_conflicting_tables, ignore_checks, state_dir, got a list"}},
		{"two documents", header + "---\nname: other\n", nil, []string{
			"p.yaml:6: a second YAML document starts here; a pipeline file holds one (remove the ---)"}},
		{"bad indentation", "name: demo\n  source: x\n", nil, []string{
			"p.yaml:2: invalid YAML: mapping values are not allowed in this context"}},
		{"missing everything", "state_dir: /tmp/x\n", nil, []string{
			`p.yaml: name is required (a short name for this pipeline, e.g. "name: orders_sync"; it names the replication slot sluice_<name> and the state)`,
			`p.yaml: source.dsn is required (a PostgreSQL connection string, e.g. "${SRC_DSN}")`,
			`p.yaml: sink.dsn is required (a PostgreSQL connection string, e.g. "${DST_DSN}")`,
			`p.yaml: objects is required (the schemas and tables to copy, e.g. "- schema: public" or "- table: sales.orders")`,
		}},
		{"null values count as absent", "name: demo\nsource: {dsn: ~}\nsink: {dsn: \"postgres://dst/db\"}\nobjects:\nsync:\ncopy:\n", nil, []string{
			`p.yaml:2: source.dsn is required (a PostgreSQL connection string, e.g. "${SRC_DSN}")`,
			`p.yaml:4: objects is required (the schemas and tables to copy, e.g. "- schema: public" or "- table: sales.orders")`,
		}},
		{"dsn from an empty variable", header + "state_dir: x\n", nil, nil},
		{"duplicate key", header + "name: again\n", nil, []string{
			"p.yaml:6: name: given twice, first at line 1; remove one"}},
		{"misspelt dsn", "name: demo\nsource: {dns: \"postgres://src/db\"}\nsink: {dsn: \"postgres://dst/db\"}\nobjects: [{schema: public}]\n", nil, []string{
			`p.yaml:2: source: unknown key "dns" (valid keys: type, dsn)`,
			`p.yaml:2: source.dsn is required (a PostgreSQL connection string, e.g. "${SRC_DSN}")`,
		}},
		{"objects not a list", strings.Replace(header, "objects:\n  - schema: public\n", "objects: public\n", 1), nil, []string{
			`p.yaml:4: objects: must be a list, got "public"`}},
		{"object not a mapping", header + "  - public\n  -\n", nil, []string{
			`p.yaml:6: objects[1]: must be a mapping with the keys schema, table, where, rename, columns, operations, got "public"`,
			`p.yaml:7: objects[2]: must be a mapping with the keys schema, table, where, rename, columns, operations, got nothing`,
		}},
		{"string given a mapping", header + "state_dir: {a: b}\n", nil, []string{
			"p.yaml:6: state_dir: must be a string, got a mapping"}},
		{"float for an int", header + "copy: {parallel: 4.5}\n", nil, []string{
			`p.yaml:6: copy.parallel: must be a whole number, got "4.5"`}},
		{"int overflow", header + "copy: {parallel: 99999999999999999999999}\n", nil, []string{
			`p.yaml:6: copy.parallel: must be a whole number, got "99999999999999999999999"`}},
		{"sync all off", header + "sync: {schema: false, full: false}\n", nil, []string{
			"p.yaml:6: sync: at least one of schema, full, incremental must be true"}},
		{"unsupported type", strings.Replace(header, `source: {dsn`, `source: {type: mysql, dsn`, 1), nil, []string{
			`p.yaml:2: source.type: "mysql" is not a supported type (supported: postgres)`}},
		{"custom tag", header + "state_dir: !secret x\n", nil, []string{
			"p.yaml:6: state_dir: YAML tag !secret is not supported here"}},
		{"bad table names", header + "  - table: a.b.c\n  - table: '\"unterminated'\n  - table: sales.\n  - schema: a.b\n", nil, []string{
			`p.yaml:6: objects[1].table: "a.b.c" is not a valid table name: 3 dot-separated names where schema.table or table was expected; quote a name that contains a dot, e.g. "sales"."q1.orders"`,
			`p.yaml:7: objects[2].table: "\"unterminated" is not a valid table name: a quoted name has no closing "`,
			`p.yaml:8: objects[3].table: "sales." is not a valid table name: empty name (two dots in a row, or a dot at the start or end)`,
			`p.yaml:9: objects[4].schema: "a.b" is not a valid schema name: a schema is a single name; quote it if it contains a dot, e.g. '"my.schema"'`,
		}},
		{"bad DSN", strings.Replace(header, `"postgres://dst/db"`, `"host=dst password='unterminated"`, 1), nil, []string{
			`p.yaml:3: sink.dsn: not a valid PostgreSQL connection string: failed to parse as keyword/value; the form is key=value pairs separated by spaces, with values holding spaces or quotes written in single quotes ('...') and \' for a quote`}},
		{"bad DSN URL", strings.Replace(header, `"postgres://dst/db"`, `"postgres://u:p w@dst/db"`, 1), nil, []string{
			`p.yaml:3: sink.dsn: not a valid PostgreSQL connection string: failed to parse as URL; check that special characters in the user name and password are percent-encoded (space as %20, @ as %40, : as %3A, / as %2F, ? as %3F, # as %23)`}},
		{"lone dollar", strings.Replace(header, "postgres://src/db", "postgres://u:pa$word@src/db", 1), nil, []string{
			`p.yaml:2: source.dsn: "$" at character 16 must start ${VAR} or be written $$ for a literal "$"`}},
		{"unterminated variable", header + "state_dir: ${HOME\n", nil, []string{
			`p.yaml:6: state_dir: "${" at character 1 has no closing "}"`}},
		{"bad variable name", header + "state_dir: ${1X}\n", nil, []string{
			`p.yaml:6: state_dir: "${...}" must hold a variable name (letters, digits and _, not starting with a digit), optionally followed by ":-default"`}},
		{"bad merge", header + "copy:\n  <<: 5\n", nil, []string{
			"p.yaml:7: a merge key (<<) must be given a mapping or a list of mappings"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.yaml), "p.yaml", envOf(tc.env))
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; got %+v", p)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestErrorValues(t *testing.T) {
	_, err := Load("testdata/unknown_key.yaml", nil)
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("%T is not a joined error", err)
	}
	var got []string
	for _, e := range joined.Unwrap() {
		var pe *Error
		if !errors.As(e, &pe) {
			t.Fatalf("%T is not a *Error", e)
		}
		got = append(got, fmt.Sprintf("%s:%d %s", pe.File, pe.Line, pe.Path))
	}
	want := []string{
		"testdata/unknown_key.yaml:3 sink.typo",
		"testdata/unknown_key.yaml:6 objects[1].tabel",
		"testdata/unknown_key.yaml:6 objects[1]",
		"testdata/unknown_key.yaml:7 colour",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/nope.yaml", nil)
	if err == nil || err.Error() != "open pipeline: testdata/nope.yaml: no such file or directory" {
		t.Errorf("got %v", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%v is not fs.ErrNotExist", err)
	}
}

func TestInterpolation(t *testing.T) {
	env := envOf(map[string]string{
		"HOST":   "db.example",
		"EMPTY":  "",
		"PAR":    "16",
		"INCR":   "1",
		"YAMLY":  "x\nname: evil\nobjects: []",
		"BRACES": "[1, 2]",
	})
	src := `name: demo
source: {dsn: "postgres://u:pa$$word@${HOST}:${PORT:-5432}/db"}
sink: {dsn: "host=${EMPTY:-dst.example} dbname='${DB:-my db}'"}
sync: {incremental: "${INCR}"}
objects:
  - table: '${YAMLY}'
  - table: ${BRACES}
copy: {parallel: "${PAR}", chunk_rows: "${ROWS:-2000}"}
state_dir: $$HOME/x
`
	p, err := Parse([]byte(src), "p.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, want any }{
		{p.Source.DSN.Reveal(), "postgres://u:pa$word@db.example:5432/db"},
		{p.Sink.DSN.Reveal(), "host=dst.example dbname='my db'"},
		{p.Sync, Sync{Schema: true, Full: true, Incremental: true}},
		{p.Objects[0].Table, "x\nname: evil\nobjects: []"}, // a value never adds structure
		{p.Objects[1].Table, "[1, 2]"},
		{p.Copy, Copy{Parallel: 16, ChunkRows: 2000, ToastCompression: "auto", SharedScanMaxMB: 4096}},
		{p.Name, "demo"},
		{p.StateDir, "$HOME/x"},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("got %#v, want %#v", c.got, c.want)
		}
	}
}

func TestExpand(t *testing.T) {
	env := envOf(map[string]string{"A": "a", "E": "", "D": "$x}"})
	for _, c := range []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"$$", "$", ""},
		{"$$$$", "$$", ""},
		{"$${A}", "${A}", ""},
		{"${A}${A}", "aa", ""},
		{"x${A}y", "xay", ""},
		{"${D}", "$x}", ""}, // a value is not expanded again
		{"${E}", "", ""},
		{"${E:-def}", "def", ""},
		{"${U:-}", "", ""},
		{"${U:-a b:-c}", "a b:-c", ""},
		{"${U}", "", "environment variable U is not set"},
		{"$A", "", `"$" at character 1 must start ${VAR}`},
		{"a$", "", `"$" at character 2 must start`},
		{"${", "", `has no closing "}"`},
		{"${}", "", "must hold a variable name"},
		{"${A-b}", "", "must hold a variable name"},
	} {
		got, _, err := expand(c.in, env)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("expand(%q): error %v, want one containing %q", c.in, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestEnvValuesNeverInErrors(t *testing.T) {
	const secret = "Hunter2Secret"
	env := envOf(map[string]string{
		"NAME":   "Bad-" + secret,
		"PAR":    secret,
		"BIG":    "1000" + secret,
		"SRC":    "postgres://u:" + secret + "@h:port/db",
		"DST":    "host=h password=" + secret + " port=notaport",
		"TABLE":  "a.b." + secret,
		"SCHEMA": secret + ".x",
		"DUP":    "public",
		"TYPE":   "my" + secret,
	})
	src := `name: ${NAME}
source: {type: postgres, dsn: "${SRC}"}
sink: {type: "${TYPE}", dsn: "${DST}"}
objects:
  - table: ${TABLE}
  - schema: ${SCHEMA}
  - schema: public
  - schema: ${DUP}
copy: {parallel: "${PAR}", chunk_rows: "${BIG}"}
`
	_, err := Parse([]byte(src), "p.yaml", env)
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error shows a value from the environment:\n%s", err)
	}
	for _, want := range []string{
		"p.yaml:1: name: the value of ${NAME} is not a valid name",
		"p.yaml:2: source.dsn: not a valid PostgreSQL connection string: invalid port",
		"p.yaml:3: sink.type: the value of ${TYPE} is not a supported type",
		"p.yaml:5: objects[0].table: the value of ${TABLE} is not a valid table name",
		"p.yaml:6: objects[1].schema: the value of ${SCHEMA} is not a valid schema name",
		"p.yaml:8: objects[3]: the same name is listed twice, at lines 7 (objects[2]) and 8",
		"p.yaml:9: copy.parallel: must be a whole number, got the value of ${PAR}",
		"p.yaml:9: copy.chunk_rows: must be a whole number, got the value of ${BIG}",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%s", want, err)
		}
	}
	// The key=value DSN parses; an empty variable is named as such.
	_, err = Parse([]byte(strings.Replace(header, `"postgres://dst/db"`, `"${DST}"`, 1)), "p.yaml", envOf(map[string]string{"DST": ""}))
	if want := "p.yaml:3: sink.dsn is empty: it comes from ${DST}, which is set to an empty string; it should be a PostgreSQL connection string"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want %q…", err, want)
	}
}

func TestAliasesAndMerge(t *testing.T) {
	src := `name: demo
source: &pg {type: postgres, dsn: "postgres://src/db"}
sink:
  <<: *pg
  dsn: "postgres://dst/db"
objects:
  - &pub {schema: public}
  - table: x
copy: &c {parallel: 2}
`
	p, err := Parse([]byte(src), "p.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Sink != (Endpoint{Type: "postgres", DSN: "postgres://dst/db"}) || p.Copy.Parallel != 2 {
		t.Errorf("got %+v", p)
	}

	bomb := header + "x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
	for i := 1; i < 9; i++ {
		bomb += fmt.Sprintf("x%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	_, err = Parse([]byte(bomb), "p.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "expands to more than") {
		t.Errorf("alias bomb: got %v", err)
	}
}

func TestTableName(t *testing.T) {
	for _, c := range []struct{ in, schema, name, err string }{
		{"orders", "public", "orders", ""},
		{"sales.orders", "sales", "orders", ""},
		{"Sales.Orders", "Sales", "Orders", ""}, // unquoted is literal: no folding
		{`"Sales"."Order Items"`, "Sales", "Order Items", ""},
		{`"My Schema"."Odd.Name"`, "My Schema", "Odd.Name", ""},
		{`sales."x.y"`, "sales", "x.y", ""},
		{`"a""b"."c"""`, `a"b`, `c"`, ""},
		{`"""".""""""`, `"`, `""`, ""},
		{`"x'; DROP TABLE t; --"`, "public", "x'; DROP TABLE t; --", ""},
		{`sales.orders; drop table x`, "sales", "orders; drop table x", ""},
		{`"tab` + "\t" + `le"`, "public", "tab\tle", ""},
		{"ünïcødé.表", "ünïcødé", "表", ""},
		{`" spaced "`, "public", " spaced ", ""},
		{strings.Repeat("a", 63), "public", strings.Repeat("a", 63), ""},
		{strings.Repeat("a", 64), "", "", "at most 63"},
		{"", "", "", "no table given"},
		{".", "", "", "empty name"},
		{".orders", "", "", "empty name"},
		{"sales.", "", "", "empty name"},
		{"a..b", "", "", "empty name"},
		{"a.b.c", "", "", "3 dot-separated names"},
		{`""`, "", "", "empty name"},
		{`"abc`, "", "", "no closing"},
		{`"a"b`, "", "", "followed by a dot or nothing"},
		{`a"b`, "", "", "double quote inside an unquoted name"},
		{` orders`, "", "", "starts or ends with a space"},
		{`sales. orders`, "", "", "starts or ends with a space"},
		{"a\x00b", "", "", "NUL"},
		{`"a` + "\x00" + `"`, "", "", "NUL"},
	} {
		s, n, err := Object{Table: c.in}.TableName()
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("TableName(%q): error %v, want one containing %q", c.in, err, c.err)
		case c.err == "" && (err != nil || s != c.schema || n != c.name):
			t.Errorf("TableName(%q) = %q, %q, %v; want %q, %q", c.in, s, n, err, c.schema, c.name)
		}
		if err != nil && c.in != "" && len(c.in) > 3 && strings.Contains(err.Error(), c.in) {
			t.Errorf("TableName(%q): error quotes the input: %v", c.in, err)
		}
	}
}

func TestSchemaName(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"public", "public", ""},
		{"Public", "Public", ""},
		{`"My Schema"`, "My Schema", ""},
		{`"a.b"`, "a.b", ""},
		{"a.b", "", "single name"},
		{"", "", "no schema"},
	} {
		got, err := Object{Schema: c.in}.SchemaName()
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("SchemaName(%q): error %v, want one containing %q", c.in, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("SchemaName(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"postgres://u:pw@h/db", "postgres://u:xxxxx@h/db"},
		{"postgresql://u:pw@h:5432,h2:5433/db?sslmode=require", "postgresql://u:xxxxx@h:5432,h2:5433/db?sslmode=require"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"postgres://h/db", "postgres://h/db"},
		{"postgres://u:p@ss:w/rd@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u:pw@h/db?password=pw2&sslpassword=k&x=1", "postgres://u:xxxxx@h/db?password=xxxxx&sslpassword=xxxxx&x=1"},
		{"postgres://h/db?pass%77ord=pw#frag", "postgres://h/db?pass%77ord=xxxxx#frag"},
		{"postgres://u:pw@h/db?application_name=a@b", "postgres://u:xxxxx@b"}, // over-hides, never under
		{"host=h password=pw dbname=d", "host=h password=xxxxx dbname=d"},
		{"host=h password='p w\\' x' dbname=d", "host=h password='xxxxx' dbname=d"},
		{"host=h password = pw", "host=h password = xxxxx"},
		{"host=h password=p\\ w dbname=d", "host=h password=xxxxx dbname=d"},
		{"password=a sslpassword=b", "password=xxxxx sslpassword=xxxxx"},
		{"host=h PASSWORD=pw", "host=h PASSWORD=xxxxx"},
		{"host=h dbname=d", "host=h dbname=d"},
		{"host=h password='unterminated", "host=h password=xxxxx"},
		{"not a dsn", "xxxxx"},
		{"token", "xxxxx"},
	} {
		if got := Secret(c.in).String(); got != c.want {
			t.Errorf("Secret(%q).String() = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	for _, dsn := range []string{
		"postgres://app:Sup3rS3cret@db.example:5432/shop?sslmode=require",
		"postgresql://app@db.example/shop?password=Sup3rS3cret",
		"host=db.example user=app password=Sup3rS3cret dbname=shop",
		"host=db.example user=app password='Sup3rS3cret with space' dbname=shop",
	} {
		const pw = "Sup3rS3cret"
		env := envOf(map[string]string{"SRC_DSN": dsn, "DST_DSN": dsn})
		p, err := Load("testdata/valid.yaml", env)
		if err != nil {
			t.Fatal(err)
		}
		if p.Source.DSN.Reveal() != dsn {
			t.Errorf("Reveal() = %q, want %q", p.Source.DSN.Reveal(), dsn)
		}
		var outputs []string
		for _, f := range []string{"%v", "%s", "%+v", "%#v", "%q", "%x", "%10.40s"} {
			outputs = append(outputs, fmt.Sprintf(f, p), fmt.Sprintf(f, *p), fmt.Sprintf(f, p.Source), fmt.Sprintf(f, p.Source.DSN))
		}
		outputs = append(outputs, p.Source.DSN.String(), p.Source.DSN.GoString(), fmt.Sprint(p.Source.DSN), fmt.Sprintln(p.Sink.DSN))
		j, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, string(j))
		txt, _ := p.Source.DSN.MarshalText()
		outputs = append(outputs, string(txt))
		var buf bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&buf, nil))
		log.Info("loaded", "pipeline", p, "dsn", p.Source.DSN, "source", p.Source, slog.Any("sink", p.Sink.DSN))
		var tbuf bytes.Buffer
		slog.New(slog.NewTextHandler(&tbuf, nil)).Info("loaded", "pipeline", p, "dsn", p.Source.DSN)
		outputs = append(outputs, buf.String(), tbuf.String())
		for _, out := range outputs {
			if strings.Contains(out, pw) {
				t.Errorf("password printed: %s", out)
			}
		}
		if !strings.Contains(buf.String(), "xxxxx") || !strings.Contains(string(j), "db.example") {
			t.Errorf("redacted form missing: %s %s", buf.String(), j)
		}
	}
}

func TestDSNErrorsHideThePassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:topsecret/word@h:port/db",
		"postgres://u:topsecret@h:notaport/db",
		"postgres://u:top?secret@h/db?x=%zz",
		"host=h password=topsecret port=notaport",
		"host=h password=top secret",
		"host=h password='topsecret",
		"host=h password=topsecret connect_timeout=topsecret",
	} {
		src := strings.Replace(header, `"postgres://dst/db"`, `"${DST}"`, 1)
		_, err := Parse([]byte(src), "p.yaml", envOf(map[string]string{"DST": dsn}))
		if err == nil {
			t.Errorf("%s: no error", dsn)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error shows the password: %v", dsn, err)
		}
		if !strings.HasPrefix(err.Error(), "p.yaml:3: sink.dsn: not a valid PostgreSQL connection string: ") {
			t.Errorf("%s: got %v", dsn, err)
		}
	}
}

func TestStateDir(t *testing.T) {
	for _, c := range []struct{ file, dir, want string }{
		{"p.yaml", "", filepath.Join("state", "demo")},
		{"conf/p.yaml", "", filepath.Join("conf", "state", "demo")},
		{"conf/p.yaml", "./s", filepath.Join("conf", "s")},
		{"conf/p.yaml", "/var/lib/sluice/demo", "/var/lib/sluice/demo"},
		{"", "s", "s"},
	} {
		src := header
		if c.dir != "" {
			src += "state_dir: " + c.dir + "\n"
		}
		p, err := Parse([]byte(src), c.file, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.StateDir != c.want {
			t.Errorf("file %q, state_dir %q: got %q, want %q", c.file, c.dir, p.StateDir, c.want)
		}
	}
}

// TestKeysComeFromTheStructs guards the one-place rule: every yaml tag is a
// key the decoder accepts, and every default tag shows up in a loaded file.
func TestKeysComeFromTheStructs(t *testing.T) {
	got := defaults(reflect.TypeFor[Pipeline]())
	want := map[string]any{
		"source.type": "postgres", "sink.type": "postgres",
		"sync.schema": true, "sync.full": true, "sync.incremental": false,
		"copy.parallel": int64(4), "copy.chunk_rows": int64(100000), "copy.toast_compression": "auto", "copy.shared_scan_max_mb": int64(4096),
		"stream.heartbeat": "10s", "retry.connection": "720m", "retry.other": "10m",
		"stream.sequence_sync": "30s", "on_conflicting_tables": "error",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults = %v, want %v", got, want)
	}
}
