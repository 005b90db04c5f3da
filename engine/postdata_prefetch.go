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
	a.started = true
	ctx, a.cancel = context.WithCancel(ctx)
	go func() {
		defer close(a.done)
		a.dump, a.err = d.Run(ctx, a.r.cfg.SourceDSN)
	}()
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
