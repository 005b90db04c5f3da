package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/engine/throttle"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// BackfillOptions say what to backfill.
type BackfillOptions struct {
	// Table is the source table; Where an optional SQL condition over its
	// columns, ANDed with the object's where.
	Table record.TableName
	Where string
	// ChunkRows is the rows per chunk (default DefaultBackfillChunkRows).
	ChunkRows int
	// Progress, when set, is called after each chunk the sink committed.
	Progress func(BackfillStatus)
	// Poll is how often a waiting backfill looks at its progress
	// (default 500ms).
	Poll time.Duration
}

// BackfillStatus is a backfill's progress as the sink committed it.
type BackfillStatus struct {
	Request int64
	Chunks  int
	Rows    int64
	Done    bool
}

// BackfillResult reports a finished backfill.
type BackfillResult struct {
	Pipeline string
	Request  int64
	Table    string
	Where    string
	// Resumed is set when an unfinished earlier request was continued.
	Resumed bool
	Chunks  int
	Rows    int64
	// Runner says who executed it: "live run (pid N)", "this process
	// (streaming)" or "this process (copy only)".
	Runner   string
	Duration time.Duration
}

// Backfill copies the matching source rows of one of the pipeline's
// tables into the sink again, upserting, and returns when they are all
// committed. For a streaming pipeline it records a request at the source
// that the pipeline's streaming process executes with watermarks (see
// backfill.go); when no run of the pipeline is live it runs the pipeline
// itself until the request is done. For a copy-only pipeline it copies
// the rows directly. An interrupted backfill run again with the same
// table and condition resumes where it stopped.
func Backfill(ctx context.Context, cfg Config, opts BackfillOptions) (*BackfillResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if opts.ChunkRows <= 0 {
		opts.ChunkRows = DefaultBackfillChunkRows
	}
	if opts.Poll <= 0 {
		opts.Poll = 500 * time.Millisecond
	}
	start := time.Now()
	src, dst, closeBoth, err := postgres.ConnectBoth(ctx, cfg.SourceDSN, cfg.SinkDSN)
	if err != nil {
		return nil, err
	}
	defer closeBoth()

	r := &runner{cfg: cfg, log: cfg.Log, target: postgres.SameName}
	tables, err := postgres.Discover(ctx, src, cfg.Objects)
	if err != nil {
		return nil, err
	}
	if r.mapping, err = resolveMapping(ctx, src, &r.cfg, tables); err != nil {
		return nil, err
	}
	r.target = r.mapping.rules.Table
	if !cfg.Incremental {
		// The direct path writes rows itself: through the same stages as
		// the full copy. (Streaming backfills run in the pipeline's own
		// run, which has built its chain.)
		if r.chain, err = newTransformChain(ctx, src, &r.cfg, tables, true); err != nil {
			return nil, err
		}
		defer r.chain.Close()
	}
	byName := map[string]*postgres.Table{}
	for _, t := range tables {
		byName[t.Name.Quoted()] = t
	}
	name := opts.Table.Quoted()
	parts, err := r.backfillParts(ctx, src, byName, name, opts.Where)
	if err != nil {
		return nil, err
	}
	res := &BackfillResult{Pipeline: cfg.Name, Table: opts.Table.String(), Where: opts.Where}
	if !cfg.Incremental {
		err = r.backfillDirect(ctx, src, dst, name, parts, opts, res)
	} else {
		err = r.backfillStreaming(ctx, src, dst, opts, res)
	}
	res.Duration = time.Since(start)
	if err != nil {
		return res, err
	}
	return res, nil
}

// backfillStreaming records (or finds) the request and waits for it: done
// by the live run, or by a run of the pipeline started here.
func (r *runner) backfillStreaming(ctx context.Context, src, dst *pgx.Conn, opts BackfillOptions, res *BackfillResult) error {
	if err := postgres.EnsureBackfillSource(ctx, src); err != nil {
		return err
	}
	name := opts.Table.Quoted()
	req, resumed, err := postgres.RequestBackfill(ctx, src, r.cfg.Name, name, opts.Where, opts.ChunkRows)
	if err != nil {
		return err
	}
	res.Request, res.Resumed = req.ID, resumed
	log := r.log.With("request", req.ID, "table", res.Table)
	if resumed {
		log.Info("resuming an unfinished backfill request")
	}

	var (
		livePID int
		runDone chan error
		stopRun = func() {}
		last    = -1
	)
	defer func() { stopRun() }()
	tick := time.NewTicker(opts.Poll)
	defer tick.Stop()
	for {
		if runDone == nil && (livePID == 0 || !processAlive(livePID)) {
			pid, err := liveRun(ctx, r.cfg.StateDir)
			if err != nil {
				return err
			}
			if pid != 0 {
				if pid != livePID {
					log.Info("the pipeline is running; it executes the backfill", "pid", pid)
				}
				livePID = pid
				res.Runner = fmt.Sprintf("live run (pid %d)", pid)
			} else {
				livePID = 0
				log.Info("no run of the pipeline is live: running it here until the backfill is done")
				res.Runner = "this process (streaming)"
				runCtx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				cfg := r.cfg
				cfg.Progress, cfg.Terminal, cfg.UntilCaughtUp = nil, false, false
				go func() {
					_, err := Run(runCtx, cfg)
					done <- err
				}()
				runDone = done
				stopRun = func() {
					cancel()
					<-done
				}
			}
		}
		st, err := postgres.ReadBackfillRequest(ctx, src, req.ID)
		if err != nil {
			return err
		}
		chunks, rows, err := postgres.ReadBackfillTotals(ctx, dst, r.cfg.Name, req.ID)
		if err != nil {
			return err
		}
		res.Chunks, res.Rows = chunks, rows
		if chunks != last && opts.Progress != nil {
			opts.Progress(BackfillStatus{Request: req.ID, Chunks: chunks, Rows: rows, Done: st.Status == postgres.BackfillDone})
		}
		last = chunks
		switch st.Status {
		case postgres.BackfillDone:
			return nil
		case postgres.BackfillFailed:
			return permanent(fmt.Errorf("backfill %d of %s failed: %s", req.ID, res.Table, st.Error))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-runDone:
			stopRun = func() {}
			if err == nil {
				return fmt.Errorf("the pipeline's run ended before backfill %d was done: run the same command again to resume", req.ID)
			}
			return fmt.Errorf("backfill %d: the pipeline's run stopped: %w (run the same command again to resume)", req.ID, err)
		case <-tick.C:
		}
	}
}

// liveRun returns the pid of the live run holding the pipeline's state
// dir, or 0 when none does.
func liveRun(ctx context.Context, dir string) (int, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	store, err := checkpoint.Open(ctx, dir, nil)
	var inUse *checkpoint.InUseError
	switch {
	case errors.As(err, &inUse):
		if inUse.PID <= 0 {
			return -1, nil
		}
		return inUse.PID, nil
	case err != nil:
		return 0, err
	}
	return 0, store.Close()
}

// Key of a copy-only backfill request in the state dir.
const keyBackfillRequest = "v1/backfill/request/"

type directRequest struct {
	ID   int64
	Done bool
}

// backfillDirect backfills a table of a copy-only pipeline: nothing
// streams, so chunks are read and upserted directly, each chunk with its
// progress row in one sink transaction. The state dir's lock keeps a run
// of the pipeline out meanwhile.
func (r *runner) backfillDirect(ctx context.Context, src, dst *pgx.Conn, name string, parts []backfillPart, opts BackfillOptions, res *BackfillResult) error {
	store, err := checkpoint.Open(ctx, r.cfg.StateDir, r.cfg.Log)
	var inUse *checkpoint.InUseError
	if errors.As(err, &inUse) {
		return fmt.Errorf("pipeline %s is running (%v): a copy-only pipeline is backfilled while no run is live; wait for it to end", r.cfg.Name, err)
	}
	if err != nil {
		return err
	}
	defer store.Close()
	res.Runner = "this process (copy only)"
	key := keyBackfillRequest + checkpoint.KeyPart(name+"\x00"+opts.Where)
	var req directRequest
	found, err := store.Get(key, &req)
	if err != nil {
		return err
	}
	if found && !req.Done {
		res.Resumed = true
	} else {
		req = directRequest{ID: time.Now().UnixNano()}
		if err := store.Put(key, req); err != nil {
			return err
		}
	}
	res.Request = req.ID
	if err := postgres.EnsureSinkState(ctx, dst); err != nil {
		return err
	}
	apply := map[uint32]*postgres.ApplyTable{}
	for _, p := range parts {
		apply[p.table.OID] = &postgres.ApplyTable{Target: r.target(p.table.Name), Key: r.mapping.sinkKey(p.table)}
	}
	applier, err := postgres.OpenApplier(ctx, r.cfg.SinkDSN, r.cfg.Name, apply, r.log)
	if err != nil {
		return err
	}
	defer applier.Close(ctx)
	for _, p := range parts {
		if err := r.backfillDirectPart(ctx, src, dst, applier, req.ID, p, opts, res); err != nil {
			return err
		}
	}
	req.Done = true
	return store.Put(key, req)
}

func (r *runner) backfillDirectPart(ctx context.Context, src, dst *pgx.Conn, applier *postgres.Applier, id int64, p backfillPart, opts BackfillOptions, res *BackfillResult) error {
	t := p.table
	name := t.Name.Quoted()
	prog, err := postgres.ReadBackfillProgress(ctx, dst, r.cfg.Name, id, name)
	if err != nil {
		return err
	}
	res.Chunks += prog.Chunks
	res.Rows += prog.Rows
	rel := t.Relation()
	lim := r.cfg.Throttle.Phase(throttle.PhaseFull)
	for !prog.Done {
		if err := lim.Query(ctx); err != nil {
			return err
		}
		kc, err := postgres.ReadKeyset(ctx, src, t, rel, p.filter, prog.LastKey, opts.ChunkRows)
		if err != nil {
			return err
		}
		if err := lim.Wait(ctx, int64(len(kc.Rows)), kc.Bytes); err != nil {
			return err
		}
		rows := make([]*record.Record, len(kc.Rows))
		for i := range kc.Rows {
			rows[i] = &kc.Rows[i]
		}
		next := prog
		next.Chunks++
		next.Rows += int64(len(rows))
		if kc.Last != nil {
			next.LastKey = kc.Last
		}
		next.Done = len(kc.Rows) < opts.ChunkRows
		if err := r.backfillApply(ctx, applier, rows, 0); err != nil {
			applier.Rollback(ctx)
			return err
		}
		if err := applier.QueueBackfillProgress(ctx, next); err != nil {
			applier.Rollback(ctx)
			return err
		}
		if err := r.hit(fpBackfillChunk); err != nil {
			applier.Rollback(ctx)
			return err
		}
		if err := applier.CommitBackfill(ctx); err != nil {
			applier.Rollback(ctx)
			return fmt.Errorf("backfill %s chunk %d: %w", name, next.Chunks, err)
		}
		res.Chunks++
		res.Rows += next.Rows - prog.Rows
		prog = next
		r.log.Info("backfill chunk done", "table", name, "chunk", prog.Chunks, "rows", prog.Rows)
		if opts.Progress != nil {
			opts.Progress(BackfillStatus{Request: id, Chunks: res.Chunks, Rows: res.Rows, Done: false})
		}
	}
	return nil
}
