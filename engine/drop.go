package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// DropReport lists what Drop removed.
type DropReport struct {
	Removed []string
}

// Drop removes everything the pipeline made: at the source its replication
// slot, publication, heartbeat row (and the sluice schema when no other
// pipeline uses it); at the sink its progress rows; and the local state
// dir. The copied tables at the sink are left alone. It is safe to run
// twice. While a run of the pipeline is live it refuses, unless force is
// set, in which case the live run's walsender is terminated.
func Drop(ctx context.Context, cfg Config, force bool) (*DropReport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rep := &DropReport{}
	// A live run holds the state dir's lock.
	if _, err := os.Stat(cfg.StateDir); err == nil {
		store, err := checkpoint.Open(ctx, cfg.StateDir, cfg.Log)
		var inUse *checkpoint.InUseError
		switch {
		case errors.As(err, &inUse) && !force:
			return nil, fmt.Errorf("pipeline %s is running (%v): stop it first, or use --force", cfg.Name, err)
		case errors.As(err, &inUse):
			// --force: stop the live run first, so it cannot come back
			// and recreate what is dropped.
			if err := stopProcess(ctx, inUse.PID, 30*time.Second); err != nil {
				return nil, fmt.Errorf("pipeline %s is running as process %d and did not stop: %w", cfg.Name, inUse.PID, err)
			}
		case err == nil:
			store.Close()
		default:
			return nil, err
		}
	}
	src, err := postgres.Connect(ctx, cfg.SourceDSN, "source")
	if err != nil {
		return nil, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	removed, err := postgres.DropSource(ctx, src, cfg.Name, force)
	rep.Removed = append(rep.Removed, removed...)
	if err != nil {
		return rep, err
	}
	if n, err := postgres.DropBackfillSource(ctx, src, cfg.Name); err != nil {
		return rep, err
	} else if n > 0 {
		rep.Removed = append(rep.Removed, fmt.Sprintf("%d backfill requests at the source", n))
	}
	dst, err := postgres.Connect(ctx, cfg.SinkDSN, "sink")
	if err != nil {
		return rep, err
	}
	defer dst.Close(context.WithoutCancel(ctx))
	n, err := postgres.DropSinkState(ctx, dst, cfg.Name)
	if err != nil {
		return rep, err
	}
	nb, err := postgres.DropBackfillSink(ctx, dst, cfg.Name)
	if err != nil {
		return rep, err
	}
	n += nb
	if n > 0 {
		rep.Removed = append(rep.Removed, fmt.Sprintf("%d progress rows at the sink", n))
	}
	if _, err := os.Stat(cfg.StateDir); err == nil {
		if err := os.RemoveAll(cfg.StateDir); err != nil {
			return rep, fmt.Errorf("remove state dir %s: %w", cfg.StateDir, err)
		}
		rep.Removed = append(rep.Removed, "state dir "+cfg.StateDir)
	}
	return rep, nil
}

// stopProcess sends SIGTERM to pid and waits until it has exited.
func stopProcess(ctx context.Context, pid int, timeout time.Duration) error {
	if pid <= 0 || pid == os.Getpid() {
		return fmt.Errorf("no process to stop (pid %d)", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("still running after %s", timeout)
}
