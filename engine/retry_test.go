package engine_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// logBuffer is a log destination safe for concurrent writers.
type logBuffer = pgtest.LogBuffer

// TestRetryConnectionRecovers: the sink is down when the run starts; it
// comes back within the connection window and the run finishes equal,
// logging each retry with its cause and attempt.
func TestRetryConnectionRecovers(t *testing.T) {
	src := pgtest.Source(t)
	srcDSN := pgtest.NewDB(t, src)
	sink := pgtest.NewCluster(t, nil)
	dstDSN := pgtest.NewDB(t, sink)
	ctx := t.Context()
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE TABLE r (id int PRIMARY KEY, v text);
		INSERT INTO r SELECT g, md5(g::text) FROM generate_series(1, 5000) g`); err != nil {
		t.Fatal(err)
	}
	if err := sink.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	cfg := engine.Config{Name: "retry", SourceDSN: srcDSN, SinkDSN: dstDSN, Schema: true, Full: true,
		Objects: schemaSel("public"), StateDir: t.TempDir(), Parallel: 2, ChunkRows: 1000,
		RetryConnection: time.Minute, RetryOther: 30 * time.Second,
		Log: slog.New(slog.NewTextHandler(&logs, nil))}
	done := make(chan error, 1)
	go func() { _, err := engine.Run(ctx, cfg); done <- err }()
	time.Sleep(3 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("run ended while the sink was down: %v", err)
	default:
	}
	if err := sink.EnsureRunning(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after the sink came back: %v\nlogs:\n%s", err, logs.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("run did not finish after the sink came back")
	}
	assertSameData(t, srcDSN, dstDSN, []string{`"public"."r"`})
	out := logs.String()
	for _, want := range []string{"reconnecting", "class=connection", "attempt=1", "attempt=2"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
}

// TestRetryWindowExpires: a sink that stays down ends the run once the
// connection window has passed, with an error that says so.
func TestRetryWindowExpires(t *testing.T) {
	src := pgtest.Source(t)
	srcDSN := pgtest.NewDB(t, src)
	sink := pgtest.NewCluster(t, nil)
	dstDSN := pgtest.NewDB(t, sink)
	ctx := t.Context()
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE TABLE r (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if err := sink.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := engine.Config{Name: "retry", SourceDSN: srcDSN, SinkDSN: dstDSN, Schema: true, Full: true,
		Objects: schemaSel("public"), StateDir: t.TempDir(),
		RetryConnection: 3 * time.Second, RetryOther: time.Second}
	start := time.Now()
	_, err := engine.Run(ctx, cfg)
	if err == nil {
		t.Fatal("run succeeded with the sink down")
	}
	if d := time.Since(start); d < 3*time.Second || d > 30*time.Second {
		t.Errorf("gave up after %s, want about the 3s window", d)
	}
	for _, want := range []string{"gave up after retrying connection errors", "retry.connection"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestRetryOtherErrorWindow: a sink that refuses writes for a while
// (default_transaction_read_only) is an "other" error: retried within
// retry.other, then the run stops saying which window ran out.
func TestRetryOtherErrorWindow(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE TABLE c (id int PRIMARY KEY, v int); INSERT INTO c SELECT g, g FROM generate_series(1, 100) g`)
	e.dstExec(`CREATE TABLE c (id int PRIMARY KEY, v int)`)
	e.dstExec(`ALTER DATABASE ` + pgx.Identifier{e.dstDB}.Sanitize() + ` SET default_transaction_read_only = on`)
	cfg := e.config(schemaSel("public")...)
	cfg.Schema = false
	cfg.RetryOther = 2 * time.Second
	var logs logBuffer
	cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	err := runErr(t, cfg)
	for _, want := range []string{"gave up after retrying other errors", "retry.other", "read-only"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !strings.Contains(logs.String(), "class=other") {
		t.Errorf("no retry logged:\n%s", logs.String())
	}
}

// TestRejectedRowParks: a row the sink rejects (a CHECK the source does
// not have) is not retried: the run stops at once, naming the table, the
// chunk and the constraint, with nothing half-copied.
func TestRejectedRowParks(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE TABLE c (id int PRIMARY KEY, v int); INSERT INTO c SELECT g, g FROM generate_series(1, 100) g`)
	e.dstExec(`CREATE TABLE c (id int PRIMARY KEY, v int CHECK (v < 50))`)
	cfg := e.config(schemaSel("public")...)
	cfg.Schema = false
	cfg.RetryOther = time.Minute
	var logs logBuffer
	cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	start := time.Now()
	err := runErr(t, cfg)
	for _, want := range []string{"a row was rejected", "parked", `"c"`, "chunk", "check constraint", "run the same command again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(logs.String(), "class=other") || time.Since(start) > 30*time.Second {
		t.Errorf("a rejected row was retried (%s):\n%s", time.Since(start), logs.String())
	}
	if n := queryInt(t, e.dstDSN, `SELECT count(*) FROM c`); n != 0 {
		t.Errorf("sink has %d rows of a failed chunk, want 0", n)
	}
}
