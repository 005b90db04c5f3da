// Command bench (run by `make bench`) measures sluice against the native
// PostgreSQL tools on the same pair of throwaway clusters in one run: full
// copy, applying a change backlog, lag under steady load, and sluice's peak
// RSS and CPU seconds per phase. Every figure is verified (row counts and
// SQL checksums of every table equal at source and sink) before it is
// reported; a run that does not verify is reported as failed.
//
// It lives in bench/ as package main (not cmd/) because it is a development
// tool, not something sluice ships, and its output goes next to it in
// bench/out/ (git-ignored): the clusters while it runs, results.json and
// results.md after.
//
// Environment: BENCH_SCALE (pgbench scale, default 20), BENCH_TX (pgbench
// transactions in the backlog, default 1000 × scale), BENCH_LAG_SECS
// (seconds of rate-limited load per lag measurement, default 30),
// BENCH_RATE (pgbench -R for the lag phase, default 500), BENCH_JOBS
// (workers for sluice, pg_dump/pg_restore -j and the post-data steps run
// at once; default the number of CPUs, as pg_restore's manual advises for
// -j), BENCH_PHASES
// (comma-separated subset of copy,apply,bigtx,lag; default all; apply,
// bigtx and lag need copy), BENCH_PROFILE (a directory: every sluice run
// writes a CPU profile there, named after its phase), BENCH_SLUICE_LOG (a
// file: sluice's log at level info is appended to it).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

const (
	srcDB   = "bench"
	pubName = "bench_pub"
	subName = "bench_sub"
)

type bench struct {
	out     string
	sluice  string
	scale   int
	tx      int
	lagSecs int
	rate    int
	jobs    int
	// repeat is how many rounds of the full-copy methods run (each method
	// once per round, in the same order); each method's fastest verified
	// round is reported. The machine's noise moves single runs by ±10 %.
	repeat  int
	phases  map[string]bool
	profile string // directory for sluice CPU profiles, or ""
	// sluiceLog, when set, is a file that gets sluice's log at level info.
	sluiceLog string

	src, dst *pgtest.Cluster
	tables   []string // public tables, schema-qualified and quoted
	srcSums  map[string]tableSum
	// srcStatic: the source's public tables are unchanged since srcSums
	// (true during the full copies), so verify need not sum them again.
	srcStatic bool
	results   []result
}

func main() {
	b := &bench{
		scale:   envInt("BENCH_SCALE", 20),
		lagSecs: envInt("BENCH_LAG_SECS", 30),
		rate:    envInt("BENCH_RATE", 500),
		jobs:    envInt("BENCH_JOBS", runtime.NumCPU()),
		repeat:  envInt("BENCH_REPEAT", 3),
	}
	b.tx = envInt("BENCH_TX", 1000*b.scale)
	b.phases = map[string]bool{}
	for _, p := range strings.Split(envStr("BENCH_PHASES", "copy,apply,bigtx,lag"), ",") {
		b.phases[strings.TrimSpace(p)] = true
	}
	b.profile = os.Getenv("BENCH_PROFILE")
	b.sluiceLog = os.Getenv("BENCH_SLUICE_LOG")
	flag.StringVar(&b.sluice, "sluice", "bin/sluice", "the sluice binary to measure")
	flag.StringVar(&b.out, "out", "bench/out", "output directory (clusters while running, results after)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := b.run(ctx)
	b.cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench: %s=%q: want a positive integer\n", name, v)
			os.Exit(2)
		}
		return n
	}
	return def
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (b *bench) cleanup() {
	for _, c := range []*pgtest.Cluster{b.src, b.dst} {
		if c != nil {
			if err := c.Remove(); err != nil {
				logf("removing cluster %s: %v", c.Dir(), err)
			}
		}
	}
	os.RemoveAll(filepath.Join(b.out, "work"))
}

func (b *bench) run(ctx context.Context) error {
	var err error
	if b.out, err = filepath.Abs(b.out); err != nil {
		return err
	}
	if b.sluice, err = filepath.Abs(b.sluice); err != nil {
		return err
	}
	if _, err := os.Stat(b.sluice); err != nil {
		return fmt.Errorf("sluice binary: %w (run `make build` first)", err)
	}
	// results of an earlier run must not pass for this one's
	for _, d := range []string{"source", "sink", "work", "results.json", "results.md"} {
		if err := os.RemoveAll(filepath.Join(b.out, d)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(b.out, "work"), 0o755); err != nil {
		return err
	}
	logf("starting clusters under %s", b.out)
	if b.src, err = pgtest.Start(ctx, pgtest.Options{Dir: filepath.Join(b.out, "source")}); err != nil {
		return err
	}
	if b.dst, err = pgtest.Start(ctx, pgtest.Options{Dir: filepath.Join(b.out, "sink")}); err != nil {
		return err
	}
	if err := b.load(ctx); err != nil {
		return err
	}
	for i := range b.repeat {
		if ctx.Err() != nil {
			break
		}
		logf("full copy, round %d of %d", i+1, b.repeat)
		if i > 0 {
			if err := b.dropSubscription(ctx); err != nil {
				return err
			}
		}
		b.fullCopy(ctx)
	}
	b.results = fastestRounds(b.results, "full copy", b.repeat)
	if ctx.Err() == nil && (b.phases["apply"] || b.phases["bigtx"] || b.phases["lag"]) {
		// The later phases stream on from a copied pipeline; the full
		// copy's rounds dropped theirs (see fullCopy).
		logf("copying again with sluice for the streaming phases (not measured)")
		if err := b.freshSluiceSink(ctx); err != nil {
			return err
		}
		var u usage
		if err := b.sluiceUntilCaughtUp(ctx, "setup", &u); err != nil {
			return err
		}
	}
	if ctx.Err() == nil && b.phases["apply"] {
		b.changeApply(ctx)
	}
	if ctx.Err() == nil && b.phases["bigtx"] {
		b.bigTx(ctx)
	}
	if ctx.Err() == nil && b.phases["lag"] {
		b.lag(ctx)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fillRatios(b.results)
	md := markdown(b.results)
	js, _ := json.MarshalIndent(map[string]any{
		"scale": b.scale, "backlog_transactions": b.tx, "lag_seconds": b.lagSecs, "rate": b.rate, "jobs": b.jobs, "full_copy_rounds": b.repeat,
		"when": time.Now().UTC().Format(time.RFC3339), "results": b.results,
	}, "", "  ")
	if err := os.WriteFile(filepath.Join(b.out, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	logf("results in %s/results.json and results.md", b.out)
	for _, r := range b.results {
		if !r.OK {
			return errors.New("some measurements failed")
		}
	}
	return nil
}

// load fills the source: pgbench -i, a table without a key and a table of
// large TOASTed values.
func (b *bench) load(ctx context.Context) error {
	if _, err := b.src.CreateDatabase(ctx, srcDB); err != nil {
		return err
	}
	logf("loading pgbench scale %d", b.scale)
	if _, err := b.tool(ctx, b.src.Tool("pgbench"), "-q", "-i", "-s", strconv.Itoa(b.scale), b.src.DSN(srcDB)); err != nil {
		return err
	}
	toast := 50 * b.scale
	sql := fmt.Sprintf(`
CREATE TABLE nokey AS SELECT aid, bid, abalance, filler FROM pgbench_accounts WHERE aid %% 4 = 0;
CREATE TABLE toasted (id int PRIMARY KEY, doc text NOT NULL);
INSERT INTO toasted SELECT i, (SELECT string_agg(md5(random()::text || j::text || i::text), '') FROM generate_series(1, 2000) j)
  FROM generate_series(1, %d) i;`, toast)
	if err := b.src.Exec(ctx, srcDB, sql); err != nil {
		return err
	}
	// Hint bits and the visibility map set, as on a source in service:
	// else the first method to read the new tables pays for setting them.
	if err := b.src.Exec(ctx, srcDB, "VACUUM (ANALYZE)"); err != nil {
		return err
	}
	rows, err := b.queryStrings(ctx, b.src, srcDB, `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	if err != nil {
		return err
	}
	b.tables = rows
	if b.srcSums, err = b.sums(ctx, b.src, srcDB); err != nil {
		return err
	}
	var n int64
	for _, s := range b.srcSums {
		n += s.Rows
	}
	logf("source: %d tables, %d rows (%d TOASTed values of 64 kB)", len(b.tables), n, toast)
	return nil
}

// dumpArgs are pg_dump's arguments for the native methods, limited to the
// tables measured: without the publication and the
// sluice schema that sluice's run leaves at the source.
func dumpArgs(args ...string) []string {
	return append([]string{"--exclude-schema=sluice", "--no-publications", "--no-subscriptions"}, args...)
}

// dumpSection returns pg_dump --section=section of the source's public
// schema.
func (b *bench) dumpSection(ctx context.Context, section string) (string, error) {
	return b.tool(ctx, b.src.Tool("pg_dump"), dumpArgs("--section="+section, "-d", b.src.DSN(srcDB))...)
}

func (b *bench) totalRows() int64 {
	var n int64
	for _, s := range b.srcSums {
		n += s.Rows
	}
	return n
}

// sums computes every public table's count and checksum in db.
func (b *bench) sums(ctx context.Context, c *pgtest.Cluster, db string) (map[string]tableSum, error) {
	m := map[string]tableSum{}
	tables, err := b.queryStrings(ctx, c, db, `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		n, s, err := pgtest.ChecksumDSN(ctx, c.DSN(db), t)
		if err != nil {
			return nil, err
		}
		m[t] = tableSum{n, s}
	}
	return m, nil
}

// verify compares db at the sink with the source as it is now (with the
// sums taken after loading while the source is known unchanged).
func (b *bench) verify(ctx context.Context, db string) error {
	src := b.srcSums
	if !b.srcStatic {
		var err error
		if src, err = b.sums(ctx, b.src, srcDB); err != nil {
			return err
		}
	}
	dst, err := b.sums(ctx, b.dst, db)
	if err != nil {
		return err
	}
	return compareSums(src, dst)
}

func (b *bench) queryStrings(ctx context.Context, c *pgtest.Cluster, db, sql string) ([]string, error) {
	conn, err := c.Connect(ctx, db)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (b *bench) queryString(ctx context.Context, c *pgtest.Cluster, db, sql string) (string, error) {
	r, err := b.queryStrings(ctx, c, db, sql)
	if err != nil {
		return "", err
	}
	if len(r) != 1 {
		return "", fmt.Errorf("%s: %d rows, want 1", sql, len(r))
	}
	return r[0], nil
}

// tool runs a PostgreSQL client program and returns its stdout.
func (b *bench) tool(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// emptySink (re)creates db at the sink, empty: every full-copy method
// starts from an empty database and ends with the tables, their rows and
// their keys, so each method's clock includes getting the schema there.
func (b *bench) emptySink(ctx context.Context, db string) error {
	if err := b.dst.DropDatabase(ctx, db); err != nil {
		return err
	}
	_, err := b.dst.CreateDatabase(ctx, db)
	return err
}

// copySchema dumps the source's schema (pg_dump --section=section, or
// --schema-only for section "") and runs it in db at the sink with psql,
// as someone copying with the native tools does.
func (b *bench) copySchema(ctx context.Context, db, section string) error {
	arg := "--schema-only"
	if section != "" {
		arg = "--section=" + section
	}
	sql, err := b.tool(ctx, b.src.Tool("pg_dump"), dumpArgs(arg, "-d", b.src.DSN(srcDB))...)
	if err != nil {
		return err
	}
	return b.psqlScript(ctx, db, "schema.sql", sql)
}

// psqlScript runs an SQL script with psql in db at the sink.
func (b *bench) psqlScript(ctx context.Context, db, name, script string) error {
	f := filepath.Join(b.out, "work", name)
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		return err
	}
	_, err := b.tool(ctx, b.dst.Tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", f, "-d", b.dst.DSN(db))
	return err
}

// buildPostData builds the source's keys and indexes (postData, pg_dump
// --section=post-data) in db at the sink, as pg_restore does after the
// data: one psql for the whole script, or each entry on its own
// connection, jobs at a time, biggest table first (pg_restore -j's order).
func (b *bench) buildPostData(ctx context.Context, db, postData string, parallel bool) error {
	if !parallel {
		return b.psqlScript(ctx, db, "post-data.sql", postData)
	}
	entries := postgres.ParseDump(postData)
	sem := make(chan struct{}, b.jobs)
	var wg sync.WaitGroup
	errs := make([]error, len(entries))
	for i, e := range entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = b.psqlScript(ctx, db, fmt.Sprintf("post-data-%d.sql", i), e.SQL)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// settle makes both clusters write out their dirty buffers (CHECKPOINT)
// before a method is measured, outside its clock, so that no method pays
// for the writes the previous one left behind (sluice, measured first in
// each phase, would otherwise).
func (b *bench) settle(ctx context.Context) {
	for _, c := range []*pgtest.Cluster{b.src, b.dst} {
		if err := c.Exec(ctx, "postgres", "CHECKPOINT"); err != nil {
			logf("  checkpoint before measuring: %v", err)
		}
	}
}

// measure times fn, verifies db and records the result.
// prep, when not nil, runs first and outside the clock.
func (b *bench) measure(ctx context.Context, r result, db string, prep, fn func() error) result {
	logf("%s: %s", r.Phase, r.Method)
	var err error
	if prep != nil {
		err = prep()
	}
	if err == nil {
		b.settle(ctx)
		c0 := b.cpuNow()
		t0 := time.Now()
		err = fn()
		r.Secs = time.Since(t0).Seconds()
		// Backends of a finished method may still be exiting.
		time.Sleep(200 * time.Millisecond)
		r.CPU = b.cpuNow().since(c0)
	}
	if err == nil && db != "" {
		err = b.verify(ctx, db)
	}
	if err != nil {
		r.Error = err.Error()
		logf("  FAILED: %v", err)
	} else {
		r.OK = true
		if db != "" {
			logf("  %.2f s, verified", r.Secs)
		} else {
			logf("  %.2f s (nothing applied, nothing to verify)", r.Secs)
		}
	}
	b.results = append(b.results, r)
	return r
}

// sluiceRun runs `sluice run` and returns its getrusage figures.
type usage struct {
	maxRSSKB int64
	cpu      float64
}

func (b *bench) pipeline() (string, error) {
	p := filepath.Join(b.out, "work", "pipeline.yaml")
	y := fmt.Sprintf(`name: bench
source: {dsn: %q}
sink: {dsn: %q}
sync: {incremental: true}
objects: [{schema: public}]
copy: {parallel: %d, chunk_rows: 100000}
state_dir: %q
`, b.src.DSN(srcDB), b.dst.DSN("sluice"), b.jobs, filepath.Join(b.out, "work", "state"))
	return p, os.WriteFile(p, []byte(y), 0o644)
}

func rusageOf(ps *os.ProcessState) usage {
	if ps == nil {
		return usage{}
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return usage{}
	}
	return usage{
		maxRSSKB: ru.Maxrss, // kB on Linux
		cpu:      time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(),
	}
}

// sluiceCmd is `sluice run` of the bench pipeline; with BENCH_PROFILE it
// writes a CPU profile named after phase.
func (b *bench) sluiceCmd(ctx context.Context, phase string, args ...string) *exec.Cmd {
	p := filepath.Join(b.out, "work", "pipeline.yaml")
	level := "warn"
	if b.sluiceLog != "" {
		level = "info"
	}
	args = append([]string{"run", p, "--log-level", level, "--no-progress"}, args...)
	if b.profile != "" {
		name := strings.NewReplacer(" ", "-", ",", "", "/", "-").Replace(phase) + ".pprof"
		args = append(args, "--cpuprofile", filepath.Join(b.profile, name))
	}
	cmd := exec.CommandContext(ctx, b.sluice, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	return cmd
}

func (b *bench) sluiceUntilCaughtUp(ctx context.Context, phase string, u *usage) error {
	cmd := b.sluiceCmd(ctx, phase, "--until-caught-up", "--json")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if b.sluiceLog != "" {
		f, err := os.OpenFile(b.sluiceLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintf(f, "---- %s\n", phase)
		cmd.Stderr = io.MultiWriter(&errb, f)
	}
	err := cmd.Run()
	*u = rusageOf(cmd.ProcessState)
	if err != nil {
		return fmt.Errorf("sluice run: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	return os.WriteFile(filepath.Join(b.out, "work", "sluice-last.json"), []byte(out.String()), 0o644)
}

// ---- full copy ----

func (b *bench) fullCopy(ctx context.Context) {
	b.srcStatic = true
	defer func() { b.srcStatic = false }()
	rows := b.totalRows()
	phase := "full copy"
	var u usage
	if _, err := b.pipeline(); err != nil {
		b.results = append(b.results, result{Phase: phase, Method: "sluice", Error: err.Error()})
		return
	}
	b.measure(ctx, result{Phase: phase, Method: fmt.Sprintf("sluice, %d workers", b.jobs), Rows: rows,
		Note: "creates the tables, slot and publication; run --until-caught-up"}, "sluice",
		func() error { return b.freshSluiceSink(ctx) },
		func() error { return b.sluiceUntilCaughtUp(ctx, phase, &u) })
	b.setUsage(u)
	// The native methods dump the source: without sluice's slot,
	// publication, schema and event triggers there (outside the clock).
	if _, err := b.tool(ctx, b.sluice, "drop", filepath.Join(b.out, "work", "pipeline.yaml"), "--force"); err != nil {
		b.failed(phase, "sluice drop", err)
		return
	}

	for _, format := range []string{"text", "binary"} {
		for _, parallel := range []bool{false, true} {
			if ctx.Err() != nil || !b.phases["copy"] {
				break
			}
			mode := "tables in sequence, then keys and indexes"
			if parallel {
				mode = fmt.Sprintf("all tables in parallel, then keys and indexes %d at a time", b.jobs)
			}
			db := "pipe"
			b.measure(ctx, result{Phase: phase, Method: fmt.Sprintf("psql COPY %s pipe, %s", format, mode), Native: true, Rows: rows,
				Note: "pg_dump --section=pre-data | psql, the pipes, then --section=post-data (dumped while the rows copy)"}, db,
				func() error { return b.emptySink(ctx, db) },
				func() error {
					if err := b.copySchema(ctx, db, "pre-data"); err != nil {
						return err
					}
					// The post-data dump does not need the rows: taken
					// while they copy, off the critical path.
					var post string
					var postErr error
					dumped := make(chan struct{})
					go func() {
						defer close(dumped)
						post, postErr = b.dumpSection(ctx, "post-data")
					}()
					err := b.pipes(ctx, db, format, parallel)
					<-dumped
					if err != nil {
						return err
					}
					if postErr != nil {
						return postErr
					}
					return b.buildPostData(ctx, db, post, parallel)
				})
		}
	}
	if ctx.Err() != nil {
		return
	}
	if b.phases["copy"] && ctx.Err() == nil {
		b.pgRestore(ctx, phase, "dump", rows)
	}
	if ctx.Err() != nil {
		return
	}
	b.measure(ctx, result{Phase: phase, Method: "CREATE SUBSCRIPTION … copy_data = true", Native: true, Rows: rows,
		Note: "pg_dump --schema-only | psql (tables with their keys), then until every pg_subscription_rel row is 'r'"}, "native",
		func() error { return b.emptySink(ctx, "native") }, func() error {
			if err := b.copySchema(ctx, "native", ""); err != nil {
				return err
			}
			if err := b.src.Exec(ctx, srcDB, "CREATE PUBLICATION "+pubName+" FOR TABLE "+strings.Join(b.tables, ", ")); err != nil {
				return err
			}
			sql := fmt.Sprintf("CREATE SUBSCRIPTION %s CONNECTION '%s' PUBLICATION %s WITH (copy_data = true)", subName, b.src.DSN(srcDB), pubName)
			if err := b.dst.Exec(ctx, "native", sql); err != nil {
				return err
			}
			return b.poll(ctx, 10*time.Minute, func() (bool, error) {
				n, err := b.queryString(ctx, b.dst, "native", "SELECT count(*)::text FROM pg_subscription_rel WHERE srsubstate <> 'r'")
				return n == "0", err
			})
		})
	for _, db := range []string{"pipe", "dump"} {
		b.dst.DropDatabase(ctx, db)
	}
}

// pgRestore measures pg_dump -Fd -j | pg_restore -j into an empty db.
func (b *bench) pgRestore(ctx context.Context, phase, db string, rows int64) {
	b.measure(ctx, result{Phase: phase, Method: fmt.Sprintf("pg_dump -Fd -j %d | pg_restore -j %d", b.jobs, b.jobs), Native: true, Rows: rows,
		Note: "into an empty database: tables, data, then keys and indexes"}, db,
		func() error {
			if err := b.dst.DropDatabase(ctx, db); err != nil {
				return err
			}
			_, err := b.dst.CreateDatabase(ctx, db)
			return err
		}, func() error {
			dir := filepath.Join(b.out, "work", "dump")
			os.RemoveAll(dir)
			defer os.RemoveAll(dir)
			j := strconv.Itoa(b.jobs)
			if _, err := b.tool(ctx, b.src.Tool("pg_dump"), dumpArgs("-Fd", "-j", j, "-f", dir, "-d", b.src.DSN(srcDB))...); err != nil {
				return err
			}
			_, err := b.tool(ctx, b.dst.Tool("pg_restore"), "-j", j, "-d", b.dst.DSN(db), dir)
			return err
		})
}

// pipes copies every table with psql COPY TO STDOUT | psql COPY FROM STDIN.
func (b *bench) pipes(ctx context.Context, db, format string, parallel bool) error {
	one := func(t string) error {
		out := exec.CommandContext(ctx, b.src.Tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", b.src.DSN(srcDB),
			"-c", fmt.Sprintf("COPY %s TO STDOUT (FORMAT %s)", t, format))
		in := exec.CommandContext(ctx, b.dst.Tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", b.dst.DSN(db),
			"-c", fmt.Sprintf("COPY %s FROM STDIN (FORMAT %s)", t, format))
		pipe, err := out.StdoutPipe()
		if err != nil {
			return err
		}
		in.Stdin = pipe
		var e1, e2 strings.Builder
		out.Stderr, in.Stderr = &e1, &e2
		if err := out.Start(); err != nil {
			return err
		}
		if err := in.Start(); err != nil {
			out.Process.Kill()
			out.Wait()
			return err
		}
		err2 := in.Wait()
		err1 := out.Wait()
		if err1 != nil {
			return fmt.Errorf("COPY %s TO STDOUT: %w: %s", t, err1, e1.String())
		}
		if err2 != nil {
			return fmt.Errorf("COPY %s FROM STDIN: %w: %s", t, err2, e2.String())
		}
		return nil
	}
	if !parallel {
		for _, t := range b.tables {
			if err := one(t); err != nil {
				return err
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(b.tables))
	for i, t := range b.tables {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = one(t) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (b *bench) poll(ctx context.Context, limit time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// setUsage records sluice's peak RSS and CPU seconds in the last result.
func (b *bench) setUsage(u usage) {
	last := &b.results[len(b.results)-1]
	last.MaxRSSKB, last.CPUSecs = u.maxRSSKB, u.cpu
}

// failed records that a phase could not be measured: its setup (method)
// failed with err.
func (b *bench) failed(phase, method string, err error) {
	b.results = append(b.results, result{Phase: phase, Method: method, Error: err.Error()})
	logf("%s: FAILED: %v", phase, err)
}

// ---- change apply ----

func (b *bench) changeApply(ctx context.Context) {
	phase := "apply backlog"
	fail := func(err error) { b.failed(phase, "backlog", err) }
	// Nothing consumes while the backlog builds: the subscription is
	// disabled, sluice is not running (its slot exists), and a fresh slot
	// for pg_recvlogical starts here.
	if err := b.disableSubscription(ctx); err != nil {
		fail(err)
		return
	}
	if err := b.src.Exec(ctx, srcDB, "SELECT pg_create_logical_replication_slot('bench_decode', 'pgoutput')"); err != nil {
		fail(err)
		return
	}
	logf("%s: building a backlog of %d pgbench transactions", phase, b.tx)
	clients := 4
	perClient := (b.tx + clients - 1) / clients
	if _, err := b.tool(ctx, b.src.Tool("pgbench"), "-n", "-c", strconv.Itoa(clients), "-j", "2", "-t", strconv.Itoa(perClient), b.src.DSN(srcDB)); err != nil {
		fail(err)
		return
	}
	end, err := b.queryString(ctx, b.src, srcDB, "SELECT pg_current_wal_lsn()::text")
	if err != nil {
		fail(err)
		return
	}
	changes := int64(perClient*clients) * 4 // tpcb-like: 3 updates and 1 insert per transaction
	note := fmt.Sprintf("%d transactions, %d row changes, end %s", perClient*clients, changes, end)

	var u usage
	b.measure(ctx, result{Phase: phase, Method: "sluice run --until-caught-up", Rows: changes, Note: note + "; incl. start-up"}, "sluice",
		nil, func() error { return b.sluiceUntilCaughtUp(ctx, phase, &u) })
	b.setUsage(u)
	// The same again with nothing left to apply: what start-up and
	// shut-down alone cost of the figure above.
	b.measure(ctx, result{Phase: phase, Method: "sluice run --until-caught-up, nothing to apply", Part: true,
		Note: "start-up and shut-down alone, part of the figure above"}, "sluice",
		nil, func() error { return b.sluiceUntilCaughtUp(ctx, phase+" idle", &u) })
	b.setUsage(u)

	b.measure(ctx, result{Phase: phase, Method: "subscription enabled", Native: true, Rows: changes,
		Note: "until confirmed_flush_lsn ≥ backlog end"}, "native", nil, func() error { return b.enableSubscription(ctx, end) })

	b.measure(ctx, result{Phase: phase, Method: "pg_recvlogical -E end (decode only)", Native: true, Rows: changes,
		Note: "pgoutput proto_version 1 into /dev/null: the ceiling, applies nothing"}, "", nil, func() error {
		_, err := b.tool(ctx, b.src.Tool("pg_recvlogical"), "-d", b.src.DSN(srcDB), "--slot", "bench_decode", "--start",
			"-o", "proto_version=1", "-o", "publication_names="+pubName, "-E", end, "-f", "/dev/null", "--no-loop")
		return err
	})
	b.src.Exec(ctx, srcDB, "SELECT pg_drop_replication_slot('bench_decode')")
	logf("backlog: %s", note)
}

// ---- one large transaction ----

// bigTx measures one source transaction that updates every row of
// pgbench_accounts (100,000 × scale rows): sluice's peak RSS and CPU while
// applying it (memory must stay bounded: nothing holds the transaction
// whole), and the time, sluice versus the subscription.
func (b *bench) bigTx(ctx context.Context) {
	phase := "one large transaction"
	fail := func(err error) { b.failed(phase, "setup", err) }
	if err := b.disableSubscription(ctx); err != nil {
		fail(err)
		return
	}
	rows := int64(100000 * b.scale)
	logf("%s: UPDATE of all %d rows of pgbench_accounts", phase, rows)
	if err := b.src.Exec(ctx, srcDB, "UPDATE pgbench_accounts SET abalance = abalance + 1"); err != nil {
		fail(err)
		return
	}
	end, err := b.queryString(ctx, b.src, srcDB, "SELECT pg_current_wal_lsn()::text")
	if err != nil {
		fail(err)
		return
	}
	note := fmt.Sprintf("UPDATE of %d rows in one transaction", rows)
	var u usage
	b.measure(ctx, result{Phase: phase, Method: "sluice run --until-caught-up", Rows: rows, Note: note + "; incl. start-up"}, "sluice",
		nil, func() error { return b.sluiceUntilCaughtUp(ctx, phase, &u) })
	b.setUsage(u)
	b.measure(ctx, result{Phase: phase, Method: "subscription enabled", Native: true, Rows: rows,
		Note: "until confirmed_flush_lsn ≥ the transaction's end"}, "native", nil, func() error { return b.enableSubscription(ctx, end) })
}

// disableSubscription disables the native subscription and waits until
// its walsender is gone.
// freshSluiceSink makes sluice's sink database empty again.
func (b *bench) freshSluiceSink(ctx context.Context) error {
	if err := b.dst.DropDatabase(ctx, "sluice"); err != nil {
		return err
	}
	_, err := b.dst.CreateDatabase(ctx, "sluice")
	return err
}

// dropSubscription removes the subscription of an earlier full-copy round
// with its slot, and the publication.
func (b *bench) dropSubscription(ctx context.Context) error {
	if err := b.disableSubscription(ctx); err != nil {
		return err
	}
	for _, sql := range []string{"ALTER SUBSCRIPTION " + subName + " SET (slot_name = NONE)", "DROP SUBSCRIPTION " + subName} {
		if err := b.dst.Exec(ctx, "native", sql); err != nil {
			return err
		}
	}
	return b.src.Exec(ctx, srcDB, "SELECT pg_drop_replication_slot('"+subName+"'); DROP PUBLICATION "+pubName)
}

func (b *bench) disableSubscription(ctx context.Context) error {
	if err := b.dst.Exec(ctx, "native", "ALTER SUBSCRIPTION "+subName+" DISABLE"); err != nil {
		return err
	}
	return b.poll(ctx, time.Minute, func() (bool, error) {
		n, err := b.queryString(ctx, b.src, srcDB, "SELECT count(*)::text FROM pg_replication_slots WHERE active AND slot_name = '"+subName+"'")
		return n == "0", err
	})
}

// enableSubscription enables the native subscription and waits until its
// slot has confirmed end.
func (b *bench) enableSubscription(ctx context.Context, end string) error {
	if err := b.dst.Exec(ctx, "native", "ALTER SUBSCRIPTION "+subName+" ENABLE"); err != nil {
		return err
	}
	return b.poll(ctx, 10*time.Minute, func() (bool, error) {
		v, err := b.queryString(ctx, b.src, srcDB, fmt.Sprintf("SELECT coalesce(confirmed_flush_lsn >= '%s', false)::text FROM pg_replication_slots WHERE slot_name = '%s'", end, subName))
		return v == "true", err
	})
}

// ---- lag ----

func (b *bench) lag(ctx context.Context) {
	phase := fmt.Sprintf("lag, pgbench -R %d", b.rate)
	conn, err := b.src.Connect(ctx, srcDB)
	if err != nil {
		b.failed(phase, "setup", err)
		return
	}
	defer conn.Close(context.Background())

	// sluice, streaming (the subscription stays disabled meanwhile)
	b.dst.Exec(ctx, "native", "ALTER SUBSCRIPTION "+subName+" DISABLE")
	var u usage
	r := result{Phase: phase, Method: "sluice run (streaming)"}
	func() {
		logf("%s: %s", phase, r.Method)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		b.settle(ctx)
		cmd := b.sluiceCmd(cctx, "lag")
		var errb strings.Builder
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			r.Error = err.Error()
			return
		}
		r.Lag, err = b.lagRun(ctx, conn, "sluice")
		cancel()
		werr := cmd.Wait()
		u = rusageOf(cmd.ProcessState)
		// 130: stopped by our SIGINT, its progress saved
		if err == nil && werr != nil && (cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 130) {
			err = fmt.Errorf("sluice run: %w: %s", werr, strings.TrimSpace(errb.String()))
		}
		if err == nil {
			err = b.verify(ctx, "sluice")
		}
		if err != nil {
			r.Error = err.Error()
		}
	}()
	r.OK = r.Error == ""
	r.MaxRSSKB, r.CPUSecs = u.maxRSSKB, u.cpu
	b.results = append(b.results, r)
	logf("  %+v %s", r.Lag, r.Error)
	if ctx.Err() != nil {
		return
	}

	r = result{Phase: phase, Method: "subscription", Native: true}
	logf("%s: %s", phase, r.Method)
	b.settle(ctx)
	err = b.dst.Exec(ctx, "native", "ALTER SUBSCRIPTION "+subName+" ENABLE")
	if err == nil {
		r.Lag, err = b.lagRun(ctx, conn, "native")
	}
	if err == nil {
		err = b.verify(ctx, "native")
	}
	if err != nil {
		r.Error = err.Error()
	}
	r.OK = err == nil
	b.results = append(b.results, r)
	logf("  %+v %s", r.Lag, r.Error)
	b.dst.Exec(context.Background(), "native", "DROP SUBSCRIPTION "+subName)
}

var marker int64 = -1000000

// lagRun waits until the consumer feeding sinkDB has caught up (a marker
// row arrives), runs pgbench -R for lagSecs while timing marker rows from
// the source commit to their arrival at the sink, and waits for a final
// marker, so the sink should equal the source when it returns.
func (b *bench) lagRun(ctx context.Context, src *pgx.Conn, sinkDB string) (*lagStats, error) {
	sink, err := b.dst.Connect(ctx, sinkDB)
	if err != nil {
		return nil, err
	}
	defer sink.Close(context.Background())
	one := func(limit time.Duration) (float64, error) {
		marker--
		m := marker
		t0 := time.Now()
		if _, err := src.Exec(ctx, "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, $1, now())", m); err != nil {
			return 0, err
		}
		err := b.poll(ctx, limit, func() (bool, error) {
			var n int
			err := sink.QueryRow(ctx, "SELECT count(*) FROM pgbench_history WHERE delta = $1", m).Scan(&n)
			return n == 1, err
		})
		return time.Since(t0).Seconds(), err
	}
	if _, err := one(5 * time.Minute); err != nil {
		return nil, fmt.Errorf("catching up before the load: %w", err)
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pb := exec.CommandContext(pctx, b.src.Tool("pgbench"), "-n", "-R", strconv.Itoa(b.rate), "-T", strconv.Itoa(b.lagSecs), "-c", "4", "-j", "2", b.src.DSN(srcDB))
	var pbErr strings.Builder
	pb.Stderr = &pbErr
	if err := pb.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- pb.Wait() }()
	time.Sleep(2 * time.Second)
	var samples []float64
	var pbErrV error
loop:
	for {
		select {
		case pbErrV = <-done:
			break loop
		default:
		}
		s, err := one(time.Minute)
		if err != nil {
			cancel()
			<-done
			return nil, err
		}
		samples = append(samples, s)
		time.Sleep(300 * time.Millisecond)
	}
	if pbErrV != nil {
		return nil, fmt.Errorf("pgbench: %w: %s", pbErrV, pbErr.String())
	}
	if _, err := one(5 * time.Minute); err != nil {
		return nil, fmt.Errorf("final marker: %w", err)
	}
	return percentiles(samples), nil
}
