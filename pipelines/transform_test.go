package pipelines

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestTransformsAndRenameKeys(t *testing.T) {
	p, err := Parse([]byte(`name: t
source: {dsn: "host=a"}
sink: {dsn: "host=b"}
objects: [{schema: public}]
transforms:
  - filter: "after.amount > 100"
    tables: [sales.orders, "crm.*", '"We.ird"."A*"']
  - set: {email: "nil", "Full Name": "'x'"}
  - type: plugin
    path: plugins/mask
    sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    env: {MASK_COLUMNS: email}
rename:
  case: upper
  tables:
    - {schema: sales, prefix: a_, suffix: _b}
    - {schema: crm, pattern: 'tmp_(.*)', replacement: 'x_$${1}'}
`), "/etc/sluice/p.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Transforms) != 3 {
		t.Fatalf("%d transforms", len(p.Transforms))
	}
	kinds := []string{p.Transforms[0].Kind(), p.Transforms[1].Kind(), p.Transforms[2].Kind()}
	if strings.Join(kinds, ",") != "filter,set,plugin" {
		t.Errorf("kinds %v", kinds)
	}
	if p.Transforms[0].Line != 6 || p.Transforms[2].Line != 9 {
		t.Errorf("lines %d, %d", p.Transforms[0].Line, p.Transforms[2].Line)
	}
	if p.Transforms[2].Path != filepath.Join("/etc/sluice", "plugins/mask") || p.Transforms[2].Env["MASK_COLUMNS"] != "email" {
		t.Errorf("plugin stage %+v", p.Transforms[2])
	}
	if p.Transforms[1].Set["Full Name"] != "'x'" {
		t.Errorf("set %v", p.Transforms[1].Set)
	}
	if p.Rename.Case != "upper" || p.Rename.CaseLine != 14 || len(p.Rename.Tables) != 2 || p.Rename.Tables[1].Replacement != "x_${1}" || p.Rename.Tables[1].Line != 17 {
		t.Errorf("rename %+v", p.Rename)
	}
	matches := []struct {
		pat, schema, name string
		want              bool
	}{
		{"sales.orders", "sales", "orders", true},
		{"sales.orders", "sales", "Orders", false},
		{"crm.*", "crm", "anything", true},
		{"crm.*", "crmx", "a", false},
		{`"We.ird"."A*"`, "We.ird", "A*", true},
		{`"We.ird"."A*"`, "We.ird", "Ab", false},
		{`"We.ird".A*`, "We.ird", "Ab", true},
		{"orders", "public", "orders", true},
		{"s?les.o*", "sales", "orders", true},
	}
	for _, m := range matches {
		pat, err := ParseTablePattern(m.pat)
		if err != nil {
			t.Errorf("ParseTablePattern(%q): %v", m.pat, err)
			continue
		}
		if got := pat.Match(m.schema, m.name); got != m.want {
			t.Errorf("%q matches %s.%s = %v, want %v", m.pat, m.schema, m.name, got, m.want)
		}
	}
}
