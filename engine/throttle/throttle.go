// Package throttle limits how fast a pipeline moves data: token buckets
// for rows, bytes and source queries per second, shared by every worker of
// a phase, with limits that can change while the pipeline runs.
//
// A Limiter is used as middleware: Batches wraps a batch consumer and
// hands it each batch only once the batch's rows and bytes are paid for;
// Forward does the same between two stages joined by a channel. Either
// can be stacked in front of any stage and tested alone.
//
// Buckets hold a tenth of a second's worth of tokens (at least one). A
// batch bigger than that pays in pieces, each waiting for its share of
// every bucket at once, so over any window of T seconds at most
// rate×T + rate/10 units pass: within a fraction of a percent over a
// minute.
package throttle

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/sluicehq/sluice/engine/record"
)

// Limits are rates per second; zero (or less) means no limit.
type Limits struct {
	// Rows caps rows (copied rows or applied row changes) per second.
	Rows float64
	// Bytes caps data volume in bytes per second.
	Bytes float64
	// Queries caps queries sent to the source per second.
	Queries float64
}

// MiB is the number of bytes in the unit of the pipeline file's mb_per_sec.
const MiB = 1 << 20

// burstWindow is how much time's worth of tokens a bucket holds.
const burstWindow = 100 * time.Millisecond

// Limit kinds, as reported by Stats.
const (
	KindRows    = "rows"
	KindBytes   = "bytes"
	KindQueries = "queries"
)

var kinds = [...]string{KindRows, KindBytes, KindQueries}

// WaitStats count the waits a limit caused.
type WaitStats struct {
	// Waits is how many times a caller was held back.
	Waits int64
	// Waited is the total time callers were held back.
	Waited time.Duration
}

// Limiter is a set of token buckets (rows, bytes, queries) shared by all
// its callers. It is safe for concurrent use. A nil *Limiter never waits.
type Limiter struct {
	mu      sync.Mutex // serializes SetLimits
	limits  atomic.Pointer[Limits]
	buckets [3]*rate.Limiter // indexed like kinds
	waits   [3]atomic.Int64
	waited  [3]atomic.Int64 // nanoseconds
}

// NewLimiter returns a limiter enforcing l.
func NewLimiter(l Limits) *Limiter {
	lim := &Limiter{}
	for i := range lim.buckets {
		lim.buckets[i] = rate.NewLimiter(rate.Inf, 1)
	}
	lim.SetLimits(l)
	return lim
}

// SetLimits replaces the limits. Waits already under way finish the piece
// they are paying for at the old rate (at most a tenth of a second's
// worth); everything after uses the new limits.
func (l *Limiter) SetLimits(lim Limits) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for i, r := range [...]float64{lim.Rows, lim.Bytes, lim.Queries} {
		b := l.buckets[i]
		if r <= 0 || math.IsInf(r, 1) || math.IsNaN(r) {
			b.SetLimitAt(now, rate.Inf)
			continue
		}
		// Burst first when it shrinks, so that no reservation sees the new
		// rate with a burst sized for the old one; either order is safe,
		// as pieces never exceed the burst they read.
		b.SetBurstAt(now, burstFor(r))
		b.SetLimitAt(now, rate.Limit(r))
	}
	cp := lim
	l.limits.Store(&cp)
}

// Limits returns the limits in force.
func (l *Limiter) Limits() Limits {
	if l == nil {
		return Limits{}
	}
	if p := l.limits.Load(); p != nil {
		return *p
	}
	return Limits{}
}

func burstFor(r float64) int {
	return max(1, int(math.Ceil(r*burstWindow.Seconds())))
}

// Wait blocks until rows and bytes may pass, or ctx ends (its error is
// returned). Amounts bigger than a bucket's burst are paid in pieces.
func (l *Limiter) Wait(ctx context.Context, rows, bytes int64) error {
	if l == nil || (rows <= 0 && bytes <= 0) {
		return nil
	}
	return l.wait(ctx, [3]int64{max(rows, 0), max(bytes, 0), 0})
}

// Query blocks until one query may be sent to the source, or ctx ends.
func (l *Limiter) Query(ctx context.Context) error {
	if l == nil {
		return nil
	}
	return l.wait(ctx, [3]int64{0, 0, 1})
}

// wait pays amounts (indexed like kinds) in pieces: each round reserves a
// piece of every bucket still owed, then sleeps until the latest of those
// reservations, so the buckets fill concurrently and the slowest one sets
// the pace.
func (l *Limiter) wait(ctx context.Context, owed [3]int64) error {
	for owed[0] > 0 || owed[1] > 0 || owed[2] > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		// How many rounds each bucket needs at its burst; every bucket
		// pays 1/rounds of what it owes this round, so they finish
		// together.
		rounds := int64(1)
		for i, n := range owed {
			if n > 0 && l.buckets[i].Limit() != rate.Inf {
				b := int64(l.buckets[i].Burst())
				rounds = max(rounds, (n+b-1)/b)
			}
		}
		var pieces [3]int64
		for i, n := range owed {
			pieces[i] = (n + rounds - 1) / rounds
		}
		var res [3]*rate.Reservation
		var delay [3]time.Duration
		ok := true
		for i, piece := range pieces {
			if piece == 0 {
				continue
			}
			r := l.buckets[i].ReserveN(now, int(min(piece, math.MaxInt32)))
			if !r.OK() {
				// The burst shrank under us (SetLimits): retry with the
				// new one.
				ok = false
				break
			}
			res[i] = r
			delay[i] = r.DelayFrom(now)
		}
		if !ok {
			for _, r := range res {
				if r != nil {
					r.CancelAt(now)
				}
			}
			continue
		}
		for i := range owed {
			owed[i] -= pieces[i]
		}
		slowest, longest := -1, time.Duration(0)
		for i, d := range delay {
			if d > longest {
				slowest, longest = i, d
			}
		}
		if slowest < 0 {
			continue
		}
		l.waits[slowest].Add(1)
		l.waited[slowest].Add(int64(longest))
		t := time.NewTimer(longest)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			for _, r := range res {
				if r != nil {
					r.Cancel()
				}
			}
			return ctx.Err()
		}
	}
	return nil
}

// Stats returns, per limit kind (KindRows, KindBytes, KindQueries), how
// often and how long callers waited. A wait is charged to the bucket that
// made it longest.
func (l *Limiter) Stats() map[string]WaitStats {
	out := make(map[string]WaitStats, len(kinds))
	for i, k := range kinds {
		if l == nil {
			out[k] = WaitStats{}
			continue
		}
		out[k] = WaitStats{Waits: l.waits[i].Load(), Waited: time.Duration(l.waited[i].Load())}
	}
	return out
}

// Batches wraps next, a consumer of batches: each batch waits for its rows
// and bytes (Batch.Bytes) before next receives it. A nil limiter returns
// next itself.
func Batches(ctx context.Context, l *Limiter, next func(*record.Batch) error) func(*record.Batch) error {
	if l == nil {
		return next
	}
	return func(b *record.Batch) error {
		if err := l.Wait(ctx, int64(len(b.Records)), b.Bytes); err != nil {
			return err
		}
		return next(b)
	}
}

// Forward is the throttle as a stage between a producer and a consumer
// connected by a channel: it passes on each value received from in only
// once the value's cost (rows and bytes, from cost) is paid, so that
// waiting for the next value overlaps with the consumer's work on the
// last. At most buffer paid values wait in the returned channel. It stops
// when ctx ends, without closing the returned channel. With a nil limiter
// it returns in itself.
//
// cost is called from one goroutine, in order, so it may keep state from
// one value to the next.
func Forward[T any](ctx context.Context, l *Limiter, in <-chan T, buffer int, cost func(T) (rows, bytes int64)) <-chan T {
	if l == nil {
		return in
	}
	out := make(chan T, buffer)
	go func() {
		for {
			var v T
			select {
			case <-ctx.Done():
				return
			case v = <-in:
			}
			if rows, bytes := cost(v); rows > 0 || bytes > 0 {
				if l.Wait(ctx, rows, bytes) != nil {
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case out <- v:
			}
		}
	}()
	return out
}

// Phases of a pipeline, as throttled separately.
const (
	PhaseFull        = "full"
	PhaseIncremental = "incremental"
)

// Throttle holds the limiters of both phases of a pipeline. Its limits can
// change while the pipeline runs (Set), for instance on SIGHUP.
type Throttle struct {
	// Full limits the full copy: rows and bytes copied, and queries sent
	// to the source.
	Full *Limiter
	// Incremental limits streaming: row changes and bytes applied.
	Incremental *Limiter
}

// New returns a throttle with the given limits.
func New(full, incremental Limits) *Throttle {
	return &Throttle{Full: NewLimiter(full), Incremental: NewLimiter(incremental)}
}

// Set changes the limits of both phases.
func (t *Throttle) Set(full, incremental Limits) {
	if t == nil {
		return
	}
	t.Full.SetLimits(full)
	t.Incremental.SetLimits(incremental)
}

// Phase returns the limiter of a phase (PhaseFull, PhaseIncremental); nil
// (no limit) for a nil throttle or an unknown phase.
func (t *Throttle) Phase(phase string) *Limiter {
	if t == nil {
		return nil
	}
	switch phase {
	case PhaseFull:
		return t.Full
	case PhaseIncremental:
		return t.Incremental
	}
	return nil
}
