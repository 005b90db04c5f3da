package main

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// bigFixture is a 400,000-row table with an int key and a 100,000-row
// table without a key. VACUUM makes reltuples exact, so the chunk plans
// (20 key-range chunks, then 5 block-range chunks) do not depend on
// ANALYZE's sampling.
const bigFixture = `
CREATE TABLE public.big (id int PRIMARY KEY, v text NOT NULL, n bigint);
INSERT INTO public.big SELECT g, md5(g::text), g * 7 FROM generate_series(1, 400000) g;
CREATE TABLE public.log (at timestamptz NOT NULL, msg text);
INSERT INTO public.log
SELECT timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', 'event ' || (g % 1000)
FROM generate_series(1, 100000) g;
`

const (
	bigKey = `"public"."big"` // the table's key in sluice.copy_progress
	logKey = `"public"."log"`
)

const resumePipeline = `name: resume
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
objects:
  - schema: public
copy:
  parallel: 2
  chunk_rows: 20000
  shared_scan_max_mb: 0   # key ranges, resumed chunk by chunk
state_dir: state
`

func TestKillAndResume(t *testing.T) {
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN := pgtest.NewDB(t, src)
	if err := src.Exec(ctx, dbOf(t, srcDSN), bigFixture); err != nil {
		t.Fatal(err)
	}
	if err := src.Exec(ctx, dbOf(t, srcDSN), "VACUUM ANALYZE"); err != nil {
		t.Fatal(err)
	}

	// setup gives a subtest a fresh sink database and pipeline file.
	setup := func(t *testing.T) (dir, file, dstDSN string, env map[string]string) {
		dstDSN = pgtest.NewDB(t, snk)
		dir = t.TempDir()
		file = writePipeline(t, dir, "resume.yaml", resumePipeline)
		return dir, file, dstDSN, dsnEnv(srcDSN, dstDSN)
	}
	// finish runs the pipeline to the end and checks the sink.
	finish := func(t *testing.T, dir, file, dstDSN string, env map[string]string) runSummary {
		t.Helper()
		r := sluice(t, dir, env, "run", "--json", file)
		var sum runSummary
		if err := json.Unmarshal([]byte(r.stdout), &sum); r.code != 0 || err != nil {
			t.Fatalf("resumed run: want exit 0 and the JSON summary (%v):\n%s", err, r)
		}
		assertSameData(t, ctx, srcDSN, dstDSN, "public.big", "public.log")
		if n := queryInt(t, ctx, dstDSN, `SELECT count(*) - count(DISTINCT id) FROM public.big`); n != 0 {
			t.Errorf("public.big has %d duplicate ids at the sink", n)
		}
		if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM public.log`); n != 100000 {
			t.Errorf("public.log has %d rows at the sink, want 100000", n)
		}
		t.Logf("resumed run: %+v", sum)
		return sum
	}
	// untilCommitted waits until the run has committed a chunk at the
	// sink after since.
	untilCommitted := func(t *testing.T, p *proc, dstDSN string, since time.Time) {
		t.Helper()
		conn := connect(t, ctx, dstDSN)
		deadline := time.Now().Add(time.Minute)
		for {
			got, err := progressRows(ctx, conn, "resume", since)
			if err != nil {
				t.Fatal(err)
			}
			if total(got) >= 1 {
				return
			}
			if p.exited() {
				t.Fatalf("sluice ended before committing a chunk:\n%s", p.res)
			}
			if time.Now().After(deadline) {
				t.Fatalf("no chunk committed within a minute")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	sinkNow := func(t *testing.T, dstDSN string) time.Time {
		t.Helper()
		var now time.Time
		if err := connect(t, ctx, dstDSN).QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
			t.Fatal(err)
		}
		return now
	}

	t.Run("failpoint_kill", func(t *testing.T) {
		dir, file, dstDSN, env := setup(t)
		r := sluice(t, dir, withEnv(env, "SLUICE_FAILPOINTS", "copy.chunk.after_commit=kill@4"), "run", file)
		if r.signal != syscall.SIGKILL {
			t.Fatalf("want the run killed by SIGKILL at the 4th chunk commit:\n%s", r)
		}
		done, err := progressRows(ctx, connect(t, ctx, dstDSN), "resume", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		// The biggest chunks go first: those of public.big.
		if done[bigKey] < 4 {
			t.Fatalf("want at least 4 chunks of public.big committed before the kill, got %v", done)
		}
		copiedBig := queryInt(t, ctx, dstDSN, `SELECT sum(rows)::bigint FROM sluice.copy_progress WHERE pipeline = 'resume' AND table_name = $1`, bigKey)
		t.Logf("committed before the kill: %v chunks, %d rows of public.big", done, copiedBig)
		sum := finish(t, dir, file, dstDSN, env)
		if sum.ChunksSkipped < 4 || sum.ChunksSkipped < done[bigKey] {
			t.Errorf("the resumed run skipped %d chunks; want the %d committed chunks of public.big (at least 4) not copied again", sum.ChunksSkipped, done[bigKey])
		}
		// It copies the rest of public.big, and public.log whole (a
		// keyless table restarts from scratch).
		if want := 400000 - copiedBig + 100000; sum.Rows != want {
			t.Errorf("the resumed run copied %d rows, want %d", sum.Rows, want)
		}
	})

	// A crash while the keyless table is half copied: its block ranges
	// belong to the snapshot of the killed run, so the next run empties it
	// and copies it again whole, while the keyed table's chunks are kept.
	t.Run("failpoint_kill_keyless", func(t *testing.T) {
		dir, file, dstDSN, env := setup(t)
		r := sluice(t, dir, withEnv(env, "SLUICE_FAILPOINTS", "copy.chunk.after_commit=kill@22"), "run", file)
		if r.signal != syscall.SIGKILL {
			t.Fatalf("want the run killed by SIGKILL at the 22nd chunk commit:\n%s", r)
		}
		done, err := progressRows(ctx, connect(t, ctx, dstDSN), "resume", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		// 20 chunks of public.big go first, then the 5 of public.log.
		if done[logKey] < 1 || done[logKey] > 4 {
			t.Fatalf("want public.log partly copied before the kill, got %v", done)
		}
		copiedBig := queryInt(t, ctx, dstDSN, `SELECT coalesce(sum(rows), 0)::bigint FROM sluice.copy_progress WHERE pipeline = 'resume' AND table_name = $1`, bigKey)
		t.Logf("committed before the kill: %v chunks, %d rows of public.big", done, copiedBig)
		sum := finish(t, dir, file, dstDSN, env)
		if sum.TablesReset != 1 || sum.ChunksSkipped != done[bigKey] {
			t.Errorf("resumed run %+v: want public.log restarted (tables_reset 1) and the %d chunks of public.big skipped", sum, done[bigKey])
		}
		if want := 400000 - copiedBig + 100000; sum.Rows != want {
			t.Errorf("the resumed run copied %d rows, want %d", sum.Rows, want)
		}
	})

	t.Run("random_kills", func(t *testing.T) {
		dir, file, dstDSN, env := setup(t)
		slow := withEnv(env, "SLUICE_FAILPOINTS", "copy.chunk.batch=sleep:100ms")
		for i := 0; i < 3; i++ {
			since := sinkNow(t, dstDSN)
			p := startSluice(t, dir, slow, "run", file)
			untilCommitted(t, p, dstDSN, since)
			delay := time.Duration(rand.Int64N(int64(700 * time.Millisecond)))
			time.Sleep(delay)
			p.signal(syscall.SIGKILL)
			r := p.wait(time.Minute)
			if r.signal != syscall.SIGKILL {
				t.Fatalf("kill %d (%s after the first commit): the run was not killed mid-copy:\n%s", i+1, delay, r)
			}
			t.Logf("kill %d: %s after its first chunk commit, %s into the run", i+1, delay.Round(time.Millisecond), r.elapsed.Round(time.Millisecond))
		}
		sum := finish(t, dir, file, dstDSN, env)
		if sum.ChunksSkipped < 1 {
			t.Errorf("the final run skipped no chunk: %+v", sum)
		}
	})

	t.Run("sigint", func(t *testing.T) {
		dir, file, dstDSN, env := setup(t)
		p := startSluice(t, dir, withEnv(env, "SLUICE_FAILPOINTS", "copy.chunk.batch=sleep:200ms"), "run", file)
		untilCommitted(t, p, dstDSN, time.Time{})
		sent := time.Now()
		p.signal(syscall.SIGINT)
		r := p.wait(time.Minute)
		took := time.Since(sent)
		if r.code != 130 {
			t.Errorf("after SIGINT: want exit code 130:\n%s", r)
		}
		if took > 10*time.Second {
			t.Errorf("after SIGINT: took %s to stop, want < 10s", took)
		}
		if !strings.Contains(r.stderr, "progress is saved") {
			t.Errorf("after SIGINT: stderr does not say progress is saved:\n%s", r)
		}
		t.Logf("stopped %s after SIGINT", took.Round(time.Millisecond))
		sum := finish(t, dir, file, dstDSN, env)
		if sum.ChunksSkipped < 1 {
			t.Errorf("the resumed run skipped no chunk: %+v", sum)
		}
	})
}
