package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// TestStateDirNotLeftWhenUnreachable: the state dir opens while the
// databases are dialled, but a run that cannot reach one leaves no new
// state dir behind, and keeps the state of an earlier run.
func TestStateDirNotLeftWhenUnreachable(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (1)`)
	cfg := e.config(schemaSel("public")...)
	// A port nothing listens on: the listener is closed before the run.
	dead := "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"
	failing := func(dir string) error {
		c := cfg
		c.StateDir, c.SinkDSN = dir, dead
		c.RetryConnection, c.RetryOther = time.Millisecond, time.Millisecond
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		_, err := engine.Run(ctx, c)
		return err
	}
	fresh := filepath.Join(t.TempDir(), "state")
	err := failing(fresh)
	if err == nil || !strings.Contains(err.Error(), "sink") {
		t.Fatalf("run with an unreachable sink: %v, want a sink connection error", err)
	}
	if _, serr := os.Stat(fresh); !os.IsNotExist(serr) {
		t.Errorf("the state dir %s is left behind by a run that could not connect (%v)", fresh, serr)
	}
	// An earlier run's state stays: the next good run finds its pipeline.
	runOK(t, cfg)
	if err := failing(cfg.StateDir); err == nil {
		t.Fatal("run with an unreachable sink succeeded")
	}
	if entries, err := os.ReadDir(cfg.StateDir); err != nil || len(entries) == 0 {
		t.Fatalf("the earlier run's state dir is gone or empty after a failed connection: %v", err)
	}
	if sum := runOK(t, cfg); sum.ChunksCopied != 0 {
		t.Errorf("the run after the failed one copied %d chunks again: the earlier state was lost", sum.ChunksCopied)
	}
}
