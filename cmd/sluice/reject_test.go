package main

// A sink that rejects a row: the pipeline stops with an error naming the
// table, the key and the position, applies nothing past the rejected
// change, and after the sink is fixed the same command continues exactly
// where it stopped (sink equal to source).

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// rejectPipeline is a pipeline over schema public with small chunks.
func rejectPipeline(name, sync string) string {
	return fmt.Sprintf(`name: %s
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: %s
objects:
  - schema: public
copy: {parallel: 2, chunk_rows: 1000}
state_dir: state
`, name, sync)
}

// wantStopped runs the pipeline until caught up and checks that it stops
// with an error that contains every piece of want and matches every re.
func wantStopped(t *testing.T, dir string, env map[string]string, file string, want []string, res ...*regexp.Regexp) result {
	t.Helper()
	r := startSluice(t, dir, env, "run", "--until-caught-up", file).wait(2 * time.Minute)
	if r.code == 0 || r.code == 130 || r.signal != 0 {
		t.Fatalf("want the run to stop with an error:\n%s", r)
	}
	last := r.stderr
	if i := strings.LastIndex(strings.TrimSpace(last), "\nsluice: "); i >= 0 {
		last = last[i+1:]
	}
	for _, w := range want {
		if !strings.Contains(last, w) {
			t.Errorf("the final error lacks %q:\n%s", w, last)
		}
	}
	for _, re := range res {
		if !re.MatchString(last) {
			t.Errorf("the final error does not match %s:\n%s", re, last)
		}
	}
	t.Logf("stopped as expected (exit %d): %s", r.code, strings.TrimSpace(last))
	return r
}

// TestSinkRejectsRow: while streaming, a CHECK constraint only the sink
// has rejects an update, and a column missing at the sink rejects an
// insert; during the full copy, a sink CHECK rejects a row of a chunk.
// Each time the run stops naming table, key and position, nothing after
// the rejected change reaches the sink, and a rerun after the fix makes
// the sink equal to the source.
func TestSinkRejectsRow(t *testing.T) {
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	srcDB, dstDB := dbOf(t, srcDSN), dbOf(t, dstDSN)
	if err := src.Exec(ctx, srcDB, `
CREATE TABLE public.items (id int PRIMARY KEY, qty int NOT NULL, note text);
INSERT INTO public.items SELECT g, g % 10, 'n' || g FROM generate_series(1, 5000) g;
CREATE TABLE public.later (id int PRIMARY KEY, a int, b text);`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := dsnEnv(srcDSN, dstDSN)
	file := writePipeline(t, dir, "reject.yaml", rejectPipeline("reject", "{schema: true, full: true, incremental: true}"))
	runCaughtUp(t, dir, env, file, 2*time.Minute)
	tables := []string{"public.items", "public.later"}

	t.Run("check_constraint_while_streaming", func(t *testing.T) {
		if err := snk.Exec(ctx, dstDB, `ALTER TABLE public.items ADD CONSTRAINT qty_small CHECK (qty < 1000)`); err != nil {
			t.Fatal(err)
		}
		if err := src.Exec(ctx, srcDB, `UPDATE public.items SET qty = 5000 WHERE id = 57`); err != nil {
			t.Fatal(err)
		}
		if err := src.Exec(ctx, srcDB, `INSERT INTO public.items VALUES (5001, 1, 'after')`); err != nil {
			t.Fatal(err)
		}
		wantStopped(t, dir, env, file,
			[]string{"parked", "public.items", "key id=57", "qty_small", "apply update", "run the same command again"},
			regexp.MustCompile(`committed at [0-9A-F]+/[0-9A-F]+`))
		if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM public.items WHERE id = 5001 OR qty = 5000`); n != 0 {
			t.Errorf("the sink has %d rows of the rejected change or of a later one", n)
		}
		if err := snk.Exec(ctx, dstDB, `ALTER TABLE public.items DROP CONSTRAINT qty_small`); err != nil {
			t.Fatal(err)
		}
		runCaughtUp(t, dir, env, file, 2*time.Minute)
		assertSameData(t, ctx, srcDSN, dstDSN, tables...)
	})

	t.Run("missing_column_while_streaming", func(t *testing.T) {
		if err := snk.Exec(ctx, dstDB, `ALTER TABLE public.later DROP COLUMN b`); err != nil {
			t.Fatal(err)
		}
		if err := src.Exec(ctx, srcDB, `INSERT INTO public.later VALUES (7, 1, 'bee'); UPDATE public.items SET note = 'later' WHERE id = 3`); err != nil {
			t.Fatal(err)
		}
		wantStopped(t, dir, env, file,
			[]string{"parked", "public.later", "key id=7", `column "b"`, "apply insert"},
			regexp.MustCompile(`committed at [0-9A-F]+/[0-9A-F]+`))
		if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM public.items WHERE note = 'later'`); n != 0 {
			t.Errorf("a change after the rejected one reached the sink")
		}
		if err := snk.Exec(ctx, dstDB, `ALTER TABLE public.later ADD COLUMN b text`); err != nil {
			t.Fatal(err)
		}
		runCaughtUp(t, dir, env, file, 2*time.Minute)
		assertSameData(t, ctx, srcDSN, dstDSN, tables...)
	})

	t.Run("check_constraint_during_copy", func(t *testing.T) {
		dst2 := pgtest.NewDB(t, snk)
		// The sink's table exists already (schema sync off) with a CHECK
		// the source's row 3003 breaks.
		if err := snk.Exec(context.Background(), dbOf(t, dst2), `CREATE TABLE public.items (id int PRIMARY KEY, qty int NOT NULL CHECK (qty <> 3 OR id < 3000), note text);
			CREATE TABLE public.later (id int PRIMARY KEY, a int, b text);`); err != nil {
			t.Fatal(err)
		}
		env2 := dsnEnv(srcDSN, dst2)
		dir2 := t.TempDir()
		file2 := writePipeline(t, dir2, "copyreject.yaml", rejectPipeline("copyreject", "{schema: false, full: true, incremental: true}"))
		// The table is read by one shared scan first: the row's share is
		// no key range, but the row is shown; the next run copies the
		// table in key ranges and names the chunk.
		wantStopped(t, dir2, env2, file2,
			[]string{"parked", `public.items`, "items_check", "Failing row contains (3003, 3,", "of one shared scan", "the next run copies this table in key ranges"})
		wantStopped(t, dir2, env2, file2,
			[]string{"parked", `public.items`, "items_check", "Failing row contains (3003, 3,"},
			regexp.MustCompile(`chunk \d+ \(\(id\) (from \(\d+\) )?before \(\d+\)|chunk \d+ \(\(id\) from \(\d+\)\)`))
		if err := snk.Exec(ctx, dbOf(t, dst2), `ALTER TABLE public.items DROP CONSTRAINT items_check`); err != nil {
			t.Fatal(err)
		}
		runCaughtUp(t, dir2, env2, file2, 2*time.Minute)
		assertSameData(t, ctx, srcDSN, dst2, tables...)
	})
}
