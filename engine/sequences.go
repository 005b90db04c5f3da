package engine

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// syncSequences sets the sink's sequences to the source's values: those
// the selected tables' columns use (through the name mapping) and every
// other sequence of a selected schema. A sequence of a selected schema
// that the sink lacks is logged, not fatal.
func (r *runner) syncSequences(ctx context.Context, src, dst *pgx.Conn, tables []*postgres.Table) ([]postgres.SequenceSet, error) {
	set, missing, err := postgres.SyncAllSequences(ctx, src, dst, r.cfg.Objects, tables, r.target, r.mapping.rules.Column)
	if err != nil {
		return nil, err
	}
	for _, m := range missing {
		r.log.Warn("sequence not synced: it does not exist at the sink (create it there, or run with sync.schema)", "sequence", m)
	}
	return set, nil
}

// sequenceLoop syncs the sequences every cfg.SequenceSync while streaming,
// with connections of its own, so that a switch to the sink at any moment
// finds them close to the source's (cutover syncs them exactly). Failures
// are logged and retried on the next tick, never fatal. Off when
// SequenceSync is zero.
func (r *runner) sequenceLoop(ctx context.Context, tables []*postgres.Table) {
	if r.cfg.SequenceSync <= 0 {
		return
	}
	var src, dst *pgx.Conn
	closeAll := func() {
		for _, c := range []*pgx.Conn{src, dst} {
			if c != nil {
				c.Close(context.WithoutCancel(ctx))
			}
		}
		src, dst = nil, nil
	}
	defer closeAll()
	tick := time.NewTicker(r.cfg.SequenceSync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if src == nil || dst == nil || src.IsClosed() || dst.IsClosed() {
			closeAll()
			var err error
			if src, err = postgres.Connect(ctx, r.cfg.SourceDSN, "source"); err != nil {
				r.log.Debug("sequence sync: cannot connect to the source", "error", err)
				continue
			}
			if dst, err = postgres.Connect(ctx, r.cfg.SinkDSN, "sink"); err != nil {
				r.log.Debug("sequence sync: cannot connect to the sink", "error", err)
				continue
			}
		}
		set, err := r.syncSequences(ctx, src, dst, tables)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("sequence sync failed; retrying at the next interval", "error", err)
			}
			closeAll()
			continue
		}
		r.log.Debug("sequences synced", "sequences", len(set))
	}
}
