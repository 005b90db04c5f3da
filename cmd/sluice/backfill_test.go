package main

// End-to-end tests of `sluice backfill`: while a workload changes the same
// table and the pipeline streams, after a SIGKILL half way, and for a
// copy-only pipeline; plus the errors a user can cause. The oracle is
// pgtest.ChecksumDSN over the source's rows filtered by the object's
// where, and the sink's table.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// backfillRows is the size of the backfilled table: SLUICE_BIG=1 gives the
// issue's million rows (minutes on 2 cores), the default stays small.
func backfillRows() int {
	if os.Getenv("SLUICE_BIG") == "1" {
		return 1_000_000
	}
	return 20_000
}

// The table has hostile names: a schema with a dot and capitals, a table
// with a space and a quote, a column with capitals.
const (
	bfTable     = `"Sales.EU"."bf ""Items"""`
	bfTableFlag = `"Sales.EU"."bf ""Items"""`
	// bfObjectWhere is the object's where in the pipeline; bfWhere the
	// backfill's --where, ANDed with it.
	bfObjectWhere = `"Grp" <> 9`
	bfWhere       = `n >= 100`
)

func backfillFixture(rows int) string {
	return fmt.Sprintf(`CREATE SCHEMA "Sales.EU";
CREATE TABLE %[1]s (id bigint PRIMARY KEY, "Grp" int NOT NULL, n int NOT NULL, val text);
INSERT INTO %[1]s SELECT i, i %% 10, ((i::bigint * 7919) %% 1000)::int, md5(i::text) FROM generate_series(1, %[2]d) i;
ANALYZE %[1]s;`, bfTable, rows)
}

func backfillPipeline(name string, incremental bool, more ...string) string {
	return fmt.Sprintf(`name: %s
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: %t}
objects:
  - table: '%s'
    where: '%s'
%s
copy: {parallel: 2, chunk_rows: 100000}
state_dir: state
`, name, incremental, strings.ReplaceAll(bfTableFlag, "'", "''"), strings.ReplaceAll(bfObjectWhere, "'", "''"), strings.Join(more, "\n"))
}

// bfWorkload updates, inserts, deletes and re-keys rows of the table's
// lower half (ids up to limit), moving rows across both conditions, until
// its context ends.
type bfWorkload struct {
	dsn   string
	limit int64
	fresh int64
	rng   *rand.Rand
	txns  atomic.Int64
	done  chan error
}

func (w *bfWorkload) start(ctx context.Context) {
	w.done = make(chan error, 1)
	go func() { w.done <- w.loop(ctx) }()
}

func (w *bfWorkload) stop(t *testing.T, cancel context.CancelFunc) {
	t.Helper()
	cancel()
	if err := <-w.done; err != nil {
		t.Fatalf("workload: %v", err)
	}
	w.done <- nil
}

func (w *bfWorkload) loop(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, w.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for ctx.Err() == nil {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for i := 1 + w.rng.IntN(3); i > 0; i-- {
				id := 1 + w.rng.Int64N(w.limit)
				var sql string
				var args []any
				switch w.rng.IntN(10) {
				case 0, 1, 2:
					sql, args = `UPDATE `+bfTable+` SET val = md5(random()::text) WHERE id = $1`, []any{id}
				case 3:
					sql, args = `UPDATE `+bfTable+` SET n = $2 WHERE id = $1`, []any{id, w.rng.IntN(1000)}
				case 4:
					sql, args = `UPDATE `+bfTable+` SET "Grp" = $2 WHERE id = $1`, []any{id, w.rng.IntN(10)}
				case 5:
					sql, args = `DELETE FROM `+bfTable+` WHERE id = $1`, []any{id}
				case 6:
					w.fresh++
					sql, args = `UPDATE `+bfTable+` SET id = $2 WHERE id = $1`, []any{id, w.fresh}
				default:
					w.fresh++
					sql, args = `INSERT INTO `+bfTable+` VALUES ($1, $2, $3, 'new')`, []any{w.fresh, w.rng.IntN(10), w.rng.IntN(1000)}
				}
				if _, err := tx.Exec(ctx, sql, args...); err != nil {
					return fmt.Errorf("%s %v: %w", sql, args, err)
				}
			}
			return nil
		})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		w.txns.Add(1)
		time.Sleep(time.Duration(1+w.rng.IntN(3)) * time.Millisecond)
	}
	return nil
}

// corruptSink damages rows of the sink's upper half (which the workload
// leaves alone): deletes and changes rows inside --where, and changes one
// row outside it, whose id it returns.
func corruptSink(t *testing.T, ctx context.Context, dstDSN string, rows int) (outside int64) {
	t.Helper()
	conn := connect(t, ctx, dstDSN)
	half := int64(rows / 2)
	if _, err := conn.Exec(ctx, `DELETE FROM `+bfTable+` WHERE id IN (SELECT id FROM `+bfTable+` WHERE id > $1 AND n >= 100 ORDER BY id LIMIT 50)`, half); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE `+bfTable+` SET val = 'corrupt' WHERE id IN (SELECT id FROM `+bfTable+` WHERE id > $1 AND n >= 100 ORDER BY id DESC LIMIT 50)`, half); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `UPDATE `+bfTable+` SET val = 'outside' WHERE id = (SELECT min(id) FROM `+bfTable+` WHERE id > $1 AND n < 100) RETURNING id`, half).Scan(&outside); err != nil {
		t.Fatal(err)
	}
	return outside
}

// assertFiltered compares the sink's table with the source's rows that
// pass the object's where.
func assertFiltered(t *testing.T, ctx context.Context, srcDSN, dstDSN string) {
	t.Helper()
	n1, s1, err := pgtest.ChecksumDSN(ctx, srcDSN, `(SELECT * FROM `+bfTable+` WHERE `+bfObjectWhere+`)`)
	if err != nil {
		t.Fatal(err)
	}
	n2, s2, err := pgtest.ChecksumDSN(ctx, dstDSN, bfTable)
	if err != nil {
		t.Fatal(err)
	}
	if n1 != n2 || s1 != s2 {
		t.Errorf("sink differs from the filtered source: source %d rows (%s), sink %d rows (%s)", n1, s1, n2, s2)
	}
	if n1 == 0 {
		t.Error("the filtered source is empty: the test proves nothing")
	}
}

// repairOutside checks that the row outside --where kept its corruption
// (the backfill honoured --where) and then repairs it by hand, so that the
// tables can be compared whole.
func repairOutside(t *testing.T, ctx context.Context, srcDSN, dstDSN string, id int64) {
	t.Helper()
	var val string
	if err := connect(t, ctx, dstDSN).QueryRow(ctx, `SELECT val FROM `+bfTable+` WHERE id = $1`, id).Scan(&val); err != nil {
		t.Fatal(err)
	}
	if val != "outside" {
		t.Errorf("row %d outside --where %q was changed by the backfill: %q", id, bfWhere, val)
	}
	var good string
	if err := connect(t, ctx, srcDSN).QueryRow(ctx, `SELECT val FROM `+bfTable+` WHERE id = $1`, id).Scan(&good); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, ctx, dstDSN).Exec(ctx, `UPDATE `+bfTable+` SET val = $2 WHERE id = $1`, id, good); err != nil {
		t.Fatal(err)
	}
}

func parseBackfill(t *testing.T, r result) backfillJSON {
	t.Helper()
	var out backfillJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); r.code != 0 || err != nil {
		t.Fatalf("sluice backfill --json: want exit 0 and a summary (%v):\n%s", err, r)
	}
	return out
}

// streamingBackfillCase loads the backfill fixture of rows rows into a
// fresh source, writes the streaming pipeline name for it and runs it
// until caught up; it returns what the test drives the pipeline with.
func streamingBackfillCase(t *testing.T, name string, rows int) (ctx context.Context, srcDSN, dstDSN, dir, file string, env map[string]string) {
	t.Helper()
	ctx = streamCtx(t, 10*time.Minute)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN = pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	if err := src.Exec(ctx, dbOf(t, srcDSN), backfillFixture(rows)); err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	file = writePipeline(t, dir, name+".yaml", backfillPipeline(name, true))
	env = dsnEnv(srcDSN, dstDSN)
	runCaughtUp(t, dir, env, file, 5*time.Minute)
	return ctx, srcDSN, dstDSN, dir, file, env
}

// TestBackfillWhileStreaming: a live run streams while a workload updates,
// inserts, deletes and re-keys rows of the table, and `sluice backfill
// --where` repairs rows deleted and changed at the sink. The live run
// executes the backfill; afterwards the sink equals the filtered source,
// and a row outside --where was not touched.
func TestBackfillWhileStreaming(t *testing.T) {
	start := time.Now()
	rows := backfillRows()
	ctx, srcDSN, dstDSN, dir, file, env := streamingBackfillCase(t, "bf", rows)
	// The live run holds each chunk's watermark window open for 100ms, so
	// that many workload changes fall inside windows.
	live := startSluice(t, dir, withEnv(env, "SLUICE_FAILPOINTS", "backfill.read=sleep:100ms"), "run", file)
	waitStreaming(t, ctx, live, srcDSN, "sluice_bf", time.Minute)
	t.Logf("copied %d rows and streaming after %s", rows, time.Since(start).Round(time.Millisecond))
	outside := corruptSink(t, ctx, dstDSN, rows)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &bfWorkload{dsn: srcDSN, limit: int64(rows / 2), fresh: int64(rows) * 10, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))}
	w.start(wctx)
	t.Cleanup(func() { cancel(); <-w.done })
	time.Sleep(500 * time.Millisecond)

	bfStart := time.Now()
	r := startSluice(t, dir, env, "backfill", file, "--table", bfTableFlag, "--where", bfWhere, "--chunk-rows", fmt.Sprint(max(2000, rows/100)), "--json").wait(8 * time.Minute)
	out := parseBackfill(t, r)
	elapsed := time.Since(bfStart)
	t.Logf("backfill: %+v in %s (%.0f rows/s); workload %d transactions so far", out, elapsed.Round(time.Millisecond), float64(out.Rows)/elapsed.Seconds(), w.txns.Load())
	if !strings.HasPrefix(out.Runner, "live run") {
		t.Errorf("want the live run to execute the backfill, got runner %q", out.Runner)
	}
	if out.Resumed || out.Chunks < 2 || out.Rows < int64(rows)/2 {
		t.Errorf("backfill summary: want a new request over several chunks and at least %d rows, got %+v", rows/2, out)
	}
	// Chunks were written while the workload went on.
	time.Sleep(500 * time.Millisecond)
	w.stop(t, cancel)
	if w.txns.Load() == 0 {
		t.Fatal("the workload committed nothing")
	}

	// Let the live run catch up, then stop it.
	live.signal(syscall.SIGTERM)
	if lr := live.wait(time.Minute); lr.code != 130 && lr.code != 0 {
		t.Fatalf("live run: %s", lr)
	}
	runCaughtUp(t, dir, env, file, 3*time.Minute)
	repairOutside(t, ctx, srcDSN, dstDSN, outside)
	assertFiltered(t, ctx, srcDSN, dstDSN)
	t.Logf("TestBackfillWhileStreaming (%d rows) took %s", rows, time.Since(start).Round(time.Millisecond))
}

// TestBackfillKilledAndResumed: while a workload runs, the live run
// executing a backfill is SIGKILLed at the backfill.chunk failpoint (a
// chunk's rows queued in the open sink transaction); the waiting `sluice
// backfill` takes over, running the pipeline itself, and is SIGKILLed the
// same way; run again, it resumes the same request after the chunks the
// sink committed and ends with the sink equal to the filtered source.
func TestBackfillKilledAndResumed(t *testing.T) {
	start := time.Now()
	rows := backfillRows()
	ctx, srcDSN, dstDSN, dir, file, env := streamingBackfillCase(t, "bfk", rows)
	outside := corruptSink(t, ctx, dstDSN, rows)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &bfWorkload{dsn: srcDSN, limit: int64(rows / 2), fresh: int64(rows) * 10, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))}
	w.start(wctx)
	t.Cleanup(func() { cancel(); <-w.done })

	chunkRows := max(1000, min(rows/10, 10000))
	args := []string{"backfill", file, "--table", bfTableFlag, "--where", bfWhere, "--chunk-rows", fmt.Sprint(chunkRows), "--json"}
	// A live run executes the backfill and is killed at its 3rd chunk; the
	// waiting command takes over, running the pipeline itself, and is
	// killed at its own 2nd chunk.
	live := startSluice(t, dir, withEnv(env, "SLUICE_FAILPOINTS", "backfill.chunk=kill@3"), "run", file)
	waitStreaming(t, ctx, live, srcDSN, "sluice_bfk", time.Minute)
	waiting := startSluice(t, dir, withEnv(env, "SLUICE_FAILPOINTS", "backfill.chunk=kill@2"), args...)
	if lr := live.wait(5 * time.Minute); lr.signal != syscall.SIGKILL {
		t.Fatalf("want the live run killed at the backfill's 3rd chunk:\n%s", lr)
	}
	killed := waiting.wait(5 * time.Minute)
	if killed.signal != syscall.SIGKILL || !strings.Contains(killed.stderr, "running it here") {
		t.Fatalf("want the waiting backfill to take over from the killed run and be killed at its 2nd chunk:\n%s", killed)
	}
	var chunks int
	var done bool
	if err := connect(t, ctx, dstDSN).QueryRow(ctx, `SELECT chunks, done FROM sluice.backfill_progress WHERE pipeline = 'bfk'`).Scan(&chunks, &done); err != nil {
		t.Fatal(err)
	}
	if chunks != 3 || done {
		t.Fatalf("after kills at the 3rd chunk of the live run and the 2nd of the takeover the sink should hold 3 committed chunks, not done; got %d (done %v)", chunks, done)
	}

	out := parseBackfill(t, startSluice(t, dir, env, args...).wait(5*time.Minute))
	t.Logf("resumed backfill: %+v; workload %d transactions", out, w.txns.Load())
	if !out.Resumed || out.Chunks <= 3 || !strings.HasPrefix(out.Runner, "this process") {
		t.Errorf("want the same request resumed after chunk 3 by this process, got %+v", out)
	}
	// The request is done: a third run starts a new one.
	w.stop(t, cancel)
	runCaughtUp(t, dir, env, file, 3*time.Minute)
	repairOutside(t, ctx, srcDSN, dstDSN, outside)
	assertFiltered(t, ctx, srcDSN, dstDSN)
	if n := queryInt(t, ctx, srcDSN, `SELECT count(*) FROM sluice.backfill WHERE pipeline = 'bfk' AND status = 'done'`); n != 1 {
		t.Errorf("source: want 1 done backfill request, got %d", n)
	}
	t.Logf("TestBackfillKilledAndResumed (%d rows) took %s", rows, time.Since(start).Round(time.Millisecond))
}

// TestBackfillCopyOnly: a pipeline without streaming is backfilled
// directly (killed half way and resumed, too), also a renamed table and a
// partitioned one; bad --table, --where and a table without a key fail
// with clear errors before anything is written.
func TestBackfillCopyOnly(t *testing.T) {
	start := time.Now()
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	const rows = 20_000
	if err := src.Exec(ctx, dbOf(t, srcDSN), backfillFixture(rows)+`
CREATE TABLE public.nokey (x int, y text);
INSERT INTO public.nokey SELECT i, 'y' FROM generate_series(1, 10) i;
CREATE TABLE public.ren (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text, gone text);
INSERT INTO public.ren (v, gone) SELECT 'v' || i, 'g' FROM generate_series(1, 300) i;
CREATE TABLE public.parted (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (1000);
CREATE TABLE public.parted_2 PARTITION OF public.parted FOR VALUES FROM (1000) TO (2000) PARTITION BY RANGE (id);
CREATE TABLE public.parted_2a PARTITION OF public.parted_2 FOR VALUES FROM (1000) TO (2000);
INSERT INTO public.parted SELECT i, 'p' || i FROM generate_series(1, 1999) i;`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := writePipeline(t, dir, "bfc.yaml", backfillPipeline("bfc", false, "  - table: public.nokey",
		"  - table: public.ren\n    rename: public.ren_copy\n    columns: {v: w, gone: null}", "  - table: public.parted"))
	env := dsnEnv(srcDSN, dstDSN)
	if r := sluice(t, dir, env, "run", file); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	outside := corruptSink(t, ctx, dstDSN, rows)

	args := []string{"backfill", file, "--table", bfTableFlag, "--where", bfWhere, "--chunk-rows", "1500", "--json"}
	killed := sluice(t, dir, withEnv(env, "SLUICE_FAILPOINTS", "backfill.chunk=kill@3"), args...)
	if killed.signal != syscall.SIGKILL {
		t.Fatalf("want the backfill killed at its 3rd chunk:\n%s", killed)
	}
	out := parseBackfill(t, sluice(t, dir, env, args...))
	t.Logf("resumed copy-only backfill: %+v", out)
	if !out.Resumed || out.Runner != "this process (copy only)" {
		t.Errorf("want the copy-only request resumed by this process, got %+v", out)
	}
	// 20000 rows, 90%% inside both conditions, in chunks of 1500.
	want := queryInt(t, ctx, srcDSN, `SELECT count(*) FROM `+bfTable+` WHERE `+bfObjectWhere+` AND `+bfWhere)
	if out.Rows != want || out.Chunks != int(want)/1500+1 {
		t.Errorf("want %d rows in %d chunks (2 before the kill), got %+v", want, want/1500+1, out)
	}
	repairOutside(t, ctx, srcDSN, dstDSN, outside)
	assertFiltered(t, ctx, srcDSN, dstDSN)

	// Renamed table and columns, a dropped column: the backfill goes
	// through the pipeline's mapping.
	if _, err := connect(t, ctx, dstDSN).Exec(ctx, `DELETE FROM public.ren_copy WHERE id <= 100; UPDATE public.ren_copy SET w = 'bad' WHERE id > 250`); err != nil {
		t.Fatal(err)
	}
	out = parseBackfill(t, sluice(t, dir, env, "backfill", file, "--table", "public.ren", "--where", "id > 50", "--json"))
	if out.Rows != 250 || out.Resumed {
		t.Errorf("backfill of the renamed table: want 250 rows in a new request, got %+v", out)
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM public.ren_copy WHERE w = 'v' || id`); n != 250 {
		t.Errorf("renamed table: %d rows right at the sink, want 250 (ids 51..300; 1..50 stay deleted)", n)
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM public.ren_copy`); n != 250 {
		t.Errorf("renamed table: %d rows at the sink, want 250", n)
	}
	// Small chunks.
	if _, err := connect(t, ctx, dstDSN).Exec(ctx, `DELETE FROM public.ren_copy WHERE id = 280; UPDATE public.ren_copy SET w = 'bad' WHERE id = 290`); err != nil {
		t.Fatal(err)
	}
	out = parseBackfill(t, sluice(t, dir, env, "backfill", file, "--table", "public.ren", "--where", "id > 250", "--chunk-rows", "40", "--json"))
	if out.Rows != 50 || out.Chunks != 2 {
		t.Errorf("small-chunk backfill: want 50 rows in 2 chunks, got %+v", out)
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM public.ren_copy WHERE id > 250 AND w = 'v' || id`); n != 50 {
		t.Errorf("renamed table after small chunks: %d of 50 rows right at the sink", n)
	}

	// A partitioned table is backfilled leaf partition by leaf partition
	// (two levels here), with --where.
	if _, err := connect(t, ctx, dstDSN).Exec(ctx, `DELETE FROM public.parted WHERE id % 100 = 0; UPDATE public.parted SET v = 'bad' WHERE id % 100 = 50`); err != nil {
		t.Fatal(err)
	}
	out = parseBackfill(t, sluice(t, dir, env, "backfill", file, "--table", "public.parted", "--where", "id > 10", "--chunk-rows", "700", "--json"))
	if out.Rows != 1989 || out.Chunks != 4 {
		t.Errorf("partitioned backfill: want 1989 rows in 4 chunks (2 per partition), got %+v", out)
	}
	assertSameData(t, ctx, srcDSN, dstDSN, "public.parted", "public.parted_1", "public.parted_2a")

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown table", []string{"--table", "public.nope"}, 1, `table "public"."nope" is not among the pipeline's tables`},
		{"unknown column", []string{"--table", bfTableFlag, "--where", "nope > 1"}, 1, `nope`},
		{"bad syntax", []string{"--table", bfTableFlag, "--where", "n >"}, 1, `--where on table`},
		{"volatile", []string{"--table", bfTableFlag, "--where", "n > random()"}, 1, `random`},
		{"no key", []string{"--table", "public.nokey"}, 1, `has no primary key or unique index`},
		{"no table", nil, 2, `--table is required`},
	} {
		r := sluice(t, dir, env, append([]string{"backfill", file}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: want exit %d and %q on stderr, got:\n%s", tc.name, tc.code, tc.want, r)
		}
	}
	var n int64
	if err := connect(t, ctx, dstDSN).QueryRow(ctx, `SELECT count(*) FROM sluice.backfill_progress WHERE pipeline = 'bfc'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("sink: want the progress rows of the three one-table backfills and of the two partitions, got %d rows", n)
	}
	// drop removes the backfill's progress too.
	if r := sluice(t, dir, env, "drop", file); r.code != 0 {
		t.Fatalf("drop: %s", r)
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM sluice.backfill_progress`); n != 0 {
		t.Errorf("sink: %d backfill progress rows left after drop", n)
	}
	t.Logf("TestBackfillCopyOnly took %s", time.Since(start).Round(time.Millisecond))
}

// TestBackfillThroughStages: a backfill writes its rows through the
// pipeline's transform stages, like the full copy: a `set` stage's masking
// and a `filter` stage's drop hold for the rows it repairs.
func TestBackfillThroughStages(t *testing.T) {
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `
CREATE TABLE public."Cust ""X""" (id int PRIMARY KEY, email text, hidden bool);
INSERT INTO public."Cust ""X""" SELECT i, 'user' || i || '@example.com', i % 10 = 0 FROM generate_series(1, 500) i;`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := writePipeline(t, dir, "bfs.yaml", `name: bfs
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: false}
objects:
  - table: 'public."Cust ""X"""'
transforms:
  - filter: "!after.hidden"
  - set: {email: "'x@' + split(after.email, '@')[1]"}
state_dir: state
`)
	env := dsnEnv(srcDSN, dstDSN)
	if r := sluice(t, dir, env, "run", file); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	sink := connect(t, ctx, dstDSN)
	if _, err := sink.Exec(ctx, `DELETE FROM public."Cust ""X""" WHERE id <= 100; UPDATE public."Cust ""X""" SET email = 'leaked@corp' WHERE id > 400`); err != nil {
		t.Fatal(err)
	}
	out := parseBackfill(t, sluice(t, dir, env, "backfill", file, "--table", `public."Cust ""X"""`, "--json"))
	if out.Rows == 0 {
		t.Errorf("backfill wrote no rows: %+v", out)
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM public."Cust ""X"""`); n != 450 {
		t.Errorf("sink holds %d rows, want 450 (the 50 hidden rows filtered out)", n)
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM public."Cust ""X""" WHERE email <> 'x@example.com' OR hidden`); n != 0 {
		t.Errorf("%d sink rows escaped the stages after the backfill", n)
	}
}
