package postgres

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
)

func TestPlanTableDDL(t *testing.T) {
	col := func(num int, name, typ string) ColumnState {
		return ColumnState{Num: num, Name: name, Type: typ, Local: true}
	}
	base := func(cols ...ColumnState) *TableState {
		return &TableState{OID: 10, Schema: "app", Name: "t", Kind: "r", Regclass: "app.t", Columns: cols}
	}
	same := DDLNames{Table: SameName}
	mapped := DDLNames{
		Table: func(n record.TableName) record.TableName { return record.TableName{Schema: "copy", Name: n.Name} },
		Column: func(_ record.TableName, c string) (string, bool) {
			if c == "b" {
				return "b_sink", false
			}
			return c, c == "secret"
		},
		Selected: func(n record.TableName) bool { return n.Schema == "app" },
	}
	for _, tc := range []struct {
		name             string
		prev, next, sink *TableState
		names            DDLNames
		exact            bool
		want             []string
		warn             string
	}{
		{
			name:  "a column renamed is told from a drop and an add by its number",
			prev:  base(col(1, "id", "integer"), col(2, "a", "text")),
			next:  base(col(1, "id", "integer"), col(2, "z", "text")),
			sink:  base(col(1, "id", "integer"), col(2, "a", "text")),
			names: same,
			want:  []string{`ALTER TABLE "app"."t" RENAME COLUMN "a" TO "z"`},
		},
		{
			name:  "only what the source dropped is dropped, never a sink-only column",
			prev:  base(col(1, "id", "integer"), col(2, "a", "text")),
			next:  base(col(1, "id", "integer")),
			sink:  base(col(1, "id", "integer"), col(2, "a", "text"), col(3, "mine", "text")),
			names: same,
			want:  []string{`ALTER TABLE "app"."t" DROP COLUMN "a"`},
		},
		{
			name:  "exact drops what the event's state lacks",
			next:  base(col(1, "id", "integer")),
			sink:  base(col(1, "id", "integer"), col(3, "later", "text")),
			names: same,
			exact: true,
			want:  []string{`ALTER TABLE "app"."t" DROP COLUMN "later"`},
		},
		{
			name:  "type change casts, default set after",
			prev:  base(col(1, "id", "integer"), col(2, "a", "integer")),
			next:  base(col(1, "id", "integer"), ColumnState{Num: 2, Name: "a", Type: "bigint", Default: "7", NotNull: true, Local: true}),
			sink:  base(col(1, "id", "integer"), col(2, "a", "integer")),
			names: same,
			want: []string{
				`ALTER TABLE "app"."t" ALTER COLUMN "a" TYPE bigint USING "a"::bigint`,
				`ALTER TABLE "app"."t" ALTER COLUMN "a" SET DEFAULT 7`,
				`ALTER TABLE "app"."t" ALTER COLUMN "a" SET NOT NULL`,
			},
		},
		{
			name: "mapped names: schema, column, dropped column, foreign key target",
			prev: base(col(1, "id", "integer"), col(2, "b", "text")),
			next: func() *TableState {
				s := base(col(1, "id", "integer"), col(2, "b", "text"), col(3, "c", "integer"), col(4, "secret", "text"))
				s.Constraints = []ConstraintState{{OID: 5, Name: "t_fk", Type: "f", Local: true, Cols: []string{"c"},
					Def: "FOREIGN KEY (c) REFERENCES app.u(id)", Ref: "app.u", RefSchema: "app", RefName: "u", RefCols: []string{"id"}}}
				name := "c"
				s.Indexes = []IndexState{{OID: 6, Name: "t_c", Def: "CREATE INDEX t_c ON app.t USING btree (c)", Cols: []*string{&name}}}
				return s
			}(),
			sink: &TableState{Schema: "copy", Name: "t", Kind: "r", Regclass: "copy.t",
				Columns: []ColumnState{col(1, "id", "integer"), col(2, "b_sink", "text")}},
			names: mapped,
			want: []string{
				`ALTER TABLE "copy"."t" ADD COLUMN "c" integer`,
				`ALTER TABLE "copy"."t" ADD CONSTRAINT "t_fk" FOREIGN KEY (c) REFERENCES "copy"."u"(id)`,
				`CREATE INDEX t_c ON "copy"."t" USING btree (c)`,
			},
		},
		{
			name: "a check on a renamed column is not rewritten: warned",
			next: func() *TableState {
				s := base(col(1, "id", "integer"), col(2, "b", "text"))
				s.Constraints = []ConstraintState{{OID: 5, Name: "t_b", Type: "c", Local: true, Cols: []string{"b"}, Def: "CHECK ((b <> ''::text))"}}
				return s
			}(),
			sink: &TableState{Schema: "copy", Name: "t", Kind: "r", Regclass: "copy.t",
				Columns: []ColumnState{col(1, "id", "integer"), col(2, "b_sink", "text")}},
			names: mapped,
			warn:  `constraint t_b of table app.t is not replicated`,
		},
		{
			name: "a key and a unique constraint on renamed columns are written from their parts",
			prev: base(col(1, "id", "integer"), col(2, "b", "text"), col(3, "c", "integer")),
			next: func() *TableState {
				s := base(col(1, "id", "integer"), col(2, "b", "text"), col(3, "c", "integer"))
				s.Constraints = []ConstraintState{
					{OID: 5, Name: "t_pk", Type: "p", Local: true, Cols: []string{"id", "b"}, Def: "PRIMARY KEY (id, b) INCLUDE (c)",
						Key: &ConstraintKey{Include: []string{"c"}, Options: "fillfactor='70'", Tablespace: `"fast"`}},
					{OID: 6, Name: "t_u", Type: "u", Local: true, Cols: []string{"c"}, Def: "UNIQUE NULLS NOT DISTINCT (c) INCLUDE (b) DEFERRABLE",
						Key: &ConstraintKey{Include: []string{"b"}, NullsNotDistinct: true, Deferrable: true}},
				}
				return s
			}(),
			sink: &TableState{Schema: "copy", Name: "t", Kind: "r", Regclass: "copy.t",
				Columns: []ColumnState{col(1, "id", "integer"), col(2, "b_sink", "text"), col(3, "c", "integer")}},
			names: mapped,
			want: []string{
				`ALTER TABLE "copy"."t" ADD CONSTRAINT "t_pk" PRIMARY KEY ("id", "b_sink") INCLUDE ("c") WITH (fillfactor='70') USING INDEX TABLESPACE "fast"`,
				`ALTER TABLE "copy"."t" ADD CONSTRAINT "t_u" UNIQUE NULLS NOT DISTINCT ("c") INCLUDE ("b_sink") DEFERRABLE`,
			},
		},
		{
			name: "a renamed key the sink has is compared as its catalog shows it (no storage parameters): kept",
			prev: base(col(1, "id", "integer"), col(2, "b", "text")),
			next: func() *TableState {
				s := base(col(1, "id", "integer"), col(2, "b", "text"), col(3, "x", "integer"))
				s.Constraints = []ConstraintState{{OID: 5, Name: "t_pk", Type: "p", Local: true, Cols: []string{"b"}, Def: "PRIMARY KEY (b)",
					Key: &ConstraintKey{Options: "fillfactor='70'"}}}
				return s
			}(),
			sink: &TableState{Schema: "copy", Name: "t", Kind: "r", Regclass: "copy.t",
				Columns:     []ColumnState{col(1, "id", "integer"), col(2, "b_sink", "text")},
				Constraints: []ConstraintState{{OID: 50, Name: "t_pk", Type: "p", Local: true, Cols: []string{"b_sink"}, Def: "PRIMARY KEY (b_sink)"}}},
			names: mapped,
			want:  []string{`ALTER TABLE "copy"."t" ADD COLUMN "x" integer`},
		},
		{
			name: "a key on a column the pipeline drops: warned",
			next: func() *TableState {
				s := base(col(1, "id", "integer"), col(4, "secret", "text"))
				s.Constraints = []ConstraintState{{OID: 5, Name: "t_u", Type: "u", Local: true, Cols: []string{"secret"}, Def: "UNIQUE (secret)", Key: &ConstraintKey{}}}
				return s
			}(),
			sink:  &TableState{Schema: "copy", Name: "t", Kind: "r", Regclass: "copy.t", Columns: []ColumnState{col(1, "id", "integer")}},
			names: mapped,
			warn:  `key column "secret" of unique constraint "t_u" is dropped by the pipeline`,
		},
		{
			name:  "table renamed",
			prev:  base(col(1, "id", "integer")),
			next:  &TableState{OID: 10, Schema: "app", Name: "t2", Kind: "r", Regclass: "app.t2", Columns: []ColumnState{col(1, "id", "integer")}},
			sink:  base(col(1, "id", "integer")),
			names: same,
			want:  []string{`ALTER TABLE "app"."t" RENAME TO "t2"`},
		},
		{
			name:  "nothing to do twice",
			prev:  base(col(1, "id", "integer")),
			next:  base(col(1, "id", "integer"), col(2, "a", "text")),
			sink:  base(col(1, "id", "integer"), col(2, "a", "text")),
			names: same,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := PlanTableDDL(tc.prev, tc.next, tc.sink, tc.names, tc.exact)
			var got []string
			for _, s := range plan.Statements {
				got = append(got, s.SQL)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("statements:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			warnings := strings.Join(plan.Warnings, "\n")
			if (tc.warn == "") != (warnings == "") || !strings.Contains(warnings, tc.warn) {
				t.Errorf("warnings %q, want %q", warnings, tc.warn)
			}
		})
	}
}

func TestPublishClause(t *testing.T) {
	p := Publish{Schemas: []string{"app", `we"ird`}, DDLLog: true}
	if got, want := p.schemas(), `TABLES IN SCHEMA "app", "we""ird", `; got != want {
		t.Errorf("schemas() = %q, want %q", got, want)
	}
	tables := []*Table{{OID: 1, Name: record.TableName{Schema: "app", Name: "a"}}, {OID: 2, Name: record.TableName{Schema: "other", Name: "b"}}}
	if got, want := strings.Join(p.tables(tables), ", "), `"sluice"."heartbeat", "sluice"."watermark", "sluice"."ddl_log", "other"."b"`; got != want {
		t.Errorf("tables() = %q, want %q", got, want)
	}
}
