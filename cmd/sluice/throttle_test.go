package main

// End-to-end test of the throttle through the binary: a stream held to
// rows_per_sec, then a SIGHUP that raises the limit while it runs. The
// rate is measured at the sink by counting rows with our own SQL.

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// obsDropSlots drops, at the end of the test, the source database's
// replication slots (a database with a slot cannot be dropped), ending
// their walsenders first. Register it after pgtest.NewDB.
func obsDropSlots(t *testing.T, srcDSN string) {
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
		for i := 0; i < 100; i++ {
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
	})
}

// obsWaitSlotActive waits until p streams from the slot.
func obsWaitSlotActive(t *testing.T, ctx context.Context, p *proc, srcDSN, slot string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for queryInt(t, ctx, srcDSN, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND active`, slot) == 0 {
		if p.exited() {
			t.Fatalf("sluice ended before streaming:\n%s", p.res)
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot %s not active within a minute", slot)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// obsWorkload inserts rows rows every 100ms into table at the source until
// stopped.
func obsWorkload(t *testing.T, ctx context.Context, srcDSN, table string, rows int) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(ctx, srcDSN)
		if err != nil {
			done <- err
			return
		}
		defer conn.Close(context.Background())
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				done <- nil
				return
			case <-tick.C:
			}
			sql := fmt.Sprintf(`INSERT INTO %s (pad) SELECT repeat('w', 40) FROM generate_series(1, %d)`, table, rows)
			if _, err := conn.Exec(ctx, sql); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("workload: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// countSample is a sink table's row count at one moment.
type countSample struct {
	at   time.Time
	rows int64
}

// obsSampler counts a sink table's rows every 200ms.
type obsSampler struct {
	mu      sync.Mutex
	samples []countSample
	stop    context.CancelFunc
	done    chan struct{}
}

func obsSample(t *testing.T, ctx context.Context, dstDSN, table string) *obsSampler {
	t.Helper()
	conn := connect(t, ctx, dstDSN)
	ctx, cancel := context.WithCancel(ctx)
	s := &obsSampler{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			var n int64
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, countSample{time.Now(), n})
				s.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { s.stop(); <-s.done })
	return s
}

// rate fits rows over time by least squares in [from, to] and returns the
// slope in rows per second.
func (s *obsSampler) rate(from, to time.Time) (float64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n, sx, sy, sxx, sxy float64
	for _, c := range s.samples {
		if c.at.Before(from) || c.at.After(to) {
			continue
		}
		x, y := c.at.Sub(from).Seconds(), float64(c.rows)
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	if n < 2 {
		return 0, int(n)
	}
	return (n*sxy - sx*sy) / (n*sxx - sx*sx), int(n)
}

func throttlePipeline(name string, rowsPerSec, parallel int) string {
	return fmt.Sprintf(`name: %s
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {incremental: true}
objects:
  - schema: app
copy: {parallel: %d}
stream: {heartbeat: 200ms}
throttle:
  incremental: {rows_per_sec: %d}
state_dir: state
`, name, parallel, rowsPerSec)
}

// TestThrottleSIGHUP streams a 4000 rows/s workload through a run limited
// to 1000 rows/s, then raises the limit to 2500 in the file and sends
// SIGHUP: the rows arriving at the sink follow each limit within 5%, and
// the other change in the file (copy.parallel) is reported as needing a
// restart.
func TestThrottleSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30-second throttled stream")
	}
	ctx := testCtx(t)
	src, dst := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, dst)
	obsDropSlots(t, srcDSN)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE SCHEMA app; CREATE TABLE app.s (id bigserial PRIMARY KEY, pad text)`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := writePipeline(t, dir, "hup.yaml", throttlePipeline("hup_throttle", 1000, 4))
	p := startSluice(t, dir, dsnEnv(srcDSN, dstDSN), "run", "--no-progress", file)
	obsWaitSlotActive(t, ctx, p, srcDSN, "sluice_hup_throttle")

	stopWork := obsWorkload(t, ctx, srcDSN, "app.s", 400)
	smp := obsSample(t, ctx, dstDSN, "app.s")
	start := time.Now()
	time.Sleep(13 * time.Second)
	slow, n1 := smp.rate(start.Add(2*time.Second), time.Now())

	if err := os.WriteFile(file, []byte(throttlePipeline("hup_throttle", 2500, 2)), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	hup := time.Now()
	time.Sleep(13 * time.Second)
	fast, n2 := smp.rate(hup.Add(1500*time.Millisecond), time.Now())
	stopWork()

	p.signal(syscall.SIGINT)
	res := p.wait(time.Minute)
	if res.code != 130 {
		t.Fatalf("sluice run after SIGINT: want exit 130:\n%s", res)
	}
	for _, c := range []struct {
		what        string
		got, want   float64
		samples     int
		minSamples  int
		afterSIGHUP bool
	}{
		{"before SIGHUP (limit 1000)", slow, 1000, n1, 40, false},
		{"after SIGHUP (limit 2500)", fast, 2500, n2, 40, true},
	} {
		dev := (c.got - c.want) / c.want
		t.Logf("%s: %.1f rows/s over %d samples (%+.2f%%)", c.what, c.got, c.samples, 100*dev)
		if c.samples < c.minSamples || math.Abs(dev) > 0.05 {
			t.Errorf("%s: %.1f rows/s over %d samples, want %.0f ± 5%%", c.what, c.got, c.samples, c.want)
		}
	}
	for _, want := range []string{"SIGHUP: throttle limits reloaded", "2500 rows/s", "restart the pipeline", "changed=copy"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
}
