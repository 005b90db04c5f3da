package throttle

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine/record"
)

// pump calls pay from workers goroutines until d has passed and returns
// how many units got through.
func pump(t *testing.T, workers int, d time.Duration, pay func(ctx context.Context) (int64, error)) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var total atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := pay(ctx)
				if err != nil {
					return
				}
				total.Add(n)
			}
		}()
	}
	wg.Wait()
	return total.Load()
}

// starvedSlack is how much slower than its limit a pump may run: a limiter
// never lets work through faster than its rate, but on a loaded machine
// (CI runs the database suites beside these) the pumps themselves may not
// keep up. Faster than the limit is held to the test's own tolerance.
const starvedSlack = 0.3

// within checks a count of work done (higher means faster).
func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	check(t, what, got, want, want*(1-math.Max(tol, starvedSlack)), want*(1+tol))
}

// withinDuration checks a time taken (higher means slower).
func withinDuration(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	check(t, what, got, want, want*(1-tol), want*(1+math.Max(tol, starvedSlack)))
}

func check(t *testing.T, what string, got, want, lo, hi float64) {
	t.Helper()
	if got < lo || got > hi {
		t.Errorf("%s: got %.0f, want %.0f (between %.0f and %.0f)", what, got, want, lo, hi)
	} else {
		t.Logf("%s: got %.0f, want %.0f (%+.2f%%)", what, got, want, 100*(got-want)/want)
	}
}

func TestRowsSharedByWorkers(t *testing.T) {
	l := NewLimiter(Limits{Rows: 80000})
	// Batches of 4096 rows are half again the burst (8000 / 4 workers
	// contending): paid in pieces, four workers sharing one bucket. A
	// bucket starts empty, so 163840 rows at 80000/s take 2.048s.
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if err := l.Wait(context.Background(), 4096, 0); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	withinDuration(t, "ms for 163840 rows at 80000/s", float64(time.Since(start).Milliseconds()), 2048, 0.03)
	if s := l.Stats()[KindRows]; s.Waits == 0 || s.Waited <= 0 {
		t.Errorf("no waits counted: %+v", s)
	}
}

func TestBytesAndRowsTogether(t *testing.T) {
	// Rows allow 10000/s and bytes 1 MB/s; each row is 200 bytes, so
	// bytes bind at 5000 rows/s. Both buckets fill while a batch waits:
	// the pace is the slower one, not the sum of both waits.
	l := NewLimiter(Limits{Rows: 10000, Bytes: 1e6})
	var rows atomic.Int64
	start := time.Now()
	ctx := context.Background()
	for rows.Load() < 10000 {
		if err := l.Wait(ctx, 500, 500*200); err != nil {
			t.Fatal(err)
		}
		rows.Add(500)
	}
	elapsed := time.Since(start)
	withinDuration(t, "ms for 10000 rows of 200 bytes at 1 MB/s", float64(elapsed.Milliseconds()), 2000, 0.06)
	st := l.Stats()
	if st[KindBytes].Waits == 0 || st[KindRows].Waits != 0 {
		t.Errorf("waits should be charged to bytes: %+v", st)
	}
}

func TestQueries(t *testing.T) {
	l := NewLimiter(Limits{Queries: 50, Rows: 1e9})
	got := pump(t, 3, 2*time.Second, func(ctx context.Context) (int64, error) {
		return 1, l.Query(ctx)
	})
	// A bucket starts empty.
	within(t, "queries in 2s at 50/s", float64(got), 100, 0.05)
}

func TestSetLimitsTakesEffect(t *testing.T) {
	l := NewLimiter(Limits{Rows: 1000})
	var passed atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if l.Wait(ctx, 100, 0) == nil {
				passed.Add(100)
			}
		}
	}()
	time.Sleep(time.Second)
	slow := passed.Load()
	l.SetLimits(Limits{Rows: 10000})
	time.Sleep(50 * time.Millisecond) // the piece under way finishes at the old rate
	mid := passed.Load()
	time.Sleep(time.Second)
	fast := passed.Load() - mid
	l.SetLimits(Limits{}) // no limit
	time.Sleep(100 * time.Millisecond)
	unlimited := passed.Load()
	cancel()
	<-done
	within(t, "rows in 1s at 1000/s", float64(slow), 1000, 0.1)
	// Up to one burst (a tenth of a second's worth) more: tokens gather
	// while the piece paid at the old rate finishes.
	within(t, "rows in 1s after raising to 10000/s", float64(fast), 10000, 0.1)
	if unlimited-mid-fast < 100000 {
		t.Errorf("without a limit only %d rows passed in 100ms", unlimited-mid-fast)
	}
	if got := l.Limits(); got != (Limits{}) {
		t.Errorf("Limits() = %+v after SetLimits(Limits{})", got)
	}
}

func TestLoweringLimitMidWait(t *testing.T) {
	// A waiter paying a big batch keeps going when the burst shrinks
	// under it.
	l := NewLimiter(Limits{Rows: 100000})
	errc := make(chan error, 1)
	go func() { errc <- l.Wait(context.Background(), 60000, 0) }()
	time.Sleep(20 * time.Millisecond)
	l.SetLimits(Limits{Rows: 1e6})
	time.Sleep(5 * time.Millisecond)
	l.SetLimits(Limits{Rows: 100})
	l.SetLimits(Limits{Rows: 1e7})
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not finish after the limit was raised")
	}
}

func TestCancel(t *testing.T) {
	l := NewLimiter(Limits{Rows: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := l.Wait(ctx, 1000, 0)
	if err == nil {
		t.Fatal("Wait for 1000 rows at 1/s returned no error at the deadline")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Wait returned %s after its context ended", d)
	}
}

func TestNoLimit(t *testing.T) {
	var nilLimiter *Limiter
	ctx := context.Background()
	for _, l := range []*Limiter{nilLimiter, NewLimiter(Limits{})} {
		start := time.Now()
		for range 1000 {
			if err := l.Wait(ctx, 1<<20, 1<<30); err != nil {
				t.Fatal(err)
			}
			if err := l.Query(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("unlimited waits took %s", d)
		}
	}
	var th *Throttle
	if th.Phase(PhaseFull) != nil {
		t.Error("a nil throttle has limiters")
	}
	th.Set(Limits{Rows: 1}, Limits{Rows: 1}) // no panic
}

func TestBatchesMiddleware(t *testing.T) {
	l := NewLimiter(Limits{Rows: 5000})
	var got int
	next := func(b *record.Batch) error { got += len(b.Records); return nil }
	emit := Batches(context.Background(), l, next)
	start := time.Now()
	for range 10 {
		if err := emit(&record.Batch{Records: make([]record.Record, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	if got != 10000 {
		t.Fatalf("next received %d rows, want 10000", got)
	}
	// A bucket starts empty: 2s.
	withinDuration(t, "ms for 10000 rows at 5000/s", float64(time.Since(start).Milliseconds()), 2000, 0.03)
	if Batches(context.Background(), nil, next) == nil {
		t.Fatal("Batches with no limiter returned nil")
	}
}
