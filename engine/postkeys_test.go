package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
	"github.com/sluicehq/sluice/transforms/rename"
)

// TestKeyBuildStopsWhenCopyFails: a primary key being built while the copy
// goes on is cancelled when the copy fails, so the run reports the copy's
// failure at once instead of after the build (minutes on a big table).
// Here the build waits for a lock the test holds for far longer than the
// run may take.
func TestKeyBuildStopsWhenCopyFails(t *testing.T) {
	e := newEnv(t)
	e.srcExec(itemsFixture + `
CREATE TABLE public.small (id int PRIMARY KEY, v text);
INSERT INTO public.small SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
ANALYZE public.small;`)
	// The sink's items exists without its key (empty: no conflict), so the
	// copy fills it and then builds the key; the test's open transaction
	// lets rows in (ROW EXCLUSIVE) but keeps the key build waiting.
	e.dstExec(`CREATE TABLE public.items (id bigint NOT NULL, body text, n numeric)`)
	ctx := t.Context()
	lock, err := pgx.Connect(ctx, e.dstDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(context.WithoutCancel(ctx))
	if _, err := lock.Exec(ctx, "BEGIN; LOCK TABLE public.items IN ROW EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	release := time.AfterFunc(90*time.Second, func() { lock.Exec(context.Background(), "ROLLBACK") })
	defer release.Stop()

	cfg := e.config(schemaSel("public")...)
	// One worker, biggest table first: items' 10 chunks, then small's
	// first chunk fails, while items' key build waits for the lock.
	cfg.ChunkRows, cfg.Parallel = 10000, 1
	cfg.Failpoints = failpoints(t, "copy.chunk.after_commit=error@11")
	start := time.Now()
	err = runErr(t, cfg)
	took := time.Since(start)
	if !strings.Contains(err.Error(), "copy.chunk.after_commit") {
		t.Errorf("error %q does not name the copy's failure", err)
	}
	if took > 45*time.Second {
		t.Errorf("the run took %s to report the failed copy: it waited for the key build", took.Round(time.Second))
	}
	if n := queryInt(t, e.dstDSN, `SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.items'::regclass AND contype = 'p'`); n != 0 {
		t.Errorf("items has %d primary keys after the cancelled build, want 0", n)
	}

	// The next run (lock gone) builds the key and finishes the copy.
	if _, err := lock.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	cfg.Failpoints = nil
	runOK(t, cfg)
	assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.items", "public.small"})
	if n := queryInt(t, e.dstDSN, `SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.items'::regclass AND contype = 'p'`); n != 1 {
		t.Errorf("items has %d primary keys after the second run, want 1", n)
	}
}

// TestRenamedKeyKeepsOptions: a primary key whose columns the pipeline
// renames is written again with the sink's column names, keeping its
// INCLUDE columns and storage parameters: built after the copy, and
// inline when the table is created without a copy.
func TestRenamedKeyKeepsOptions(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE SCHEMA rk;
CREATE TABLE rk.t (a int NOT NULL, b text NOT NULL, c text, d int,
  CONSTRAINT t_pk PRIMARY KEY (a, b) INCLUDE (c, d) WITH (fillfactor = 70, deduplicate_items = off));
INSERT INTO rk.t SELECT g, 'b' || g, 'c' || g, g FROM generate_series(1, 5000) g;`)
	ren := rename.Config{Columns: []rename.ColumnRename{
		{Table: record.TableName{Schema: "rk", Name: "t"}, From: "a", To: "a 2", Origin: "test"},
		{Table: record.TableName{Schema: "rk", Name: "t"}, From: "c", To: "C", Origin: "test"},
	}}
	e.srcExec(`CREATE TABLE rk.plain (id int, CONSTRAINT plain_pk PRIMARY KEY (id) WITH (fillfactor = 60));
CREATE TABLE rk.later (id int, CONSTRAINT later_pk PRIMARY KEY (id) DEFERRABLE INITIALLY DEFERRED);
INSERT INTO rk.plain SELECT generate_series(1, 100); INSERT INTO rk.later SELECT generate_series(1, 100);`)
	ren.Columns = append(ren.Columns, rename.ColumnRename{Table: record.TableName{Schema: "rk", Name: "later"}, From: "id", To: "Id", Origin: "test"})
	want := `PRIMARY KEY ("a 2", b) INCLUDE ("C", d) WITH (fillfactor='70', deduplicate_items='off')`
	for _, full := range []bool{true, false} {
		sink := e.newSink()
		cfg := e.config(schemaSel("rk")...)
		cfg.SinkDSN, cfg.Full, cfg.Rename = sink, full, ren
		runOK(t, cfg)
		// Not renamed: the storage parameters too (pg_get_constraintdef,
		// which the key was once written from, leaves them out).
		if got := queryText(t, sink, `SELECT array_to_string(ic.reloptions, ',') FROM pg_constraint con JOIN pg_class ic ON ic.oid = con.conindid
			WHERE con.conrelid = 'rk.plain'::regclass AND con.contype = 'p'`); got != "fillfactor=60" {
			t.Errorf("full copy %v: rk.plain's key has the storage parameters %q, want fillfactor=60", full, got)
		}
		// Deferrable, renamed.
		if got := queryText(t, sink, `SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'rk.later'::regclass AND contype = 'p'`); got != `PRIMARY KEY ("Id") DEFERRABLE INITIALLY DEFERRED` {
			t.Errorf("full copy %v: rk.later's key is %s", full, got)
		}
		// pg_get_constraintdef leaves the storage parameters out.
		got := queryText(t, sink, `SELECT pg_get_constraintdef(con.oid) || ' WITH (' || array_to_string(ic.reloptions, ', ') || ')'
			FROM pg_constraint con JOIN pg_class ic ON ic.oid = con.conindid WHERE con.conrelid = 'rk.t'::regclass AND con.contype = 'p'`)
		if norm := strings.ReplaceAll(want, "'", ""); got != norm {
			t.Errorf("full copy %v: the sink's key is %s, want %s", full, got, norm)
		}
	}
}

// TestSmallKeyDoesNotWaitForBigBuild: the primary key of a small table
// whose copy ends while a big table's key is building is built at once,
// not queued behind it (one worker: one big build at a time). Here the
// big build waits for a lock the test holds until the small key exists;
// before, the small key waited for the big build and the run stalled.
func TestSmallKeyDoesNotWaitForBigBuild(t *testing.T) {
	e := newEnv(t)
	// big: over 16 MiB of heap (rows just under the TOAST threshold, of
	// random text pglz cannot shrink), copied first; small: a few rows.
	e.srcExec(`CREATE TABLE public.big (id int PRIMARY KEY, pad text);
INSERT INTO public.big SELECT g, (SELECT string_agg(md5(g::text || '.' || j::text), '') FROM generate_series(1, 58) j) FROM generate_series(1, 9000) g;
CREATE TABLE public.small (id int PRIMARY KEY, v text);
INSERT INTO public.small SELECT g, 'v' || g FROM generate_series(1, 100) g;
ANALYZE public.big, public.small;`)
	if pages := queryInt(t, e.srcDSN, `SELECT pg_relation_size('public.big') / 8192`); pages <= 2048 {
		t.Fatalf("the fixture's big table has %d pages, not more than the small-table limit", pages)
	}
	e.dstExec(`CREATE TABLE public.big (id int NOT NULL, pad text)`)
	ctx := t.Context()
	lock, err := pgx.Connect(ctx, e.dstDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(context.WithoutCancel(ctx))
	if _, err := lock.Exec(ctx, "BEGIN; LOCK TABLE public.big IN ROW EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(schemaSel("public")...)
	cfg.ChunkRows, cfg.Parallel = 3000, 1
	done := make(chan error, 1)
	go func() {
		_, err := engine.Run(ctx, cfg)
		done <- err
	}()
	deadline := time.Now().Add(90 * time.Second)
	for queryInt(t, e.dstDSN, `SELECT count(*) FROM pg_constraint WHERE conrelid = to_regclass('public.small') AND contype = 'p'`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("small's primary key was not built while big's build waited")
		}
		select {
		case err := <-done:
			t.Fatalf("the run ended (%v) before small's key was built, with big's build still held back", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if n := queryInt(t, e.dstDSN, `SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.big'::regclass AND contype = 'p'`); n != 0 {
		t.Fatalf("big has its key (%d) although its build should still wait for the test's lock", n)
	}
	if _, err := lock.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("engine.Run: %v", err)
	}
	assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.big", "public.small"})
	if n := queryInt(t, e.dstDSN, `SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.big'::regclass AND contype = 'p'`); n != 1 {
		t.Errorf("big has %d primary keys after the run, want 1", n)
	}
}

// TestSmallKeyBuildsBounded: the keys of many small tables are built at
// most copy.parallel at a time, each on a sink connection of its own, not
// all at once (a schema of many small tables opened one connection per
// table, past the sink's max_connections). Here every build waits for a
// lock the test holds, so the builds started pile up while it watches.
func TestSmallKeyBuildsBounded(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	const n = 30
	var src, dstDDL, names strings.Builder
	for i := range n {
		fmt.Fprintf(&src, "CREATE TABLE public.s%d (id int PRIMARY KEY); INSERT INTO public.s%d VALUES (1), (2);\n", i, i)
		fmt.Fprintf(&dstDDL, "CREATE TABLE public.s%d (id int NOT NULL);\n", i)
		if i > 0 {
			names.WriteString(", ")
		}
		fmt.Fprintf(&names, "public.s%d", i)
	}
	e.srcExec(src.String())
	sink := pgtest.NewClusterOpts(t, pgtest.Options{Settings: map[string]string{"max_connections": "14"}})
	if _, err := sink.CreateDatabase(ctx, "few"); err != nil {
		t.Fatal(err)
	}
	dstDSN := sink.DSN("few")
	if err := sink.Exec(ctx, "few", dstDDL.String()); err != nil {
		t.Fatal(err)
	}
	lock, err := pgx.Connect(ctx, dstDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(context.WithoutCancel(ctx))
	if _, err := lock.Exec(ctx, "BEGIN; LOCK TABLE "+names.String()+" IN ROW EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(schemaSel("public")...)
	cfg.SinkDSN, cfg.Parallel = dstDSN, 2
	done := make(chan error, 1)
	go func() {
		_, err := engine.Run(ctx, cfg)
		done <- err
	}()
	// Wait until builds are waiting for the lock, then give any others
	// time to start too.
	deadline := time.Now().Add(90 * time.Second)
	waiting := func() int64 {
		return queryInt(t, dstDSN, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%ADD CONSTRAINT%PRIMARY KEY%' AND wait_event_type = 'Lock'`)
	}
	for waiting() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no key build came to wait for the test's lock")
		}
		select {
		case err := <-done:
			t.Fatalf("the run ended (%v) while the test held the tables' lock", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	time.Sleep(2 * time.Second)
	if w := waiting(); w > int64(cfg.Parallel) {
		t.Errorf("%d key builds at once, want at most copy.parallel (%d)", w, cfg.Parallel)
	}
	select {
	case err := <-done:
		t.Fatalf("the run ended (%v) while the test held the tables' lock", err)
	default:
	}
	if _, err := lock.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("engine.Run: %v", err)
	}
	if k := queryInt(t, dstDSN, `SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND conrelid::regclass::text ~ '^s[0-9]+$'`); k != n {
		t.Errorf("%d primary keys at the sink, want %d", k, n)
	}
}
