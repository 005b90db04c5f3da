package main

// The chaos group: fault injection through the binary while a workload
// writes to a keyed table, a table keyed by a unique index and a table
// without a key holding identical rows. Scenarios: SIGKILL at each named
// crash point (inside a COPY chunk, after the sink commit and before the
// checkpoint, after the checkpoint and before the source acknowledgement,
// in the middle of a large streamed transaction), `pg_ctl restart -m
// immediate` of the source and of the sink while streaming, and network
// faults between the engine and each database through an in-process TCP
// proxy (toxiproxy): latency, connection resets, a stalled connection and a
// bandwidth limit, and SIGKILL while DDL run at the source is applied at
// the sink. Every scenario ends with the sink equal to the source (SQL
// checksums, which count duplicate rows), no duplicate keys, and the same
// columns (and, on the DDL table, the same indexes) at both sides.
//
// `make test` runs the bounded form: one round, each scenario once (about
// two minutes). `make chaos` sets SLUICE_CHAOS_DURATION (default 20m):
// rounds repeat until the duration is used up, each started scenario runs
// to its end, and the counts are printed (lines starting with CHAOS).

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// chaosStall is the stall timeout (SLUICE_STALL_TIMEOUT) of the runs in
// the chaos group: short, so that a stalled connection is detected within
// a scenario.
const chaosStall = 3 * time.Second

// chaosEnv is the chaos group's world: private source and sink clusters
// (fsync on, so that an immediate restart loses nothing a commit
// promised), a proxy in front of each, the pipeline and the workload.
type chaosEnv struct {
	t                  *testing.T
	ctx                context.Context
	src, snk           *pgtest.Cluster
	srcDSN, dstDSN     string // direct, for the test's own queries
	proxySrc, proxyDst *toxiproxy.Proxy
	env                map[string]string // the runs' environment: DSNs through the proxies
	dir, file          string
	seed               uint64
	rng                *rand.Rand

	w          *chaosWorkload
	wstop      context.CancelFunc
	wdone      chan struct{}
	wfailures  atomic.Int64
	copyRounds int
	ddlRounds  int

	scenarios, kills, faults int
	counts                   map[string]int
	logs                     strings.Builder
}

// chaosDuration is how long the group runs scenarios after the first
// round; zero (SLUICE_CHAOS_DURATION unset) runs one round.
func chaosDuration(t *testing.T) time.Duration {
	v := os.Getenv("SLUICE_CHAOS_DURATION")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("SLUICE_CHAOS_DURATION=%q: %v", v, err)
	}
	return d
}

// newProxy starts an in-process toxiproxy proxy to upstream on a free
// local port.
func newProxy(t *testing.T, name, upstream string) *toxiproxy.Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy %s: %v", name, err)
	}
	t.Cleanup(p.Stop)
	return p
}

func newChaosEnv(t *testing.T, total time.Duration) *chaosEnv {
	e := &chaosEnv{t: t, counts: map[string]int{}}
	// The toxics log through zerolog's global logger; keep the test's
	// output to the test's own lines.
	zerolog.SetGlobalLevel(zerolog.Disabled)
	e.ctx = streamCtx(t, total+10*time.Minute)
	e.src = pgtest.NewClusterOpts(t, pgtest.Options{Fsync: true})
	e.snk = pgtest.NewClusterOpts(t, pgtest.Options{Fsync: true})
	var err error
	if e.srcDSN, err = e.src.CreateDatabase(e.ctx, "chaos"); err != nil {
		t.Fatal(err)
	}
	if e.dstDSN, err = e.snk.CreateDatabase(e.ctx, "chaos"); err != nil {
		t.Fatal(err)
	}
	if err := e.src.Exec(e.ctx, "chaos", chaosFixture+chaosDDLFixture); err != nil {
		t.Fatal(err)
	}
	if err := e.src.Exec(e.ctx, "chaos", "VACUUM ANALYZE"); err != nil {
		t.Fatal(err)
	}
	e.proxySrc = newProxy(t, "source", fmt.Sprintf("127.0.0.1:%d", e.src.Port()))
	e.proxyDst = newProxy(t, "sink", fmt.Sprintf("127.0.0.1:%d", e.snk.Port()))
	e.env = map[string]string{
		"SRC_DSN":              proxied(e.srcDSN, e.proxySrc),
		"DST_DSN":              proxied(e.dstDSN, e.proxyDst),
		"SLUICE_STALL_TIMEOUT": chaosStall.String(),
	}
	e.dir = t.TempDir()
	e.file = writePipeline(t, e.dir, "chaos.yaml", streamPipeline("chaos", "{parallel: 2, chunk_rows: 2000}"))
	e.seed = uint64(time.Now().UnixNano())
	e.rng = rand.New(rand.NewPCG(e.seed, 11))
	e.w = &chaosWorkload{dsn: e.srcDSN, rng: rand.New(rand.NewPCG(e.seed, 7)), fresh: 1_000_000}
	t.Logf("chaos: seed %d; source proxy %s, sink proxy %s", e.seed, e.proxySrc.Listen, e.proxyDst.Listen)
	t.Cleanup(func() {
		e.pauseWorkload()
		if t.Failed() {
			t.Logf("the runs' logs:\n%s", e.logs.String())
		}
	})
	return e
}

// proxied returns dsn with its port replaced by the proxy's.
func proxied(dsn string, p *toxiproxy.Proxy) string {
	_, port, _ := net.SplitHostPort(p.Listen)
	i := strings.Index(dsn, "@127.0.0.1:")
	j := strings.Index(dsn[i+len("@127.0.0.1:"):], "/")
	return dsn[:i+len("@127.0.0.1:")] + port + dsn[i+len("@127.0.0.1:")+j:]
}

// startWorkload runs the workload until pauseWorkload; it survives server
// restarts (failed transactions are counted, then it reconnects).
func (e *chaosEnv) startWorkload() {
	ctx, cancel := context.WithCancel(e.ctx)
	e.wstop, e.wdone = cancel, make(chan struct{})
	go func() {
		defer close(e.wdone)
		for ctx.Err() == nil {
			if err := e.w.loop(ctx); err != nil && ctx.Err() == nil {
				e.wfailures.Add(1)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
}

func (e *chaosEnv) pauseWorkload() {
	if e.wstop != nil {
		e.wstop()
		<-e.wdone
		e.wstop = nil
	}
}

// run starts the pipeline with failpoints spec (may be empty).
func (e *chaosEnv) run(file, spec string, args ...string) *proc {
	env := e.env
	if spec != "" {
		env = withEnv(env, "SLUICE_FAILPOINTS", spec)
	}
	return startSluice(e.t, e.dir, env, append(append([]string{"run"}, args...), file)...)
}

// record keeps a finished run's log for the failure report and fails the
// test if it shows divergence.
func (e *chaosEnv) record(name string, r result) {
	fmt.Fprintf(&e.logs, "--- %s:\n%s\n", name, r.stderr)
	checkRunLog(e.t, e.scenarios, r)
}

// verify pauses the workload, lets one run catch up, and compares every
// table of the pipeline: rows, checksums, duplicate keys.
func (e *chaosEnv) verify(name, file string, dstDSN string) {
	t := e.t
	e.pauseWorkload()
	r := startSluice(t, e.dir, e.env, "run", "--until-caught-up", "--json", file).wait(3 * time.Minute)
	e.record(name+" (catch-up)", r)
	if r.code != 0 {
		t.Fatalf("%s: the catch-up run failed:\n%s", name, r)
	}
	assertSameData(t, e.ctx, e.srcDSN, dstDSN, append(chaosTables, chaosDDLTable)...)
	e.sameSchema(name, dstDSN)
	if n := queryInt(t, e.ctx, dstDSN, `SELECT count(*) - count(DISTINCT (a, b)) FROM public.uniq`); n != 0 {
		t.Errorf("%s: public.uniq has %d duplicate keys at the sink", name, n)
	}
	if n := queryInt(t, e.ctx, dstDSN, `SELECT count(*) - count(DISTINCT id) FROM public.acct`); n != 0 {
		t.Errorf("%s: public.acct has %d duplicate keys at the sink", name, n)
	}
	if t.Failed() {
		t.FailNow()
	}
	e.startWorkload()
}

// chaosDDLTable is the table the DDL scenario alters; the workload does
// not write to it. Its column c0 is the one the first round drops.
const chaosDDLTable = "public.ddl_chaos"

const chaosDDLFixture = `
CREATE TABLE public.ddl_chaos (id int PRIMARY KEY, v text NOT NULL, c0 int DEFAULT 0);
INSERT INTO public.ddl_chaos (id, v) SELECT g, 'v' || g FROM generate_series(1, 500) g;
`

// schemaOf lists the columns of the chaos tables (name, type,
// nullability, default, in column order; the attribute numbers
// themselves differ where a column was dropped, so they are left out) and
// the indexes of the DDL table.
func (e *chaosEnv) schemaOf(dsn string) string {
	t := e.t
	tables := append([]string{chaosDDLTable}, chaosTables...)
	conn := connect(t, e.ctx, dsn)
	var cols, idx string
	if err := conn.QueryRow(e.ctx, `SELECT coalesce(string_agg(format('%s.%s: %s %s null=%s default=%s', table_schema, table_name, column_name, data_type, is_nullable, coalesce(column_default, '-')), E'\n'
			ORDER BY table_schema, table_name, ordinal_position), '')
		FROM information_schema.columns WHERE table_schema || '.' || table_name = ANY($1)`, tables).Scan(&cols); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(e.ctx, `SELECT coalesce(string_agg(indexdef, E'\n' ORDER BY indexname), '')
		FROM pg_catalog.pg_indexes WHERE schemaname = 'public' AND tablename = 'ddl_chaos'`).Scan(&idx); err != nil {
		t.Fatal(err)
	}
	return cols + "\n" + idx
}

// sameSchema fails the test if the chaos tables' columns (or the DDL
// table's indexes) differ between the source and the sink dstDSN.
func (e *chaosEnv) sameSchema(name, dstDSN string) {
	if a, b := e.schemaOf(e.srcDSN), e.schemaOf(dstDSN); a != b {
		e.t.Errorf("%s: the chaos tables' columns or indexes differ:\nsource:\n%s\nsink:\n%s", name, a, b)
	}
}

// waitApplied waits until the sink applied everything the source had
// written when it was called, while p keeps running.
func (e *chaosEnv) waitApplied(name string, p *proc, timeout time.Duration) {
	t := e.t
	lsn := ""
	conn := connect(t, e.ctx, e.srcDSN)
	if err := conn.QueryRow(e.ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for {
		if queryInt(t, e.ctx, e.dstDSN, `SELECT count(*) FROM sluice.apply_progress WHERE pipeline = 'chaos' AND lsn >= $1::pg_lsn`, lsn) > 0 {
			return
		}
		if p.exited() {
			t.Fatalf("%s: the run ended while the sink caught up:\n%s", name, p.res)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the sink did not apply up to %s within %s; goroutines:\n%s", name, lsn, timeout, quit(p))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stopRun ends a live run with SIGTERM and checks it ended as asked.
func (e *chaosEnv) stopRun(name string, p *proc) result {
	p.signal(syscall.SIGTERM)
	r := p.wait(time.Minute)
	e.record(name, r)
	if r.code != 130 {
		e.t.Fatalf("%s: after SIGTERM want exit code 130:\n%s", name, r)
	}
	return r
}

// killAt runs the pipeline until failpoint spec kills it.
func (e *chaosEnv) killAt(name, file, spec string, during func()) result {
	t := e.t
	p := e.run(file, spec)
	if during != nil {
		during()
	}
	select {
	case <-p.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("%s: the run did not reach failpoint %s within 90s; goroutines:\n%s", name, spec, quit(p))
	}
	e.record(name, p.res)
	if p.res.signal != syscall.SIGKILL {
		t.Fatalf("%s: want the run killed at failpoint %s:\n%s", name, spec, p.res)
	}
	e.kills++
	return p.res
}

// scenario is one fault; it leaves the pipeline to verify.
type scenario struct {
	name string
	run  func(e *chaosEnv, name string)
}

// streamKill kills a streaming run at failpoint fp (the n-th hit, n random
// in [1, maxN]).
func streamKill(fp string, maxN int) scenario {
	return scenario{"kill at " + fp, func(e *chaosEnv, name string) {
		e.killAt(name, e.file, fmt.Sprintf("%s=kill@%d", fp, 1+e.rng.IntN(maxN)), nil)
	}}
}

// largeTxnKill kills the run in the middle of one large source transaction
// (every row of public.acct updated), at its n-th change.
var largeTxnKill = scenario{"kill in a large streamed transaction", func(e *chaosEnv, name string) {
	e.pauseWorkload()
	rows := queryInt(e.t, e.ctx, e.srcDSN, `SELECT count(*) FROM public.acct`)
	n := 1000 + e.rng.Int64N(rows-2000)
	e.killAt(name, e.file, fmt.Sprintf("stream.change=kill@%d", n), func() {
		if err := e.src.Exec(e.ctx, "chaos", `UPDATE public.acct SET balance = balance + 1, note = note || '*'`); err != nil {
			e.t.Fatal(err)
		}
	})
	e.startWorkload()
}}

// ddlKill runs DDL at the source, each statement in its own transaction,
// while the workload runs: a column added with a default, data written to
// it, an index on it, and the column the previous round added dropped (so
// that rounds repeat without end). The run is SIGKILLed at the n-th DDL it
// applies (failpoint ddl.apply, inside the open sink transaction).
var ddlKill = scenario{"kill during DDL apply", func(e *chaosEnv, name string) {
	t := e.t
	e.ddlRounds++
	r := e.ddlRounds
	stmts := []string{
		fmt.Sprintf(`ALTER TABLE public.ddl_chaos ADD COLUMN c%d integer NOT NULL DEFAULT %d`, r, r),
		fmt.Sprintf(`INSERT INTO public.ddl_chaos (id, v, c%d) SELECT g, 'round %d', g FROM generate_series(%d, %d) g`, r, r, 1000*r, 1000*r+49),
		fmt.Sprintf(`CREATE INDEX ddl_chaos_c%d ON public.ddl_chaos (c%d)`, r, r),
		fmt.Sprintf(`UPDATE public.ddl_chaos SET c%d = c%d + id, v = v || '+' WHERE id %% 7 = %d`, r, r, r%7),
		fmt.Sprintf(`ALTER TABLE public.ddl_chaos DROP COLUMN c%d`, r-1),
		fmt.Sprintf(`DELETE FROM public.ddl_chaos WHERE id %% 11 = %d AND id < 1000`, r%11),
	}
	res := e.killAt(name, e.file, fmt.Sprintf("ddl.apply=kill@%d", 1+e.rng.IntN(3)), func() {
		for _, sql := range stmts {
			if err := e.src.Exec(e.ctx, "chaos", sql); err != nil {
				t.Fatalf("%s: %s: %v", name, sql, err)
			}
		}
	})
	if strings.Contains(res.stderr, "DDL replication is off") {
		t.Fatalf("%s: DDL capture is off for the chaos pipeline (its source user must be a superuser):\n%s", name, res.stderr)
	}
}}

// copyKill kills a full copy (a second pipeline into a fresh sink database)
// at failpoint fp, then lets it finish and catch up; the pipeline is
// dropped afterwards.
func copyKill(fp string) scenario {
	return scenario{"kill at " + fp, func(e *chaosEnv, name string) {
		t := e.t
		e.copyRounds++
		pipeline := fmt.Sprintf("chaoscopy%d", e.copyRounds)
		dstDSN, err := e.snk.CreateDatabase(e.ctx, pipeline)
		if err != nil {
			t.Fatal(err)
		}
		body := strings.Replace(streamPipeline(pipeline, "{parallel: 2, chunk_rows: 1000}"), "${DST_DSN}", proxied(dstDSN, e.proxyDst), 1)
		body = strings.Replace(body, "state_dir: state", "state_dir: state-"+pipeline, 1)
		file := writePipeline(t, e.dir, pipeline+".yaml", body)
		// 60 chunks, slowed down a little so that a kill lands mid-copy.
		r := e.killAt(name, file, fmt.Sprintf("copy.chunk.batch=sleep:20ms,%s=kill@%d", fp, 2+e.rng.IntN(40)), nil)
		if phaseOf(r) != "copy" {
			t.Fatalf("%s: want the run killed during the full copy, it was in %s:\n%s", name, phaseOf(r), r)
		}
		e.verify(name, file, dstDSN)
		if r := sluice(t, e.dir, e.env, "drop", file); r.code != 0 {
			t.Fatalf("%s: sluice drop:\n%s", name, r)
		}
		if err := e.snk.DropDatabase(e.ctx, pipeline); err != nil {
			t.Logf("%s: drop database: %v", name, err)
		}
	}}
}

// restartServer restarts the source or the sink with -m immediate while
// the pipeline streams; the run must reconnect by itself.
func restartServer(side string) scenario {
	return scenario{"pg_ctl restart -m immediate of the " + side, func(e *chaosEnv, name string) {
		t := e.t
		c := e.src
		if side == "sink" {
			c = e.snk
		}
		p := e.run(e.file, "")
		waitStreaming(t, e.ctx, p, e.srcDSN, "sluice_chaos", time.Minute)
		time.Sleep(time.Duration(300+e.rng.IntN(1500)) * time.Millisecond)
		if err := c.Restart(e.ctx, "immediate"); err != nil {
			t.Fatal(err)
		}
		e.faults++
		time.Sleep(time.Second)
		e.waitApplied(name, p, 2*time.Minute)
		r := e.stopRun(name, p)
		if !strings.Contains(r.stderr, "reconnecting") {
			t.Errorf("%s: the run's log shows no reconnection:\n%s", name, r.stderr)
		}
	}}
}

// toxic applies a toxiproxy toxic to one side's proxy for hold, while a
// live run streams; want is a string the run's log must show.
func toxic(side, kind, stream string, attrs string, hold time.Duration, want string) scenario {
	return scenario{fmt.Sprintf("%s %s (%s) on the %s connection", kind, attrs, stream, side), func(e *chaosEnv, name string) {
		t := e.t
		px := e.proxySrc
		if side == "sink" {
			px = e.proxyDst
		}
		p := e.run(e.file, "")
		waitStreaming(t, e.ctx, p, e.srcDSN, "sluice_chaos", time.Minute)
		time.Sleep(500 * time.Millisecond)
		var names []string
		for _, dir := range strings.Split(stream, "+") {
			tname := fmt.Sprintf("%s_%s_%d", kind, dir, e.scenarios)
			js := fmt.Sprintf(`{"name": %q, "type": %q, "stream": %q, "attributes": {%s}}`, tname, kind, dir, attrs)
			if _, err := px.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
				t.Fatalf("%s: add toxic %s: %v", name, js, err)
			}
			names = append(names, tname)
		}
		e.faults++
		// Source changes during the hold, so that data crosses the
		// faulty link whatever the workload does (a reset_peer toxic
		// acts on the first data it sees).
		for end := time.Now().Add(hold); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			if err := e.src.Exec(e.ctx, "chaos", `UPDATE public.acct SET balance = balance + 0, note = md5(random()::text) WHERE id = 1`); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range names {
			if err := px.Toxics.RemoveToxic(e.ctx, n); err != nil {
				t.Fatalf("%s: remove toxic %s: %v", name, n, err)
			}
		}
		e.waitApplied(name, p, 2*time.Minute)
		r := e.stopRun(name, p)
		if want != "" && !strings.Contains(r.stderr, want) {
			t.Errorf("%s: the run's log does not show %q:\n%s", name, want, r.stderr)
		}
	}}
}

// chaosScenarios is the group, in the order they run. A stall is held for
// several stall timeouts: the run must notice it by itself (its log says
// "connection stalled") before the toxic is removed, since removing a
// timeout toxic closes the connections anyway.
func chaosScenarios() []scenario {
	var s []scenario
	s = append(s,
		streamKill("stream.after_commit", 5),
		copyKill("copy.chunk.batch"),
		toxic("source", "latency", "downstream+upstream", `"latency": 80, "jitter": 40`, 4*time.Second, ""),
		restartServer("source"),
		streamKill("stream.after_checkpoint", 5),
		toxic("sink", "reset_peer", "upstream", `"timeout": 0`, 2*time.Second, "reconnecting"),
		largeTxnKill,
		ddlKill,
		toxic("sink", "timeout", "downstream+upstream", `"timeout": 0`, 3*chaosStall, "connection stalled"),
		copyKill("copy.chunk.after_commit"),
		restartServer("sink"),
		toxic("source", "timeout", "downstream+upstream", `"timeout": 0`, 3*chaosStall, "connection stalled"),
		streamKill("stream.change", 300),
		toxic("sink", "bandwidth", "upstream", `"rate": 32`, 4*time.Second, ""),
		toxic("source", "reset_peer", "downstream", `"timeout": 0`, 2*time.Second, "reconnecting"),
		copyKill("copy.chunk.after_checkpoint"),
		toxic("sink", "latency", "downstream+upstream", `"latency": 80, "jitter": 40`, 4*time.Second, ""),
		toxic("source", "bandwidth", "downstream", `"rate": 32`, 4*time.Second, ""),
	)
	return s
}

// TestChaos runs the chaos scenarios in turn, each ended by a comparison
// of the sink with the source, until SLUICE_CHAOS_DURATION is used up.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos group: needs PostgreSQL")
	}
	total := chaosDuration(t)
	start := time.Now()
	e := newChaosEnv(t, total)

	// The pipeline's first run: full copy and catch-up.
	e.startWorkload()
	e.verify("initial copy", e.file, e.dstDSN)

	list := chaosScenarios()
	for i := 0; ; i++ {
		sc := list[i%len(list)]
		if i >= len(list) && time.Since(start) >= total {
			break
		}
		began := time.Now()
		e.scenarios++
		name := fmt.Sprintf("scenario %d (%s)", e.scenarios, sc.name)
		sc.run(e, name)
		e.verify(name, e.file, e.dstDSN)
		e.counts[sc.name]++
		t.Logf("%s: survived, sink equal to source (%s)", name, time.Since(began).Round(time.Millisecond))
	}
	e.pauseWorkload()
	t.Logf("CHAOS SUMMARY: %d scenarios survived (%d SIGKILLs at crash points, %d server restarts and network faults), %d rounds of %d kinds; workload %d transactions (%d failed during faults); sink equal to source after every scenario; %s",
		e.scenarios, e.kills, e.faults, e.scenarios/len(list), len(list), e.w.txns.Load(), e.wfailures.Load(), time.Since(start).Round(time.Second))
	for _, sc := range list {
		t.Logf("CHAOS   %3d × %s", e.counts[sc.name], sc.name)
	}
}
