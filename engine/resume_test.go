package engine_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/failpoint"
)

const itemsFixture = `
CREATE TABLE public.items (id bigint PRIMARY KEY, body text, n numeric);
INSERT INTO public.items SELECT g, repeat(md5(g::text), 1 + (g % 3)::int), g / 7.0 FROM generate_series(1, 100000) g;
ANALYZE public.items;
`

const itemsKey = `"public"."items"`

func failpoints(t *testing.T, spec string) *failpoint.Set {
	t.Helper()
	fp, err := failpoint.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// assertChunkAtomic checks that the sink holds exactly the rows its
// progress rows account for: a chunk is there whole, with its progress
// row, or not at all.
func assertChunkAtomic(t *testing.T, dsn, table, key string) int64 {
	t.Helper()
	rows := queryInt(t, dsn, "SELECT count(*) FROM "+table)
	accounted := queryInt(t, dsn, `SELECT COALESCE(sum(rows), 0)::bigint FROM sluice.copy_progress WHERE pipeline = 't' AND table_name = $1`, key)
	if rows != accounted {
		t.Errorf("after the failed run the sink holds %d rows of %s but its progress rows account for %d: a chunk is there in part", rows, table, accounted)
	}
	return progressRows(t, dsn, "t", key)
}

func TestResumeAfterFailure(t *testing.T) {
	t.Run("after_commit", func(t *testing.T) {
		// One worker, so exactly three chunks are committed when the
		// third one's checkpoint is about to be written.
		e := newEnv(t)
		e.srcExec(itemsFixture)
		cfg := e.config(schemaSel("public")...)
		cfg.ChunkRows, cfg.Parallel = 10000, 1
		cfg.Failpoints = failpoints(t, "copy.chunk.after_commit=error@3")
		err := runErr(t, cfg)
		if !strings.Contains(err.Error(), "copy.chunk.after_commit") {
			t.Errorf("first run: error %q does not name the failpoint", err)
		}
		if n := assertChunkAtomic(t, e.dstDSN, "public.items", itemsKey); n != 3 {
			t.Errorf("after the failed run the sink has %d chunks committed, want 3", n)
		}

		cfg.Failpoints = nil
		var logs logBuffer
		cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
		sum := runOK(t, cfg)
		if !strings.Contains(logs.String(), "resuming a copy-only pipeline at a new snapshot") {
			t.Errorf("the copy-only resume did not warn that the chunks copied before hold an older snapshot; log:\n%s", logs.String())
		}
		total := progressRows(t, e.dstDSN, "t", itemsKey)
		if total < 8 {
			t.Fatalf("items copied in %d chunks, want about 10", total)
		}
		if sum.ChunksSkipped != 3 || int64(sum.ChunksCopied) != total-3 {
			t.Errorf("second run: %d chunks skipped, %d copied; want 3 and %d", sum.ChunksSkipped, sum.ChunksCopied, total-3)
		}
		if sum.TablesReset != 0 {
			t.Errorf("second run: %d tables reset, want 0 (the table has a key)", sum.TablesReset)
		}
		assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.items"})
		assertNoDuplicates(t, e.dstDSN, "public.items", "id")
	})

	t.Run("after_commit_parallel", func(t *testing.T) {
		// Four workers: others may commit after the failing one; whatever
		// they committed is skipped, nothing is copied twice.
		e := newEnv(t)
		e.srcExec(itemsFixture)
		cfg := e.config(schemaSel("public")...)
		cfg.ChunkRows, cfg.Parallel = 10000, 4
		cfg.SharedScanMaxBytes = -1 // key ranges, resumed one by one (shared_scan below)
		cfg.Failpoints = failpoints(t, "copy.chunk.after_commit=error@3")
		runErr(t, cfg)
		committed := assertChunkAtomic(t, e.dstDSN, "public.items", itemsKey)
		if committed < 3 {
			t.Errorf("after the failed run the sink has %d chunks committed, want >= 3", committed)
		}

		cfg.Failpoints = nil
		sum := runOK(t, cfg)
		total := progressRows(t, e.dstDSN, "t", itemsKey)
		if int64(sum.ChunksSkipped) != committed || int64(sum.ChunksSkipped+sum.ChunksCopied) != total {
			t.Errorf("second run: %d chunks skipped, %d copied; want %d skipped of %d", sum.ChunksSkipped, sum.ChunksCopied, committed, total)
		}
		assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.items"})
		assertNoDuplicates(t, e.dstDSN, "public.items", "id")
	})

	t.Run("mid_copy", func(t *testing.T) {
		// The fifth batch read fails: the chunk being written rolls back.
		// Chunks of ~20000 rows are ~5 batches of 4096 rows, so the
		// failure comes after some batches of the chunk were written.
		e := newEnv(t)
		e.srcExec(itemsFixture)
		cfg := e.config(schemaSel("public")...)
		cfg.ChunkRows, cfg.Parallel = 20000, 1
		cfg.Failpoints = failpoints(t, "copy.chunk.batch=error@5")
		err := runErr(t, cfg)
		if !strings.Contains(err.Error(), "copy.chunk.batch") {
			t.Errorf("first run: error %q does not name the failpoint", err)
		}
		committed := assertChunkAtomic(t, e.dstDSN, "public.items", itemsKey)
		if committed > 1 {
			t.Errorf("after the failed run the sink has %d chunks committed, want at most 1", committed)
		}

		cfg.Failpoints = nil
		sum := runOK(t, cfg)
		total := progressRows(t, e.dstDSN, "t", itemsKey)
		if int64(sum.ChunksSkipped) != committed || int64(sum.ChunksSkipped+sum.ChunksCopied) != total {
			t.Errorf("second run: %d chunks skipped, %d copied; want %d skipped of %d", sum.ChunksSkipped, sum.ChunksCopied, committed, total)
		}
		assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.items"})
		assertNoDuplicates(t, e.dstDSN, "public.items", "id")
	})

	t.Run("shared_scan", func(t *testing.T) {
		// Four workers share one scan of the keyed table: which rows a
		// share held depends on timing, so the second run starts the
		// table over instead of skipping the shares committed.
		e := newEnv(t)
		e.srcExec(itemsFixture)
		cfg := e.config(schemaSel("public")...)
		cfg.ChunkRows, cfg.Parallel = 10000, 4
		cfg.Failpoints = failpoints(t, "copy.chunk.after_commit=error@3")
		runErr(t, cfg)
		if n := assertChunkAtomic(t, e.dstDSN, "public.items", itemsKey); n < 3 {
			t.Errorf("after the failed run the sink has %d shares committed, want >= 3", n)
		}

		cfg.Failpoints = nil
		var logs logBuffer
		cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
		sum := runOK(t, cfg)
		if !strings.Contains(logs.String(), "restarting the copy of a table read by one shared scan") || !strings.Contains(logs.String(), "copied in key or block ranges now") {
			t.Errorf("the second run did not say why it starts the table over; log:\n%s", logs.String())
		}
		if sum.TablesReset != 1 || sum.ChunksSkipped != 0 {
			t.Errorf("second run: %d tables reset, %d shares skipped; want 1 and 0", sum.TablesReset, sum.ChunksSkipped)
		}
		assertChunkAtomic(t, e.dstDSN, "public.items", itemsKey)
		assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.items"})
		assertNoDuplicates(t, e.dstDSN, "public.items", "id")
		// The second run read key ranges: one index scan per chunk.
		if n := progressRows(t, e.dstDSN, "t", itemsKey); n < 8 {
			t.Errorf("the second run committed %d chunks, want about 10 key ranges", n)
		}
	})

	t.Run("keyless", func(t *testing.T) {
		// A keyless table is chunked by block ranges, which do not carry
		// over to a new snapshot: the second run starts it over. The small
		// keyed table, copied first (tiny tables go first), keeps its chunk.
		e := newEnv(t)
		e.srcExec(`
CREATE TABLE public.nokey (n bigint, body text);
INSERT INTO public.nokey SELECT g, repeat(md5(g::text), 2) FROM generate_series(1, 100000) g;
CREATE TABLE public.small (id integer PRIMARY KEY, v text);
INSERT INTO public.small SELECT g, g::text FROM generate_series(1, 10) g;
ANALYZE public.nokey, public.small;`)
		cfg := e.config(schemaSel("public")...)
		cfg.ChunkRows, cfg.Parallel = 10000, 1
		cfg.Failpoints = failpoints(t, "copy.chunk.after_commit=error@4")
		runErr(t, cfg)
		if n := assertChunkAtomic(t, e.dstDSN, "public.nokey", `"public"."nokey"`); n != 3 {
			t.Errorf("after the failed run the sink has %d chunks of nokey committed, want 3", n)
		}

		cfg.Failpoints = nil
		sum := runOK(t, cfg)
		if sum.TablesReset != 1 {
			t.Errorf("second run: %d tables reset, want 1", sum.TablesReset)
		}
		if sum.ChunksSkipped != 1 {
			t.Errorf("second run: %d chunks skipped, want 1 (small's; the keyless table starts over)", sum.ChunksSkipped)
		}
		assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.nokey", "public.small"})
		assertNoDuplicates(t, e.dstDSN, "public.nokey", "n")
	})

	t.Run("state_dir_lost", func(t *testing.T) {
		// The sink holds chunks of an interrupted run but the state dir is
		// new: the table is copied again from scratch, without duplicates.
		e := newEnv(t)
		e.srcExec(itemsFixture)
		cfg := e.config(schemaSel("public")...)
		cfg.ChunkRows, cfg.Parallel = 10000, 1
		cfg.Failpoints = failpoints(t, "copy.chunk.after_commit=error@3")
		runErr(t, cfg)
		cfg.Failpoints = nil
		cfg.StateDir = t.TempDir()
		sum := runOK(t, cfg)
		if sum.TablesReset != 1 || sum.ChunksSkipped != 0 {
			t.Errorf("second run: %d tables reset, %d chunks skipped; want 1 and 0", sum.TablesReset, sum.ChunksSkipped)
		}
		assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.items"})
		assertNoDuplicates(t, e.dstDSN, "public.items", "id")
	})

	t.Run("canceled", func(t *testing.T) {
		// The run's context ends while chunks are being written (as on
		// Ctrl-C): the chunks in flight roll back, the next run finishes.
		e := newEnv(t)
		e.srcExec(itemsFixture)
		cfg := e.config(schemaSel("public")...)
		cfg.ChunkRows, cfg.Parallel = 10000, 2
		cfg.SharedScanMaxBytes = -1 // key ranges, resumed one by one
		cfg.Failpoints = failpoints(t, "copy.chunk.batch=sleep:60ms")
		ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
		defer cancel()
		if _, err := engine.Run(ctx, cfg); err == nil {
			t.Fatal("the canceled run succeeded; make it slower")
		}
		committed := assertChunkAtomic(t, e.dstDSN, "public.items", itemsKey)
		t.Logf("the canceled run committed %d chunks", committed)
		cfg.Failpoints = nil
		sum := runOK(t, cfg)
		if int64(sum.ChunksSkipped) != committed {
			t.Errorf("second run: %d chunks skipped, want the %d the sink committed", sum.ChunksSkipped, committed)
		}
		assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.items"})
		assertNoDuplicates(t, e.dstDSN, "public.items", "id")
	})
}

// TestResumeOpensWorkersForSavedPlan: the copy's workers connect while it
// is planned, as many as the tables' estimated chunks; a resumed copy
// whose saved plan has more chunks than that (here: chunk_rows raised
// between the runs) opens the rest before copying, up to copy.parallel.
func TestResumeOpensWorkersForSavedPlan(t *testing.T) {
	e := newEnv(t)
	// Key ranges carry over to the next run (one worker: no shared scan).
	e.srcExec(`CREATE TABLE public.keyed (n bigint PRIMARY KEY, body text);
INSERT INTO public.keyed SELECT g, md5(g::text) FROM generate_series(1, 40000) g;
ANALYZE public.keyed;`)
	cfg := e.config(schemaSel("public")...)
	cfg.ChunkRows, cfg.Parallel = 4000, 1
	cfg.Failpoints = failpoints(t, "copy.chunk.after_commit=error@2")
	runErr(t, cfg)

	cfg.Failpoints = nil
	cfg.ChunkRows, cfg.Parallel = 1000000, 3 // estimate: one chunk
	var logs logBuffer
	cfg.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	runOK(t, cfg)
	if !strings.Contains(logs.String(), `msg="copy workers at work" workers=3`) {
		t.Errorf("the resumed copy did not use copy.parallel workers for its saved plan's chunks; log:\n%s", grepLines(logs.String(), "copy workers"))
	}
	assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.keyed"})
}
