package rename

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
)

func tn(schema, name string) record.TableName { return record.TableName{Schema: schema, Name: name} }

func mustNew(t *testing.T, c Config) *Rules {
	t.Helper()
	r, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRuleKinds(t *testing.T) {
	r := mustNew(t, Config{
		Tables:  []TableRename{{From: tn("sales", "big_orders"), To: tn("archive", "big_orders"), Origin: "p.yaml:3"}},
		Schemas: []SchemaRename{{From: "crm", To: "crm_copy", Origin: "p.yaml:5"}},
		Bulk: []BulkRename{
			{Schema: "logs", Prefix: "old_", Origin: "p.yaml:7"},
			{Schema: "stats", Suffix: "_v2", Origin: "p.yaml:8"},
			{Schema: "events", Pattern: `ev_(\d{4})_(\d{2})`, Replacement: "events_${1}${2}", Origin: "p.yaml:9"},
			{Schema: "events", Pattern: `tmp_.*`, Prefix: "x_", Origin: "p.yaml:10"},
		},
		Columns: []ColumnRename{
			{Table: tn("sales", "orders"), From: "cust_id", To: "customer_id", Origin: "p.yaml:12"},
			{Table: tn("sales", "orders"), From: "notes", Drop: true, Origin: "p.yaml:13"},
		},
	})
	tables := []struct{ in, want record.TableName }{
		{tn("sales", "big_orders"), tn("archive", "big_orders")},
		{tn("sales", "orders"), tn("sales", "orders")},
		{tn("crm", "Contacts"), tn("crm_copy", "Contacts")},
		{tn("logs", "web"), tn("logs", "old_web")},
		{tn("stats", "daily"), tn("stats", "daily_v2")},
		{tn("events", "ev_2024_03"), tn("events", "events_202403")},
		{tn("events", "ev_2024_3"), tn("events", "ev_2024_3")}, // no rule matches the whole name
		{tn("events", "tmp_a"), tn("events", "x_tmp_a")},
		{tn("other", "logs"), tn("other", "logs")},
	}
	for _, c := range tables {
		if got := r.Table(c.in); got != c.want {
			t.Errorf("Table(%s) = %s, want %s", c.in, got, c.want)
		}
	}
	cols := []struct {
		table     record.TableName
		col, want string
		dropped   bool
	}{
		{tn("sales", "orders"), "cust_id", "customer_id", false},
		{tn("sales", "orders"), "notes", "", true},
		{tn("sales", "orders"), "id", "id", false},
		{tn("sales", "big_orders"), "cust_id", "cust_id", false},
	}
	for _, c := range cols {
		got, dropped := r.Column(c.table, c.col)
		if got != c.want || dropped != c.dropped {
			t.Errorf("Column(%s, %s) = %q, %v; want %q, %v", c.table, c.col, got, dropped, c.want, c.dropped)
		}
	}
}

func TestCasePolicy(t *testing.T) {
	for _, c := range []struct {
		policy string
		in     record.TableName
		col    string
		want   record.TableName
		wcol   string
	}{
		{"source", tn("Sales", "Orders"), "CustID", tn("Sales", "Orders"), "CustID"},
		{"", tn("Sales", "Orders"), "CustID", tn("Sales", "Orders"), "CustID"},
		{"lower", tn("Sales", "Orders"), "CustID", tn("sales", "orders"), "custid"},
		{"upper", tn("Sales", "Orders"), "CustID", tn("SALES", "ORDERS"), "CUSTID"},
		{"lower", tn("Ventes", "ÉTÉ"), "Ünï", tn("ventes", "été"), "ünï"},
	} {
		p, err := ParseCase(c.policy)
		if err != nil {
			t.Fatal(err)
		}
		r := mustNew(t, Config{Case: p})
		if got := r.Table(c.in); got != c.want {
			t.Errorf("%s: Table(%s) = %s, want %s", c.policy, c.in, got, c.want)
		}
		if got, _ := r.Column(c.in, c.col); got != c.wcol {
			t.Errorf("%s: Column(%s) = %s, want %s", c.policy, c.col, got, c.wcol)
		}
	}
	if _, err := ParseCase("title"); err == nil || !strings.Contains(err.Error(), "valid: source, lower, upper") {
		t.Errorf("ParseCase(title): %v", err)
	}
}

// TestPrecedence: explicit table rename > schema rename > bulk rule > case
// policy, part by part.
func TestPrecedence(t *testing.T) {
	r := mustNew(t, Config{
		Tables:  []TableRename{{From: tn("Crm", "VIP"), To: tn("Special", "Vip")}},
		Schemas: []SchemaRename{{From: "Crm", To: "Crm_Copy"}},
		Bulk:    []BulkRename{{Schema: "Crm", Prefix: "T_"}},
		Columns: []ColumnRename{{Table: tn("Crm", "Acc"), From: "ID", To: "Ident"}},
		Case:    CaseLower,
	})
	cases := []struct{ in, want record.TableName }{
		// table rename wins over everything, exactly as written
		{tn("Crm", "VIP"), tn("Special", "Vip")},
		// schema rename decides the schema, bulk rule the name; neither is cased
		{tn("Crm", "Acc"), tn("Crm_Copy", "T_Acc")},
		// no rule: case policy on both parts
		{tn("Other", "Acc"), tn("other", "acc")},
	}
	for _, c := range cases {
		if got := r.Table(c.in); got != c.want {
			t.Errorf("Table(%s) = %s, want %s", c.in, got, c.want)
		}
	}
	if got, _ := r.Column(tn("Crm", "Acc"), "ID"); got != "Ident" {
		t.Errorf("explicit column rename: %s", got)
	}
	if got, _ := r.Column(tn("Crm", "Acc"), "Name"); got != "name" {
		t.Errorf("case policy on columns: %s", got)
	}
	// A bulk rule matches on the source schema, even when the schema is renamed.
	r2 := mustNew(t, Config{Schemas: []SchemaRename{{From: "a", To: "b"}}, Bulk: []BulkRename{{Schema: "b", Prefix: "x_"}}})
	if got := r2.Table(tn("a", "t")); got != tn("b", "t") {
		t.Errorf("bulk rule of the sink schema applied: %s", got)
	}
}

func TestHostileNames(t *testing.T) {
	weird := tn(`my "schema"`, `a.b "c"`)
	r := mustNew(t, Config{
		Tables:  []TableRename{{From: weird, To: tn("dst.schema", `"quoted"`)}},
		Columns: []ColumnRename{{Table: weird, From: `col "1".x`, To: "Ünïcödé 列"}},
		Bulk:    []BulkRename{{Schema: "日本", Pattern: `(.*)\.v1`, Replacement: "$1.v2"}},
	})
	if got := r.Table(weird); got != tn("dst.schema", `"quoted"`) {
		t.Errorf("Table = %s", got)
	}
	if got, _ := r.Column(weird, `col "1".x`); got != "Ünïcödé 列" {
		t.Errorf("Column = %s", got)
	}
	if got := r.Table(tn("日本", "表.v1")); got != tn("日本", "表.v2") {
		t.Errorf("bulk = %s", got)
	}
	if got := r.Table(tn("日本", "表xv1")); got != tn("日本", "表xv1") {
		t.Errorf("bulk pattern matched a non-dot: %s", got)
	}
	if err := r.Check([]record.TableName{weird, tn("日本", "表.v1")}, map[record.TableName][]string{weird: {`col "1".x`, "id"}}); err != nil {
		t.Errorf("Check: %v", err)
	}
	// The sink quotes names, so case makes distinct names.
	r0 := mustNew(t, Config{})
	if err := r0.Check([]record.TableName{tn("s", "Orders"), tn("s", "orders"), tn("S", "orders")}, nil); err != nil {
		t.Errorf("distinct quoted names collide: %v", err)
	}
}

func TestCollisions(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		tables  []record.TableName
		columns map[record.TableName][]string
		want    []string
	}{
		{
			name:   "case policy folds two tables together",
			cfg:    Config{Case: CaseLower, CaseOrigin: "p.yaml:2"},
			tables: []record.TableName{tn("sales", "Orders"), tn("sales", "orders")},
			want:   []string{`tables sales."Orders" and sales.orders both map to sales.orders at the sink (sales."Orders": case policy lower at p.yaml:2; sales.orders: case policy lower at p.yaml:2); rename one of them`},
		},
		{
			name:   "explicit rename onto an existing table",
			cfg:    Config{Tables: []TableRename{{From: tn("sales", "big_orders"), To: tn("archive", "orders"), Origin: "p.yaml:7"}}},
			tables: []record.TableName{tn("sales", "big_orders"), tn("archive", "orders")},
			want:   []string{`tables archive.orders and sales.big_orders both map to archive.orders at the sink (archive.orders: no rule; sales.big_orders: table rename at p.yaml:7)`},
		},
		{
			name:   "schema rename onto another schema",
			cfg:    Config{Schemas: []SchemaRename{{From: "crm", To: "public", Origin: "p.yaml:4"}}},
			tables: []record.TableName{tn("crm", "users"), tn("public", "users"), tn("crm", "leads")},
			want:   []string{`tables crm.users and public.users both map to public.users at the sink (crm.users: schema rename at p.yaml:4; public.users: no rule)`},
		},
		{
			name:   "bulk pattern maps two tables onto one",
			cfg:    Config{Bulk: []BulkRename{{Schema: "ev", Pattern: `ev_(\d+)_.*`, Replacement: "ev_$1", Origin: "p.yaml:9"}}},
			tables: []record.TableName{tn("ev", "ev_1_a"), tn("ev", "ev_1_b"), tn("ev", "ev_2_a")},
			want:   []string{`tables ev.ev_1_a and ev.ev_1_b both map to ev.ev_1 at the sink (ev.ev_1_a: bulk rule at p.yaml:9; ev.ev_1_b: bulk rule at p.yaml:9)`},
		},
		{
			name:    "column renamed onto another column",
			cfg:     Config{Columns: []ColumnRename{{Table: tn("s", "t"), From: "cust_id", To: "customer_id", Origin: "p.yaml:12"}}},
			tables:  []record.TableName{tn("s", "t")},
			columns: map[record.TableName][]string{tn("s", "t"): {"id", "cust_id", "customer_id"}},
			want:    []string{`columns cust_id and customer_id of s.t both map to customer_id at the sink (cust_id: column rename at p.yaml:12; customer_id: no rule); rename or drop one of them`},
		},
		{
			name:    "columns folded by case policy",
			cfg:     Config{Case: CaseUpper},
			tables:  []record.TableName{tn("s", "t")},
			columns: map[record.TableName][]string{tn("s", "t"): {"Name", "name"}},
			want:    []string{`columns "Name" and name of s.t both map to "NAME" at the sink`},
		},
		{
			name:    "a drop frees the name",
			cfg:     Config{Columns: []ColumnRename{{Table: tn("s", "t"), From: "a", To: "b"}, {Table: tn("s", "t"), From: "b", Drop: true}}},
			tables:  []record.TableName{tn("s", "t")},
			columns: map[record.TableName][]string{tn("s", "t"): {"a", "b"}},
		},
		{
			name: "names PostgreSQL would truncate",
			cfg: Config{Bulk: []BulkRename{{Schema: "s", Suffix: strings.Repeat("x", 63), Origin: "p.yaml:3"}},
				Columns: []ColumnRename{{Table: tn("s", "t"), From: "c", To: strings.Repeat("é", 32)}}},
			tables:  []record.TableName{tn("s", "t")},
			columns: map[record.TableName][]string{tn("s", "t"): {"c"}},
			want: []string{
				`table s.t: the sink table name t` + strings.Repeat("x", 63) + ` is 64 bytes long; PostgreSQL would truncate it to 63 (bulk rule at p.yaml:3)`,
				`is 64 bytes long; PostgreSQL would truncate it to 63 (column rename)`,
			},
		},
		{
			name:   "reserved schema",
			cfg:    Config{Schemas: []SchemaRename{{From: "app", To: "sluice"}}},
			tables: []record.TableName{tn("app", "t")},
			want:   []string{`table app.t maps to sluice.t, in the schema sluice that holds sluice's own state at the sink`},
		},
		{
			name:   "empty name from a pattern",
			cfg:    Config{Bulk: []BulkRename{{Schema: "s", Pattern: `tmp_.*`, Replacement: "$9"}}},
			tables: []record.TableName{tn("s", "tmp_1")},
			want:   []string{`table s.tmp_1: the sink table name is empty (bulk rule)`},
		},
		{
			name: "rules about what is not copied",
			cfg: Config{Tables: []TableRename{{From: tn("s", "gone"), To: tn("s", "x"), Origin: "p.yaml:4"}},
				Columns: []ColumnRename{{Table: tn("s", "t"), From: "notes", Drop: true, Origin: "p.yaml:6"}, {Table: tn("s", "nope"), From: "a", To: "b", Origin: "p.yaml:7"}}},
			tables:  []record.TableName{tn("s", "t")},
			columns: map[record.TableName][]string{tn("s", "t"): {"id", "note"}},
			want: []string{
				`rename: p.yaml:4: the table rename names s.gone, which the pipeline does not copy`,
				`rename: p.yaml:7: the column rule names table s.nope, which the pipeline does not copy`,
				`rename: p.yaml:6: s.t has no column notes (its columns: id, note)`,
			},
		},
	}
	for _, c := range cases {
		r := mustNew(t, c.cfg)
		err := r.Check(c.tables, c.columns)
		if len(c.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s:\n  got  %v\n  want …%s…", c.name, err, w)
			}
		}
	}
}

func TestNewRefuses(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Tables: []TableRename{{From: tn("s", "t"), To: tn("a", "b"), Origin: "p.yaml:3"}, {From: tn("s", "t"), To: tn("c", "d"), Origin: "p.yaml:9"}}},
			"p.yaml:9: table s.t is renamed twice: to c.d here and to a.b (p.yaml:3)"},
		{Config{Schemas: []SchemaRename{{From: "crm", To: "a"}, {From: "crm", To: "b", Origin: "p.yaml:5"}}}, "p.yaml:5: schema crm is renamed twice"},
		{Config{Columns: []ColumnRename{{Table: tn("s", "t"), From: "a", To: "b"}, {Table: tn("s", "t"), From: "a", Drop: true, Origin: "p.yaml:8"}}},
			"p.yaml:8: column a of s.t has two rules: drop here and rename to b"},
		{Config{Columns: []ColumnRename{{Table: tn("s", "t"), From: "a"}}}, "give a new name, or null to drop it"},
		{Config{Bulk: []BulkRename{{Schema: "s", Pattern: "a(", Origin: "p.yaml:2"}}}, "p.yaml:2: invalid pattern \"a(\": missing closing )"},
		{Config{Bulk: []BulkRename{{Schema: "s"}}}, "needs a prefix, a suffix or a pattern"},
		{Config{Bulk: []BulkRename{{Prefix: "x"}}}, "needs the schema whose tables it renames"},
		{Config{Bulk: []BulkRename{{Schema: "s", Prefix: "x", Replacement: "y"}}}, "a replacement needs a pattern"},
		{Config{Tables: []TableRename{{From: tn("s", "t"), To: tn("", "x")}}}, "needs a schema and a table name"},
	}
	for _, c := range cases {
		_, err := New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New: %v, want …%s…", err, c.want)
		}
	}
}

func TestRelation(t *testing.T) {
	r := mustNew(t, Config{
		Tables:  []TableRename{{From: tn("s", "t"), To: tn("a", "b")}},
		Columns: []ColumnRename{{Table: tn("s", "t"), From: "x", Drop: true}, {Table: tn("s", "t"), From: "y", To: "why"}},
	})
	src := &record.Relation{ID: 7, Table: tn("s", "t"), Columns: []record.Column{{Name: "id", Key: true, TypeOID: 23}, {Name: "x", TypeOID: 25}, {Name: "y", TypeOID: 25}}}
	dst, keep := r.Relation(src)
	if dst.ID != 7 || dst.Table != tn("a", "b") || len(dst.Columns) != 2 || dst.Columns[0].Name != "id" || !dst.Columns[0].Key || dst.Columns[1].Name != "why" {
		t.Errorf("Relation = %+v", dst)
	}
	if len(keep) != 2 || keep[0] != 0 || keep[1] != 2 {
		t.Errorf("keep = %v", keep)
	}
	if src.Columns[2].Name != "y" || src.Table != tn("s", "t") {
		t.Error("the source relation was modified")
	}
}

func TestNilRules(t *testing.T) {
	var r *Rules
	if got := r.Table(tn("s", "t")); got != tn("s", "t") {
		t.Errorf("nil Table = %s", got)
	}
	if got, dropped := r.Column(tn("s", "t"), "c"); got != "c" || dropped {
		t.Errorf("nil Column = %s %v", got, dropped)
	}
	if err := r.Check([]record.TableName{tn("s", "t")}, map[record.TableName][]string{tn("s", "t"): {"a", "b"}}); err != nil {
		t.Errorf("nil Check: %v", err)
	}
}
