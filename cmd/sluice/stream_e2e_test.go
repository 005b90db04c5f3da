package main

// End-to-end tests of incremental sync through the binary: random SIGKILLs
// of a streaming run under a live workload, the memory of a run applying
// one very large source transaction, a large transaction queued behind a
// small one (never visible in part), and `sluice drop` of a live run. The
// oracles are pgtest.ChecksumDSN on both sides (duplicate-sensitive),
// counts, pg_replication_slots and /proc: they share no code with sluice.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// streamPipeline is an incremental pipeline file over the source's schema
// public; copy is its copy: mapping.
func streamPipeline(name, copy string) string {
	return fmt.Sprintf(`name: %s
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - schema: public
copy: %s
state_dir: state
`, name, copy)
}

// streamCtx is a context bounded by the test's deadline or d.
func streamCtx(t testing.TB, d time.Duration) context.Context {
	deadline := time.Now().Add(d)
	if dt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := dt.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}

// dropSlotsAtCleanup makes sure, at the end of the test, that no
// replication slot of the source database is left (a database with a slot
// cannot be dropped): live walsenders are terminated, then the slots
// dropped. Register it after pgtest.NewDB, so that it runs before the
// database's removal.
func dropSlotsAtCleanup(t testing.TB, srcDSN string) {
	db := dbOf(t, srcDSN)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, srcDSN)
		if err != nil {
			t.Errorf("drop slots: %v", err)
			return
		}
		defer conn.Close(context.Background())
		for i := 0; ; i++ {
			var left int
			err := conn.QueryRow(ctx, `SELECT count(*) FROM (
				SELECT CASE WHEN active THEN pg_terminate_backend(active_pid) ELSE pg_drop_replication_slot(slot_name) IS NULL END
				FROM pg_replication_slots WHERE database = $1) s`, db).Scan(&left)
			if err == nil && left == 0 {
				return
			}
			if i == 100 {
				t.Errorf("drop slots of %s: %d left (%v)", db, left, err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// slotActive reports whether the replication slot exists and a walsender
// streams from it.
func slotActive(t testing.TB, ctx context.Context, srcDSN, slot string) bool {
	t.Helper()
	return queryInt(t, ctx, srcDSN, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND active`, slot) > 0
}

// waitStreaming waits until p streams from its slot (the slot is active),
// at most timeout.
func waitStreaming(t testing.TB, ctx context.Context, p *proc, srcDSN, slot string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !slotActive(t, ctx, srcDSN, slot) {
		if p.exited() {
			t.Fatalf("sluice ended before streaming:\n%s", p.res)
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot %s not active within %s", slot, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runCaughtUp runs the pipeline with --until-caught-up --json and returns
// its summary, failing the test unless it exits 0 with one.
func runCaughtUp(t testing.TB, dir string, env map[string]string, file string, timeout time.Duration) runSummary {
	t.Helper()
	r := startSluice(t, dir, env, "run", "--until-caught-up", "--json", file).wait(timeout)
	var sum runSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); r.code != 0 || err != nil || sum.Stream == nil {
		t.Fatalf("sluice run --until-caught-up --json: want exit 0 and a summary with a stream object (%v):\n%s", err, r)
	}
	return sum
}

// phaseOf says, from a killed run's log, how far it had come: "stream" once
// it streamed, "copy" once the full copy started, else "startup".
func phaseOf(r result) string {
	switch {
	case strings.Contains(r.stderr, "msg=streaming"):
		return "stream"
	case strings.Contains(r.stderr, `msg="full copy starting"`):
		return "copy"
	}
	return "startup"
}

// busySinkSessions lists the statements sluice's sessions at the sink are
// executing.
func busySinkSessions(t testing.TB, ctx context.Context, dstDSN string) []string {
	t.Helper()
	conn, err := pgx.Connect(ctx, dstDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT left(query, 80) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name LIKE 'sluice%' AND state <> 'idle' AND pid <> pg_backend_pid()`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkRunLog fails the test if a killed run's log shows that the sink
// diverged from the source (a change applied twice, or lost) or that an
// error other than a lost connection was retried.
func checkRunLog(t testing.TB, i int, r result) {
	t.Helper()
	for _, line := range strings.Split(r.stderr, "\n") {
		if strings.Contains(line, "diverged") || strings.Contains(line, "class=other") {
			t.Fatalf("run %d: %s\n%s", i, line, r)
		}
	}
}

// chaosFixture: a table with a primary key, one keyed only by a unique
// index over NOT NULL columns, and one without any key whose rows come in
// groups of 4 identical rows.
const chaosFixture = `
CREATE TABLE public.acct (id int PRIMARY KEY, balance int NOT NULL, note text);
INSERT INTO public.acct SELECT g, g % 1000, 'note ' || g FROM generate_series(1, 20000) g;
CREATE TABLE public.uniq (a int NOT NULL, b text NOT NULL, v int);
CREATE UNIQUE INDEX uniq_a_b ON public.uniq (a, b);
INSERT INTO public.uniq SELECT g / 2, 'b' || (g % 2), g FROM generate_series(2, 20001) g;
CREATE TABLE public.nokey (x int, y text);
INSERT INTO public.nokey SELECT g % 5000, 'y' || (g % 5000) FROM generate_series(1, 20000) g;
`

var chaosTables = []string{"public.acct", "public.uniq", "public.nokey"}

// chaosWorkload writes small random transactions to the chaosFixture
// tables from its own connection until its context ends.
type chaosWorkload struct {
	dsn   string
	rng   *rand.Rand
	fresh int64 // counter for new keys, above the fixture's
	txns  atomic.Int64
	done  chan error
}

func (w *chaosWorkload) key() int64 { w.fresh++; return w.fresh }

// statement returns one random statement and its arguments.
func (w *chaosWorkload) statement() (string, []any) {
	acctID := func() int64 {
		if w.fresh > 1_000_000 && w.rng.IntN(4) == 0 {
			return 1_000_001 + w.rng.Int64N(w.fresh-1_000_000) // one the workload may have made
		}
		return 1 + w.rng.Int64N(20000)
	}
	ab := func() (int64, string) { return 1 + w.rng.Int64N(10000), "b" + strconv.Itoa(w.rng.IntN(2)) }
	x := w.rng.IntN(5000)
	if w.rng.IntN(300) == 0 {
		// A bulk update, slow to apply at a sink without the source's
		// indexes: about 200 rows keyed by the unique index, or about 80
		// rows of the keyless table.
		if w.rng.IntN(2) == 0 {
			a, _ := ab()
			return `UPDATE public.uniq SET v = v + 1 WHERE a BETWEEN $1 AND $1 + 99`, []any{a}
		}
		return `UPDATE public.nokey SET y = y || '+' WHERE x BETWEEN $1 AND $1 + 19`, []any{x}
	}
	switch w.rng.IntN(16) {
	case 0, 1, 2:
		return `UPDATE public.acct SET balance = balance + $2, note = md5(random()::text) WHERE id = $1`, []any{acctID(), w.rng.IntN(100) - 50}
	case 3:
		return `UPDATE public.acct SET id = $2 WHERE id = $1`, []any{acctID(), w.key()}
	case 4:
		return `INSERT INTO public.acct VALUES ($1, $2, 'inserted')`, []any{w.key(), w.rng.IntN(1000)}
	case 5:
		return `DELETE FROM public.acct WHERE id = $1`, []any{acctID()}
	case 6:
		a, b := ab()
		return `UPDATE public.uniq SET v = v + 1 WHERE a = $1 AND b = $2`, []any{a, b}
	case 7:
		return `INSERT INTO public.uniq VALUES ($1, $2, 0)`, []any{w.key(), "b" + strconv.Itoa(w.rng.IntN(2))}
	case 8:
		a, b := ab()
		return `DELETE FROM public.uniq WHERE a = $1 AND b = $2`, []any{a, b}
	case 9:
		a, b := ab()
		return `UPDATE public.uniq SET b = $3 WHERE a = $1 AND b = $2`, []any{a, b, "k" + strconv.FormatInt(w.key(), 10)}
	case 10:
		return `INSERT INTO public.nokey VALUES ($1, $2), ($1, $2)`, []any{x, "y" + strconv.Itoa(x)}
	case 11: // one of several identical rows
		return `UPDATE public.nokey SET y = y || '!' WHERE ctid = (SELECT ctid FROM public.nokey WHERE x = $1 LIMIT 1)`, []any{x}
	case 12, 13: // one of several identical rows
		return `DELETE FROM public.nokey WHERE ctid = (SELECT ctid FROM public.nokey WHERE x = $1 LIMIT 1)`, []any{x}
	default:
		return `UPDATE public.acct SET balance = balance - 1 WHERE id = $1`, []any{acctID()}
	}
}

// start runs 1-4 statement transactions (one in ten rolled back) until ctx
// ends; the first error other than ctx's end is reported by stop.
func (w *chaosWorkload) start(ctx context.Context) {
	w.done = make(chan error, 1)
	go func() {
		w.done <- w.loop(ctx)
	}()
}

func (w *chaosWorkload) loop(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, w.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for ctx.Err() == nil {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for i := 1 + w.rng.IntN(4); i > 0; i-- {
				sql, args := w.statement()
				if _, err := tx.Exec(ctx, sql, args...); err != nil {
					return fmt.Errorf("%s %v: %w", sql, args, err)
				}
			}
			if w.rng.IntN(10) == 0 {
				return errRollback
			}
			return nil
		})
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errRollback):
		case err != nil:
			return err
		default:
			w.txns.Add(1)
		}
		time.Sleep(time.Duration(1+w.rng.IntN(4)) * time.Millisecond)
	}
	return nil
}

var errRollback = errors.New("rolled back on purpose")

// chaosKills is how many times TestStreamChaosKills kills a run; the runs
// in chaosFailpoints die at a failpoint instead of a random moment.
const chaosKills = 24

var chaosFailpoints = map[int]string{
	7:  "stream.after_commit=kill@5",
	11: "stream.after_checkpoint=kill@3",
	15: "stream.change=kill@40",
	19: "stream.after_commit=kill@1",
}

// TestStreamChaosKills SIGKILLs a streaming run again and again, at random
// moments and at the streaming crash points, while a workload writes to a
// keyed table, a table keyed by a unique index and a table without a key
// holding identical rows; then one run catches up. The sink must hold
// exactly the source's rows: nothing lost, nothing applied twice.
func TestStreamChaosKills(t *testing.T) {
	start := time.Now()
	ctx := streamCtx(t, 3*time.Minute)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	if err := src.Exec(ctx, dbOf(t, srcDSN), chaosFixture); err != nil {
		t.Fatal(err)
	}
	if err := src.Exec(ctx, dbOf(t, srcDSN), "VACUUM ANALYZE"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := writePipeline(t, dir, "chaos.yaml", streamPipeline("chaos", "{parallel: 2, chunk_rows: 2000}"))
	env := dsnEnv(srcDSN, dstDSN)
	// The copy (30 chunks of one batch each) is slowed down to about 3s of
	// work, so that a few kills land in it.
	const slowCopy = "copy.chunk.batch=sleep:200ms"

	seed := uint64(time.Now().UnixNano())
	t.Logf("workload seed %d", seed)
	wctx, stopWorkload := context.WithCancel(ctx)
	defer stopWorkload()
	w := &chaosWorkload{dsn: srcDSN, rng: rand.New(rand.NewPCG(seed, 7)), fresh: 1_000_000}
	w.start(wctx)
	stop := func() {
		stopWorkload()
		if err := <-w.done; err != nil {
			t.Fatalf("workload: %v", err)
		}
		w.done <- nil
	}
	t.Cleanup(func() { stopWorkload(); <-w.done })

	phases := map[string]int{}
	var logs strings.Builder // every run's log, shown if the test fails
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the runs' logs:\n%s", logs.String())
		}
	})
	for i := 1; i <= chaosKills; i++ {
		select {
		case err := <-w.done:
			w.done <- err
			t.Fatalf("workload ended early: %v", err)
		default:
		}
		spec := slowCopy
		if fp, ok := chaosFailpoints[i]; ok {
			spec += "," + fp
			p := startSluice(t, dir, withEnv(env, "SLUICE_FAILPOINTS", spec), "run", file)
			select {
			case <-p.done:
			case <-time.After(20 * time.Second):
				p.signal(syscall.SIGKILL)
				<-p.done
				t.Fatalf("kill %d: the run did not reach failpoint %s within 20s:\n%s", i, fp, p.res)
			}
			r := p.res
			if r.signal != syscall.SIGKILL {
				t.Fatalf("kill %d: want the run killed at failpoint %s:\n%s", i, fp, r)
			}
			checkRunLog(t, i, r)
			phases[phaseOf(r)]++
			fmt.Fprintf(&logs, "--- run %d (failpoint %s):\n%s", i, fp, r.stderr)
			t.Logf("kill %2d: failpoint %s, %s into the run (%s)", i, fp, r.elapsed.Round(time.Millisecond), phaseOf(r))
			continue
		}
		p := startSluice(t, dir, withEnv(env, "SLUICE_FAILPOINTS", spec), "run", file)
		delay := 200*time.Millisecond + rand.N(1300*time.Millisecond)
		select {
		case <-p.done:
			t.Fatalf("kill %d: the run ended by itself before the kill, %s after its start:\n%s", i, delay, p.res)
		case <-time.After(delay):
		}
		p.signal(syscall.SIGKILL)
		r := p.wait(time.Minute)
		if r.signal != syscall.SIGKILL {
			t.Fatalf("kill %d: the run was not killed by SIGKILL:\n%s", i, r)
		}
		// Sink sessions of the killed run that still execute what it sent
		// (they end when the server notices the client is gone).
		busy := busySinkSessions(t, ctx, dstDSN)
		checkRunLog(t, i, r)
		phases[phaseOf(r)]++
		fmt.Fprintf(&logs, "--- run %d (SIGKILL after %s; busy sink sessions left: %q):\n%s", i, delay.Round(time.Millisecond), busy, r.stderr)
		t.Logf("kill %2d: SIGKILL %s after the start (%s); %d busy sink sessions left", i, delay.Round(time.Millisecond), phaseOf(r), len(busy))
	}
	stop()
	t.Logf("%d kills (%d at failpoints): %d during startup, %d during the full copy, %d while streaming; workload: %d transactions in %s",
		chaosKills, len(chaosFailpoints), phases["startup"], phases["copy"], phases["stream"], w.txns.Load(), time.Since(start).Round(time.Millisecond))
	if phases["copy"] == 0 || phases["stream"] < len(chaosFailpoints) {
		t.Errorf("want kills both during the full copy and while streaming, got %v", phases)
	}

	caught := time.Now()
	sum := runCaughtUp(t, dir, env, file, time.Minute)
	t.Logf("final run caught up in %s: %+v, stream %+v", time.Since(caught).Round(time.Millisecond), sum, *sum.Stream)
	for _, table := range chaosTables {
		n1 := queryInt(t, ctx, srcDSN, "SELECT count(*) FROM "+table)
		n2 := queryInt(t, ctx, dstDSN, "SELECT count(*) FROM "+table)
		if n1 != n2 {
			t.Errorf("%s: %d rows at the source, %d at the sink", table, n1, n2)
		}
	}
	assertSameData(t, ctx, srcDSN, dstDSN, chaosTables...)
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) - count(DISTINCT (a, b)) FROM public.uniq`); n != 0 {
		t.Errorf("public.uniq has %d duplicate keys at the sink", n)
	}
	// The temporary slots of resumed copies went with their runs.
	for i := 0; ; i++ {
		n := queryInt(t, ctx, srcDSN, `SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'sluice\_chaos%'`)
		if n == 1 {
			break
		}
		if i == 50 {
			t.Errorf("source: %d replication slots of the pipeline, want 1", n)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("TestStreamChaosKills took %s", time.Since(start).Round(time.Millisecond))
}

// vmHWM returns a process's peak resident set size (VmHWM) in kB.
func vmHWM(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmHWM", pid)
}

// TestLargeTransactionMemory streams one source transaction that updates
// every row of a big table: the run must apply it whole without holding it
// in memory. SLUICE_LONG=1 uses 2,000,000 rows instead of 200,000.
func TestLargeTransactionMemory(t *testing.T) {
	rows := 200_000
	timeout := 2 * time.Minute
	if os.Getenv("SLUICE_LONG") == "1" {
		rows, timeout = 2_000_000, 10*time.Minute
	}
	const limitMB = 300
	ctx := streamCtx(t, 3*timeout)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	// About 100 bytes of text per row.
	if err := src.Exec(ctx, dbOf(t, srcDSN), fmt.Sprintf(`
CREATE TABLE public.big (id int PRIMARY KEY, t text NOT NULL);
INSERT INTO public.big SELECT g, md5(g::text) || md5((g + 1)::text) || md5((g + 2)::text) || 'abcd' FROM generate_series(1, %d) g;`, rows)); err != nil {
		t.Fatal(err)
	}
	if err := src.Exec(ctx, dbOf(t, srcDSN), "VACUUM ANALYZE public.big"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := writePipeline(t, dir, "bigtx.yaml", streamPipeline("bigtx", "{parallel: 4}"))
	env := dsnEnv(srcDSN, dstDSN)

	began := time.Now()
	sum := runCaughtUp(t, dir, env, file, timeout)
	if sum.Rows != int64(rows) {
		t.Fatalf("full copy: %d rows, want %d", sum.Rows, rows)
	}
	t.Logf("full copy of %d rows and catch-up in %s", rows, time.Since(began).Round(time.Millisecond))

	p := startSluice(t, dir, env, "run", file)
	waitStreaming(t, ctx, p, srcDSN, "sluice_bigtx", time.Minute)
	var peakKB atomic.Int64
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if kb, err := vmHWM(p.cmd.Process.Pid); err == nil && kb > peakKB.Load() {
				peakKB.Store(kb)
			}
			select {
			case <-p.done:
				return
			case <-tick.C:
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	idleKB := peakKB.Load()

	began = time.Now()
	if err := src.Exec(ctx, dbOf(t, srcDSN), `UPDATE public.big SET t = t || 'x'`); err != nil {
		t.Fatal(err)
	}
	t.Logf("source: one transaction updated %d rows in %s", rows, time.Since(began).Round(time.Millisecond))
	began = time.Now()
	for {
		n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM public.big WHERE t LIKE '%x'`)
		if n == int64(rows) {
			break
		}
		if n != 0 {
			t.Fatalf("sink: %d of %d rows updated: one source transaction is visible in part", n, rows)
		}
		if p.exited() {
			t.Fatalf("sluice ended before applying the transaction:\n%s", p.res)
		}
		if time.Since(began) > timeout {
			t.Fatalf("sink: the transaction was not applied within %s", timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
	applied := time.Since(began)
	p.signal(syscall.SIGTERM)
	r := p.wait(time.Minute)
	<-polled
	if r.code != 130 {
		t.Errorf("after SIGTERM: want exit code 130:\n%s", r)
	}
	maxrss := p.cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // kB on Linux
	peak := max(peakKB.Load(), maxrss)
	t.Logf("applied one %d-row transaction in %s (%.0f rows/s); sluice peak RSS %.1f MB (VmHWM polled %.1f MB, %.1f MB before the transaction; rusage maxrss %.1f MB)",
		rows, applied.Round(time.Millisecond), float64(rows)/applied.Seconds(), float64(peak)/1024, float64(peakKB.Load())/1024, float64(idleKB)/1024, float64(maxrss)/1024)
	if peak >= limitMB*1024 {
		t.Errorf("sluice peak RSS %.1f MB applying one %d-row transaction, want < %d MB", float64(peak)/1024, rows, limitMB)
	}
	assertSameData(t, ctx, srcDSN, dstDSN, "public.big")
}

// quit ends a hung process with SIGQUIT, so that the Go runtime prints
// its goroutines, and returns how it ended (SIGKILL after 10s).
func quit(p *proc) result {
	p.signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.signal(syscall.SIGKILL)
		<-p.done
	}
	return p.res
}

// TestStreamDropWhileRunning: drop refuses a live run and says how to
// force it; --force stops it and removes everything; a second drop finds
// nothing.
func TestStreamDropWhileRunning(t *testing.T) {
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE TABLE public.t (id int PRIMARY KEY, v text);
		INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 1000) g;`); err != nil {
		t.Fatal(err)
	}
	const name, slot = "droplive", "sluice_droplive"
	dir := t.TempDir()
	file := writePipeline(t, dir, "drop.yaml", streamPipeline(name, "{parallel: 2}"))
	env := dsnEnv(srcDSN, dstDSN)
	runCaughtUp(t, dir, env, file, 2*time.Minute)

	p := startSluice(t, dir, env, "run", file)
	waitStreaming(t, ctx, p, srcDSN, slot, time.Minute)

	r := sluice(t, dir, env, "drop", file)
	if r.code == 0 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("sluice drop of a live run: want a non-zero exit and a message naming --force:\n%s", r)
	}
	t.Logf("drop of a live run: %s", strings.TrimSpace(r.stderr))
	if p.exited() {
		t.Fatalf("the live run ended after a refused drop:\n%s", p.res)
	}
	if n := queryInt(t, ctx, srcDSN, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, slot); n != 1 {
		t.Errorf("after a refused drop: %d slots %s, want 1", n, slot)
	}

	r = sluice(t, dir, env, "drop", "--force", file)
	if r.code != 0 || !strings.Contains(r.stdout, "removed replication slot "+slot) {
		t.Errorf("sluice drop --force of a live run: want exit 0 and the slot removed:\n%s", r)
	}
	t.Logf("drop --force:\n%s", r.stdout)
	select {
	case <-p.done:
		t.Logf("the live run ended after drop --force: %s", p.res)
		if p.res.code == 0 {
			t.Errorf("the live run exited 0 after its slot was dropped:\n%s", p.res)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("the live run still ran 15s after drop --force removed its slot; its goroutines (SIGQUIT):\n%s", quit(p))
	}
	if n := queryInt(t, ctx, srcDSN, `SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1`, slot+"%"); n != 0 {
		t.Errorf("after drop --force: %d slots named %s*, want none", n, slot)
	}
	if n := queryInt(t, ctx, srcDSN, `SELECT count(*) FROM pg_publication WHERE pubname = $1`, slot); n != 0 {
		t.Errorf("after drop --force: publication %s still exists", slot)
	}
	r = sluice(t, dir, env, "drop", file)
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to remove") {
		t.Errorf("second sluice drop: want exit 0 and \"nothing to remove\":\n%s", r)
	}
}

// TestStreamLargeTransactionAfterGroup: a small transaction, then a large
// one (many slices of stream events), both queued while the applier is busy
// with a third: the small one opens a sink group that must not be committed
// with part of the large one in it (contract 1). The sink must never show
// the large transaction in part.
func TestStreamLargeTransactionAfterGroup(t *testing.T) {
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	const rows = 100_000
	if err := src.Exec(ctx, dbOf(t, srcDSN), fmt.Sprintf(`
CREATE TABLE public.big (id int PRIMARY KEY, t text NOT NULL);
INSERT INTO public.big SELECT g, md5(g::text) FROM generate_series(1, %d) g;
CREATE TABLE public.filler (id int PRIMARY KEY, t text);
CREATE TABLE public.marker (id int PRIMARY KEY);`, rows)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := writePipeline(t, dir, "split.yaml", streamPipeline("split", "{parallel: 4}"))
	env := dsnEnv(srcDSN, dstDSN)
	runCaughtUp(t, dir, env, file, 2*time.Minute)
	p := startSluice(t, dir, env, "run", file)
	waitStreaming(t, ctx, p, srcDSN, "sluice_split", time.Minute)

	// The filler transaction keeps the applier busy while the small and
	// the large transaction queue up behind it.
	if err := src.Exec(ctx, dbOf(t, srcDSN), `
BEGIN; INSERT INTO public.filler SELECT g, md5(g::text) FROM generate_series(1, 100000) g; COMMIT;
BEGIN; INSERT INTO public.marker VALUES (1); COMMIT;
BEGIN; UPDATE public.big SET t = t || 'x'; COMMIT;`); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	partial := map[int64]bool{}
	for {
		n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM public.big WHERE t LIKE '%x'`)
		if n == rows {
			break
		}
		if n != 0 {
			partial[n] = true
		}
		if p.exited() {
			t.Fatalf("sluice ended:\n%s", p.res)
		}
		if time.Since(began) > time.Minute {
			t.Fatalf("not applied within a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(partial) > 0 {
		t.Errorf("the sink showed the %d-row source transaction in part: %v rows updated (contract 1)", rows, partial)
	}
	p.signal(syscall.SIGTERM)
	if r := p.wait(time.Minute); r.code != 130 {
		t.Errorf("after SIGTERM: want exit code 130:\n%s", r)
	}
	assertSameData(t, ctx, srcDSN, dstDSN, "public.big", "public.filler", "public.marker")
}
