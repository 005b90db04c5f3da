package main

// Unusual values end to end, through the full copy and the stream: very
// large text and bytea (64 MB each, a sane stand-in for PostgreSQL's 1 GB
// limit), NaN and ±Infinity in every float and numeric column and array,
// empty arrays, every control character, and bytes that are not UTF-8 in
// SQL_ASCII databases.

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// bigValueMB is the size of the large text and bytea values.
const bigValueMB = 64

const oddFixture = `
CREATE TABLE public.odd (id int PRIMARY KEY, t text, b bytea, f4 real, f8 float8, n numeric,
	f4a real[], f8a float8[], na numeric[], ia int[], ta text[]);
INSERT INTO public.odd VALUES
	(1, 'nan', '\x00', 'NaN', 'NaN', 'NaN', '{NaN}', '{NaN,NaN}', '{NaN}', '{1}', '{nan}'),
	(2, 'inf', '\xff', 'Infinity', 'Infinity', 'Infinity', '{Infinity,-Infinity}', '{Infinity,-Infinity}', '{Infinity,-Infinity}', '{2}', '{inf}'),
	(3, '-inf', '\x', '-Infinity', '-Infinity', '-Infinity', '{-Infinity}', '{-Infinity,NaN,0}', '{-Infinity,NaN}', '{3}', '{}'),
	(4, '', '\x', '-0', '-0', '0', '{}', '{}', '{}', '{}', '{}'),
	(5, (SELECT string_agg(chr(i), '') FROM generate_series(1, 31) i) || chr(127),
		(SELECT string_agg(set_byte('\x00'::bytea, 0, i), ''::bytea) FROM generate_series(0, 255) i),
		1.5, 2.5, 3.5,
		'{}', '{}', '{}', '{}',
		ARRAY[(SELECT string_agg(chr(i), '') FROM generate_series(1, 31) i), E'\t\n\r\\"{},', '', NULL]);
`

// TestUnusualValues copies and then streams rows with unusual values, and
// a row with a 64 MB text and a 64 MB bytea; the sink must equal the
// source byte for byte (checksums of the text renderings).
func TestUnusualValues(t *testing.T) {
	ctx := streamCtx(t, 6*time.Minute)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	db := dbOf(t, srcDSN)
	if err := src.Exec(ctx, db, oddFixture); err != nil {
		t.Fatal(err)
	}
	big := fmt.Sprintf(`INSERT INTO public.odd (id, t, b) VALUES (%%d, repeat('0123456789abcdef', %d), decode(repeat('00ff7f80', %d), 'hex'))`,
		bigValueMB<<20/16, bigValueMB<<20/4)
	if err := src.Exec(ctx, db, fmt.Sprintf(big, 6)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := dsnEnv(srcDSN, dstDSN)
	file := writePipeline(t, dir, "odd.yaml", streamPipeline("odd", "{parallel: 2}"))
	began := time.Now()
	runCaughtUp(t, dir, env, file, 3*time.Minute)
	t.Logf("full copy with a %d MB text and a %d MB bytea: %s", bigValueMB, bigValueMB, time.Since(began).Round(time.Millisecond))
	assertSameData(t, ctx, srcDSN, dstDSN, "public.odd")

	// The same values again, streamed: inserts, an update of the large
	// row (a new large value), and an update that empties arrays.
	if err := src.Exec(ctx, db, `INSERT INTO public.odd SELECT id + 10, t, b, f4, f8, n, f4a, f8a, na, ia, ta FROM public.odd WHERE id <= 5`); err != nil {
		t.Fatal(err)
	}
	if err := src.Exec(ctx, db, fmt.Sprintf(big, 16)); err != nil {
		t.Fatal(err)
	}
	if err := src.Exec(ctx, db, `UPDATE public.odd SET t = t || 'z', b = b || '\x00'::bytea WHERE id = 6;
		UPDATE public.odd SET f8a = '{}', ta = ARRAY[chr(1)], n = 'NaN' WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	runCaughtUp(t, dir, env, file, 3*time.Minute)
	t.Logf("streamed the same values and two %d MB rows: %s", bigValueMB, time.Since(began).Round(time.Millisecond))
	assertSameData(t, ctx, srcDSN, dstDSN, "public.odd")
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM public.odd WHERE octet_length(t) >= $1 AND octet_length(b) >= $1`, bigValueMB<<20); n != 2 {
		t.Errorf("sink: %d rows with %d MB values, want 2", n, bigValueMB)
	}
}

// sqlASCIIDB creates a SQL_ASCII database on c, dropped at the end of the
// test, and returns its DSN.
func sqlASCIIDB(t *testing.T, c *pgtest.Cluster, name string) string {
	t.Helper()
	ctx := context.Background()
	if err := c.Exec(ctx, "postgres", `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()+` ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DropDatabase(context.Background(), name) })
	return c.DSN(name)
}

// TestSQLASCII: bytes that are not UTF-8, in a SQL_ASCII source database,
// reach a SQL_ASCII sink unchanged (copy and stream); a UTF8 sink refuses
// them, and the pipeline stops naming the table, the key and the column.
func TestSQLASCII(t *testing.T) {
	ctx := streamCtx(t, 4*time.Minute)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN := sqlASCIIDB(t, src, "ascii_src")
	dropSlotsAtCleanup(t, srcDSN)
	const fixture = `CREATE TABLE public.raw (id int PRIMARY KEY, t text, ta text[]);
		INSERT INTO public.raw VALUES (1, 'plain', '{a}'), (2, E'caf\xe9 \xff\xfe end', ARRAY[E'\x80\x81', 'ok']);`
	if err := src.Exec(ctx, "ascii_src", fixture); err != nil {
		t.Fatal(err)
	}

	t.Run("to_sql_ascii", func(t *testing.T) {
		dstDSN := sqlASCIIDB(t, snk, "ascii_dst")
		dir := t.TempDir()
		env := dsnEnv(srcDSN, dstDSN)
		file := writePipeline(t, dir, "ascii.yaml", streamPipeline("ascii", "{parallel: 2}"))
		runCaughtUp(t, dir, env, file, 2*time.Minute)
		if err := src.Exec(ctx, "ascii_src", `INSERT INTO public.raw VALUES (3, E'\xc3\x28 latin \xe0', ARRAY[E'\xf0']); UPDATE public.raw SET t = t || E'\xa0' WHERE id = 2`); err != nil {
			t.Fatal(err)
		}
		runCaughtUp(t, dir, env, file, 2*time.Minute)
		assertSameData(t, ctx, srcDSN, dstDSN, "public.raw")
		if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM public.raw WHERE position('\xe9'::bytea IN convert_to(t, 'SQL_ASCII')) > 0`); n != 1 {
			t.Errorf("sink: %d rows hold the byte 0xe9, want 1", n)
		}
		if r := sluice(t, dir, env, "drop", file); r.code != 0 {
			t.Errorf("sluice drop: %s", r)
		}
	})

	t.Run("to_utf8_copy", func(t *testing.T) {
		dstDSN := pgtest.NewDB(t, snk)
		dir := t.TempDir()
		file := writePipeline(t, dir, "toutf8.yaml", streamPipeline("toutf8", "{parallel: 2}"))
		wantStopped(t, dir, dsnEnv(srcDSN, dstDSN), file,
			[]string{"parked", "public.raw", `invalid byte sequence for encoding "UTF8"`, "column t"},
			regexp.MustCompile(`chunk \d+`))
		if r := sluice(t, dir, dsnEnv(srcDSN, dstDSN), "drop", file); r.code != 0 {
			t.Errorf("sluice drop: %s", r)
		}
	})

	t.Run("to_utf8_stream", func(t *testing.T) {
		if err := src.Exec(ctx, "ascii_src", `CREATE TABLE public.later (id int PRIMARY KEY, t text)`); err != nil {
			t.Fatal(err)
		}
		dstDSN := pgtest.NewDB(t, snk)
		dir := t.TempDir()
		env := dsnEnv(srcDSN, dstDSN)
		body := strings.Replace(streamPipeline("toutf8s", "{parallel: 2}"), "  - schema: public\n", "  - table: public.later\n", 1)
		file := writePipeline(t, dir, "toutf8s.yaml", body)
		runCaughtUp(t, dir, env, file, 2*time.Minute)
		if err := src.Exec(ctx, "ascii_src", `INSERT INTO public.later VALUES (1, 'fine'), (42, E'bad \xe9 byte')`); err != nil {
			t.Fatal(err)
		}
		wantStopped(t, dir, env, file,
			[]string{"parked", "public.later", "key id=42", `invalid byte sequence for encoding "UTF8"`, `column "t"`},
			regexp.MustCompile(`committed at [0-9A-F]+/[0-9A-F]+`))
		if r := sluice(t, dir, env, "drop", file); r.code != 0 {
			t.Errorf("sluice drop: %s", r)
		}
	})
}

// TestHostileNamesStreamed: schema, table and column names built to break
// SQL that does not quote them (quotes, semicolons, comment markers, dots,
// spaces, upper case, Unicode, reserved words) are copied and streamed,
// selected by a pipeline file that spells them quoted; and nothing else at
// the sink was touched (the decoy table survives).
func TestHostileNamesStreamed(t *testing.T) {
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	const fixture = `
CREATE SCHEMA "we;ird ""S"".x";
CREATE TABLE "we;ird ""S"".x"."t""; DROP TABLE public.decoy; --" (
	"id ""k""" int PRIMARY KEY, "select" text, "a.b c" int, "ÄÖÜ 表" text[], "--" bytea);
INSERT INTO "we;ird ""S"".x"."t""; DROP TABLE public.decoy; --"
	SELECT g, 'v' || g, g, ARRAY['x;y', 'z"w'], '\x00'::bytea FROM generate_series(1, 500) g;
CREATE TABLE "we;ird ""S"".x"."Order" ("from" text, "to" text);
INSERT INTO "we;ird ""S"".x"."Order" SELECT 'a''b', '); --' FROM generate_series(1, 50);`
	if err := src.Exec(ctx, dbOf(t, srcDSN), fixture); err != nil {
		t.Fatal(err)
	}
	if err := snk.Exec(ctx, dbOf(t, dstDSN), `CREATE TABLE public.decoy (id int); INSERT INTO public.decoy VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := dsnEnv(srcDSN, dstDSN)
	body := strings.Replace(streamPipeline("hostile", "{parallel: 2}"), "  - schema: public\n",
		"  - schema: '\"we;ird \"\"S\"\".x\"'\n", 1)
	file := writePipeline(t, dir, "hostile.yaml", body)
	runCaughtUp(t, dir, env, file, 2*time.Minute)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `
UPDATE "we;ird ""S"".x"."t""; DROP TABLE public.decoy; --" SET "select" = "select" || ''';--', "ÄÖÜ 表" = '{}' WHERE "id ""k""" % 3 = 0;
UPDATE "we;ird ""S"".x"."t""; DROP TABLE public.decoy; --" SET "id ""k""" = "id ""k""" + 1000 WHERE "id ""k""" % 7 = 0;
DELETE FROM "we;ird ""S"".x"."Order" WHERE ctid IN (SELECT ctid FROM "we;ird ""S"".x"."Order" LIMIT 3);
INSERT INTO "we;ird ""S"".x"."Order" VALUES ('"', '\');`); err != nil {
		t.Fatal(err)
	}
	runCaughtUp(t, dir, env, file, 2*time.Minute)
	assertSameData(t, ctx, srcDSN, dstDSN, `"we;ird ""S"".x"."t""; DROP TABLE public.decoy; --"`, `"we;ird ""S"".x"."Order"`)
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM public.decoy`); n != 1 {
		t.Errorf("the decoy table has %d rows, want 1", n)
	}
}
