package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestToastUpdateOfLostRowParks: a row deleted at the sink behind the
// pipeline's back, then updated at the source in a column other than its
// large TOASTed one. pgoutput sends the update without the unchanged
// TOASTed value, so the sink cannot insert the row from it. The run parks
// with an error naming the table, the key, the position and what to do
// (not retried; nothing of that transaction or later ones applied), and
// `sluice status` shows it. The remedy the error names works: `sluice
// backfill` runs the pipeline past the update and copies the row, and the
// sink equals the source. (Before, the update was logged as found no row
// and the run went on: the sink had silently lost the row for good.)
func TestToastUpdateOfLostRowParks(t *testing.T) {
	ctx := testCtx(t)
	srcDSN, dstDSN := pgtest.NewDB(t, pgtest.Source(t)), pgtest.NewDB(t, pgtest.Sink(t))
	src := connect(t, ctx, srcDSN)
	// body is stored out of line, uncompressed: 8000 bytes per row.
	if _, err := src.Exec(ctx, `CREATE SCHEMA app;
CREATE TABLE app.docs (id integer PRIMARY KEY, status text NOT NULL, body text NOT NULL);
ALTER TABLE app.docs ALTER body SET STORAGE EXTERNAL;
INSERT INTO app.docs SELECT i, 'new', repeat(md5(i::text), 250) FROM generate_series(1, 3) i;`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := dsnEnv(srcDSN, dstDSN)
	file := writePipeline(t, dir, "toast.yaml", `name: toastpark
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - schema: app
state_dir: state
`)
	if r := sluice(t, dir, env, "run", file, "--until-caught-up"); r.code != 0 {
		t.Fatalf("first run: %s", r)
	}
	if n := queryInt(t, ctx, srcDSN, `SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE oid = 'app.docs'::regclass`); n == 0 {
		t.Fatal("app.docs has no TOASTed values at the source: the test proves nothing")
	}

	if _, err := connect(t, ctx, dstDSN).Exec(ctx, `DELETE FROM app.docs WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`UPDATE app.docs SET status = 'seen' WHERE id = 1`,
		`UPDATE app.docs SET status = 'shipped' WHERE id = 2`,
		`INSERT INTO app.docs VALUES (4, 'new', 'small')`,
	} {
		if _, err := src.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	r := sluice(t, dir, env, "run", file, "--until-caught-up")
	if r.code == 0 {
		t.Fatalf("the run went on after an update of a row the sink lost (want it parked):\n%s", r)
	}
	for _, want := range []string{"parked", "update on app.docs (key id=2)", "found no row with that key", "unchanged TOASTed values",
		"sluice backfill PIPELINE --table app.docs", "sluice verify", "nothing of this source transaction or any later one was applied"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the run's error lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "retrying") {
		t.Errorf("the divergence was retried:\n%s", r.stderr)
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM app.docs WHERE id = 4 OR status <> 'new'`); n != 0 {
		t.Errorf("sink: %d rows of the parked transaction or later ones were applied, want none", n)
	}
	st := sluice(t, dir, env, "status", file)
	for _, want := range []string{"the last run failed", "parked", "app.docs (key id=2)"} {
		if !strings.Contains(st.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, st)
		}
	}

	// The remedy the error names: a backfill of the table.
	if r := sluice(t, dir, env, "backfill", file, "--table", "app.docs"); r.code != 0 {
		t.Fatalf("backfill after the park: %s", r)
	}
	assertSameData(t, ctx, srcDSN, dstDSN, "app.docs")

	// While a run streams, a backfill lets such updates pass only until it
	// is done: a row lost at the sink after it parks the same run again.
	live := startSluice(t, dir, env, "run", file)
	if r := sluice(t, dir, env, "backfill", file, "--table", "app.docs"); r.code != 0 {
		t.Fatalf("backfill in the live run: %s", r)
	}
	if _, err := connect(t, ctx, dstDSN).Exec(ctx, `DELETE FROM app.docs WHERE id = 3`); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Exec(ctx, `UPDATE app.docs SET status = 'late' WHERE id = 3`); err != nil {
		t.Fatal(err)
	}
	r = live.wait(2 * time.Minute)
	if r.code == 0 || !strings.Contains(r.stderr, "update on app.docs (key id=3)") {
		t.Errorf("the live run did not park on the row lost after its backfill ended (exit %d):\n%s", r.code, r.stderr)
	}
}
