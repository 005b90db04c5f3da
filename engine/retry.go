package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// permanentError marks an error that no retry can fix: bad configuration,
// a state dir that belongs elsewhere, a lost replication slot, a test's
// failpoint. Run returns it at once.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// hit runs a failpoint; its error is permanent, so tests see it.
func (r *runner) hit(name string) error {
	return permanent(r.cfg.Failpoints.Hit(name))
}

// errorClass tells which retry window applies to an error.
func errorClass(err error) string {
	if postgres.IsConnectionError(err) {
		return "connection"
	}
	return "other"
}

// retryPolicy runs attempts until one succeeds, the error is permanent, or
// an incident outlasts its window: connection errors and other errors each
// have their own window, counted from the first failure since the last
// progress. Waits grow exponentially (1s to 60s) with jitter. Every retry
// is logged with its cause and attempt number.
type retryPolicy struct {
	connection, other time.Duration
	log               interface {
		Warn(msg string, args ...any)
	}
	// onRetry, when set, is called with the error class before each retry
	// (for metrics).
	onRetry func(class string)
}

func (p retryPolicy) window(class string) time.Duration {
	if class == "connection" {
		return p.connection
	}
	return p.other
}

// run calls attempt until done. progressed reports whether the attempt
// moved the pipeline forward (which starts a new incident).
func (p retryPolicy) run(ctx context.Context, attempt func() (progressed bool, err error)) error {
	var (
		incident time.Time
		class    string
		n        int
		backoff  = time.Second
	)
	for {
		progressed, err := attempt()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			return fmt.Errorf("%w: %v", ctx.Err(), err)
		}
		if ctx.Err() != nil || isPermanent(err) || errors.Is(err, context.Canceled) {
			return err
		}
		if rejectedRow(err) {
			return parked(err)
		}
		if postgres.IsMissingTablespace(err) {
			return permanent(err) // a person must create it at the sink
		}
		if postgres.IsDiverged(err) {
			return divergedParked(err)
		}
		cls := errorClass(err)
		if progressed || incident.IsZero() || cls != class {
			incident, class, backoff = time.Now(), cls, time.Second
		}
		window := p.window(cls)
		if time.Since(incident) >= window {
			return fmt.Errorf("gave up after retrying %s errors for %s (retry.%s window %s); the pipeline's position is saved, so fix the cause and run it again: %w",
				cls, time.Since(incident).Round(time.Second), cls, window, err)
		}
		n++
		wait := min(backoff/2+time.Duration(rand.Int64N(int64(backoff))), time.Until(incident.Add(window)))
		what := "retrying"
		if cls == "connection" {
			what = "connection lost; reconnecting and resuming from the checkpoint"
		}
		if p.onRetry != nil {
			p.onRetry(cls)
		}
		p.log.Warn(what, "class", cls, "attempt", n, "error", err.Error(), "retry_in", wait.Round(time.Millisecond).String(),
			"window_left", (window - time.Since(incident)).Round(time.Second).String())
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w while waiting to retry after: %v", ctx.Err(), err)
		case <-time.After(max(wait, 0)):
		}
		backoff = min(backoff*2, time.Minute)
	}
}
