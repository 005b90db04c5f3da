package engine

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// sourceDumpGrace is how long the end of the copy waits for a source
// dump still running before stopping it (post-data then dumps anew).
// Waiting without a bound could deadlock: pg_dump may queue for a table
// lock behind DDL that itself waits for the copy's snapshot transaction.
const sourceDumpGrace = 2 * time.Second

// fpSourceDump is reached as the dump at the copy's snapshot begins; its
// error makes the dump fail (post-data then dumps the source anew).
const fpSourceDump = "copy.source_dump"

// startSourceDump starts dumping the source's schema (pg_dump) at the
// copy's snapshot while the rows copy, so post-data, which needs it,
// does not wait for it after the copy. finish must be called once the
// copy is done and before the snapshot's exporting transaction ends: with
// keep it keeps the dump in r.preDump when it succeeded; without (the
// copy failed) or when the dump is late it stops the dump. Nothing
// fails here: a dump that cannot be made is made again, and its error
// reported, by post-data.
func (r *runner) startSourceDump(ctx context.Context, src, dst *pgx.Conn, tables []*postgres.Table, snapshotID string) (finish func(keep bool)) {
	r.preDump = nil
	if !r.cfg.Schema || snapshotID == "" {
		return func(bool) {}
	}
	if done, err := r.store.PostDataDone(); err != nil || done {
		return func(bool) {}
	}
	d, err := postgres.PrepareSourceDump(ctx, src, dst, r.cfg.Objects, tables)
	if err != nil {
		r.log.Debug("source schema not dumped during the copy; post-data dumps it", "error", err)
		return func(bool) {}
	}
	dumpCtx, cancel := context.WithCancel(ctx)
	type result struct {
		schema *postgres.SourceSchema
		err    error
	}
	done := make(chan result, 1)
	go func() {
		if err := r.hit(fpSourceDump); err != nil {
			done <- result{nil, err}
			return
		}
		s, err := d.Run(dumpCtx, r.cfg.SourceDSN, snapshotID)
		done <- result{s, err}
	}()
	return func(keep bool) {
		defer cancel()
		if !keep {
			cancel()
			<-done
			return
		}
		var res result
		select {
		case res = <-done:
		case <-time.After(sourceDumpGrace):
			cancel()
			res = <-done
			r.log.Debug("source schema dump still running when the copy ended; post-data dumps it")
			return
		}
		if res.err != nil {
			r.log.Debug("source schema not dumped during the copy; post-data dumps it", "error", res.err)
			return
		}
		r.preDump = res.schema
	}
}
