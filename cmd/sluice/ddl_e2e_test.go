package main

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestDDLKillAtApply SIGKILLs `sluice run` with replicated DDL about to
// run inside an open sink transaction (failpoint ddl.apply), three times
// at different statements of a script of CREATE/ALTER/DROP TABLE and
// CREATE INDEX interleaved with DML; a last run catches up. The sink then
// has the source's schema and data: nothing applied twice, nothing lost.
func TestDDLKillAtApply(t *testing.T) {
	ctx := streamCtx(t, 3*time.Minute)
	srcDSN, dstDSN, exec := ddlPair(ctx, t)
	exec(`CREATE SCHEMA app;
CREATE TABLE app.t (id integer PRIMARY KEY, a integer, b text);
INSERT INTO app.t SELECT g, g, 'r' || g FROM generate_series(1, 100) g;`)
	dir := t.TempDir()
	file := writePipeline(t, dir, "ddl.yaml", `name: ddlkill
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - schema: app
state_dir: state
`)
	env := dsnEnv(srcDSN, dstDSN)
	runCaughtUp(t, dir, env, file, time.Minute)
	for _, sql := range []string{
		`ALTER TABLE app.t ADD COLUMN c integer DEFAULT 5`,
		`INSERT INTO app.t (id, a, b) VALUES (101, 1, 'x')`,
		`CREATE TABLE app.n (id integer PRIMARY KEY, v text)`,
		`INSERT INTO app.n VALUES (1, 'one')`,
		`ALTER TABLE app.t ALTER COLUMN a TYPE bigint`,
		`UPDATE app.t SET a = 5000000000 WHERE id = 1`,
		`ALTER TABLE app.n RENAME TO n2`,
		`INSERT INTO app.n2 VALUES (2, 'two')`,
		`ALTER TABLE app.t DROP COLUMN b`,
		`CREATE INDEX t_c ON app.t (c)`,
		`ALTER TABLE app.t ADD CONSTRAINT t_a CHECK (a > 0)`,
		`CREATE TABLE app.gone (id integer)`,
		`DROP TABLE app.gone`,
		`ALTER TABLE app.t ALTER COLUMN c DROP DEFAULT`,
		`INSERT INTO app.t (id, a) VALUES (102, 2)`,
	} {
		exec(sql)
	}
	for _, n := range []int{2, 1, 3} {
		spec := "ddl.apply=kill@" + strconv.Itoa(n)
		p := startSluice(t, dir, withEnv(env, "SLUICE_FAILPOINTS", spec), "run", file)
		select {
		case <-p.done:
		case <-time.After(time.Minute):
			p.signal(syscall.SIGKILL)
			<-p.done
			t.Fatalf("the run did not reach failpoint %s within a minute:\n%s", spec, p.res)
		}
		if p.res.signal != syscall.SIGKILL {
			t.Fatalf("want the run killed at failpoint %s:\n%s", spec, p.res)
		}
	}
	runCaughtUp(t, dir, env, file, time.Minute)
	assertSameData(t, ctx, srcDSN, dstDSN, "app.t", "app.n2")
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM pg_tables WHERE schemaname = 'app' AND tablename IN ('n', 'gone')`); n != 0 {
		t.Errorf("sink: %d tables that were renamed or dropped at the source", n)
	}
	dump := func(c *pgtest.Cluster, dsn string) string {
		d, err := c.DumpSchema(ctx, dbOf(t, dsn), "--schema=app")
		if err != nil {
			t.Fatal(err)
		}
		var keep []string
		for _, l := range strings.Split(d, "\n") {
			if l == "" || strings.HasPrefix(l, "--") || strings.HasPrefix(l, "SET ") || strings.HasPrefix(l, "SELECT pg_catalog.set_config") ||
				strings.HasPrefix(l, `\`) || strings.Contains(l, "REPLICA IDENTITY") || strings.Contains(l, "PUBLICATION") {
				continue
			}
			keep = append(keep, l)
		}
		return strings.Join(keep, "\n")
	}
	if a, b := dump(pgtest.Source(t), srcDSN), dump(pgtest.Sink(t), dstDSN); a != b {
		t.Errorf("pg_dump --schema-only --schema=app differs:\nsource:\n%s\nsink:\n%s", a, b)
	}
	// drop removes the DDL capture with the rest.
	if r := sluice(t, dir, env, "drop", file); r.code != 0 {
		t.Fatalf("sluice drop: %s", r)
	}
	if n := queryInt(t, ctx, srcDSN, `SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'sluice%'`); n != 0 {
		t.Errorf("source: %d sluice event triggers left after drop", n)
	}
}

// ddlPair makes a source and a sink database for a DDL test (the source's
// slots dropped at cleanup) and returns their DSNs and a function running
// SQL at the source.
func ddlPair(ctx context.Context, t *testing.T) (srcDSN, dstDSN string, srcExec func(sql string)) {
	t.Helper()
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN = pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	return srcDSN, dstDSN, func(sql string) {
		t.Helper()
		if err := src.Exec(ctx, dbOf(t, srcDSN), sql); err != nil {
			t.Fatal(err)
		}
	}
}
