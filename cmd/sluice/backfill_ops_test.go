package main

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestBackfillOperations: a backfill honours the object's operations list.
// Without update it only inserts the rows the sink lacks (rows changed at
// the sink stay as they are); without insert it only replaces the rows the
// sink has (rows deleted at the sink stay deleted); with neither it is
// refused before anything is written.
func TestBackfillOperations(t *testing.T) {
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE SCHEMA "Ops S";
CREATE TABLE "Ops S"."ins ""I""" (id int PRIMARY KEY, v text);
CREATE TABLE "Ops S"."upd ""U""" (id int PRIMARY KEY, v text);
CREATE TABLE "Ops S"."del ""D""" (id int PRIMARY KEY, v text);
INSERT INTO "Ops S"."ins ""I""" SELECT i, 'v' || i FROM generate_series(1, 50) i;
INSERT INTO "Ops S"."upd ""U""" SELECT i, 'v' || i FROM generate_series(1, 50) i;
INSERT INTO "Ops S"."del ""D""" SELECT i, 'v' || i FROM generate_series(1, 50) i;`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := writePipeline(t, dir, "bfo.yaml", `name: bfo
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: false}
objects:
  - table: '"Ops S"."ins ""I"""'
    operations: [insert, delete]
  - table: '"Ops S"."upd ""U"""'
    operations: [update]
  - table: '"Ops S"."del ""D"""'
    operations: [delete, truncate]
state_dir: state
`)
	env := dsnEnv(srcDSN, dstDSN)
	if r := sluice(t, dir, env, "run", file); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	sink := connect(t, ctx, dstDSN)
	for _, table := range []string{`"Ops S"."ins ""I"""`, `"Ops S"."upd ""U"""`} {
		if _, err := sink.Exec(ctx, `DELETE FROM `+table+` WHERE id <= 10; UPDATE `+table+` SET v = 'sink' WHERE id BETWEEN 11 AND 20`); err != nil {
			t.Fatal(err)
		}
		out := parseBackfill(t, sluice(t, dir, env, "backfill", file, "--table", table, "--json"))
		t.Logf("backfill of %s: %+v", table, out)
	}
	count := func(table, cond string) int64 {
		return queryInt(t, ctx, dstDSN, `SELECT count(*) FROM `+table+` WHERE `+cond)
	}
	// insert, no update: the deleted rows are back, the changed ones not.
	if n := count(`"Ops S"."ins ""I"""`, `id <= 10 AND v = 'v' || id`); n != 10 {
		t.Errorf("operations [insert, delete]: %d of the 10 rows deleted at the sink are back, want 10", n)
	}
	if n := count(`"Ops S"."ins ""I"""`, `v = 'sink'`); n != 10 {
		t.Errorf("operations [insert, delete]: %d of the 10 rows changed at the sink kept the sink's value, want 10", n)
	}
	// update, no insert: the changed rows are replaced, the deleted ones
	// stay deleted.
	if n := count(`"Ops S"."upd ""U"""`, `id <= 10`); n != 0 {
		t.Errorf("operations [update]: %d rows deleted at the sink were inserted again, want 0", n)
	}
	if n := count(`"Ops S"."upd ""U"""`, `v = 'v' || id`); n != 40 {
		t.Errorf("operations [update]: %d rows equal to the source, want 40", n)
	}
	r := sluice(t, dir, env, "backfill", file, "--table", `"Ops S"."del ""D"""`)
	if r.code != 1 || !strings.Contains(r.stderr, "neither insert nor update") {
		t.Errorf("operations [delete, truncate]: want the backfill refused, got:\n%s", r)
	}
}
