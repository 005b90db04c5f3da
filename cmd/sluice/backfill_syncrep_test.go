package main

import (
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestBackfillSyncStandbyStale reproduces, on a real cluster, the narrow
// case where a backfill chunk could write an older value over a newer
// streamed one. The source names a synchronous standby that does not
// exist; one session commits an UPDATE with synchronous_commit = on, so
// its commit record is written (and streamed, and applied at the sink)
// but the transaction stays in PostgreSQL's list of running ones, waiting
// for the standby: other snapshots do not see its change. A backfill of
// the table requested now reads the row's older value. Its chunk must not
// be written while that transaction is running: the live run reads it
// again (and again) until the wait is cancelled (pg_cancel_backend: the
// commit becomes visible locally), and the sink ends equal to the source.
// Without the per-table memory of recent transactions the first chunk
// wrote the old value and the sink kept it. Meanwhile `sluice status`
// lists the unfinished backfill.
func TestBackfillSyncStandbyStale(t *testing.T) {
	start := time.Now()
	ctx := streamCtx(t, 4*time.Minute)
	// synchronous_commit stays off for every session but the one that
	// waits (sluice's own commits and the test's must not wait).
	src := pgtest.NewCluster(t, map[string]string{"synchronous_standby_names": "nonexistent", "synchronous_commit": "off"})
	snk := pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE TABLE public."sync ""T""" (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO public."sync ""T""" SELECT i, 'old' || i FROM generate_series(1, 100) i;`); err != nil {
		t.Fatal(err)
	}
	const table = `public."sync ""T"""`
	dir := t.TempDir()
	file := writePipeline(t, dir, "bfsr.yaml", `name: bfsr
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - table: 'public."sync ""T"""'
state_dir: state
`)
	env := dsnEnv(srcDSN, dstDSN)
	runCaughtUp(t, dir, env, file, 2*time.Minute)
	live := startSluice(t, dir, env, "run", file)
	waitStreaming(t, ctx, live, srcDSN, "sluice_bfsr", time.Minute)

	// The transaction that waits for the standby.
	waiter := connect(t, ctx, srcDSN)
	var pid int
	if err := waiter.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := waiter.Exec(ctx, `SET synchronous_commit = on; UPDATE public."sync ""T""" SET v = 'new' WHERE id = 5`)
		done <- err
	}()
	// Streamed and applied at the sink, while still running at the source.
	waitSink(t, ctx, dstDSN, `SELECT count(*) FROM `+table+` WHERE id = 5 AND v = 'new'`, 1, time.Minute)
	if n := queryInt(t, ctx, srcDSN, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep'`, pid); n != 1 {
		t.Fatalf("the UPDATE's session is not waiting for the synchronous standby (%d)", n)
	}
	if n := queryInt(t, ctx, srcDSN, `SELECT count(*) FROM `+table+` WHERE id = 5 AND v = 'old5'`); n != 1 {
		t.Fatal("the waiting UPDATE is already visible at the source: the test proves nothing")
	}

	bf := startSluice(t, dir, env, "backfill", file, "--table", table, "--json")
	// Wait until the live run has read a chunk at least twice (the
	// watermark's token ends with a sequence number per chunk read), or
	// the backfill ended.
	deadline := time.Now().Add(time.Minute)
	watch := connect(t, ctx, srcDSN)
	for seq := 0; seq < 3 && !bf.exited(); {
		if time.Now().After(deadline) {
			t.Fatal("the live run read no chunk of the backfill within a minute")
		}
		var mark string
		err := watch.QueryRow(ctx, `SELECT mark FROM sluice.watermark WHERE pipeline = 'bfsr'`).Scan(&mark)
		if err == nil {
			parts := strings.Split(strings.TrimSuffix(strings.TrimSuffix(mark, "/low"), "/high"), "/")
			seq, _ = strconv.Atoi(parts[len(parts)-1])
		} else if !errors.Is(err, pgx.ErrNoRows) && !strings.Contains(err.Error(), "does not exist") {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if bf.exited() {
		t.Errorf("the backfill finished while the UPDATE it cannot see was running:\n%s", bf.res)
	}
	// Meanwhile `sluice status` shows the unfinished backfill.
	if st := sluice(t, dir, env, "status", file); st.code != 0 || !strings.Contains(st.stdout, `backfill 1 of public."sync ""T""": requested`) ||
		!strings.Contains(st.stdout, "0 chunks, 0 rows committed") {
		t.Errorf("status: want the pending backfill listed with no chunks committed:\n%s", st)
	}
	if _, err := connect(t, ctx, srcDSN).Exec(ctx, `SELECT pg_cancel_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Logf("the waiting UPDATE after the cancel: %v", err)
	}
	if n := queryInt(t, ctx, srcDSN, `SELECT count(*) FROM `+table+` WHERE id = 5 AND v = 'new'`); n != 1 {
		t.Fatal("after the cancel the UPDATE is not visible at the source")
	}
	out := parseBackfill(t, bf.wait(time.Minute))
	t.Logf("backfill: %+v", out)
	if !strings.HasPrefix(out.Runner, "live run") || out.Rows != 100 {
		t.Errorf("want the live run to write all 100 rows, got %+v", out)
	}
	live.signal(syscall.SIGTERM)
	if lr := live.wait(time.Minute); lr.code != 130 && lr.code != 0 {
		t.Fatalf("live run: %s", lr)
	}
	if !strings.Contains(live.res.stderr, "backfill chunk read again") {
		t.Error("the live run's log does not say a chunk was read again")
	}
	assertSameData(t, ctx, srcDSN, dstDSN, table)
	t.Logf("TestBackfillSyncStandbyStale took %s", time.Since(start).Round(time.Millisecond))
}
