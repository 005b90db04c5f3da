package main

// End-to-end tests of the sluice binary: TestMain builds it once, and the
// tests run it as a subprocess against real throwaway PostgreSQL clusters
// (pgtest). Nothing is mocked.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// sluiceBin is the sluice binary built by TestMain.
var sluiceBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	sluiceBin = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", sluiceBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "sluice e2e: building the binary:", err)
		return 1
	}
	return pgtest.Main(m)
}

// result is how one run of the binary ended.
type result struct {
	code           int            // exit code; -1 when killed by a signal
	signal         syscall.Signal // the signal that killed it, else 0
	stdout, stderr string
	elapsed        time.Duration
}

func (r result) String() string {
	how := fmt.Sprintf("exit %d", r.code)
	if r.signal != 0 {
		how = "killed by " + r.signal.String()
	}
	return fmt.Sprintf("%s after %s\n--- stdout:\n%s\n--- stderr:\n%s", how, r.elapsed.Round(time.Millisecond), r.stdout, r.stderr)
}

// proc is a running sluice process.
type proc struct {
	t              testing.TB
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	start          time.Time
	done           chan struct{}
	res            result
}

// runEnv is the environment of the binary: the test's own, without the
// variables the tests set themselves, plus env.
func runEnv(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SLUICE_") || k == "SRC_DSN" || k == "DST_DSN" {
			continue
		}
		out = append(out, kv)
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// startSluice starts the binary in dir (the current directory if empty)
// with args and the extra environment env.
func startSluice(t testing.TB, dir string, env map[string]string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(sluiceBin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = runEnv(env)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start sluice %v: %v", args, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.res = result{elapsed: time.Since(p.start), stdout: p.stdout.String(), stderr: p.stderr.String()}
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			ws := ee.Sys().(syscall.WaitStatus)
			p.res.code = ws.ExitStatus()
			if ws.Signaled() {
				p.res.code, p.res.signal = -1, ws.Signal()
			}
		default:
			p.res.code = -1
			p.res.stderr += "\n(wait: " + err.Error() + ")"
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !p.exited() {
		p.t.Fatalf("send %v: %v", sig, err)
	}
}

// wait waits for the process to end, at most timeout (then kills it and
// fails the test).
func (p *proc) wait(timeout time.Duration) result {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("sluice %v did not finish within %s; killed it:\n%s", p.cmd.Args[1:], timeout, p.res)
	}
	return p.res
}

// sluice runs the binary to completion (at most 2 minutes).
func sluice(t testing.TB, dir string, env map[string]string, args ...string) result {
	t.Helper()
	return startSluice(t, dir, env, args...).wait(2 * time.Minute)
}

// testCtx is a context bounded by the test's deadline (or 3 minutes).
func testCtx(t testing.TB) context.Context {
	deadline := time.Now().Add(3 * time.Minute)
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}

// dbOf returns the database name of a pgtest DSN.
func dbOf(t testing.TB, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// writePipeline writes a pipeline file named name into dir and returns its
// path.
func writePipeline(t testing.TB, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// dsnEnv is the environment a pipeline file with ${SRC_DSN} and ${DST_DSN}
// needs.
func dsnEnv(src, dst string) map[string]string {
	return map[string]string{"SRC_DSN": src, "DST_DSN": dst}
}

// withEnv returns a copy of env with k=v added.
func withEnv(env map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for kk, vv := range env {
		if kk != k {
			out[kk] = vv
		}
	}
	return out
}

// connect opens a connection to dsn, closed at the end of the test.
func connect(t testing.TB, ctx context.Context, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// queryInt runs a query returning one integer.
func queryInt(t testing.TB, ctx context.Context, dsn, sql string, args ...any) int64 {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// hasSluiceSchema reports whether the sink has a sluice schema.
func hasSluiceSchema(t testing.TB, ctx context.Context, dsn string) bool {
	t.Helper()
	return queryInt(t, ctx, dsn, `SELECT count(*) FROM pg_namespace WHERE nspname = 'sluice'`) > 0
}

// progressRows counts the sink's copy progress rows of a pipeline, by
// table, committed after since (zero: all). A sink without the progress
// table has none.
func progressRows(ctx context.Context, conn *pgx.Conn, pipeline string, since time.Time) (map[string]int, error) {
	rows, err := conn.Query(ctx, `SELECT table_name, count(*)::int FROM sluice.copy_progress
		WHERE pipeline = $1 AND done_at > $2 GROUP BY table_name`, pipeline, since)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000") {
			return map[string]int{}, nil
		}
		return nil, err
	}
	out := map[string]int{}
	for rows.Next() {
		var table string
		var n int
		if err := rows.Scan(&table, &n); err != nil {
			return nil, err
		}
		out[table] = n
	}
	return out, rows.Err()
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// assertSameData compares the tables (quoted, qualified names) of two
// databases with pgtest's SQL checksum, which shares no code with sluice.
func assertSameData(t testing.TB, ctx context.Context, srcDSN, dstDSN string, tables ...string) {
	t.Helper()
	for _, table := range tables {
		n1, s1, err := pgtest.ChecksumDSN(ctx, srcDSN, table)
		if err != nil {
			t.Fatal(err)
		}
		n2, s2, err := pgtest.ChecksumDSN(ctx, dstDSN, table)
		if err != nil {
			t.Errorf("sink: %v", err)
			continue
		}
		if n1 != n2 || s1 != s2 {
			t.Errorf("%s differs: source %d rows (%s), sink %d rows (%s)", table, n1, s1, n2, s2)
		}
	}
}
