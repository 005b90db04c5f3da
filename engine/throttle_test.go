package engine_test

// Integration tests of the throttle against real clusters: the rate is
// measured at the sink, by counting the copied table's rows over time with
// our own SQL, never from the product's counters.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/throttle"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// sample is the sink's row count at one moment.
type sample struct {
	at   time.Time
	rows int64
}

// rowSampler counts a sink table's rows every interval until stopped.
type rowSampler struct {
	mu      sync.Mutex
	samples []sample
	stop    context.CancelFunc
	done    chan struct{}
}

func sampleRows(t *testing.T, dsn, table string, every time.Duration) *rowSampler {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &rowSampler{stop: cancel, done: make(chan struct{})}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		defer conn.Close(context.Background())
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			var n int64
			// The table does not exist until the engine creates it.
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, sample{time.Now(), n})
				s.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { s.finish() })
	return s
}

// finish stops sampling and returns the samples.
func (s *rowSampler) finish() []sample {
	s.stop()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.samples...)
}

// slope fits rows = a + b·t by least squares over the samples and returns
// b, in rows per second. Committed rows arrive in steps (a chunk, a sink
// transaction); the fit averages the steps out.
func slope(samples []sample) float64 {
	if len(samples) < 2 {
		return 0
	}
	t0 := samples[0].at
	var n, sx, sy, sxx, sxy float64
	for _, s := range samples {
		x := s.at.Sub(t0).Seconds()
		y := float64(s.rows)
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}

// between returns the samples whose row count lies in [lo, hi].
func between(samples []sample, lo, hi int64) []sample {
	var out []sample
	for _, s := range samples {
		if s.rows >= lo && s.rows <= hi {
			out = append(out, s)
		}
	}
	return out
}

// window returns the samples taken in [from, to].
func window(samples []sample, from, to time.Time) []sample {
	var out []sample
	for _, s := range samples {
		if !s.at.Before(from) && !s.at.After(to) {
			out = append(out, s)
		}
	}
	return out
}

func assertRate(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	dev := (got - want) / want
	t.Logf("%s: %.1f rows/s, limit %.0f (%+.2f%%)", what, got, want, 100*dev)
	if math.Abs(dev) > tol {
		t.Errorf("%s: %.1f rows/s, want %.0f ± %.0f%%", what, got, want, 100*tol)
	}
}

// TestThrottleFullCopy copies 64000 rows at rows_per_sec 2000 with four
// workers sharing the limit: about 32 seconds, and the rows arriving at
// the sink over that time stay within 5% of the limit.
func TestThrottleFullCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("a 32-second throttled copy")
	}
	const rows, limit = 64000, 2000.0
	e := newEnv(t)
	e.srcExec(fmt.Sprintf(`CREATE SCHEMA app;
		CREATE TABLE app.t (id bigint PRIMARY KEY, pad text);
		INSERT INTO app.t SELECT g, repeat('x', 40) FROM generate_series(1, %d) g;
		ANALYZE app.t;`, rows))
	cfg := e.config(schemaSel("app")...)
	cfg.ChunkRows = 1000 // chunks commit often, so the sink's count moves smoothly
	cfg.Parallel = 4
	cfg.Throttle = throttle.New(throttle.Limits{Rows: limit}, throttle.Limits{})

	smp := sampleRows(t, e.dstDSN, "app.t", 200*time.Millisecond)
	start := time.Now()
	sum := runOK(t, cfg)
	elapsed := time.Since(start)
	samples := smp.finish()

	if sum.Rows != rows {
		t.Fatalf("copied %d rows, want %d", sum.Rows, rows)
	}
	assertSameData(t, e.srcDSN, e.dstDSN, []string{"app.t"})
	// The run as a whole: no faster than the limit allows.
	assertRate(t, "whole run", rows/elapsed.Seconds(), limit, 0.05)
	// The sink over the middle 90% of the copy (about 29 seconds).
	mid := between(samples, rows/20, rows-rows/20)
	if d := mid[len(mid)-1].at.Sub(mid[0].at); d < 25*time.Second {
		t.Fatalf("the middle of the copy took %s; want about 29s", d)
	}
	assertRate(t, "rows arriving at the sink", slope(mid), limit, 0.05)
	// And no 10-second stretch runs ahead of the limit by more than the
	// rows in flight (4 workers × 1000-row chunks).
	for i, s := range samples {
		for _, u := range samples[i:] {
			if u.at.Sub(s.at) >= 10*time.Second {
				if got := u.rows - s.rows; float64(got) > limit*u.at.Sub(s.at).Seconds()+4000 {
					t.Errorf("%d rows arrived in %s", got, u.at.Sub(s.at))
				}
				break
			}
		}
	}
}

// TestThrottleSourceQueries copies 41 chunks at source_qps 10: each chunk
// query (and the key sampling) waits for its token, so the copy takes
// about four seconds however fast the rows move.
func TestThrottleSourceQueries(t *testing.T) {
	if testing.Short() {
		t.Skip("a throttled copy")
	}
	e := newEnv(t)
	e.srcExec(`CREATE SCHEMA app;
		CREATE TABLE app.t (id bigint PRIMARY KEY, pad text);
		INSERT INTO app.t SELECT g, repeat('x', 40) FROM generate_series(1, 40000) g;
		ANALYZE app.t;`)
	cfg := e.config(schemaSel("app")...)
	cfg.ChunkRows = 1000
	cfg.SharedScanMaxBytes = -1 // one query per chunk (a shared scan is one query for all)
	th := throttle.New(throttle.Limits{Queries: 10}, throttle.Limits{})
	cfg.Throttle = th
	start := time.Now()
	sum := runOK(t, cfg)
	elapsed := time.Since(start)
	queries := int64(sum.ChunksCopied) + 1 // the chunks and the sampling
	waits := th.Full.Stats()[throttle.KindQueries]
	t.Logf("%d chunks in %s; %d query waits, %s waited", sum.ChunksCopied, elapsed, waits.Waits, waits.Waited)
	if sum.ChunksCopied < 30 {
		t.Fatalf("only %d chunks; the test needs many", sum.ChunksCopied)
	}
	// The bucket starts empty: n queries take n/10 seconds.
	if want := time.Duration(queries) * time.Second / 10; elapsed < want*95/100 {
		t.Errorf("%d source queries took %s, less than the %s the limit allows", queries, elapsed, want)
	}
	assertSameData(t, e.srcDSN, e.dstDSN, []string{"app.t"})
}

// TestThrottleStream streams a workload of 5000 rows/s at rows_per_sec
// 2000 for 30 seconds: the rows arriving at the sink stay within 5% of the
// limit while the backlog grows at the source.
func TestThrottleStream(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30-second throttled stream")
	}
	const limit = 2000.0
	e := newEnv(t)
	const pipeline = "thr_stream"
	t.Cleanup(func() { dropSlotsOf(t, e.src, e.srcDB) })
	e.srcExec(`CREATE SCHEMA app; CREATE TABLE app.s (id bigserial PRIMARY KEY, pad text)`)
	cfg := e.config(schemaSel("app")...)
	cfg.Name = pipeline
	cfg.Incremental = true
	cfg.Heartbeat = 200 * time.Millisecond
	cfg.StatusInterval = time.Second
	cfg.Throttle = throttle.New(throttle.Limits{}, throttle.Limits{Rows: limit})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { _, err := engine.Run(ctx, cfg); runErr <- err }()
	waitSlotActive(t, e.srcDSN, "sluice_"+pipeline, runErr)

	// The workload: 500-row transactions every 100ms, 5000 rows/s.
	wctx, stopWork := context.WithCancel(ctx)
	workDone := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(wctx, e.srcDSN)
		if err != nil {
			workDone <- err
			return
		}
		defer conn.Close(context.Background())
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				workDone <- nil
				return
			case <-tick.C:
			}
			if _, err := conn.Exec(wctx, `INSERT INTO app.s (pad) SELECT repeat('y', 40) FROM generate_series(1, 500)`); err != nil && wctx.Err() == nil {
				workDone <- err
				return
			}
		}
	}()
	smp := sampleRows(t, e.dstDSN, "app.s", 200*time.Millisecond)
	start := time.Now()
	time.Sleep(32 * time.Second)
	samples := smp.finish()
	stopWork()
	if err := <-workDone; err != nil {
		t.Fatalf("workload: %v", err)
	}
	source := queryInt(t, e.srcDSN, "SELECT count(*) FROM app.s")
	cancel()
	if err := <-runErr; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("engine.Run: %v", err)
	}
	if waits := cfg.Throttle.Incremental.Stats()[throttle.KindRows]; waits.Waits == 0 {
		t.Error("the stream never waited for the throttle")
	}
	// Skip the first two seconds (the workload starting up).
	w := window(samples, start.Add(2*time.Second), start.Add(32*time.Second))
	sink := w[len(w)-1].rows
	t.Logf("source has %d rows, the sink %d: the backlog grew", source, sink)
	if float64(source) < 1.5*float64(sink) {
		t.Fatalf("the workload (%d rows) did not outrun the limit (%d rows applied)", source, sink)
	}
	assertRate(t, "rows applied at the sink over 30s", slope(w), limit, 0.05)
	first, last := w[0], w[len(w)-1]
	assertRate(t, "rows applied, end to end", float64(last.rows-first.rows)/last.at.Sub(first.at).Seconds(), limit, 0.05)
}

// waitSlotActive waits until the slot has a walsender: the engine streams.
func waitSlotActive(t *testing.T, dsn, slot string, runErr <-chan error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-runErr:
			t.Fatalf("engine.Run ended before streaming: %v", err)
		default:
		}
		if queryInt(t, dsn, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND active`, slot) > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("slot %s never became active", slot)
}

// dropSlotsOf drops the replication slots of a source database, ending
// their walsenders first, so the database can be dropped.
func dropSlotsOf(t *testing.T, c *pgtest.Cluster, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !c.Running(ctx) {
		return
	}
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		t.Errorf("drop slots: %v", err)
		return
	}
	defer conn.Close(ctx)
	for i := 0; i < 50; i++ {
		var found int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM (
			SELECT CASE WHEN active THEN pg_terminate_backend(active_pid) ELSE pg_drop_replication_slot(slot_name) IS NULL END
			FROM pg_replication_slots WHERE database = $1) s`, db).Scan(&found)
		if err == nil && found == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("drop slots of %s: some are left", db)
}
