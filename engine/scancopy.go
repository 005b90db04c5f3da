package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/sluicehq/sluice/engine/throttle"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// DefaultSharedScanMaxBytes is the default Config.SharedScanMaxBytes: the
// largest table copied by one shared sequential scan (postgres.MethodScan)
// rather than in key or block ranges. Such a table restarts whole when a
// copy is interrupted: above this size, ranges that resume one by one are
// worth their dearer reads.
const DefaultSharedScanMaxBytes = 4 << 30

// sharedScanFits reports whether a table planned in chunks is better
// read by one shared sequential scan: it pays when several workers would
// read the table, its rows pass through unchanged (raw), and a restart of
// the whole table is cheap and allowed.
func (r *runner) sharedScanFits(job copyJob, chunks int) bool {
	if r.cfg.Parallel < 2 || chunks < 2 || r.cfg.IgnoreConflictingTables || r.cfg.SharedScanMaxBytes < 0 || job.table.Bytes > r.cfg.SharedScanMaxBytes {
		return false
	}
	_, _, raw := r.rawColumns(job)
	return raw
}

// sharedScan is one sequential read of a table (postgres.ReadScanRaw)
// whose batches the workers copying its shares take from one channel,
// each into a COPY of its own: the first share to start runs the read on
// its worker's source connection.
type sharedScan struct {
	start   sync.Once
	ctx     context.Context
	cancel  context.CancelCauseFunc // a share's failure stops the read
	batches chan postgres.RawBatch
	done    chan struct{} // closed when the read has ended, err set
	err     error
}

func newSharedScan(workers int) *sharedScan {
	return &sharedScan{batches: make(chan postgres.RawBatch, 2*workers), done: make(chan struct{})}
}

// copyShare copies one share of a table read by a shared scan and commits
// it as the share's chunk: the batches it takes until it holds its
// chunk's estimated rows (the last share: until the scan ends), so the
// sink's transactions stay chunk-sized and commit as the copy goes.
//
// The first share to start runs the read on its worker's source
// connection and returns the channel closed when the read ends
// (readDone): the worker may copy further shares of the same scan
// meanwhile, but must not use that connection for anything else (nor
// close it) before.
func (r *runner) copyShare(ctx context.Context, rd *postgres.Reader, wr *postgres.Writer, job copyJob, srcCols, dstCols []string) (readDone <-chan struct{}, err error) {
	s := job.share
	table := job.table.Name.String()
	s.start.Do(func() {
		readDone = s.done
		s.ctx, s.cancel = context.WithCancelCause(ctx)
		lim := r.cfg.Throttle.Phase(throttle.PhaseFull)
		send := r.rawSender(s.ctx, job, s.batches)
		go func() {
			err := lim.Query(s.ctx)
			if err == nil {
				// Batches no bigger than a share, so that shares come
				// out about their chunk's size.
				lim := postgres.DefaultBatchLimits
				lim.Rows = int(min(int64(lim.Rows), job.chunk.EstRows))
				err = rd.ReadScanRaw(s.ctx, job.table, srcCols, lim, send)
			}
			s.err = err
			close(s.batches)
			close(s.done)
		}()
	})
	errc := make(chan error, 1)
	go func() { <-s.done; errc <- s.err }()
	quota := job.chunk.EstRows
	if job.chunk.ID == len(job.plan.Chunks)-1 {
		quota = 0
	}
	rows, size, err := wr.CopyShareRaw(s.ctx, r.target(job.table.Name), dstCols, job.key, job.chunk.ID, quota, s.batches, errc)
	if err != nil {
		s.cancel(err) // the read and the other shares stop
		return readDone, fmt.Errorf("copy %s %s: %w", job.table.Name, chunkText(job.plan, job.chunk), err)
	}
	r.log.Debug("share of a shared scan copied", "table", table, "share", job.chunk.ID, "rows", rows)
	return readDone, r.chunkCommitted(job, rows, size)
}
