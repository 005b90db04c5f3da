package engine

import (
	"context"
	"fmt"
	"github.com/sluicehq/sluice/engine/metrics"
	"github.com/sluicehq/sluice/engine/throttle"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// rawColumns returns the source and sink column lists of a chunk that can
// be copied raw — the source's binary COPY stream passed to the sink's
// COPY unchanged — or ok false when its rows need work on the way: a
// transform stage, text format (user types whose binary form embeds
// OIDs), or a merge into a table that already holds rows. Dropped and
// renamed columns are fine: the source query selects the kept columns in
// the sink's order.
func (r *runner) rawColumns(job copyJob) (src, dst []string, ok bool) {
	t := job.table
	if !t.Binary || r.chain.has(t.OID) || r.merge[job.key] {
		return nil, nil, false
	}
	srcRel := job.rel
	mr := r.mapping.relation(srcRel)
	if len(mr.rel.Columns) == 0 {
		return nil, nil, false
	}
	src = make([]string, len(mr.rel.Columns))
	dst = make([]string, len(mr.rel.Columns))
	for i, c := range mr.rel.Columns {
		k := i
		if mr.keep != nil {
			k = mr.keep[i]
		}
		if k >= len(srcRel.Columns) {
			return nil, nil, false
		}
		src[i] = srcRel.Columns[k].Name
		dst[i] = c.Name
	}
	return src, dst, true
}

// copyOneRaw is copyOne for a chunk copied raw: the reader streams the
// source's binary COPY data in batches of whole messages, each paying the
// full-copy throttle for its rows and bytes, into the sink's COPY, which
// commits them with the chunk's progress row.
func (r *runner) copyOneRaw(ctx context.Context, rd *postgres.Reader, wr *postgres.Writer, job copyJob, srcCols, dstCols []string) error {
	chunkCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan postgres.RawBatch, 2)
	errc := make(chan error, 1)
	lim := r.cfg.Throttle.Phase(throttle.PhaseFull)
	table := job.table.Name.String()
	send := r.rawSender(chunkCtx, job, batches)
	go func() {
		err := lim.Query(chunkCtx)
		if err == nil {
			err = rd.ReadChunkRaw(chunkCtx, job.table, job.plan, job.chunk, srcCols, postgres.DefaultBatchLimits, send)
		}
		errc <- err
		close(batches)
	}()
	rows, size, err := wr.CopyChunkRaw(chunkCtx, r.target(job.table.Name), dstCols, job.key, job.chunk.ID, batches, errc)
	if err != nil {
		cancel()
		for range batches { // let the reader finish
		}
		return fmt.Errorf("copy %s %s: %w", job.table.Name, chunkText(job.plan, job.chunk), err)
	}
	r.log.Debug("chunk copied raw", "table", table, "chunk", job.chunk.ID, "rows", rows)
	return r.chunkCommitted(job, rows, size)
}

// rawSender returns what a raw reader emits each batch of job to: the
// crash point, the full-copy throttle, then out (counted in the table's
// progress and metrics once taken), until ctx ends.
func (r *runner) rawSender(ctx context.Context, job copyJob, out chan<- postgres.RawBatch) func(postgres.RawBatch) error {
	lim := r.cfg.Throttle.Phase(throttle.PhaseFull)
	table := job.table.Name.String()
	return func(b postgres.RawBatch) error {
		if err := r.hit(fpChunkBatch); err != nil {
			return err
		}
		if err := lim.Wait(ctx, b.Rows, b.Bytes); err != nil {
			return err
		}
		select {
		case out <- b:
			job.prog.addRows(b.Rows, b.Bytes)
			r.metrics.AddRows(metrics.PhaseFull, table, b.Rows, b.Bytes)
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
