package main

// A pipeline whose plugin transform stage crashes: the test plugin
// transforms/plugin/testdata/panicky (text values upper-cased), told
// through the stage's env: to panic on its first call, or on every call.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// buildPanicky builds the panicky test plugin into dir and returns its
// SHA-256 (hex); the binary is dir/panicky.
func buildPanicky(t *testing.T, dir string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "panicky")
	if out, err := exec.Command(gobin, "build", "-o", bin, "../../transforms/plugin/testdata/panicky").CombinedOutput(); err != nil {
		t.Fatalf("go build the panicky plugin: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// panickyPipeline is a pipeline over schema app; stage is its transforms:
// section (empty: none).
func panickyPipeline(name, stage string) string {
	return fmt.Sprintf(`name: %s
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - schema: app
copy: {parallel: 2, chunk_rows: 1000}
%sstate_dir: state
`, name, stage)
}

// panickyStage is a plugin stage running dir/panicky pinned to digest, with
// the one env setting k: v.
func panickyStage(digest, k, v string) string {
	return fmt.Sprintf(`transforms:
  - type: plugin
    path: ./panicky
    sha256: %s
    env: {%s: %q}
`, digest, k, v)
}

const panickyFixture = `CREATE SCHEMA app;
CREATE TABLE app.t (id int PRIMARY KEY, name text, note text, n int);
INSERT INTO app.t SELECT g, 'name ' || g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'note ' || g END, g FROM generate_series(1, 2000) g;`

const panickyChanges = `INSERT INTO app.t SELECT g, 'late ' || g, 'x', g FROM generate_series(2001, 2300) g;
UPDATE app.t SET name = 'moved ' || id, n = n + 1 WHERE id <= 100;
DELETE FROM app.t WHERE id BETWEEN 101 AND 150;`

// runCaughtUpLog is runCaughtUp returning the run's log too.
func runCaughtUpLog(t *testing.T, dir string, env map[string]string, file string) string {
	t.Helper()
	r := startSluice(t, dir, env, "run", "--until-caught-up", "--json", file).wait(2 * time.Minute)
	var sum runSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); r.code != 0 || err != nil || sum.Stream == nil {
		t.Fatalf("sluice run --until-caught-up --json: want exit 0 and a summary with a stream object (%v):\n%s", err, r)
	}
	return r.stderr
}

// TestPluginCrashOnceRestarts: a plugin stage whose plugin panics on its
// first batch, once in the full copy and once while streaming; each time
// the pipeline starts it again, retries the batch, and the sink ends equal
// to the transformed source (nothing lost, nothing twice).
func TestPluginCrashOnceRestarts(t *testing.T) {
	ctx := streamCtx(t, 2*time.Minute)
	dir := t.TempDir()
	digest := buildPanicky(t, dir)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	if err := src.Exec(ctx, dbOf(t, srcDSN), panickyFixture); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "panicked")
	file := writePipeline(t, dir, "crash.yaml", panickyPipeline("plugin_crash_once", panickyStage(digest, "PANICKY_MARKER", marker)))
	env := dsnEnv(srcDSN, dstDSN)
	upper := `SELECT id, upper(name), upper(note), n FROM app.t`
	got := `SELECT id, name, note, n FROM app.t`
	check := func(phase, log string) {
		t.Helper()
		if _, err := os.Stat(marker); err != nil {
			t.Fatalf("%s: the plugin never panicked (no marker: %v):\n%s", phase, err, log)
		}
		for _, want := range []string{"plugin crashed; restarting it and retrying the batch", "panic: panicky: first call"} {
			if !strings.Contains(log, want) {
				t.Errorf("%s: the run's log lacks %q:\n%s", phase, want, log)
			}
		}
		assertSameRows(t, ctx, srcDSN, upper, dstDSN, got)
	}

	check("full copy", runCaughtUpLog(t, dir, env, file))

	// Streaming: a fresh marker, so that the first streamed batch panics.
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	if err := src.Exec(ctx, dbOf(t, srcDSN), panickyChanges); err != nil {
		t.Fatal(err)
	}
	check("streaming", runCaughtUpLog(t, dir, env, file))
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM app.t WHERE name LIKE 'LATE %'`); n != 300 {
		t.Errorf("sink: %d of the 300 rows inserted while streaming", n)
	}
}

// TestPluginAlwaysCrashesParks: a plugin stage whose plugin panics on every
// batch makes `sluice run` exit 1 with an error naming the plugin and
// saying the pipeline is parked, with nothing of the batch written at the
// sink; once the pipeline file no longer has the stage, the same command
// goes on from there and the sink equals the source. Both in the full copy
// and while streaming.
func TestPluginAlwaysCrashesParks(t *testing.T) {
	ctx := streamCtx(t, 2*time.Minute)
	dir := t.TempDir()
	digest := buildPanicky(t, dir)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	if err := src.Exec(ctx, dbOf(t, srcDSN), panickyFixture); err != nil {
		t.Fatal(err)
	}
	env := dsnEnv(srcDSN, dstDSN)
	file := writePipeline(t, dir, "crash.yaml", panickyPipeline("plugin_crash_always", panickyStage(digest, "PANICKY_ALWAYS", "1")))
	r := sluice(t, dir, env, "run", "--until-caught-up", file)
	if r.code == 0 {
		t.Fatalf("a plugin that always panics: want a non-zero exit:\n%s", r)
	}
	for _, want := range []string{"plugin " + filepath.Join(dir, "panicky") + " crashed", "parking the pipeline with the batch not applied", "panic: panicky: always"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the failed run's log lacks %q:\n%s", want, r)
		}
	}
	if r.code != 1 {
		t.Errorf("want exit code 1, got %d", r.code)
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM app.t`); n != 0 {
		t.Errorf("sink: %d rows written although every batch crashed the plugin", n)
	}

	// The fix: the stage removed from the pipeline file.
	writePipeline(t, dir, "crash.yaml", panickyPipeline("plugin_crash_always", ""))
	runCaughtUpLog(t, dir, env, file)
	assertSameData(t, ctx, srcDSN, dstDSN, "app.t")
	if err := src.Exec(ctx, dbOf(t, srcDSN), panickyChanges); err != nil {
		t.Fatal(err)
	}
	runCaughtUpLog(t, dir, env, file)
	assertSameData(t, ctx, srcDSN, dstDSN, "app.t")

	// While streaming: the stage back in, its plugin panicking on every
	// batch, parks the pipeline with none of the new changes applied.
	writePipeline(t, dir, "crash.yaml", panickyPipeline("plugin_crash_always", panickyStage(digest, "PANICKY_ALWAYS", "1")))
	if err := src.Exec(ctx, dbOf(t, srcDSN), `INSERT INTO app.t SELECT g, 'stream ' || g, 's', g FROM generate_series(3001, 3100) g;
UPDATE app.t SET note = 'updated' WHERE id <= 20;`); err != nil {
		t.Fatal(err)
	}
	r = sluice(t, dir, env, "run", "--until-caught-up", file)
	if r.code != 1 || !strings.Contains(r.stderr, "parking the pipeline with the batch not applied") || !strings.Contains(r.stderr, filepath.Join(dir, "panicky")) {
		t.Errorf("streaming, a plugin that always panics: want exit 1 naming the plugin and parking the pipeline:\n%s", r)
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM app.t WHERE id > 3000 OR note = 'updated'`); n != 0 {
		t.Errorf("sink: %d changed rows applied although the plugin crashed on their batch", n)
	}
	writePipeline(t, dir, "crash.yaml", panickyPipeline("plugin_crash_always", ""))
	runCaughtUpLog(t, dir, env, file)
	assertSameData(t, ctx, srcDSN, dstDSN, "app.t")
}
