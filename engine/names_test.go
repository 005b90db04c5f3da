package engine_test

import (
	"testing"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

const hostileSchema = `Sales "Ünï" q`

// hostileFixture creates tables whose schema, table, column, type and
// label names need quoting everywhere. "Order Items.v2" is keyed by a text
// column of hostile values and big enough to be chunked by key, so the
// key sampling and the chunk bounds see those values too.
const hostileFixture = `
CREATE SCHEMA "Sales ""Ünï"" q";
CREATE TYPE "Sales ""Ünï"" q"."Mood ""Ü"", type" AS ENUM ('it''s', 'a,b', 'with "quotes"', E'back\\slash', '{brace}', ' lead space', 'NULL', 'ünï 表');
CREATE TABLE "Sales ""Ünï"" q"."select" (
	"Order" integer NOT NULL,
	"a b" text NOT NULL,
	"x""y" text,
	"ümlaut" "Sales ""Ünï"" q"."Mood ""Ü"", type",
	"UPPER" numeric,
	"group" text[],
	PRIMARY KEY ("Order", "a b")
);
CREATE TABLE "Sales ""Ünï"" q"."Order Items.v2" (
	"x""y" text PRIMARY KEY,
	"group" integer,
	"ümlaut" "Sales ""Ünï"" q"."Mood ""Ü"", type"[],
	"a b" text
);
CREATE TABLE "Sales ""Ünï"" q"."ÄÖÜ_表" (
	"UPPER" bigint PRIMARY KEY,
	"a b" "Sales ""Ünï"" q"."Mood ""Ü"", type",
	"Order" jsonb,
	"group" text
);
INSERT INTO "Sales ""Ünï"" q"."select"
SELECT g % 100, format(E'k %s "q"\t\\ ,{}', g / 100), format('v"%s', g),
	(enum_range(NULL::"Sales ""Ünï"" q"."Mood ""Ü"", type"))[1 + g % 8], g * 1.5,
	ARRAY[format('a,%s', g), NULL, '{}', E'back\\']
FROM generate_series(1, 3000) g;
INSERT INTO "Sales ""Ünï"" q"."Order Items.v2"
SELECT format(E'key %s "q" \\ , {}\t%s', lpad(g::text, 6, '0'), repeat('ü', g % 5)), g,
	ARRAY[(enum_range(NULL::"Sales ""Ünï"" q"."Mood ""Ü"", type"))[1 + g % 8], NULL],
	repeat(md5(g::text), 3)
FROM generate_series(1, 20000) g;
INSERT INTO "Sales ""Ünï"" q"."ÄÖÜ_表"
SELECT g, (enum_range(NULL::"Sales ""Ünï"" q"."Mood ""Ü"", type"))[1 + g % 8], jsonb_build_object('g', g, 'k"ey', 'v\al'), repeat('表', g % 7)
FROM generate_series(1, 20000) g;
ANALYZE;
`

func TestHostileNames(t *testing.T) {
	e := newEnv(t)
	e.srcExec(hostileFixture)
	all := tablesOf(t, e.srcDSN, hostileSchema)
	if len(all) != 3 {
		t.Fatalf("fixture: %d tables, want 3: %q", len(all), all)
	}

	t.Run("schema", func(t *testing.T) {
		cfg := e.config(schemaSel(hostileSchema)...)
		cfg.ChunkRows = 2000
		sum := runOK(t, cfg)
		if sum.Tables != 3 || sum.TablesCreated != 3 {
			t.Errorf("summary: %d tables, %d created; want 3 and 3", sum.Tables, sum.TablesCreated)
		}
		if sum.ChunksCopied < 10 {
			t.Errorf("summary: %d chunks copied; want the two big tables chunked (>= 10)", sum.ChunksCopied)
		}
		if sum.Rows != 43000 {
			t.Errorf("summary: %d rows, want 43000", sum.Rows)
		}
		got := tablesOf(t, e.dstDSN, hostileSchema)
		if len(got) != 3 {
			t.Errorf("sink has tables %q, want %q", got, all)
		}
		assertSameData(t, e.srcDSN, e.dstDSN, all)
		assertNoDuplicates(t, e.dstDSN, qn(hostileSchema, "Order Items.v2"), qi(`x"y`))
		assertNoDuplicates(t, e.dstDSN, qn(hostileSchema, "ÄÖÜ_表"), qi("UPPER"))
	})

	t.Run("table", func(t *testing.T) {
		dst := e.newSink()
		cfg := e.config(postgres.Selection{Table: record.TableName{Schema: hostileSchema, Name: "Order Items.v2"}, Where: "test"})
		cfg.SinkDSN = dst
		cfg.ChunkRows = 2000
		sum := runOK(t, cfg)
		if sum.Tables != 1 || sum.TablesCreated != 1 {
			t.Errorf("summary: %d tables, %d created; want 1 and 1", sum.Tables, sum.TablesCreated)
		}
		if sum.ChunksCopied < 5 {
			t.Errorf("summary: %d chunks copied; want the table chunked by its text key (>= 5)", sum.ChunksCopied)
		}
		tbl := qn(hostileSchema, "Order Items.v2")
		if got := tablesOf(t, dst, hostileSchema); len(got) != 1 || got[0] != tbl {
			t.Errorf("sink has tables %q, want only %s", got, tbl)
		}
		assertSameData(t, e.srcDSN, dst, []string{tbl})
		assertNoDuplicates(t, dst, tbl, qi(`x"y`))
	})
}
