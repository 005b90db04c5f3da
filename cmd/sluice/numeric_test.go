package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestTransformNumericExact: `filter` and `set` stages over numeric
// columns compute exactly, digit for digit what PostgreSQL computes for
// the same SQL expression: in the full copy and while streaming, for
// sums and products of money-like values, divisions (PostgreSQL's result
// scale), rounding, values beyond 2^63, NaN and ±Infinity, powers (**,
// ^) and max as PostgreSQL's ^ and greatest, and numeric results written
// into numeric, double precision and bigint columns.
// A numeric division by zero parks the pipeline like any expression
// error. With float64 arithmetic the filter keeps rows it must drop (19.99 * 3
// is 59.970000000000006, 0.1 + 0.2 is 0.30000000000000004) and the
// computed columns lose digits, so the checksums differ.
func TestTransformNumericExact(t *testing.T) {
	ctx := streamCtx(t, 4*time.Minute)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	const tbl = `public."Pri ces"`
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE TABLE `+tbl+` (id int PRIMARY KEY, price numeric(12,2) NOT NULL, qty int NOT NULL, big numeric,
	tot numeric, per numeric, big2 numeric, rnd numeric(14,2), fl double precision, cents bigint, sq numeric, mx numeric);
INSERT INTO `+tbl+` (id, price, qty, big)
SELECT g, (ARRAY[19.99, 0.10, 0.20, 0.30, 12345678.99, 0.01, -5.55, 7.77, 1.15, 2.675])[1 + g % 10] + (g / 10) * 0.01,
	g % 7, (ARRAY['9223372036854775809', 'NaN', 'Infinity', '-Infinity', '0.000000000000000000000000000001', NULL, '-12.5'])[1 + g % 7]::numeric
FROM generate_series(1, 400) g;
-- Rows the filter must drop, whichever way float64 rounds.
INSERT INTO `+tbl+` (id, price, qty, big) VALUES (1001, 19.99, 3, 1), (1002, 0.10, 2, 1);`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pipeline := func(per string) string {
		return `name: numeric_exact
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - table: '"Pri ces"'
transforms:
  - filter: "after.price * 3 != 59.97 && after.price + 0.2 != 0.3"
  - set:
      tot: "after.price * after.qty * 1.10"
      per: "` + per + `"
      big2: "after.big == nil ? nil : after.big + 1"
      rnd: "round(after.price * 1.0825, 2)"
      fl: "after.price / 3"
      cents: "after.price * 100 - after.qty"
      sq: "after.price ** 2 + abs(after.price) ^ 0.5"
      mx: "max(after.price, after.big ?? 0, 1.5)"
state_dir: state
`
	}
	const guarded = "after.qty == 0 ? nil : after.price / after.qty"
	p := writePipeline(t, dir, "numeric.yaml", pipeline(guarded))
	env := dsnEnv(srcDSN, dstDSN)
	if r := sluice(t, dir, env, "check", p); strings.Contains(r.stdout+r.stderr, "position") {
		t.Fatalf("sluice check refuses the numeric stages:\n%s", r)
	}
	// The same computation in SQL at the source.
	want := `SELECT id, price, qty, big, price * qty * 1.10, CASE WHEN qty = 0 THEN NULL ELSE price / qty END, big + 1,
		round(price * 1.0825, 2), (price / 3)::double precision, (price * 100 - qty)::bigint,
		price ^ 2 + abs(price) ^ 0.5, greatest(price, COALESCE(big, 0), 1.5)
		FROM ` + tbl + ` WHERE price * 3 <> 59.97 AND price + 0.2 <> 0.3`
	got := `SELECT id, price, qty, big, tot, per, big2, rnd, fl, cents, sq, mx FROM ` + tbl
	runCaughtUp(t, dir, env, p, 2*time.Minute)
	assertSameRows(t, ctx, srcDSN, want, dstDSN, got)
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM `+tbl+` WHERE id IN (1001, 1002) OR price = 19.99 OR price = 0.10`); n != 0 {
		t.Errorf("the sink holds %d rows the exact filter drops", n)
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM `+tbl+` WHERE big2::text IN ('9223372036854775810', 'NaN', 'Infinity', '-Infinity')`); n == 0 {
		t.Error("no row with big2 beyond 2^63 or NaN/Infinity at the sink: the test proves less than it says")
	}

	// Streaming: inserts, updates into and out of the filter, deletes.
	if err := src.Exec(ctx, dbOf(t, srcDSN), `
INSERT INTO `+tbl+` (id, price, qty, big) SELECT g, 0.01 * g, g % 5, (g * 0.333)::numeric FROM generate_series(2001, 2200) g;
BEGIN;
UPDATE `+tbl+` SET price = 19.99 WHERE id BETWEEN 2001 AND 2020;          -- out of the filter
UPDATE `+tbl+` SET price = 0.11, big = 'NaN' WHERE id IN (1001, 1002);   -- into it
UPDATE `+tbl+` SET qty = qty + 1, big = big * 3 WHERE id BETWEEN 100 AND 150;
COMMIT;
DELETE FROM `+tbl+` WHERE id BETWEEN 300 AND 320;`); err != nil {
		t.Fatal(err)
	}
	runCaughtUp(t, dir, env, p, 2*time.Minute)
	assertSameRows(t, ctx, srcDSN, want, dstDSN, got)
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM `+tbl+` WHERE id BETWEEN 2001 AND 2020`); n != 0 {
		t.Errorf("the sink holds %d rows updated to 19.99, which the filter drops", n)
	}

	// A numeric division by zero parks the pipeline naming the stage, the
	// table and the key; with the expression fixed it resumes.
	writePipeline(t, dir, "numeric.yaml", pipeline("after.price / after.qty"))
	if err := src.Exec(ctx, dbOf(t, srcDSN), `INSERT INTO `+tbl+` (id, price, qty, big) VALUES (5000, 1.23, 0, 1)`); err != nil {
		t.Fatal(err)
	}
	r := startSluice(t, dir, env, "run", "--until-caught-up", p).wait(2 * time.Minute)
	for _, want := range []string{"numeric.yaml:9 (transforms[1])", `table public."Pri ces"`, `key ("id")=(5000)`, `set "per": position 13: division by zero`} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("a numeric division by zero: want exit 1 and %q in stderr:\n%s", want, r)
		}
	}
	writePipeline(t, dir, "numeric.yaml", pipeline(guarded))
	runCaughtUp(t, dir, env, p, 2*time.Minute)
	assertSameRows(t, ctx, srcDSN, want, dstDSN, got)
}
