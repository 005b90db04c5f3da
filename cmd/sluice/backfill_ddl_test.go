package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// waitSink polls the sink until sql returns want (errors, such as a table
// not there yet, count as not yet).
func waitSink(t *testing.T, ctx context.Context, dstDSN, sql string, want int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got int64
	var lastErr error
	for time.Now().Before(deadline) {
		conn, err := pgx.Connect(ctx, dstDSN)
		if err == nil {
			lastErr = conn.QueryRow(ctx, sql).Scan(&got)
			conn.Close(context.Background())
			if lastErr == nil && got == want {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("sink: %s gave %d (%v) after %s, want %d", sql, got, lastErr, timeout, want)
}

// TestBackfillAfterDDL: while a live run streams, the source's table gains
// a column (filled by an UPDATE), has a column and then itself renamed,
// and a new table is created with rows; all of it is replicated. Rows of
// both tables are then damaged at the sink, and `sluice backfill`, run by
// the live run, repairs them: it reads each table as it is now (the added
// column's values, the renamed column, the new name; a table the run did
// not start with), not as it was when the run started. A column added
// while a backfill runs is picked up too. Afterwards sink equals source.
func TestBackfillAfterDDL(t *testing.T) {
	start := time.Now()
	ctx := streamCtx(t, 5*time.Minute)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	const rows = 3000
	if err := src.Exec(ctx, dbOf(t, srcDSN), fmt.Sprintf(`CREATE SCHEMA "Bf DDL";
CREATE TABLE "Bf DDL"."t ""1""" (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO "Bf DDL"."t ""1""" SELECT i, 'v' || i FROM generate_series(1, %d) i;`, rows)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := writePipeline(t, dir, "bfd.yaml", `name: bfd
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - schema: 'Bf DDL'
state_dir: state
`)
	env := dsnEnv(srcDSN, dstDSN)
	runCaughtUp(t, dir, env, file, 3*time.Minute)
	// Chunks stay open a while, so that DDL during the last backfill
	// lands inside some.
	live := startSluice(t, dir, withEnv(env, "SLUICE_FAILPOINTS", "backfill.read=sleep:50ms"), "run", file)
	waitStreaming(t, ctx, live, srcDSN, "sluice_bfd", time.Minute)

	source := connect(t, ctx, srcDSN)
	if _, err := source.Exec(ctx, fmt.Sprintf(`ALTER TABLE "Bf DDL"."t ""1""" ADD COLUMN "Extra" text;
UPDATE "Bf DDL"."t ""1""" SET "Extra" = 'e' || id;
ALTER TABLE "Bf DDL"."t ""1""" RENAME COLUMN v TO "V two";
ALTER TABLE "Bf DDL"."t ""1""" RENAME TO "t renamed";
CREATE TABLE "Bf DDL"."new ""T""" (id int PRIMARY KEY, w text);
INSERT INTO "Bf DDL"."new ""T""" SELECT i, 'w' || i FROM generate_series(1, %d) i;`, rows)); err != nil {
		t.Fatal(err)
	}
	const renamed, fresh = `"Bf DDL"."t renamed"`, `"Bf DDL"."new ""T"""`
	waitSink(t, ctx, dstDSN, `SELECT count(*) FROM `+fresh, rows, 2*time.Minute)
	waitSink(t, ctx, dstDSN, `SELECT count(*) FROM `+renamed+` WHERE "Extra" = 'e' || id AND "V two" = 'v' || id`, rows, 2*time.Minute)
	assertSameData(t, ctx, srcDSN, dstDSN, renamed, fresh)

	sink := connect(t, ctx, dstDSN)
	if _, err := sink.Exec(ctx, `DELETE FROM `+renamed+` WHERE id % 10 = 0;
UPDATE `+renamed+` SET "Extra" = NULL, "V two" = 'bad' WHERE id % 10 = 5;
DELETE FROM `+fresh+` WHERE id % 7 = 0;
UPDATE `+fresh+` SET w = 'bad' WHERE id % 7 = 3`); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{renamed, fresh} {
		// Fails the test if the live run keeps retrying it.
		r := startSluice(t, dir, env, "backfill", file, "--table", table, "--chunk-rows", "500", "--json").wait(2 * time.Minute)
		out := parseBackfill(t, r)
		t.Logf("backfill of %s: %+v", table, out)
		if !strings.HasPrefix(out.Runner, "live run") || out.Rows != rows || out.Chunks != rows/500+1 {
			t.Errorf("backfill of %s: want the live run to write %d rows in %d chunks, got %+v", table, rows, rows/500+1, out)
		}
	}
	assertSameData(t, ctx, srcDSN, dstDSN, renamed, fresh)

	// A column renamed and one added while a backfill runs: a chunk read
	// before them whose high mark comes after them is read again (its
	// rows would name a column the sink no longer has); chunks read after
	// carry the new columns.
	if _, err := sink.Exec(ctx, `UPDATE `+renamed+` SET "V two" = 'bad' WHERE id % 3 = 0`); err != nil {
		t.Fatal(err)
	}
	p := startSluice(t, dir, env, "backfill", file, "--table", renamed, "--chunk-rows", "100", "--json")
	time.Sleep(time.Second)
	if _, err := source.Exec(ctx, `ALTER TABLE `+renamed+` RENAME COLUMN "Extra" TO "Extra 2";
ALTER TABLE `+renamed+` ADD COLUMN late int;
UPDATE `+renamed+` SET late = id * 2 WHERE id % 2 = 0`); err != nil {
		t.Fatal(err)
	}
	out := parseBackfill(t, p.wait(2*time.Minute))
	t.Logf("backfill of %s across DDL: %+v", renamed, out)
	if out.Rows != rows {
		t.Errorf("backfill across DDL: want %d rows, got %+v", rows, out)
	}
	waitSink(t, ctx, dstDSN, `SELECT count(*) FROM `+renamed+` WHERE late = id * 2`, rows/2, 2*time.Minute)

	live.signal(syscall.SIGTERM)
	if lr := live.wait(time.Minute); lr.code != 130 && lr.code != 0 {
		t.Fatalf("live run: %s", lr)
	}
	assertSameData(t, ctx, srcDSN, dstDSN, renamed, fresh)
	t.Logf("chunks read again by the live run (DDL inside a chunk's window): %d", strings.Count(live.res.stderr, "backfill chunk read again"))
	t.Logf("TestBackfillAfterDDL took %s", time.Since(start).Round(time.Millisecond))
}
