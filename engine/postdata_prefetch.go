package engine

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// sourceDumpAhead dumps the source's post-data schema ahead: once the full
// copy has handed its last chunks to the workers, while they copy and the
// primary keys build at the sink, so pg_dump stays off the copy's critical
// path (it took ~0.1 s after the last key at scale 20; started when the
// rows were all in, post-data still waited up to ~50 ms for it). It is
// taken at the end of the copy, not before, so objects created at the
// source during a long copy are in it.
type sourceDumpAhead struct {
	r       *runner
	tables  []*postgres.Table
	cancel  context.CancelFunc
	d       *postgres.SourceDumper
	done    chan struct{}
	dump    *postgres.SourceDump
	err     error
	started bool
}

// newSourceDumpAhead returns nil when post-data will not run (no schema
// sync, or already done).
func (r *runner) newSourceDumpAhead(tables []*postgres.Table) *sourceDumpAhead {
	if !r.cfg.Schema {
		return nil
	}
	if done, err := r.store.PostDataDone(); err != nil || done {
		return nil
	}
	return &sourceDumpAhead{r: r, tables: tables, done: make(chan struct{})}
}

// start begins the dump. src and dst are only queried here, on the
// caller's goroutine (which owns them); pg_dump runs on its own. A failure
// to start is left for postData, which dumps again.
func (a *sourceDumpAhead) start(ctx context.Context, src, dst *pgx.Conn) {
	if a == nil || a.started {
		return
	}
	d, err := postgres.PrepareSourceDump(ctx, src, dst, a.r.cfg.Objects, a.tables)
	if err != nil {
		return
	}
	a.started, a.d = true, d
	ctx, a.cancel = context.WithCancel(ctx)
	go func() {
		defer close(a.done)
		a.dump, a.err = d.Run(ctx, a.r.cfg.SourceDSN)
	}()
}

// sinkDump dumps the sink (dst, owned by the caller's goroutine) while the
// source's dump may still run: both are needed to plan post-data, and the
// sink's waits for no source dump. nil when no dump was started ahead or
// the sink's failed (postData then dumps it, and reports that error if it
// recurs).
func (a *sourceDumpAhead) sinkDump(ctx context.Context, dst *pgx.Conn, target postgres.TargetName) *postgres.SinkDump {
	if a == nil || !a.started {
		return nil
	}
	sd, err := a.d.DumpSink(ctx, dst, a.r.cfg.SinkDSN, a.r.cfg.Objects, a.tables, target)
	if err != nil {
		a.r.log.Debug("post-data: the sink dump taken while the source's ran failed; dumping again", "error", err)
		return nil
	}
	return sd
}

// result waits for the dump; nil when none was taken or it failed (the
// caller then dumps as usual, and reports that error if it recurs).
func (a *sourceDumpAhead) result() *postgres.SourceDump {
	if a == nil || !a.started {
		return nil
	}
	<-a.done
	if a.err != nil {
		a.r.log.Debug("post-data: the dump taken ahead failed; dumping again", "error", a.err)
		return nil
	}
	return a.dump
}

// stop ends a dump still running (the run is failing).
func (a *sourceDumpAhead) stop() {
	if a == nil || !a.started {
		return
	}
	a.cancel()
	<-a.done
}
