package engine_test

// Integration tests of incremental sync: the hand-over from the full copy
// to the stream, TOAST, TRUNCATE, heartbeats, crash points, drop and
// server restarts, all against real throwaway clusters. The oracles are
// SQL run over the tests' own connections (pgtest.ChecksumDSN, counts,
// pg_replication_slots): they share no code with the product.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/failpoint"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// streamEnv is a source and a sink database and one incremental pipeline
// between them.
type streamEnv struct {
	t              *testing.T
	src, dst       *pgtest.Cluster
	srcDB, dstDB   string
	srcDSN, dstDSN string
	log            *logBuffer
	cfg            engine.Config
}

// newStreamEnv makes fresh databases on the shared clusters. Replication
// slots are cluster-wide, so each test names its pipeline uniquely.
func newStreamEnv(t *testing.T, pipeline string) *streamEnv {
	t.Helper()
	e := newEnv(t)
	s := &streamEnv{t: t, src: e.src, dst: e.dst, srcDB: e.srcDB, dstDB: e.dstDB, srcDSN: e.srcDSN, dstDSN: e.dstDSN}
	s.init(pipeline)
	return s
}

// newPrivateStreamEnv makes databases on two private clusters, for tests
// that restart them. The sink commits synchronously: the durability chain
// starts with a sink commit that survives a crash of the sink server.
func newPrivateStreamEnv(t *testing.T, pipeline string) *streamEnv {
	t.Helper()
	src := pgtest.NewCluster(t, nil)
	dst := pgtest.NewCluster(t, map[string]string{"synchronous_commit": "on"})
	s := &streamEnv{t: t, src: src, dst: dst, srcDB: "app_source", dstDB: "app_sink"}
	var err error
	if s.srcDSN, err = src.CreateDatabase(t.Context(), s.srcDB); err != nil {
		t.Fatal(err)
	}
	if s.dstDSN, err = dst.CreateDatabase(t.Context(), s.dstDB); err != nil {
		t.Fatal(err)
	}
	s.init(pipeline)
	return s
}

func (s *streamEnv) init(pipeline string) {
	t := s.t
	s.log = &logBuffer{}
	// Registered after the databases' cleanups, so it runs before them: a
	// database with a replication slot cannot be dropped.
	t.Cleanup(s.dropSlots)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("engine log:\n%s", s.log.String())
		}
	})
	s.cfg = engine.Config{
		Name:           pipeline,
		SourceDSN:      s.srcDSN,
		SinkDSN:        s.dstDSN,
		Schema:         true,
		Full:           true,
		Incremental:    true,
		Objects:        schemaSel("app"),
		StateDir:       t.TempDir(),
		Parallel:       4,
		ChunkRows:      20000,
		Log:            slog.New(slog.NewTextHandler(s.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		UntilCaughtUp:  true,
		Heartbeat:      200 * time.Millisecond,
		StatusInterval: time.Second,
		// A bug that makes the apply fail would be retried for the
		// default 10 minutes: fail sooner.
		RetryOther: 30 * time.Second,
	}
}

// dropSlots drops the replication slots of the source database, ending
// their walsenders first.
func (s *streamEnv) dropSlots() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !s.src.Running(ctx) {
		return
	}
	conn, err := s.src.Connect(ctx, "postgres")
	if err != nil {
		s.t.Errorf("drop slots: %v", err)
		return
	}
	defer conn.Close(ctx)
	// Each pass drops the idle slots and ends the walsenders of active
	// ones; it is done when it finds none.
	for i := 0; ; i++ {
		var found int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM (
			SELECT CASE WHEN active THEN pg_terminate_backend(active_pid) ELSE pg_drop_replication_slot(slot_name) IS NULL END
			FROM pg_replication_slots WHERE database = $1) s`, s.srcDB).Scan(&found)
		if err == nil && found == 0 {
			return
		}
		if i == 50 {
			s.t.Errorf("drop slots of %s: %d left (%v)", s.srcDB, found, err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *streamEnv) srcExec(sql string) {
	s.t.Helper()
	if err := s.src.Exec(s.t.Context(), s.srcDB, sql); err != nil {
		s.t.Fatal(err)
	}
}

// run runs the pipeline with cfg (the env's config, possibly modified) and
// fails the test on error.
func (s *streamEnv) run(cfg engine.Config) *engine.Summary {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	sum, err := engine.Run(ctx, cfg)
	if err != nil {
		s.t.Fatalf("engine.Run: %v", err)
	}
	s.t.Logf("run in %s: %d rows copied in %d chunks (%d skipped), stream %+v",
		time.Since(start).Round(time.Millisecond), sum.Rows, sum.ChunksCopied, sum.ChunksSkipped, sum.Stream)
	return sum
}

// runFail runs the pipeline and returns its error, failing the test if it
// succeeds.
func (s *streamEnv) runFail(cfg engine.Config) error {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), 3*time.Minute)
	defer cancel()
	sum, err := engine.Run(ctx, cfg)
	if err == nil {
		s.t.Fatalf("engine.Run succeeded (summary %+v), want an error", *sum)
	}
	return err
}

// assertSame compares every table of schema app on both sides.
func (s *streamEnv) assertSame() {
	s.t.Helper()
	assertSameData(s.t, s.srcDSN, s.dstDSN, tablesOf(s.t, s.srcDSN, "app"))
}

// streamQuery runs a one-value query over a new connection.
func streamQuery[T any](t *testing.T, dsn, sql string, args ...any) T {
	t.Helper()
	v, err := tryQuery[T](t.Context(), dsn, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func tryQuery[T any](ctx context.Context, dsn, sql string, args ...any) (T, error) {
	var v T
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return v, err
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(ctx, sql, args...).Scan(&v)
	return v, err
}

func streamFailpoints(t *testing.T, spec string) *failpoint.Set {
	t.Helper()
	fp, err := failpoint.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// workloadFixture creates schema app with a table keyed by a primary key,
// one keyed only by a unique index over NOT NULL columns, and one without
// any key whose rows come in identical groups of rowsPerGroup.
func workloadFixture(pkRows, uqRows, groups, rowsPerGroup int) string {
	return fmt.Sprintf(`
CREATE SCHEMA app;
CREATE TABLE app.pk (id bigint PRIMARY KEY, k integer NOT NULL, v text);
INSERT INTO app.pk SELECT g, g %% 1000, md5(g::text) FROM generate_series(1, %d) g;
CREATE TABLE app.uq (a integer NOT NULL, b integer NOT NULL, v text, UNIQUE (a, b));
INSERT INTO app.uq SELECT g, g %% 3, md5(g::text) FROM generate_series(1, %d) g;
CREATE TABLE app.nokey (g integer, s text);
INSERT INTO app.nokey SELECT g %% %d, 'r' FROM generate_series(1, %d) g;
ANALYZE app.pk, app.uq, app.nokey;
`, pkRows, uqRows, groups, groups*rowsPerGroup)
}

// workload writes random transactions to the workloadFixture tables:
// inserts, updates, deletes, updates of key columns, multi-statement and
// rolled-back transactions, and changes to one of several identical rows.
type workload struct {
	dsn            string
	rng            *rand.Rand
	pkRows, uqRows int64
	groups         int
	base           int64         // new keys are base+2n (inserted) and base+2n+1 (moved)
	next           int64         // n
	pause          time.Duration // between transactions
	txns           atomic.Int64
	failures       atomic.Int64

	cancel context.CancelFunc
	done   chan error
}

func newWorkload(dsn string, seed uint64, pkRows, uqRows, groups int) *workload {
	// Keys of the fixtures stay below 10 million; seeds up to 200 keep new
	// keys within integer.
	return &workload{dsn: dsn, rng: rand.New(rand.NewPCG(seed, 42)), base: int64(seed) * 10_000_000,
		pkRows: int64(pkRows), uqRows: int64(uqRows), groups: groups}
}

func (w *workload) pkID() int64 {
	if w.next > 0 && w.rng.IntN(5) == 0 {
		return w.base + 2*(1+w.rng.Int64N(w.next)) // one the workload may have inserted
	}
	return 1 + w.rng.Int64N(w.pkRows)
}

func (w *workload) uqA() int64 {
	if w.next > 0 && w.rng.IntN(5) == 0 {
		return w.base + 2*(1+w.rng.Int64N(w.next))
	}
	return 1 + w.rng.Int64N(w.uqRows)
}

// statement returns one random statement and its arguments.
func (w *workload) statement() (string, []any) {
	w.next++
	n := w.next
	g := w.rng.IntN(w.groups)
	switch w.rng.IntN(14) {
	case 0, 1:
		return `INSERT INTO app.pk (id, k, v) VALUES ($1, $2, md5(random()::text))`, []any{w.base + 2*n, w.rng.IntN(1000)}
	case 2:
		return `UPDATE app.pk SET k = k + 1, v = md5(random()::text) WHERE id = $1`, []any{w.pkID()}
	case 3:
		return `UPDATE app.pk SET k = k + 1 WHERE id BETWEEN $1 AND $1 + 20`, []any{w.pkID()}
	case 4:
		return `DELETE FROM app.pk WHERE id = $1`, []any{w.pkID()}
	case 5:
		return `UPDATE app.pk SET id = $2, v = 'moved' WHERE id = $1`, []any{w.pkID(), w.base + 2*n + 1}
	case 6:
		return `INSERT INTO app.uq (a, b, v) VALUES ($1, $2, 'new')`, []any{w.base + 2*n, w.rng.IntN(3)}
	case 7:
		return `UPDATE app.uq SET v = md5(random()::text) WHERE a = $1`, []any{w.uqA()}
	case 8:
		return `UPDATE app.uq SET a = $2 WHERE a = $1`, []any{w.uqA(), w.base + 2*n + 1}
	case 9:
		return `DELETE FROM app.uq WHERE a = $1`, []any{w.uqA()}
	case 10:
		return `INSERT INTO app.nokey (g, s) VALUES ($1, 'w'), ($1, 'w')`, []any{g}
	case 11: // one of several identical rows
		return `UPDATE app.nokey SET s = left(s || 'u', 12) WHERE ctid = (SELECT ctid FROM app.nokey WHERE g = $1 LIMIT 1)`, []any{g}
	case 12: // one of several identical rows
		return `DELETE FROM app.nokey WHERE ctid = (SELECT ctid FROM app.nokey WHERE g = $1 LIMIT 1)`, []any{g}
	default: // every row of a group, identical ones included
		return `UPDATE app.nokey SET s = left(s || 'a', 12) WHERE g = $1`, []any{g}
	}
}

// runTxn runs one random transaction: half are single statements, the
// rest 2-5 statements, a few of them rolled back.
func (w *workload) runTxn(ctx context.Context, conn *pgx.Conn) error {
	kind := w.rng.IntN(20)
	if kind < 10 {
		sql, args := w.statement()
		_, err := conn.Exec(ctx, sql, args...)
		return err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for i := 2 + w.rng.IntN(4); i > 0; i-- {
		sql, args := w.statement()
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return err
		}
	}
	if kind == 19 {
		return tx.Rollback(ctx)
	}
	return tx.Commit(ctx)
}

// runN runs n transactions in the calling goroutine.
func (w *workload) runN(t *testing.T, n int) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), w.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for i := 0; i < n; i++ {
		if err := w.runTxn(t.Context(), conn); err != nil {
			t.Fatalf("workload: %v", err)
		}
		w.txns.Add(1)
	}
}

// start runs transactions in a goroutine until stop. When tolerant, errors
// (a server restart) are counted and the workload reconnects; else the
// first error ends it and stop fails the test.
func (w *workload) start(t *testing.T, tolerant bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan error, 1)
	t.Cleanup(func() { w.cancel(); <-w.done })
	go func() {
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		}()
		for ctx.Err() == nil {
			if conn == nil {
				c, err := pgx.Connect(ctx, w.dsn)
				if err != nil {
					if !tolerant && ctx.Err() == nil {
						w.done <- err
						return
					}
					w.failures.Add(1)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				conn = c
			}
			if err := w.runTxn(ctx, conn); err != nil {
				if ctx.Err() != nil {
					break
				}
				if !tolerant {
					w.done <- err
					return
				}
				w.failures.Add(1)
				conn.Close(context.Background())
				conn = nil
				time.Sleep(100 * time.Millisecond)
				continue
			}
			w.txns.Add(1)
			if w.pause > 0 {
				time.Sleep(w.pause)
			}
		}
		w.done <- nil
	}()
}

// waitTxns waits until the workload has committed n transactions.
func (w *workload) waitTxns(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for w.txns.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("workload: %d transactions after a minute, want %d", w.txns.Load(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the workload and returns how many transactions it ran.
func (w *workload) stop(t *testing.T) int64 {
	t.Helper()
	if err := w.halt(); err != nil {
		t.Fatalf("workload: %v", err)
	}
	return w.txns.Load()
}

// halt ends the workload and returns the error that ended it, if any.
func (w *workload) halt() error {
	w.cancel()
	err := <-w.done
	w.done <- nil // for the cleanup
	return err
}

// TestStreamHandOverUnderWrites copies tables while a workload writes to
// them, then streams: every change committed after the slot's snapshot
// arrives once, none before it, for a table with a primary key, one with
// only a unique index and one without a key whose rows have duplicates.
func TestStreamHandOverUnderWrites(t *testing.T) {
	s := newStreamEnv(t, "handover")
	const pkRows, uqRows, groups = 200000, 10000, 1000
	s.srcExec(workloadFixture(pkRows, uqRows, groups, 4))

	w := newWorkload(s.srcDSN, 1, pkRows, uqRows, groups)
	w.start(t, false)
	w.waitTxns(t, 50)
	before := w.txns.Load()
	sum := s.run(s.cfg)
	during := w.txns.Load() - before
	if sum.ChunksCopied < pkRows/int(s.cfg.ChunkRows) {
		t.Errorf("summary: %d chunks copied, want at least %d", sum.ChunksCopied, pkRows/s.cfg.ChunkRows)
	}
	w.waitTxns(t, w.txns.Load()+50) // and some more after the hand-over
	total := w.stop(t)
	t.Logf("workload: %d transactions, %d of them during the first run", total, during)
	if during == 0 {
		t.Fatal("the workload committed nothing while the first run copied and streamed: the test does not test the hand-over")
	}
	s.run(s.cfg)
	s.assertSame()
	assertNoDuplicates(t, s.dstDSN, "app.pk", "id")
	assertNoDuplicates(t, s.dstDSN, "app.uq", "(a, b)")

	// One of two identical rows updated, one of two deleted: exactly one
	// row changes at the sink.
	s.srcExec(`INSERT INTO app.nokey VALUES (-1, 'twin'), (-1, 'twin'), (-2, 'twin'), (-2, 'twin')`)
	s.run(s.cfg)
	s.srcExec(`UPDATE app.nokey SET s = 'changed' WHERE ctid = (SELECT ctid FROM app.nokey WHERE g = -1 LIMIT 1);
		DELETE FROM app.nokey WHERE ctid = (SELECT ctid FROM app.nokey WHERE g = -2 LIMIT 1)`)
	s.run(s.cfg)
	for _, c := range []struct {
		where string
		want  int64
	}{{"g = -1 AND s = 'twin'", 1}, {"g = -1 AND s = 'changed'", 1}, {"g = -2 AND s = 'twin'", 1}} {
		if n := queryInt(t, s.dstDSN, "SELECT count(*) FROM app.nokey WHERE "+c.where); n != c.want {
			t.Errorf("sink: %d rows of app.nokey where %s, want %d", n, c.where, c.want)
		}
	}
	s.assertSame()
}

// TestStreamTOASTUnchanged updates only small columns of rows whose big
// values are stored out of line: they arrive as "unchanged" and the sink
// must keep what it has.
func TestStreamTOASTUnchanged(t *testing.T) {
	s := newStreamEnv(t, "toast")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.toast (id integer PRIMARY KEY, n integer NOT NULL, t text, b bytea, j jsonb);
CREATE TABLE app.toast_nokey (n integer NOT NULL, t text, b bytea);
INSERT INTO app.toast VALUES (0, 0, 'small', '\x00', '{}');`)
	s.run(s.cfg)

	// Random hex and random bytes do not compress: each value stays above
	// 8 kB and is stored out of line.
	const big = `
	(SELECT string_agg(md5(random()::text || i || g), '') FROM generate_series(1, 400) g),
	(SELECT decode(string_agg(md5(random()::text || i || g), ''), 'hex') FROM generate_series(1, 800) g)`
	s.srcExec(`INSERT INTO app.toast SELECT i, 0, ` + big + `,
	(SELECT jsonb_build_object('k', string_agg(md5(random()::text || i || g), '')) FROM generate_series(1, 400) g)
FROM generate_series(1, 4) i;
INSERT INTO app.toast_nokey SELECT i % 2, ` + big + ` FROM generate_series(1, 4) i;`)
	if n := queryInt(t, s.srcDSN, `SELECT count(*) FROM app.toast WHERE pg_column_size(t) > 8192 AND pg_column_size(b) > 8192 AND pg_column_size(j) > 8192`); n != 4 {
		t.Fatalf("fixture: %d rows with three big values stored above 8 kB, want 4", n)
	}
	s.run(s.cfg)
	s.assertSame()

	lengths := func(dsn string) map[int32]string {
		conn := oracleConn(t, dsn)
		defer conn.Close(context.Background())
		rows, err := conn.Query(t.Context(), `SELECT id, concat_ws(' ', length(t), length(b), length(j::text)) FROM app.toast WHERE id > 0`)
		if err != nil {
			t.Fatal(err)
		}
		m := map[int32]string{}
		for rows.Next() {
			var id int32
			var l string
			if err := rows.Scan(&id, &l); err != nil {
				t.Fatal(err)
			}
			m[id] = l
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return m
	}
	check := func(step string) {
		t.Helper()
		s.assertSame()
		src, dst := lengths(s.srcDSN), lengths(s.dstDSN)
		if len(src) != 4 {
			t.Fatalf("%s: source has %d big rows, want 4", step, len(src))
		}
		for id, l := range src {
			if dst[id] != l {
				t.Errorf("%s: sink row %d has lengths (t b j) %q, want %q", step, id, dst[id], l)
			}
		}
		if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.toast WHERE id > 0 AND (t IS NULL OR b IS NULL OR j IS NULL)`); n != 0 {
			t.Errorf("%s: %d sink rows with a NULL big value", step, n)
		}
		if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.toast_nokey WHERE t IS NULL OR b IS NULL OR length(t) < 12800`); n != 0 {
			t.Errorf("%s: %d keyless sink rows with a lost big value", step, n)
		}
	}

	s.srcExec(`UPDATE app.toast SET n = n + 1; UPDATE app.toast_nokey SET n = n + 10`)
	s.run(s.cfg)
	check("update of the int column")

	// The key changes, the big values do not.
	s.srcExec(`UPDATE app.toast SET id = id + 100, n = n + 1 WHERE id IN (1, 2)`)
	s.run(s.cfg)
	check("update of the key")

	// One big value changes, the others do not.
	s.srcExec(`UPDATE app.toast SET t = t || 'x', n = n + 1 WHERE id = 3;
		UPDATE app.toast_nokey SET b = b || '\xff'::bytea WHERE ctid = (SELECT ctid FROM app.toast_nokey WHERE n = 10 LIMIT 1)`)
	s.run(s.cfg)
	check("update of one big column")
}

// TestStreamTruncate truncates streamed tables, alone, two in one
// statement, with RESTART IDENTITY and between other changes of the same
// transaction.
func TestStreamTruncate(t *testing.T) {
	s := newStreamEnv(t, "truncate")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.a (id serial PRIMARY KEY, v text);
CREATE TABLE app.b (id integer PRIMARY KEY, v text);
CREATE TABLE app.c (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text);
CREATE TABLE app.k (v text);
INSERT INTO app.a (v) SELECT 'a' || g FROM generate_series(1, 100) g;
INSERT INTO app.b SELECT g, 'b' || g FROM generate_series(1, 100) g;
INSERT INTO app.c (v) SELECT 'c' || g FROM generate_series(1, 100) g;
INSERT INTO app.k SELECT 'k' || (g % 10) FROM generate_series(1, 100) g;`)
	s.run(s.cfg)
	s.assertSame()

	s.srcExec(`INSERT INTO app.a (v) VALUES ('before');
		TRUNCATE app.a;
		INSERT INTO app.a (v) SELECT 'after' || g FROM generate_series(1, 10) g`)
	s.srcExec(`TRUNCATE app.b, app.k`)
	s.srcExec(`INSERT INTO app.b VALUES (1, 'x'), (2, 'y'); INSERT INTO app.k VALUES ('dup'), ('dup')`)
	s.srcExec(`BEGIN; INSERT INTO app.b VALUES (500, 'pre'); TRUNCATE app.b; INSERT INTO app.b VALUES (501, 'post'); COMMIT`)
	s.srcExec(`TRUNCATE app.c RESTART IDENTITY; INSERT INTO app.c (v) VALUES ('one'), ('two')`)
	s.run(s.cfg)
	s.assertSame()
	for table, want := range map[string]int64{"app.a": 10, "app.b": 1, "app.c": 2, "app.k": 2} {
		if n := queryInt(t, s.dstDSN, "SELECT count(*) FROM "+table); n != want {
			t.Errorf("sink: %s has %d rows, want %d", table, n, want)
		}
	}
	// RESTART IDENTITY reached the sink: its sequence starts over.
	if called := streamQuery[bool](t, s.dstDSN, `SELECT is_called FROM app.c_id_seq`); called {
		t.Errorf("sink: app.c_id_seq was not restarted by TRUNCATE ... RESTART IDENTITY (last_value %d)",
			queryInt(t, s.dstDSN, `SELECT last_value FROM app.c_id_seq`))
	}

	s.srcExec(`INSERT INTO app.k VALUES ('again'); TRUNCATE app.a, app.b, app.c, app.k; INSERT INTO app.c (v) VALUES ('last')`)
	s.run(s.cfg)
	s.assertSame()
}

// TestStreamIdleHeartbeat leaves the source idle while the pipeline
// streams: heartbeats still flow, are applied and acknowledged, so the
// slot advances.
func TestStreamIdleHeartbeat(t *testing.T) {
	s := newStreamEnv(t, "idle")
	s.srcExec(`CREATE SCHEMA app; CREATE TABLE app.t (id integer PRIMARY KEY, v text);
		INSERT INTO app.t SELECT g, 'v' FROM generate_series(1, 100) g;`)
	s.run(s.cfg)
	slot := postgres.SlotName(s.cfg.Name)
	confirmed0 := streamQuery[string](t, s.srcDSN, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot)
	updated0 := streamQuery[time.Time](t, s.dstDSN, `SELECT updated_at FROM sluice.apply_progress WHERE pipeline = $1`, s.cfg.Name)

	cfg := s.cfg
	cfg.UntilCaughtUp = false
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() { _, err := engine.Run(ctx, cfg); errc <- err }()

	idleFor := 2 * time.Second
	start := time.Now()
	var advanced, moved bool
	for time.Since(start) < 15*time.Second && !(advanced && moved && time.Since(start) >= idleFor) {
		time.Sleep(200 * time.Millisecond)
		var err error
		advanced, err = tryQuery[bool](t.Context(), s.srcDSN, `SELECT confirmed_flush_lsn > $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2`, confirmed0, slot)
		if err != nil {
			t.Fatal(err)
		}
		moved, err = tryQuery[bool](t.Context(), s.dstDSN, `SELECT updated_at > $1 FROM sluice.apply_progress WHERE pipeline = $2`, updated0, s.cfg.Name)
		if err != nil {
			t.Fatal(err)
		}
	}
	confirmed1 := streamQuery[string](t, s.srcDSN, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot)
	t.Logf("idle for %s: confirmed_flush_lsn %s -> %s", time.Since(start).Round(time.Millisecond), confirmed0, confirmed1)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled run returned %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not return within 30s of its context's cancellation")
	}
	if !advanced {
		t.Errorf("slot %s: confirmed_flush_lsn stayed at %s while the source was idle: heartbeats were not acknowledged", slot, confirmed0)
	}
	if !moved {
		t.Errorf("sink: sluice.apply_progress.updated_at stayed at %s while the source was idle: heartbeats were not applied", updated0)
	}
	s.assertSame()
}

// TestStreamResumeAfterSinkCommitBeforeCheckpoint stops streaming right
// after a sink commit (before the checkpoint and the acknowledgement) and
// inside an open sink transaction; the next run applies every change once.
func TestStreamResumeAfterSinkCommitBeforeCheckpoint(t *testing.T) {
	for _, tc := range []struct{ name, spec string }{
		{"after_commit", "stream.after_commit=error@3"},
		{"mid_transaction", "stream.change=error@50"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStreamEnv(t, "fp_"+tc.name)
			s.srcExec(workloadFixture(2000, 1000, 50, 3))
			s.cfg.MaxGroupTxns = 5 // many sink transactions
			s.run(s.cfg)

			// Each burst transaction inserts into both tables and changes
			// one of several identical rows.
			var b strings.Builder
			for i := 1; i <= 300; i++ {
				fmt.Fprintf(&b, `BEGIN; INSERT INTO app.pk VALUES (%d, %d, 'burst');
INSERT INTO app.nokey VALUES (%d, 'burst');
UPDATE app.nokey SET s = s || '.' WHERE ctid = (SELECT ctid FROM app.nokey WHERE g = %d LIMIT 1); COMMIT;
`, 100000+i, i, i%10, i%7)
			}
			s.srcExec(b.String())
			newWorkload(s.srcDSN, 5, 2000, 1000, 50).runN(t, 200)

			cfg := s.cfg
			cfg.Failpoints = streamFailpoints(t, tc.spec)
			err := s.runFail(cfg)
			if !strings.Contains(err.Error(), "failpoint") {
				t.Fatalf("run stopped with %v, want the failpoint's error", err)
			}
			applied := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.pk WHERE v = 'burst'`)
			t.Logf("stopped by %s with %d of 300 burst transactions at the sink", tc.spec, applied)
			if applied == 0 || applied == 300 {
				t.Errorf("the failpoint stopped the run after %d of 300 burst transactions, want it to stop in the middle", applied)
			}

			s.run(s.cfg)
			s.assertSame()
			assertNoDuplicates(t, s.dstDSN, "app.pk", "id")
			if src, dst := queryInt(t, s.srcDSN, "SELECT count(*) FROM app.nokey"), queryInt(t, s.dstDSN, "SELECT count(*) FROM app.nokey"); src != dst {
				t.Errorf("app.nokey: %d rows at the source, %d at the sink", src, dst)
			}
		})
	}
}

// TestStreamInterruptedCopyThenStream interrupts the full copy while a
// workload writes; the next run copies the rest at a new snapshot and
// replays the changes between the two snapshots without duplicating any.
// In one case the interrupted copy leaves the keyed table part copied (its
// chunks then hold rows of two snapshots), in the other the keyless table
// (which is then copied again from scratch).
func TestStreamInterruptedCopyThenStream(t *testing.T) {
	for _, tc := range []struct {
		name           string
		pkRows, groups int    // app.nokey has groups of 4 identical rows
		partial        string // the table the failed run leaves part copied
		spec           string
	}{
		// One worker copies tiny tables (one chunk of a few MB) first,
		// then the chunks biggest first, ties in table name order
		// (ChunkRows 5000). Here app.uq (5000) comes first, then app.pk's
		// 12 chunks (at least 5000 rows each), then app.nokey's 4 chunks
		// (4750 each).
		{"keyed_partial", 60000, 4750, "app.pk", "copy.chunk.after_commit=error@5"},
		// Here app.pk (one chunk of 6000) and app.uq (5000) come first,
		// then app.nokey's 4 chunks (5000 each).
		{"keyless_partial", 6000, 5000, "app.nokey", "copy.chunk.after_commit=error@3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStreamEnv(t, "copyresume_"+tc.name)
			const uqRows = 5000
			pkRows, groups := tc.pkRows, tc.groups
			fixture := workloadFixture(pkRows, uqRows, groups, 4)
			s.srcExec(fixture)
			s.cfg.ChunkRows = 5000
			s.cfg.Parallel = 1

			w := newWorkload(s.srcDSN, 2, pkRows, uqRows, groups)
			w.start(t, false)
			w.waitTxns(t, 50)
			cfg := s.cfg
			cfg.Failpoints = streamFailpoints(t, tc.spec)
			err := s.runFail(cfg)
			if !strings.Contains(err.Error(), "failpoint") {
				t.Fatalf("run stopped with %v, want the failpoint's error", err)
			}
			w.waitTxns(t, w.txns.Load()+100) // changes after the interruption
			t.Logf("workload: %d transactions", w.stop(t))
			done := queryInt(t, s.dstDSN, `SELECT count(*) FROM sluice.copy_progress WHERE pipeline = $1 AND table_name = $2`,
				s.cfg.Name, `"app".`+qi(strings.TrimPrefix(tc.partial, "app.")))
			if done == 0 {
				t.Fatalf("fixture: the failed run copied no chunk of %s", tc.partial)
			}

			sum := s.run(s.cfg)
			if !strings.Contains(s.log.String(), "resuming the full copy at a new snapshot") {
				t.Errorf("log: the copy did not resume at a new snapshot")
			}
			if tc.partial == "app.nokey" && sum.TablesReset != 1 {
				t.Errorf("summary: %d tables reset, want 1 (app.nokey, part copied at the old snapshot)", sum.TablesReset)
			}
			if tc.partial == "app.pk" && sum.ChunksSkipped == 0 {
				t.Errorf("summary: no chunk skipped: the copy of app.pk did not resume")
			}
			s.assertSame()
			assertNoDuplicates(t, s.dstDSN, "app.pk", "id")
			assertNoDuplicates(t, s.dstDSN, "app.uq", "(a, b)")
			if src, dst := queryInt(t, s.srcDSN, "SELECT count(*) FROM app.nokey"), queryInt(t, s.dstDSN, "SELECT count(*) FROM app.nokey"); src != dst {
				t.Errorf("app.nokey: %d rows at the source, %d at the sink", src, dst)
			}
			for i := 0; ; i++ {
				n := queryInt(t, s.srcDSN, `SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1`, postgres.SlotName(s.cfg.Name)+"%")
				if n == 1 {
					break
				}
				if i == 50 { // a temporary slot goes when its backend has exited
					t.Errorf("source: %d replication slots for the pipeline, want 1 (the temporary one gone)", n)
					break
				}
				time.Sleep(100 * time.Millisecond)
			}

			// Streaming goes on normally after the resumed copy.
			newWorkload(s.srcDSN, 3, pkRows, uqRows, groups).runN(t, 100)
			s.run(s.cfg)
			s.assertSame()
		})
	}
}

// TestDrop removes what a streamed pipeline made, and is safe to repeat.
func TestDrop(t *testing.T) {
	s := newStreamEnv(t, "dropme")
	s.srcExec(`CREATE SCHEMA app; CREATE TABLE app.t (id integer PRIMARY KEY, v text);
		INSERT INTO app.t SELECT g, 'v' FROM generate_series(1, 100) g;`)
	s.run(s.cfg)
	s.srcExec(`INSERT INTO app.t VALUES (101, 'streamed')`)
	s.run(s.cfg)
	s.assertSame()
	slot := postgres.SlotName(s.cfg.Name)
	if n := queryInt(t, s.srcDSN, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, slot); n != 1 {
		t.Fatalf("source: %d slots named %s after the run, want 1", n, slot)
	}

	rep, err := engine.Drop(t.Context(), s.cfg, false)
	if err != nil {
		t.Fatalf("engine.Drop: %v", err)
	}
	t.Logf("removed: %q", rep.Removed)
	if n := queryInt(t, s.srcDSN, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, slot); n != 0 {
		t.Errorf("source: slot %s still exists", slot)
	}
	if n := queryInt(t, s.srcDSN, `SELECT count(*) FROM pg_publication WHERE pubname = $1`, slot); n != 0 {
		t.Errorf("source: publication %s still exists", slot)
	}
	if n := queryInt(t, s.srcDSN, `SELECT count(*) FROM pg_namespace WHERE nspname = 'sluice'`); n != 0 {
		t.Errorf("source: schema sluice still exists")
	}
	if _, err := os.Stat(s.cfg.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir %s: %v, want it removed", s.cfg.StateDir, err)
	}
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM sluice.apply_progress WHERE pipeline = $1`, s.cfg.Name) +
		queryInt(t, s.dstDSN, `SELECT count(*) FROM sluice.copy_progress WHERE pipeline = $1`, s.cfg.Name); n != 0 {
		t.Errorf("sink: %d progress rows left", n)
	}
	s.assertSame() // the sink's tables stay

	rep, err = engine.Drop(t.Context(), s.cfg, false)
	if err != nil {
		t.Fatalf("second engine.Drop: %v", err)
	}
	if len(rep.Removed) != 0 {
		t.Errorf("second engine.Drop removed %q, want nothing", rep.Removed)
	}
}

// TestStreamSourceRestart crashes the source, then the sink, while the
// pipeline streams a workload: it reconnects and loses and duplicates
// nothing.
func TestStreamSourceRestart(t *testing.T) {
	s := newPrivateStreamEnv(t, "restart")
	const pkRows, uqRows, groups = 5000, 2000, 500
	s.srcExec(workloadFixture(pkRows, uqRows, groups, 3))
	s.run(s.cfg)

	w := newWorkload(s.srcDSN, 4, pkRows, uqRows, groups)
	w.pause = time.Millisecond
	w.start(t, true)
	cfg := s.cfg
	cfg.UntilCaughtUp = false
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() { _, err := engine.Run(ctx, cfg); errc <- err }()

	// waitApplied waits until the sink has applied everything the source
	// had written when it was called.
	waitApplied := func(step string) {
		t.Helper()
		lsn := streamQuery[string](t, s.srcDSN, `SELECT pg_current_wal_lsn()::text`)
		deadline := time.Now().Add(90 * time.Second)
		for {
			ok, err := tryQuery[bool](t.Context(), s.dstDSN, `SELECT lsn >= $1::pg_lsn FROM sluice.apply_progress WHERE pipeline = $2`, lsn, s.cfg.Name)
			if err == nil && ok {
				return
			}
			select {
			case err := <-errc:
				t.Fatalf("%s: the run ended: %v", step, err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the sink did not apply up to %s within 90s (last error %v)", step, lsn, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	w.waitTxns(t, 200)
	waitApplied("before the restarts")
	if err := s.src.Restart(t.Context(), "immediate"); err != nil {
		t.Fatal(err)
	}
	w.waitTxns(t, w.txns.Load()+200)
	waitApplied("after the source's restart")
	if err := s.dst.Restart(t.Context(), "immediate"); err != nil {
		t.Fatal(err)
	}
	w.waitTxns(t, w.txns.Load()+200)
	waitApplied("after the sink's restart")
	w.halt() // tolerant: it ends without error
	t.Logf("workload: %d transactions, %d failures (server restarts)", w.txns.Load(), w.failures.Load())

	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled run returned %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not return within 30s of its context's cancellation")
	}
	if n := strings.Count(s.log.String(), "reconnecting"); n < 2 {
		t.Errorf("log: %d reconnections, want one after each restart", n)
	}

	s.run(s.cfg)
	s.assertSame()
	assertNoDuplicates(t, s.dstDSN, "app.pk", "id")
	assertNoDuplicates(t, s.dstDSN, "app.uq", "(a, b)")
}

// TestStreamGroupKeepsTransactionsWhole streams a small transaction then a
// big one (many slices of stream events) and stops right after the sink
// commit that holds the small one: a sink commit must hold whole source
// transactions only, and the next run must apply the big one once.
func TestStreamGroupKeepsTransactionsWhole(t *testing.T) {
	s := newStreamEnv(t, "wholetx")
	s.srcExec(workloadFixture(100, 100, 10, 2))
	s.run(s.cfg)

	// In commit order: Z (app.uq), A (app.pk), then the big one, B, whose
	// rows were written before A: decoded, B follows A at once.
	const bigRows = 30000
	big, err := s.src.Connect(t.Context(), s.srcDB)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close(context.Background())
	tx, err := big.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`INSERT INTO app.nokey SELECT 1, 'big' FROM generate_series(1, 5000)`,
		fmt.Sprintf(`INSERT INTO app.pk SELECT g, 0, 'big' FROM generate_series(2000001, %d) g`, 2000000+bigRows),
	} {
		if _, err := tx.Exec(t.Context(), sql); err != nil {
			t.Fatal(err)
		}
	}
	s.srcExec(`INSERT INTO app.uq VALUES (1000001, 0, 'z')`)
	s.srcExec(`INSERT INTO app.pk VALUES (1000001, 0, 'small')`)
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}

	// Locks at the sink hold the applier: on Z's change (app.uq) for 1.5s,
	// so the stream queues A and B behind it, then on B's first change
	// (app.nokey) for 1s more, longer than MaxGroupDelay.
	lock := func(table string) pgx.Tx {
		conn, err := s.dst.Connect(t.Context(), s.dstDB)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		tx, err := conn.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(t.Context(), "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	uq, nokey := lock("app.uq"), lock("app.nokey")
	cfg := s.cfg
	cfg.Failpoints = streamFailpoints(t, "stream.after_commit=error@2") // the group after Z's
	errc := make(chan error, 1)
	go func() { _, err := engine.Run(t.Context(), cfg); errc <- err }()
	time.Sleep(1500 * time.Millisecond)
	if err := uq.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := nokey.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	err = <-errc
	if err == nil || !strings.Contains(err.Error(), "failpoint") {
		t.Fatalf("run stopped with %v, want the failpoint's error", err)
	}
	small := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.pk WHERE v = 'small'`)
	bigPK := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.pk WHERE v = 'big'`)
	bigNokey := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.nokey WHERE s = 'big'`)
	t.Logf("after the second sink commit: %d small rows, %d+%d of the big transaction's", small, bigNokey, bigPK)
	if small != 1 {
		t.Errorf("after the second sink commit the sink holds %d rows of the small transaction, want 1", small)
	}
	if n := bigPK + bigNokey; n != 0 && n != bigRows+5000 {
		t.Errorf("after the second sink commit the sink holds %d of the %d rows of one source transaction: it was applied in part (contract 1)", n, bigRows+5000)
	}
	s.run(s.cfg)
	s.assertSame()
	assertNoDuplicates(t, s.dstDSN, "app.pk", "id")
}

// TestStreamHandOverCommitAtConsistentPoint copies a keyless table while
// transactions that stay open a moment between their change and their
// commit run: the slot's consistent point then often falls right before a
// commit record. That transaction is not in the exported snapshot, is
// streamed, and must be applied.
func TestStreamHandOverCommitAtConsistentPoint(t *testing.T) {
	// It happens in about half of the slot creations: try several times.
	for round := 1; round <= 8; round++ {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			s := newStreamEnv(t, fmt.Sprint("cpcommit", round))
			s.srcExec(`CREATE SCHEMA app; CREATE TABLE app.nokey (g integer, s text);
				INSERT INTO app.nokey SELECT g % 10, 'r' FROM generate_series(1, 1000) g`)
			ctx, stop := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			var txns atomic.Int64
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					conn, err := pgx.Connect(ctx, s.srcDSN)
					if err != nil {
						return
					}
					defer conn.Close(context.Background())
					for ctx.Err() == nil {
						tx, err := conn.Begin(ctx)
						if err != nil {
							return
						}
						if _, err := tx.Exec(ctx, `INSERT INTO app.nokey VALUES ($1, 'w')`, i); err != nil {
							tx.Rollback(context.Background())
							return
						}
						time.Sleep(time.Millisecond)
						if tx.Commit(ctx) == nil {
							txns.Add(1)
						}
					}
				}()
			}
			for txns.Load() < 50 {
				time.Sleep(10 * time.Millisecond)
			}
			s.run(s.cfg)
			stop()
			wg.Wait()
			s.run(s.cfg)
			s.assertSame()
		})
	}
}
