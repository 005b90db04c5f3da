package main

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestBackfillChunkRowsZero: --chunk-rows 0 means the default chunk size
// (10000 rows): 12000 rows take two chunks and all reach the sink; a
// negative --chunk-rows is refused before anything connects, saying what
// is valid.
func TestBackfillChunkRowsZero(t *testing.T) {
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE TABLE public.z (id int PRIMARY KEY, v text);
INSERT INTO public.z SELECT i, 'v' || i FROM generate_series(1, 12000) i;`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := writePipeline(t, dir, "z.yaml", `name: bfz
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: false}
objects:
  - table: public.z
state_dir: state
`)
	env := dsnEnv(srcDSN, dstDSN)
	if r := sluice(t, dir, env, "run", file); r.code != 0 {
		t.Fatalf("run: %s", r)
	}

	r := sluice(t, dir, env, "backfill", file, "--table", "public.z", "--chunk-rows", "-1")
	if r.code != 2 || !strings.Contains(r.stderr, "--chunk-rows must be 0 (the default: 10000 rows per chunk) or more, got -1") {
		t.Errorf("backfill --chunk-rows -1: want exit 2 and what is valid:\n%s", r)
	}

	if _, err := connect(t, ctx, dstDSN).Exec(ctx, `DELETE FROM public.z WHERE id % 3 = 0`); err != nil {
		t.Fatal(err)
	}
	out := parseBackfill(t, sluice(t, dir, env, "backfill", file, "--table", "public.z", "--chunk-rows", "0", "--json"))
	if out.Rows != 12000 || out.Chunks != 2 {
		t.Errorf("backfill --chunk-rows 0: want 12000 rows in 2 chunks (the default 10000 rows each), got %+v", out)
	}
	assertSameRows(t, ctx, srcDSN, `SELECT * FROM public.z`, dstDSN, `SELECT * FROM public.z`)
}
