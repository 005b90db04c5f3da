package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine/metrics"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/engine/throttle"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// Crash points of the full copy (see package failpoint).
const (
	fpChunkBatch           = "copy.chunk.batch"            // inside a COPY, after a batch was read
	fpChunkAfterCommit     = "copy.chunk.after_commit"     // sink committed, checkpoint not yet written
	fpChunkAfterCheckpoint = "copy.chunk.after_checkpoint" // checkpoint written
)

// copyJob is one chunk to copy.
type copyJob struct {
	table *postgres.Table
	// rel is the table's relation, one per table: the mapping caches its
	// sink relation by this pointer.
	rel   *record.Relation
	key   string
	plan  *postgres.Plan
	chunk postgres.Chunk
	prog  *tableProgress
	// share is the table's shared scan when its plan is MethodScan.
	share *sharedScan
}

// estBytes estimates the chunk's size from its table's size and rows.
func (j copyJob) estBytes() int64 {
	if j.table.EstRows > 0 && j.table.Bytes > 0 {
		// In floating point: bytes per row rounds to 0 in integers when
		// the table is smaller than its estimated row count says.
		return int64(float64(j.table.Bytes) * float64(j.chunk.EstRows) / float64(j.table.EstRows))
	}
	return j.chunk.EstRows * 100
}

// everyTableCopied reports whether every table holding rows (not a
// partitioned parent) had chunks copied in this run (jobs by table OID).
func everyTableCopied(tables []*postgres.Table, jobs map[uint32]int) bool {
	for _, t := range tables {
		if !t.Partitioned && jobs[t.OID] == 0 {
			return false
		}
	}
	return true
}

// estimatedChunks is how many chunks a fresh plan of tables would have
// (postgres.ChunkCount), partitioned parents left out: no query needed.
func estimatedChunks(tables []*postgres.Table, chunkRows int64) int {
	n := 0
	for _, t := range tables {
		if !t.Partitioned {
			c, _ := postgres.ChunkCount(t, chunkRows)
			n += c
		}
	}
	return max(1, n)
}

// tinyTableBytes is the largest table (in one chunk) copied before the
// others: a few MB take moments to copy and its key moments to build.
const tinyTableBytes = 8 << 20

// fullCopy copies every selected table at one snapshot. Chunks already
// committed at the sink by an earlier run are skipped.
//
// snapshotID, when set, is a replication slot's exported snapshot to read
// at, and copyLSN its consistent point; it is recorded for every table with
// chunks copied in this run, so streaming knows which changes the copied
// rows already hold.
//
// lastChunks, when not nil, is called (on this goroutine, with src and dst
// free) once every chunk has been handed to a worker, while the last ones
// copy and before the last primary keys are built.
func (r *runner) fullCopy(ctx context.Context, src, dst *pgx.Conn, tables []*postgres.Table, snapshotID string, copyLSN record.LSN, sum *Summary, lastChunks func()) error {
	r.keysBuilt = false
	if err := postgres.EnsureSinkState(ctx, dst); err != nil {
		return err
	}
	sinkDone, err := postgres.DoneChunks(ctx, dst, r.cfg.Name)
	if err != nil {
		return err
	}
	snap, err := postgres.ExportSnapshot(ctx, r.cfg.SourceDSN, tables, snapshotID)
	if err != nil {
		return err
	}
	defer snap.Close(ctx)
	r.log.Info("snapshot exported", "snapshot", snap.ID)
	if snapshotID != "" {
		// A slot's snapshot, taken after the tables were listed.
		if err := r.checkSnapshotTables(ctx, snap, tables); err != nil {
			return err
		}
	}
	// The workers connect while the copy is planned (deferred after
	// snap.Close, so closed before the exporting transaction ends): as
	// many as a fresh plan would have chunks, up to copy.parallel (a
	// resumed copy may use fewer; the rest close with the copy).
	cw := r.startCopyWorkers(ctx, snap.ID, min(r.cfg.Parallel, estimatedChunks(tables, r.cfg.ChunkRows)))
	defer cw.close(ctx)

	prog := newProgress(r.cfg)
	r.mon.setProgress(prog)
	var jobs []copyJob
	var conf conflicts
	planned := 0
	for _, t := range tables {
		if t.Partitioned {
			continue // rows live in the partitions
		}
		key := tableKey(t.Name)
		rel := t.Relation()
		plan, done, reset, err := r.tablePlan(ctx, src, dst, copyJob{table: t, rel: rel, key: key}, sinkDone[key])
		if err != nil {
			return err
		}
		if reset {
			sum.TablesReset++
		}
		if err := conf.check(ctx, r, dst, t, key, done); err != nil {
			return err
		}
		tp := prog.add(t.Name, plan, done)
		planned += len(plan.Chunks)
		if copyLSN != 0 && len(done) < len(plan.Chunks) {
			if err := r.setCopyLSN(key, copyLSN); err != nil {
				return err
			}
		}
		var share *sharedScan
		if plan.Method == postgres.MethodScan {
			share = newSharedScan(r.cfg.Parallel)
		}
		for _, c := range plan.Chunks {
			if _, ok := done[c.ID]; ok {
				sum.ChunksSkipped++
				continue
			}
			jobs = append(jobs, copyJob{table: t, rel: rel, key: key, plan: plan, chunk: c, prog: tp, share: share})
		}
	}
	if err := conf.err(); err != nil {
		return err
	}
	r.metrics.SetChunks(planned, planned-len(jobs))
	// Tiny tables first: their copies take moments, and their keys then
	// build at the start instead of in the copy's tail, and the post-data
	// dump (started when the last chunk is handed out) starts earlier.
	// Then the biggest table first, its chunks biggest first (by bytes: a
	// chunk of large TOASTed values takes longer than its rows say). The
	// biggest table is then done early and its primary key, the longest
	// build, is built while the smaller tables still copy, instead of alone
	// after the copy; and the last chunks to finish are small.
	tableBytes := map[uint32]int64{}
	tableJobs := map[uint32]int{}
	for _, j := range jobs {
		tableBytes[j.table.OID] += j.estBytes()
		tableJobs[j.table.OID]++
	}
	tiny := func(oid uint32) bool { return tableJobs[oid] == 1 && tableBytes[oid] <= tinyTableBytes }
	sort.SliceStable(jobs, func(i, j int) bool {
		a, b := jobs[i], jobs[j]
		if ta, tb := tiny(a.table.OID), tiny(b.table.OID); ta != tb {
			return ta
		}
		if ta, tb := tableBytes[a.table.OID], tableBytes[b.table.OID]; ta != tb {
			return ta > tb
		}
		if a.table.OID != b.table.OID {
			return a.table.OID < b.table.OID
		}
		return a.estBytes() > b.estBytes()
	})
	r.log.Info("full copy starting", "chunks", len(jobs), "already_copied", sum.ChunksSkipped, "workers", r.cfg.Parallel)

	var keys *keyBuilder // primary keys built as their tables are done (postkeys.go)
	if r.cfg.Schema {
		if keys, err = r.newKeyBuilder(ctx, src, dst, jobs); err != nil {
			return err
		}
	}
	progCtx, stopProgress := context.WithCancel(ctx)
	progDone := make(chan struct{})
	go func() { prog.run(progCtx, r.log); close(progDone) }()
	called := false
	once := func() {
		if !called && lastChunks != nil {
			called = true
			lastChunks()
		}
	}
	err = r.copyChunks(ctx, cw, jobs, sum, keys, once)
	if err == nil {
		once() // no chunk was left to copy
	}
	if kerr := keys.wait(err); err == nil {
		err = kerr
	}
	if err == nil && r.cfg.Schema {
		r.keysBuilt = everyTableCopied(tables, tableJobs)
	}
	stopProgress()
	<-progDone
	prog.finish()
	if err != nil {
		return err
	}
	sum.Rows, sum.Bytes = prog.totals()
	return nil
}

// tablePlan returns the table's chunk plan and its done chunks, reconciling
// the local checkpoint with the sink's progress rows (the sink wins: it
// commits the data and its progress row together).
//
// A new plan is a shared scan (postgres.MethodScan) of as many shares as
// the table has chunks when sharedScanFits (job names the table; no chunk
// yet).
func (r *runner) tablePlan(ctx context.Context, src, dst *pgx.Conn, job copyJob, sinkDone map[int]int64) (*postgres.Plan, map[int]checkpoint.ChunkDone, bool, error) {
	t, key := job.table, job.key
	saved, found, err := r.store.TablePlan(key)
	if err != nil {
		return nil, nil, false, err
	}
	reset, noScan := false, false
	if found {
		plan := fromSavedPlan(saved)
		done, err := r.store.DoneChunks(key)
		if err != nil {
			return nil, nil, false, err
		}
		for id, n := range sinkDone {
			if _, ok := done[id]; !ok {
				d := checkpoint.ChunkDone{Rows: n, At: time.Now().UTC()}
				if err := r.store.MarkChunkDone(key, id, d); err != nil {
					return nil, nil, false, err
				}
				done[id] = d
			}
		}
		for id := range done {
			if _, ok := sinkDone[id]; !ok {
				// The checkpoint says done but the sink has no such commit:
				// the sink was changed behind our back. Copy it again.
				delete(done, id)
			}
		}
		switch {
		case len(done) == len(plan.Chunks):
			return plan, done, false, nil
		case plan.Method == postgres.MethodScan:
			// A shared scan is tried once: a table whose scan did not
			// finish is copied in key or block ranges now, resumable
			// chunk by chunk, and a row the sink rejects is then named
			// with its chunk's range.
			noScan = true
			if len(done) > 0 {
				r.log.Warn("restarting the copy of a table read by one shared scan: which rows each writer's share held does not carry over to a new snapshot; it is copied in key or block ranges now", "table", t.Name.String(), "shares_done", len(done), "shares", len(plan.Chunks))
				reset = true
			}
		case plan.Method != postgres.MethodCTID:
			if !r.cfg.Incremental && len(done) > 0 {
				// Streaming would replay the changes since the first
				// snapshot; a copy-only pipeline has nothing to replay them.
				r.log.Warn("resuming a copy-only pipeline at a new snapshot: rows the source changed since the interrupted run may be stale in the chunks copied then, and a row whose key moved into one of them from a chunk not yet copied is missing; run `sluice verify` afterwards, or keep the source still (or use sync.incremental, which replays the changes) for an exact copy",
					"table", t.Name.String(), "chunks_done", len(done), "chunks", len(plan.Chunks))
			}
			return plan, done, false, nil
		case len(done) == 0:
			// A block-range plan belongs to the snapshot it was made in;
			// nothing is copied yet, so plan afresh below.
		default:
			r.log.Warn("restarting the copy of a table without a key: block ranges of the interrupted run do not carry over to a new snapshot", "table", t.Name.String(), "chunks_done", len(done))
			reset = true
		}
	} else if len(sinkDone) > 0 {
		// Progress at the sink but no plan locally: the state dir was lost.
		r.log.Warn("the sink holds rows of an earlier copy of this table but the state dir has no plan for it; copying it again from scratch", "table", t.Name.String())
		reset = true
	}
	if reset && r.cfg.IgnoreConflictingTables {
		return nil, nil, false, refuseReset(r.target(t.Name))
	}
	if reset {
		if err := postgres.ResetTable(ctx, dst, r.cfg.Name, key, r.target(t.Name)); err != nil {
			return nil, nil, false, err
		}
		if err := r.store.ResetTable(key); err != nil {
			return nil, nil, false, err
		}
	}
	// Planning may sample the table's keys: a query at the source.
	if err := r.cfg.Throttle.Phase(throttle.PhaseFull).Query(ctx); err != nil {
		return nil, nil, false, err
	}
	var plan *postgres.Plan
	if n, est := postgres.ChunkCount(t, r.cfg.ChunkRows); !noScan && r.sharedScanFits(job, n) {
		plan = postgres.ScanPlan(est, n) // no key sample needed
	} else if plan, err = postgres.PlanChunks(ctx, src, t, r.cfg.ChunkRows); err != nil {
		return nil, nil, false, err
	}
	if err := r.store.PutTablePlan(toSavedPlan(key, plan)); err != nil {
		return nil, nil, false, err
	}
	return plan, map[int]checkpoint.ChunkDone{}, reset, nil
}

func toSavedPlan(key string, p *postgres.Plan) *checkpoint.TablePlan {
	tp := &checkpoint.TablePlan{Table: key, Method: p.Method, KeyColumns: p.Key, PlannedAt: time.Now().UTC()}
	for _, c := range p.Chunks {
		tp.Chunks = append(tp.Chunks, checkpoint.Chunk{ID: c.ID, Lo: c.Lo, Hi: c.Hi, EstRows: c.EstRows})
	}
	return tp
}

func fromSavedPlan(tp *checkpoint.TablePlan) *postgres.Plan {
	p := &postgres.Plan{Method: tp.Method, Key: tp.KeyColumns}
	for _, c := range tp.Chunks {
		p.Chunks = append(p.Chunks, postgres.Chunk{ID: c.ID, Lo: c.Lo, Hi: c.Hi, EstRows: c.EstRows})
	}
	return p
}

// openCopyWorkers connects every worker's reader (importing the snapshot)
// and writer at once: each connection is a round trip or more (a server
// process forked, authentication, TLS), which in sequence would delay the
// copy's start by as many. On error the connections opened are left in
// readers and writers for the caller to close.
func (r *runner) openCopyWorkers(ctx context.Context, snapshotID string, readers []*postgres.Reader, writers []*postgres.Writer) error {
	errs := make([]error, 2*len(readers))
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			readers[i], errs[2*i] = postgres.OpenReader(ctx, r.cfg.SourceDSN, snapshotID)
		}()
		go func() {
			defer wg.Done()
			w, err := postgres.OpenWriter(ctx, r.cfg.SinkDSN, r.cfg.Name, r.log)
			if err != nil {
				errs[2*i+1] = err
				return
			}
			writers[i] = w
			if err := w.SetToastCompression(ctx, r.cfg.ToastCompression); err != nil {
				if !postgres.IsConnectionError(err) {
					err = permanent(err)
				}
				errs[2*i+1] = err
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err // the first in worker order: the same error each run
		}
	}
	return nil
}

// copyWorkers are the copy workers' connections: a reader inside the
// snapshot and a writer each, opened in the background while the copy is
// planned.
type copyWorkers struct {
	snapshotID string
	readers    []*postgres.Reader
	writers    []*postgres.Writer
	done       chan struct{} // closed once every connection is open or failed
	err        error
}

// startCopyWorkers starts opening n workers' connections. Every reader
// imports the snapshot before any work is handed out (copyChunks waits):
// it must be imported while the exporting transaction is open.
func (r *runner) startCopyWorkers(ctx context.Context, snapshotID string, n int) *copyWorkers {
	cw := &copyWorkers{snapshotID: snapshotID, readers: make([]*postgres.Reader, n), writers: make([]*postgres.Writer, n), done: make(chan struct{})}
	go func() {
		defer close(cw.done)
		cw.err = r.openCopyWorkers(ctx, snapshotID, cw.readers, cw.writers)
	}()
	return cw
}

// wait waits for the connections and returns the first error.
func (cw *copyWorkers) wait() error {
	<-cw.done
	return cw.err
}

// grow opens more workers, up to n in all, once the plan has more chunks
// than the estimate cw was started with (the exporting transaction is
// still open).
func (cw *copyWorkers) grow(ctx context.Context, r *runner, n int) error {
	if err := cw.wait(); err != nil || n <= len(cw.readers) {
		return err
	}
	more := n - len(cw.readers)
	readers, writers := make([]*postgres.Reader, more), make([]*postgres.Writer, more)
	err := r.openCopyWorkers(ctx, cw.snapshotID, readers, writers)
	cw.readers, cw.writers = append(cw.readers, readers...), append(cw.writers, writers...)
	return err
}

// close closes the connections once they are open (or failed); again, it
// does nothing.
func (cw *copyWorkers) close(ctx context.Context) {
	<-cw.done
	for i := range cw.readers {
		if cw.readers[i] != nil {
			cw.readers[i].Close(ctx)
			cw.readers[i] = nil
		}
		if cw.writers[i] != nil {
			cw.writers[i].Close(ctx)
			cw.writers[i] = nil
		}
	}
}

// copyChunks runs the jobs on Parallel workers, each with one source
// connection inside the snapshot and one sink connection. The first error
// stops every worker.
//
// handedOut is called once the last job is taken by a worker (on this
// goroutine), unless the copy is failing.
func (r *runner) copyChunks(ctx context.Context, cw *copyWorkers, jobs []copyJob, sum *Summary, keys *keyBuilder, handedOut func()) error {
	if len(jobs) == 0 {
		return nil
	}
	// Closed when the copy ends: the readers' snapshot no longer holds
	// back the source's vacuum while the last keys build.
	defer cw.close(ctx)
	if err := cw.grow(ctx, r, min(r.cfg.Parallel, len(jobs))); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	workers := min(len(cw.readers), len(jobs))
	queue := make(chan copyJob)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		cancel(err)
	}
	readers, writers := cw.readers[:workers], cw.writers[:workers]
	r.log.Debug("copy workers at work", "workers", workers, "chunks", len(jobs))
	defer r.capProcsForRelay(jobs, workers)()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(rd *postgres.Reader, wr *postgres.Writer) {
			defer wg.Done()
			// rdBusy: a shared scan this worker started still reads on rd
			// (reading is closed when it ends).
			var rdBusy <-chan struct{}
			var reading *sharedScan
			defer func() {
				if rdBusy != nil {
					<-rdBusy // rd is closed after the workers end
				}
			}()
			for job := range queue {
				if ctx.Err() != nil {
					continue
				}
				if rdBusy != nil && job.share != reading {
					<-rdBusy
					rdBusy, reading = nil, nil
				}
				var err error
				src, dst, raw := r.rawColumns(job)
				switch {
				case job.share != nil && !raw:
					err = fmt.Errorf("copy %s: its rows no longer pass through unchanged, which its shared-scan plan needs; run the pipeline again (the table is copied afresh)", job.table.Name)
				case job.share != nil:
					var done <-chan struct{}
					done, err = r.copyShare(ctx, rd, wr, job, src, dst)
					if done != nil {
						rdBusy, reading = done, job.share
					}
				case raw:
					err = r.copyOneRaw(ctx, rd, wr, job, src, dst)
				default:
					err = r.copyOne(ctx, rd, wr, job)
				}
				if err != nil {
					fail(err)
					continue
				}
				mu.Lock()
				sum.ChunksCopied++
				if raw {
					sum.ChunksRaw++
				}
				mu.Unlock()
				keys.chunkDone(job.table.OID)
			}
		}(readers[i], writers[i])
	}
	for _, j := range jobs {
		select {
		case queue <- j:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(queue)
	if ctx.Err() == nil {
		handedOut()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// copyOne copies one chunk: a reader goroutine streams batches into the
// sink's COPY; the sink commits the rows with the chunk's progress row;
// then the checkpoint records it.
//
// The full-copy throttle sits between reader and writer: the chunk's query
// takes a source-query token, and each batch waits for its rows and bytes
// before the writer gets it (the reader, held back, stops reading).
func (r *runner) copyOne(ctx context.Context, rd *postgres.Reader, wr *postgres.Writer, job copyJob) error {
	chunkCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan *record.Batch, 2)
	errc := make(chan error, 1)
	lim := r.cfg.Throttle.Phase(throttle.PhaseFull)
	table := job.table.Name.String()
	srcRel := job.rel
	mr := r.mapping.relation(srcRel)
	send := func(b *record.Batch) error {
		if err := r.hit(fpChunkBatch); err != nil {
			return err
		}
		if err := r.chain.applyBatch(chunkCtx, b); err != nil {
			return err
		}
		if mr.keep != nil { // dropped columns: line the values up with the sink's
			for i := range b.Records {
				b.Records[i].Rel = mr.rel
				b.Records[i].New = mr.project(b.Records[i].New)
			}
		}
		select {
		case batches <- b:
			job.prog.addRows(int64(len(b.Records)), b.Bytes)
			r.metrics.AddRows(metrics.PhaseFull, table, int64(len(b.Records)), b.Bytes)
			return nil
		case <-chunkCtx.Done():
			return chunkCtx.Err()
		}
	}
	go func() {
		err := lim.Query(chunkCtx)
		if err == nil {
			err = rd.ReadChunk(chunkCtx, job.table, job.plan, job.chunk, postgres.DefaultBatchLimits, throttle.Batches(chunkCtx, lim, send))
		}
		errc <- err
		close(batches)
	}()
	target := r.target(job.table.Name)
	format := record.Text
	if job.table.Binary {
		format = record.Binary
	}
	var rows, size int64
	var err error
	if r.merge[job.key] {
		rows, size, err = r.mergeChunk(chunkCtx, wr, target, mr.rel, format, job, batches, errc)
	} else {
		rows, size, err = wr.CopyChunk(chunkCtx, target, mr.rel, format, job.key, job.chunk.ID, batches, errc)
	}
	if err != nil {
		cancel()
		for range batches { // let the reader finish
		}
		return fmt.Errorf("copy %s %s: %w", job.table.Name, chunkText(job.plan, job.chunk), err)
	}
	return r.chunkCommitted(job, rows, size)
}

// chunkCommitted records a chunk the sink committed in the checkpoint and
// the progress figures.
func (r *runner) chunkCommitted(job copyJob, rows, size int64) error {
	if err := r.hit(fpChunkAfterCommit); err != nil {
		return err
	}
	if err := r.store.MarkChunkDone(job.key, job.chunk.ID, checkpoint.ChunkDone{Rows: rows, Bytes: size, At: time.Now().UTC()}); err != nil {
		return err
	}
	job.prog.chunkDone()
	r.metrics.ChunkDone()
	r.progressMarks.Add(1)
	return r.hit(fpChunkAfterCheckpoint)
}
