// Package display holds the small pieces every progress display and
// summary of sluice shares: human-readable counts, sizes and ETAs, and the
// loop that redraws progress on a terminal or logs it elsewhere.
package display

import (
	"context"
	"fmt"
	"time"

	"github.com/dustin/go-humanize"
)

// Bytes renders a size in binary units: "91.6 MiB".
func Bytes(n int64) string {
	if n < 0 {
		n = 0
	}
	return humanize.IBytes(uint64(n))
}

// Count renders a count compactly: 1234, 12.3k, 12.3M.
func Count(n int64) string {
	switch {
	case n >= 10_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprintf("%d", n)
}

// ETA is the time left for left units at rate units per second; zero when
// unknown or done.
func ETA(left int64, rate float64) time.Duration {
	if rate <= 0 || left <= 0 {
		return 0
	}
	return time.Duration(float64(left) / rate * float64(time.Second)).Round(time.Second)
}

// Truncate shortens s to at most n runes, marking the cut with "…".
func Truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// Loop calls draw every half second when terminal is true, else logLine
// every interval, until ctx ends.
func Loop(ctx context.Context, terminal bool, interval time.Duration, draw, logLine func()) {
	if terminal {
		interval = 500 * time.Millisecond
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if terminal {
				draw()
			} else {
				logLine()
			}
		}
	}
}
