package main

import (
	"strings"
	"testing"
	"time"
)

// TestWhereParksOnDroppedColumn: a column an objects item's where
// condition reads is dropped at the source while the pipeline streams.
// The run stops right before the DROP's transaction with an error naming
// the item (file:line), the table, the column and the statement; the rows
// committed before the DROP are at the sink, the DROP and what follows
// are not. With the condition edited, a rerun resumes there and loses
// nothing. Before the fix the run stopped only at the table's next row,
// with an error naming neither the item nor the statement.
func TestWhereParksOnDroppedColumn(t *testing.T) {
	ctx, srcDSN, dstDSN, exec := shopOrders(t)
	dir := t.TempDir()
	pipeline := func(cond string) string {
		return `name: where_drop
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - schema: shop
  - table: 'shop."Or ders"'
    where: "` + cond + `"
state_dir: state
`
	}
	file := writePipeline(t, dir, "where.yaml", pipeline("region <> 'eu' AND amount > 0"))
	env := dsnEnv(srcDSN, dstDSN)
	runCaughtUp(t, dir, env, file, 2*time.Minute)
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM shop."Or ders"`); n != 10 {
		t.Fatalf("copy: sink has %d rows, want the 10 'us' rows", n)
	}

	live := startSluice(t, dir, env, "run", file)
	waitStreaming(t, ctx, live, srcDSN, "sluice_where_drop", time.Minute)
	exec(`INSERT INTO shop."Or ders" VALUES (101, 'us', 50), (102, 'eu', 60), (103, 'us', -5)`)
	exec(`ALTER TABLE shop."Or ders" DROP COLUMN region; INSERT INTO shop."Or ders" VALUES (201, 70)`)
	exec(`INSERT INTO shop."Or ders" VALUES (202, -3)`)
	r := live.wait(90 * time.Second)
	for _, want := range []string{"where.yaml:7 (objects[1])", `where on table shop."Or ders"`, `"region"`, "ALTER TABLE", "DROP COLUMN region", "change the where condition"} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("a DROP COLUMN of a column the where condition reads: want exit 1 and %q in stderr:\n%s", want, r)
		}
	}
	if got := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM shop."Or ders" WHERE id > 100`); got != 1 {
		t.Errorf("the sink has %d rows inserted while streaming, want 1 (row 101, committed before the DROP; 102 and 103 filtered out; nothing from the DROP on)", got)
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 'Or ders' AND column_name = 'region'`); n != 1 {
		t.Error("the sink dropped the column although the pipeline stopped before the DROP")
	}

	// Edited to fit the table's new columns, the pipeline resumes at the
	// DROP's transaction.
	writePipeline(t, dir, "where.yaml", pipeline("amount > 0"))
	runCaughtUp(t, dir, env, file, 2*time.Minute)
	assertSameRows(t, ctx, srcDSN, `SELECT id, amount FROM shop."Or ders" WHERE (id <= 20 AND id % 2 = 0) OR id = 101 OR (id > 103 AND amount > 0)`,
		dstDSN, `SELECT id, amount FROM shop."Or ders"`)
}
