package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// joinScript renames the tables of two objects items with a where
// condition away from their names and creates tables that take the
// names: shop.w1 is created under its item's name (and renamed again),
// shop.e2 is created under another name and renamed to w2.
var cliJoinScript = []string{
	`ALTER TABLE shop.w1 RENAME TO w1old`,
	`INSERT INTO shop.w1old SELECT g, 'old ' || g FROM generate_series(-3, 0) g`,
	`CREATE TABLE shop.w1 (id integer PRIMARY KEY, v text)`,
	`INSERT INTO shop.w1 SELECT g, 'new ' || g FROM generate_series(1, 20) g`,
	`ALTER TABLE shop.w1 RENAME TO w1new`,
	`INSERT INTO shop.w1new SELECT g, 'new ' || g FROM generate_series(21, 25) g`,
	`ALTER TABLE shop.w2 RENAME TO w2old`,
	`INSERT INTO shop.w2old SELECT g, 'old ' || g FROM generate_series(-3, 0) g`,
	`CREATE TABLE shop.e2 (id integer PRIMARY KEY, v text)`,
	`INSERT INTO shop.e2 SELECT g, 'e2 ' || g FROM generate_series(1, 20) g`,
	`ALTER TABLE shop.e2 RENAME TO w2`,
	`INSERT INTO shop.w2 SELECT g, 'w2 ' || g FROM generate_series(21, 25) g`,
}

// TestDDLJoinByStreamNameCLI: a pipeline file selects schema shop and
// gives tables w1 and w2 a where condition. While the pipeline streams
// (live), or while it is stopped (resumed: the next run starts with the
// source's catalog ahead of the stream), the tables are renamed away from
// their items' names and new tables take the names. Each table keeps the
// options it entered the pipeline with: w1old and w2old (the items'
// tables, followed by OID) stay filtered; the new w1, created under its
// item's name, is filtered under its later name w1new too; e2, renamed to
// w2, is not. Before the fix the resumed run stopped at once ("table
// shop.w1 does not exist at the source"); with that alone fixed it took
// the options by the catalog's names (w1new unfiltered, w2 filtered).
func TestDDLJoinByStreamNameCLI(t *testing.T) {
	for _, live := range []bool{true, false} {
		name := "resumed"
		if live {
			name = "live"
		}
		t.Run(name, func(t *testing.T) {
			ctx := streamCtx(t, 5*time.Minute)
			srcDSN, dstDSN, exec := ddlPair(ctx, t)
			exec(`CREATE SCHEMA shop;
CREATE TABLE shop.w1 (id integer PRIMARY KEY, v text);
INSERT INTO shop.w1 SELECT g, 'w1 ' || g FROM generate_series(1, 20) g;
CREATE TABLE shop.w2 (id integer PRIMARY KEY, v text);
INSERT INTO shop.w2 SELECT g, 'w2 ' || g FROM generate_series(1, 20) g;
CREATE TABLE shop.marker (id integer PRIMARY KEY);`)
			dir := t.TempDir()
			file := writePipeline(t, dir, "join.yaml", `name: join_`+name+`
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - schema: shop
  - table: shop.w1
    where: "id > 10"
  - table: shop.w2
    where: "id > 10"
state_dir: state
`)
			env := dsnEnv(srcDSN, dstDSN)
			runCaughtUp(t, dir, env, file, 2*time.Minute)
			if live {
				p := startSluice(t, dir, env, "run", file)
				waitStreaming(t, ctx, p, srcDSN, "sluice_join_live", time.Minute)
				for _, sql := range cliJoinScript {
					exec(sql)
				}
				exec(`INSERT INTO shop.marker VALUES (1)`)
				waitSink(t, ctx, dstDSN, `SELECT count(*) FROM shop.marker`, 1, 2*time.Minute)
				p.signal(syscall.SIGTERM)
				if r := p.wait(time.Minute); r.code != 130 {
					t.Fatalf("after SIGTERM want exit code 130:\n%s", r)
				}
			} else {
				for _, sql := range cliJoinScript {
					exec(sql)
				}
				exec(`INSERT INTO shop.marker VALUES (1)`)
				r := startSluice(t, dir, env, "run", "--until-caught-up", "--json", file).wait(2 * time.Minute)
				if r.code != 0 {
					t.Fatalf("resumed run: want exit 0:\n%s", r)
				}
				if strings.Contains(r.stderr, "level=WARN msg=retrying") {
					t.Errorf("the resumed run retried:\n%s", r.stderr)
				}
			}
			for _, tb := range []string{"w1old", "w1new", "w2old"} {
				assertSameRows(t, ctx, srcDSN, `SELECT * FROM shop.`+tb+` WHERE id > 10`, dstDSN, `SELECT * FROM shop.`+tb)
			}
			assertSameRows(t, ctx, srcDSN, `SELECT * FROM shop.w2`, dstDSN, `SELECT * FROM shop.w2`)
		})
	}
}
