package pipelines

import (
	"reflect"
	"strings"
	"testing"
)

func strp(s string) *string { return &s }

func TestObjectOptions(t *testing.T) {
	yaml := header + `  - table: sales.orders
    where: "amount > 100 AND region IN ('eu','us')"
    rename: archive.big_orders
    columns: {cust_id: customer_id, notes: null, "a.b": "c.d", 1: one, "x y": ~}
    operations: [insert, update]
  - schema: crm
    rename: crm_copy
`
	p, err := Parse([]byte(yaml), "p.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := p.Objects[1]
	want := Object{
		Table:      "sales.orders",
		Where:      "amount > 100 AND region IN ('eu','us')",
		Rename:     "archive.big_orders",
		Columns:    map[string]*string{"cust_id": strp("customer_id"), "notes": nil, "a.b": strp("c.d"), "1": strp("one"), "x y": nil},
		Operations: []string{"insert", "update"},
		Line:       6,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%#v\nwant\n%#v", got, want)
	}
	if s, n, ok, err := got.RenameTable(); err != nil || !ok || s != "archive" || n != "big_orders" {
		t.Errorf("RenameTable = %q %q %v %v", s, n, ok, err)
	}
	if s, ok, err := p.Objects[2].RenameSchema(); err != nil || !ok || s != "crm_copy" {
		t.Errorf("RenameSchema = %q %v %v", s, ok, err)
	}
}

func TestObjectOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"bad where", "  - table: t\n    where: \"a >\"\n", []string{
			`p.yaml:7: objects[1].where: "a >" is not a valid condition: where: position 4: `}},
		{"volatile where", "  - table: t\n    where: \"ts < now()\"\n", []string{
			`p.yaml:7: objects[1].where: "ts < now()" is not a valid condition: where: position `}},
		{"where on a schema", "  - schema: s\n    where: \"a > 1\"\n", []string{
			`p.yaml:7: objects[1].where: a where condition applies to one table; give it on a table item`}},
		{"columns on a schema", "  - schema: s\n    columns: {a: b}\n", []string{
			`p.yaml:7: objects[1].columns: column renames apply to one table; give them on a table item`}},
		{"bad operation", "  - table: t\n    operations: [insert, upsert, insert]\n", []string{
			`p.yaml:7: objects[1].operations[1]: "upsert" is not an operation (valid: insert, update, delete, truncate)`,
			`p.yaml:7: objects[1].operations[2]: "insert" is listed twice; remove one`}},
		{"bad table rename", "  - table: t\n    rename: a.b.c\n", []string{
			`p.yaml:7: objects[1].rename: "a.b.c" is not a valid table name: 3 dot-separated names`}},
		{"bad schema rename", "  - schema: s\n    rename: a.b\n", []string{
			`p.yaml:7: objects[1].rename: "a.b" is not a valid schema name: a schema is a single name`}},
		{"empty sink column", "  - table: t\n    columns: {a: \"\"}\n", []string{
			`p.yaml:7: objects[1].columns.a: the sink column name "" is empty (write null to drop the column)`}},
		{"columns not a mapping", "  - table: t\n    columns: [a]\n", []string{
			`p.yaml:7: objects[1].columns: must be a mapping, got a list`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(header+tc.yaml), "p.yaml", nil)
			if err == nil {
				t.Fatal("no error")
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(tc.want) {
				t.Fatalf("got\n%s\nwant\n%s", err, strings.Join(tc.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("got\n%s\nwant prefix\n%s", got[i], tc.want[i])
				}
			}
		})
	}
}
