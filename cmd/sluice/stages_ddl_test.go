package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestStageParksOnDroppedColumn: a column a filter stage reads is dropped
// at the source while the pipeline streams. The run stops at the DROP
// with an error naming the stage (file:line), the table, the column and
// the statement; the sink keeps what it had before (the DROP is not
// applied, nothing after it is). With the stage edited, a rerun resumes
// there and loses nothing. Before the fix the filter read the dropped
// column as nil and let every later row through, silently.
func TestStageParksOnDroppedColumn(t *testing.T) {
	ctx, srcDSN, dstDSN, exec := shopOrders(t)
	dir := t.TempDir()
	pipeline := func(filter string) string {
		return `name: stages_drop
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - schema: shop
transforms:
  - filter: "` + filter + `"
    tables: ['shop."Or ders"']
state_dir: state
`
	}
	file := writePipeline(t, dir, "drop.yaml", pipeline("after.region != 'eu'"))
	env := dsnEnv(srcDSN, dstDSN)
	runCaughtUp(t, dir, env, file, 2*time.Minute)
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM shop."Or ders" WHERE region = 'us'`); n != 10 || queryInt(t, ctx, dstDSN, `SELECT count(*) FROM shop."Or ders"`) != 10 {
		t.Fatalf("copy: sink has %d 'us' rows, want only the 10 'us' rows", n)
	}

	live := startSluice(t, dir, env, "run", file)
	waitStreaming(t, ctx, live, srcDSN, "sluice_stages_drop", time.Minute)
	// Rows both versions of the filter agree on, then the DROP, then rows
	// only the edited filter can decide.
	exec(`INSERT INTO shop."Or ders" VALUES (101, 'us', 50), (102, 'eu', -5)`)
	exec(`ALTER TABLE shop."Or ders" DROP COLUMN region`)
	exec(`INSERT INTO shop."Or ders" VALUES (201, 70), (202, -3)`)
	r := live.wait(90 * time.Second)
	for _, want := range []string{"drop.yaml:8 (transforms[0])", `filter on table shop."Or ders"`, "region", "ALTER TABLE", "DROP COLUMN region", "change the stage"} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("a DROP COLUMN of a column the stage reads: want exit 1 and %q in stderr:\n%s", want, r)
		}
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 'Or ders' AND column_name = 'region'`); n != 1 {
		t.Error("the sink dropped the column although the pipeline stopped before the DROP")
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM shop."Or ders" WHERE id > 200`); n != 0 {
		t.Errorf("the sink has %d rows inserted after the DROP, want none", n)
	}
	// A rerun with the same pipeline stops again before any change.
	r = sluice(t, dir, env, "run", "--until-caught-up", file)
	if r.code != 1 || !strings.Contains(r.stderr, "drop.yaml:8 (transforms[0])") {
		t.Errorf("a rerun with the stage unchanged: want exit 1 naming the stage:\n%s", r)
	}

	// Edited to fit the table, the pipeline resumes where it stopped.
	writePipeline(t, dir, "drop.yaml", pipeline("after.amount > 0"))
	runCaughtUp(t, dir, env, file, 2*time.Minute)
	assertSameRows(t, ctx, srcDSN, `SELECT id, amount FROM shop."Or ders" WHERE (id <= 100 AND id % 2 = 0) OR (id > 100 AND amount > 0)`,
		dstDSN, `SELECT id, amount FROM shop."Or ders"`)
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 'Or ders' AND column_name = 'region'`); n != 0 {
		t.Error("after the rerun the sink still has the dropped column")
	}
}

// shopOrders makes a source and a sink database for a streaming test,
// the source holding shop."Or ders" (id, region, amount): 20 rows, the
// even ids in region 'us', the odd ones in 'eu'. exec runs SQL at the
// source.
func shopOrders(t *testing.T) (ctx context.Context, srcDSN, dstDSN string, exec func(sql string)) {
	t.Helper()
	ctx = streamCtx(t, 5*time.Minute)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN = pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	exec = func(sql string) {
		t.Helper()
		if err := src.Exec(ctx, dbOf(t, srcDSN), sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(`CREATE SCHEMA shop;
CREATE TABLE shop."Or ders" (id integer PRIMARY KEY, region text, amount integer);
INSERT INTO shop."Or ders" SELECT g, CASE WHEN g % 2 = 0 THEN 'us' ELSE 'eu' END, g FROM generate_series(1, 20) g;`)
	return ctx, srcDSN, dstDSN, exec
}

// TestPluginStageCoversNewTable: a plugin stage scoped to app.* (the
// example mask plugin, built here) masks the rows of a table created in
// app while the pipeline streams, in the table's first transaction and
// after. Before the fix the new table's rows skipped the plugin.
func TestPluginStageCoversNewTable(t *testing.T) {
	ctx := streamCtx(t, 5*time.Minute)
	dir := t.TempDir()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	if out, err := exec.CommandContext(ctx, gobin, "build", "-o", filepath.Join(dir, "mask"), "../../examples/plugins/mask").CombinedOutput(); err != nil {
		t.Fatalf("go build the mask plugin: %v\n%s", err, out)
	}
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	srcExec := func(sql string) {
		t.Helper()
		if err := src.Exec(ctx, dbOf(t, srcDSN), sql); err != nil {
			t.Fatal(err)
		}
	}
	srcExec(`CREATE SCHEMA app;
CREATE TABLE app.users (id integer PRIMARY KEY, email text);
INSERT INTO app.users SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 10) g;`)
	file := writePipeline(t, dir, "mask.yaml", `name: stages_plugin_join
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - schema: app
transforms:
  - type: plugin
    path: ./mask
    env: {MASK_COLUMNS: "email"}
    tables: ['app.*']
state_dir: state
`)
	env := dsnEnv(srcDSN, dstDSN)
	runCaughtUp(t, dir, env, file, 2*time.Minute)
	live := startSluice(t, dir, env, "run", file)
	waitStreaming(t, ctx, live, srcDSN, "sluice_stages_plugin_join", 2*time.Minute)
	srcExec(`BEGIN;
CREATE TABLE app."Lea ds" (id integer PRIMARY KEY, email text, note text);
INSERT INTO app."Lea ds" SELECT g, 'lead' || g || '@mail.example', 'n' || g FROM generate_series(1, 20) g;
COMMIT;`)
	srcExec(`INSERT INTO app."Lea ds" SELECT g, 'late' || g || '@mail.example', 'n' || g FROM generate_series(21, 30) g;
UPDATE app."Lea ds" SET email = 'moved@new.example' WHERE id = 1;`)
	deadline := time.Now().Add(2 * time.Minute)
	for queryInt(t, ctx, dstDSN, `SELECT count(*) FROM pg_tables WHERE schemaname = 'app' AND tablename = 'Lea ds'`) == 0 ||
		queryInt(t, ctx, dstDSN, `SELECT count(*) FROM app."Lea ds" WHERE id > 20 OR email LIKE 'm%'`) < 11 {
		if live.exited() {
			t.Fatalf("sluice ended while streaming:\n%s", live.res)
		}
		if time.Now().After(deadline) {
			t.Fatal("the new table's rows did not reach the sink within 2 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	live.signal(syscall.SIGTERM)
	live.wait(time.Minute)
	masked := `SELECT id, left(email, 1) || repeat('*', length(split_part(email, '@', 1)) - 1) || '@' || split_part(email, '@', 2), note FROM app."Lea ds"`
	assertSameRows(t, ctx, srcDSN, masked, dstDSN, `SELECT id, email, note FROM app."Lea ds"`)
}
