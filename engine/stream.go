package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine/display"
	"github.com/sluicehq/sluice/engine/metrics"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/engine/throttle"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// Crash points of streaming (see package failpoint).
const (
	fpStreamAfterCommit     = "stream.after_commit"     // sink committed, checkpoint not yet written
	fpStreamAfterCheckpoint = "stream.after_checkpoint" // checkpoint written, source not yet told
	fpStreamChange          = "stream.change"           // a change queued inside an open sink transaction
)

// State-dir keys of streaming.
const (
	keyStreamStart = "v1/stream/start"  // the slot's consistent point
	keyCopyLSN     = "v1/copylsn/"      // + table: consistent point of the table's last copy
	keyStreamStats = "v1/stream/totals" // counters, for status
)

func (r *runner) setCopyLSN(table string, lsn record.LSN) error {
	var cur uint64
	if _, err := r.store.Get(keyCopyLSN+checkpoint.KeyPart(table), &cur); err != nil {
		return err
	}
	if uint64(lsn) <= cur {
		return nil
	}
	return r.store.Put(keyCopyLSN+checkpoint.KeyPart(table), uint64(lsn))
}

func (r *runner) copyLSN(table string) (record.LSN, error) {
	var cur uint64
	_, err := r.store.Get(keyCopyLSN+checkpoint.KeyPart(table), &cur)
	return record.LSN(cur), err
}

// prepareStreaming readies the source for streaming and returns the slot's
// snapshot to copy at (empty when nothing is left to copy, or when resuming
// with a fresh temporary snapshot, which it then also returns), its
// consistent point, and a release function to call once the copy is done.
func (r *runner) prepareStreaming(ctx context.Context, src, dst *pgx.Conn, tables []*postgres.Table, copyPending bool) (snapshotID string, copyLSN record.LSN, release func(), err error) {
	release = func() {}
	if err := postgres.CheckLogical(ctx, src); err != nil {
		return "", 0, release, permanent(err)
	}
	changed, err := postgres.PrepareSource(ctx, src, r.cfg.Name, tables, r.publication(ctx, src))
	for _, n := range changed {
		r.log.Info("set REPLICA IDENTITY FULL on a source table without a primary key, so its updates and deletes can be replicated", "table", n.String())
	}
	if err != nil {
		return "", 0, release, err
	}
	if err := postgres.EnsureSinkState(ctx, dst); err != nil {
		return "", 0, release, err
	}
	slotName := postgres.SlotName(r.cfg.Name)
	st, err := postgres.ReadSlot(ctx, src, slotName)
	if err != nil {
		return "", 0, release, err
	}
	var start uint64
	haveStart, err := r.store.Get(keyStreamStart, &start)
	if err != nil {
		return "", 0, release, err
	}
	if !st.Exists {
		if haveStart {
			return "", 0, release, permanent(fmt.Errorf("source: replication slot %s, created by an earlier run of this pipeline, no longer exists, so changes made since are lost: run `sluice drop` for this pipeline and start over (empty the sink tables first)", slotName))
		}
		if err := r.hit(fpBeforeSlot); err != nil {
			return "", 0, release, err
		}
		slot, err := postgres.CreateSlot(ctx, r.cfg.SourceDSN, slotName, false)
		if err != nil {
			return "", 0, release, err
		}
		if err := r.store.Put(keyStreamStart, uint64(slot.ConsistentPoint)); err != nil {
			slot.Close(ctx)
			return "", 0, release, err
		}
		r.log.Info("replication slot created", "slot", slotName, "consistent_point", slot.ConsistentPoint.String())
		if !copyPending {
			slot.Close(ctx)
			return "", slot.ConsistentPoint, release, nil
		}
		return slot.SnapshotID, slot.ConsistentPoint, func() { slot.Close(ctx) }, nil
	}
	if st.Plugin != "pgoutput" {
		return "", 0, release, fmt.Errorf("source: replication slot %s exists but uses plugin %q, not pgoutput: drop it or rename the pipeline", slotName, st.Plugin)
	}
	if !haveStart {
		// Crashed right after creating the slot: it has never been
		// acknowledged, so its confirmed position is its consistent point.
		if err := r.store.Put(keyStreamStart, uint64(st.ConfirmedFlush)); err != nil {
			return "", 0, release, err
		}
	}
	if !copyPending {
		return "", 0, release, nil
	}
	// Resuming an interrupted copy: the slot's own snapshot is gone. A
	// temporary slot gives a new snapshot with its exact consistent point;
	// changes up to it are replayed idempotently for the tables copied now.
	tmp, err := postgres.CreateSlot(ctx, r.cfg.SourceDSN, slotName+"_resume", true)
	if err != nil {
		return "", 0, release, err
	}
	r.log.Info("resuming the full copy at a new snapshot", "consistent_point", tmp.ConsistentPoint.String())
	return tmp.SnapshotID, tmp.ConsistentPoint, func() { tmp.Close(ctx) }, nil
}

// StreamStats describe the streaming phase of a run.
type StreamStats struct {
	Transactions int64
	Rows         int64
	Reconnects   int
	// SinkCommits counts sink transactions: fewer than Transactions when
	// source transactions were grouped.
	SinkCommits int64
	LastCommit  record.LSN
	LagSeconds  float64
	LagBytes    int64
}

// stream applies the slot's changes until ctx ends, or, with
// UntilCaughtUp, until every change committed before it started is
// applied. Connection failures reconnect with backoff and resume from the
// sink's position.
func (r *runner) stream(ctx context.Context, src *pgx.Conn, tables []*postgres.Table, sum *Summary) error {
	applyTables := map[uint32]*postgres.ApplyTable{}
	for _, t := range tables {
		if t.Partitioned {
			continue
		}
		lsn, err := r.copyLSN(tableKey(t.Name))
		if err != nil {
			return err
		}
		applyTables[t.OID] = &postgres.ApplyTable{Target: r.target(t.Name), Key: r.mapping.sinkKey(t), CopyLSN: lsn, Overwrite: r.cfg.IgnoreConflictingTables}
	}
	r.ddl = r.newDDLRun(tables, applyTables)
	defer r.ddl.close(ctx)
	var start uint64
	if _, err := r.store.Get(keyStreamStart, &start); err != nil {
		return err
	}
	if err := r.setPhase(checkpoint.PhaseStream); err != nil {
		return err
	}
	r.backfill = newBackfiller(r, tables)

	hbCtx, stopHeartbeat := context.WithCancel(ctx)
	defer stopHeartbeat()
	var target record.LSN
	if r.cfg.UntilCaughtUp {
		lsn, err := postgres.Heartbeat(ctx, src, r.cfg.Name)
		if err != nil {
			return err
		}
		target = lsn
		r.log.Info("streaming until caught up", "target", target.String())
	}
	go r.heartbeat(hbCtx)
	go r.sequenceLoop(hbCtx, tables)

	// Errors end the session; Run's retry loop reconnects (connection
	// errors) or retries (others) within their windows and resumes from the
	// sink's position.
	caughtUp, _, err := r.streamOnce(ctx, applyTables, record.LSN(start), target, sum)
	if err != nil {
		return err
	}
	if !caughtUp {
		return ctx.Err()
	}
	return nil
}

// heartbeat writes the pipeline's heartbeat row at the source on an
// interval, reconnecting as needed; failures are logged, not fatal.
func (r *runner) heartbeat(ctx context.Context) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	tick := time.NewTicker(r.cfg.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if conn == nil || conn.IsClosed() {
			c, err := postgres.Connect(ctx, r.cfg.SourceDSN, "source")
			if err != nil {
				r.log.Debug("heartbeat: cannot connect to the source", "error", err)
				continue
			}
			conn = c
		}
		if _, err := postgres.Heartbeat(ctx, conn, r.cfg.Name); err != nil && ctx.Err() == nil {
			r.log.Debug("heartbeat failed", "error", err)
			conn.Close(context.WithoutCancel(ctx))
			conn = nil
		}
	}
}

// streamOnce runs one streaming session: connect, check the positions,
// apply until an error, ctx's end, or the target is reached.
func (r *runner) streamOnce(ctx context.Context, tables map[uint32]*postgres.ApplyTable, start, target record.LSN, sum *Summary) (caughtUp, progressed bool, err error) {
	// The sink's applier, the source's slot check and the replication
	// connection open at once: each is a connection of its own.
	slotName := postgres.SlotName(r.cfg.Name)
	var (
		wg      sync.WaitGroup
		st      postgres.SlotState
		srcErr  error
		repl    *pgconn.PgConn
		replErr error
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		st, srcErr = r.readSlotAndLack(ctx, slotName)
	}()
	go func() {
		defer wg.Done()
		repl, replErr = postgres.DialStream(ctx, r.cfg.SourceDSN)
	}()
	applier, err := postgres.OpenApplier(ctx, r.cfg.SinkDSN, r.cfg.Name, tables, r.log)
	var applied, end record.LSN
	if err == nil {
		defer applier.Close(ctx)
		applied, end, err = applier.Position(ctx)
	}
	wg.Wait()
	if err == nil {
		err = srcErr
	}
	if err == nil {
		err = replErr
	}
	if err != nil {
		if repl != nil {
			repl.Close(context.WithoutCancel(ctx))
		}
		return false, false, err
	}
	if end == 0 {
		end = start
	}
	if r.backfill != nil {
		applier.SetMayLack(r.backfill.lack.has)
	}
	if !st.Exists {
		repl.Close(context.WithoutCancel(ctx))
		return false, false, permanent(fmt.Errorf("source: replication slot %s no longer exists: changes since %s are lost; run `sluice drop` and start over", slotName, end))
	}
	if st.ConfirmedFlush > end {
		repl.Close(context.WithoutCancel(ctx))
		return false, false, permanent(fmt.Errorf("source: replication slot %s has confirmed %s but the sink has only applied up to %s: the changes in between are gone (was the slot used by another consumer, or the sink restored from an older backup?); run `sluice drop` and start over", slotName, st.ConfirmedFlush, end))
	}
	if sum.Stream.LastCommit == 0 {
		sum.Stream.LastCommit = applied
	}
	r.mon.streamStarted()
	r.mon.streamStats(sum.Stream)
	if target != 0 && applied >= target {
		repl.Close(context.WithoutCancel(ctx))
		return true, false, nil
	}
	stream, err := postgres.StartStreamOn(ctx, repl, slotName, slotName, end, postgres.StreamOptions{StatusInterval: r.cfg.StatusInterval})
	if err != nil {
		return false, false, err
	}
	defer stream.Close(ctx)
	r.log.Info("streaming", "slot", slotName, "from", end.String(), "applied", applied.String())

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Up to 64 slices of at most 512 events in flight (63 queued, one in
	// the throttle's hands): enough for the receiver to run ahead while
	// the sink works, and bounded.
	received := make(chan []postgres.Event, 63)
	errc := make(chan error, 1)
	// The streaming throttle sits between receiver and applier: each
	// slice's row changes and bytes are paid for before the applier gets
	// it (the receiver, held back, stops reading the slot), while the
	// applier works on the slice before.
	costSkipping, startApplied := false, applied
	events := throttle.Forward(sctx, r.cfg.Throttle.Phase(throttle.PhaseIncremental), received, 0, func(evs []postgres.Event) (rows, bytes int64) {
		rows, bytes, costSkipping = changeCost(evs, costSkipping, startApplied)
		return rows, bytes
	})
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		errc <- stream.Run(sctx, received)
	}()
	// Stop the receiver and wait for it before the deferred stream.Close,
	// so the connection is never closed under a running receive.
	defer func() { cancel(); <-runDone }()
	defer r.backfill.start(sctx)()

	var (
		skipping   bool
		inTxn      bool            // between a Begin and its Commit
		pending    *postgres.Event // last commit not yet committed at the sink
		groupStart time.Time
		groupTxns  int
		lastLog    = time.Now()
		lastCommit time.Time
		// The open group's row changes and bytes per source table, for
		// metrics.
		groupRows = map[string]*[2]int64{}
	)
	commitGroup := func() error {
		if pending == nil {
			return nil
		}
		if err := applier.Commit(ctx, pending.CommitLSN, pending.EndLSN); err != nil {
			return err
		}
		if err := r.hit(fpStreamAfterCommit); err != nil {
			return err
		}
		if err := r.store.SetPosition(uint64(pending.EndLSN)); err != nil {
			return err
		}
		if err := r.hit(fpStreamAfterCheckpoint); err != nil {
			return err
		}
		stream.SetFlushed(pending.EndLSN)
		r.backfill.committed()
		r.progressMarks.Add(1)
		applied = pending.CommitLSN
		lastCommit = pending.CommitTime
		sum.Stream.Transactions += int64(groupTxns)
		sum.Stream.SinkCommits++
		sum.Stream.LastCommit = applied
		sum.Stream.Rows = applier.Rows
		var rows int64
		for table, n := range groupRows {
			r.metrics.AddRows(metrics.PhaseIncremental, table, n[0], n[1])
			rows += n[0]
		}
		r.metrics.Applied(int64(groupTxns), rows, time.Since(groupStart))
		r.mon.applied(sum.Stream, lastCommit)
		clear(groupRows)
		progressed = true
		pending, groupTxns = nil, 0
		return nil
	}
	groupDue := func() bool {
		return time.Since(groupStart) >= r.cfg.MaxGroupDelay || groupTxns >= r.cfg.MaxGroupTxns || r.ddl.commitDue()
	}
	report := func() {
		lag := 0.0
		if !lastCommit.IsZero() {
			lag = time.Since(lastCommit).Seconds()
		}
		lagBytes := int64(stream.ServerWALEnd()) - int64(stream.Flushed())
		sum.Stream.LagSeconds, sum.Stream.LagBytes = lag, max(lagBytes, 0)
		sum.Stream.Rows = applier.Rows
		r.mon.streamStats(sum.Stream)
		if r.cfg.Terminal && r.cfg.Progress != nil {
			fmt.Fprintf(r.cfg.Progress, "\r\x1b[2Kstream %s: applied %s, %d transactions, %s row changes, lag %.1fs / %s",
				r.cfg.Name, applied, sum.Stream.Transactions, display.Count(applier.Rows), lag, display.Bytes(sum.Stream.LagBytes))
		}
		if time.Since(lastLog) >= r.cfg.ProgressInterval {
			lastLog = time.Now()
			r.log.Info("stream progress", "applied", applied.String(), "transactions", sum.Stream.Transactions,
				"rows", applier.Rows, "lag_seconds", fmt.Sprintf("%.1f", lag), "lag_bytes", sum.Stream.LagBytes)
		}
	}
	fail := func(err error) (bool, bool, error) {
		applier.Rollback(ctx)
		return false, progressed, err
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var evs []postgres.Event
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case err := <-errc:
			return fail(err)
		case <-tick.C:
			report()
			continue
		case evs = <-events:
		}
		var hows []how // with transform stages: what the sink does with each change
		var stageErr error
		var win *stageWindow
		if !r.chain.empty() {
			// On an error evs holds the transactions before the failing one.
			win = &stageWindow{raw: evs}
			evs, hows, stageErr = r.stageNext(ctx, win, skipping, applied)
		}
		evs, hows, stageErr = r.whereStop(ctx, evs, hows, stageErr, skipping, applied)
		for i := 0; ; i++ {
			if i == len(evs) {
				// Staging stopped after a change that may change the
				// stages (DDL, a table joining): stage the rest now.
				if win == nil || stageErr != nil || win.done() {
					break
				}
				evs, hows, stageErr = r.stageNext(ctx, win, skipping, applied)
				evs, hows, stageErr = r.whereStop(ctx, evs, hows, stageErr, skipping, applied)
				i = -1
				continue
			}
			ev := &evs[i]
			switch ev.Kind {
			case postgres.EventBegin:
				// After a source crash the slot may resend transactions the
				// sink already has: skip them by commit position.
				skipping = ev.CommitLSN <= applied
				if skipping {
					continue
				}
				// A group is committed only between source transactions,
				// never with part of the next one in it.
				if pending != nil && groupDue() {
					if err := commitGroup(); err != nil {
						return fail(err)
					}
					if target != 0 && applied >= target {
						report()
						return true, true, nil
					}
				}
				if pending == nil {
					groupStart = time.Now()
				}
				inTxn = true
				r.mon.received(ev.CommitTime)
			case postgres.EventChange:
				if skipping {
					r.backfill.seen(ev)
					continue
				}
				if own, err := r.backfill.change(ctx, applier, ev); own || err != nil {
					if err != nil {
						return fail(err)
					}
					continue
				}
				// DDL events, and changes of tables the DDL has yet to bring.
				epoch := r.stageEpoch()
				done, err := r.ddl.change(ctx, applier, &ev.Record, ev.CommitLSN)
				if err != nil {
					return fail(err)
				}
				if win != nil && !done && r.stageEpoch() != epoch {
					// Its table joined: it was staged without the table's
					// options (where, operations) and stages; again.
					evs, hows, stageErr = r.restage(ctx, win, i, len(evs), skipping, applied)
					evs, hows, stageErr = r.whereStop(ctx, evs, hows, stageErr, skipping, applied)
					i = -1
					continue
				}
				if done {
					continue
				}
				if hows != nil {
					err = r.applyItem(ctx, applier, &ev.Record, hows[i], ev.CommitLSN)
				} else {
					err = r.applyChange(ctx, applier, &ev.Record, ev.CommitLSN)
				}
				if err != nil {
					return fail(err)
				}
				if ev.Record.Rel.Table != postgres.HeartbeatTable {
					n := groupRows[ev.Record.Rel.Table.String()]
					if n == nil {
						n = new([2]int64)
						groupRows[ev.Record.Rel.Table.String()] = n
					}
					n[0]++
					n[1] += changeBytes(&ev.Record)
				}
				if err := r.hit(fpStreamChange); err != nil {
					return fail(err)
				}
			case postgres.EventTruncate:
				if skipping {
					r.backfill.seen(ev) // as a skipped change is
					continue
				}
				r.backfill.truncate(ev)
				rels, err := r.ddl.truncated(ctx, applier, r.truncated(ev.Truncated), ev.CommitLSN)
				if err != nil {
					return fail(err)
				}
				if err := applier.Truncate(ctx, rels, ev.RestartIdentity, ev.CommitLSN); err != nil {
					return fail(err)
				}
			case postgres.EventCommit:
				if skipping {
					continue
				}
				pending = ev
				groupTxns++
				inTxn = false
			}
		}
		if stageErr != nil {
			// Park at the failing transaction: what came before it is
			// committed, so the error names where the pipeline stands.
			if pending != nil && !inTxn {
				if err := commitGroup(); err != nil {
					return fail(err)
				}
			}
			return fail(stageErr)
		}
		if pending != nil && !inTxn && (len(received)+len(events) == 0 || groupDue()) {
			if err := commitGroup(); err != nil {
				return fail(err)
			}
			if target != 0 && applied >= target {
				report()
				return true, true, nil
			}
		}
	}
}

// changeCost counts the row changes in evs that will be applied (not
// skipped as already applied, not the heartbeat) and their bytes, for the
// throttle. skipping is the state at the start of evs; the state at its
// end is returned.
func changeCost(evs []postgres.Event, skipping bool, applied record.LSN) (rows, bytes int64, skippingAfter bool) {
	for i := range evs {
		ev := &evs[i]
		switch ev.Kind {
		case postgres.EventBegin:
			skipping = ev.CommitLSN <= applied
		case postgres.EventChange:
			if skipping || ev.Record.Rel.Table == postgres.HeartbeatTable {
				continue
			}
			rows++
			bytes += changeBytes(&ev.Record)
		}
	}
	return rows, bytes, skipping
}

// changeBytes is the size of a change's values, new and old.
func changeBytes(rec *record.Record) int64 {
	var n int64
	for _, v := range rec.New {
		n += int64(len(v.Data))
	}
	for _, v := range rec.Old {
		n += int64(len(v.Data))
	}
	return n
}

// applyChange applies one streamed change as the pipeline's options say:
// dropped when its table's operations leave it out, decided by the
// table's row filter (where.Filter.Change), then mapped to the sink's
// names and columns.
func (r *runner) applyChange(ctx context.Context, applier *postgres.Applier, rec *record.Record, commitLSN record.LSN) error {
	if rec.Rel == nil || rec.Rel.Table == postgres.HeartbeatTable {
		return applier.Apply(ctx, rec, commitLSN)
	}
	it, ok, err := r.whereChange(ctx, rec, commitLSN)
	if !ok {
		return err
	}
	return r.applyItem(ctx, applier, &it.rec, it.how, commitLSN)
}

// filledNew is an UPDATE's new row with the values the source did not send
// again (unchanged TOASTed values) taken from its old row where that has
// them.
func filledNew(rec *record.Record) []record.Value {
	out := rec.New
	for i, v := range rec.New {
		if v.Unchanged && i < len(rec.Old) && !rec.Old[i].Unchanged {
			if &out[0] == &rec.New[0] {
				out = append([]record.Value(nil), rec.New...)
			}
			out[i] = rec.Old[i]
		}
	}
	return out
}

// truncated leaves out of a TRUNCATE the tables whose operations do not
// include truncate.
func (r *runner) truncated(rels []*record.Relation) []*record.Relation {
	out := rels[:0:0]
	for _, rel := range rels {
		if o := r.mapping.opts[rel.ID]; o != nil && o.ops&opTruncate == 0 {
			continue
		}
		out = append(out, rel)
	}
	return out
}

// readSlotAndLack reads the slot's state and loads the relations that
// pending backfill requests may leave the sink lacking rows of, on a
// source connection of its own.
func (r *runner) readSlotAndLack(ctx context.Context, slotName string) (postgres.SlotState, error) {
	src, err := postgres.Connect(ctx, r.cfg.SourceDSN, "source")
	if err != nil {
		return postgres.SlotState{}, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	st, err := postgres.ReadSlot(ctx, src, slotName)
	if err == nil && r.backfill != nil {
		err = r.backfill.lack.load(ctx, src, r.cfg.Name)
	}
	return st, err
}
