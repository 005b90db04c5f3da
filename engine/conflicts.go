package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// conflicts decides, before the full copy, what to do with selected
// tables that already hold rows at the sink (on_conflicting_tables).
type conflicts struct {
	names []string
}

// check looks at one table about to be copied: done are its chunks
// already copied by this pipeline. A table holding rows at the sink while
// none of its chunks is ours is a conflicting table: recorded for the
// error, or, with IgnoreConflictingTables, merged (the copy keeps the
// sink's rows on a key clash). With IgnoreConflictingTables any table
// holding rows is merged, so a resumed copy still keeps the sink's rows.
func (c *conflicts) check(ctx context.Context, r *runner, dst *pgx.Conn, t *postgres.Table, key string, done map[int]checkpoint.ChunkDone) error {
	if t.Partitioned {
		return nil
	}
	if !r.cfg.IgnoreConflictingTables && len(done) > 0 {
		return nil
	}
	target := r.target(t.Name)
	has, err := postgres.TableHasRows(ctx, dst, target)
	if err != nil || !has {
		return err
	}
	if r.cfg.IgnoreConflictingTables {
		if r.merge == nil {
			r.merge = map[string]bool{}
		}
		if !r.merge[key] {
			r.log.Warn("the table holds rows at the sink (on_conflicting_tables: ignore): copying into it, keeping the sink's row where a key clashes", "table", target.String())
		}
		r.merge[key] = true
		return nil
	}
	c.names = append(c.names, target.String())
	return nil
}

// err is the error naming every conflicting table, nil when none.
func (c *conflicts) err() error {
	if len(c.names) == 0 {
		return nil
	}
	return permanent(fmt.Errorf("these tables already exist at the sink and hold rows that this pipeline did not copy: %s; "+
		"for each: empty it (TRUNCATE), drop it, or map it to another sink table (rename), or set on_conflicting_tables: ignore to copy into it anyway "+
		"(the copy keeps the sink's row where a key clashes, streaming overwrites it)", strings.Join(c.names, ", ")))
}

// mergeChunk copies one chunk into a table that held rows at the sink,
// keeping the sink's rows on a key clash.
func (r *runner) mergeChunk(ctx context.Context, wr *postgres.Writer, target record.TableName, rel *record.Relation, format record.Format, job copyJob, batches <-chan *record.Batch, errc <-chan error) (int64, int64, error) {
	rows, size, skipped, err := wr.MergeChunk(ctx, target, rel, format, job.key, job.chunk.ID, batches, errc)
	if err == nil && skipped > 0 {
		r.log.Info("kept the sink's rows where the copied rows' keys clashed (on_conflicting_tables: ignore)", "table", target.String(), "chunk", job.chunk.ID, "kept", skipped)
	}
	return rows, size, err
}

// refuseReset is the error for a table whose copy must start over (a
// table without a key interrupted, or a lost state dir) while
// on_conflicting_tables: ignore is set: emptying it would delete the rows
// it held before the copy too, which sluice cannot tell apart.
func refuseReset(target record.TableName) error {
	return permanent(fmt.Errorf("the copy of %s must start over (a table without a key was interrupted, or the state dir was lost), "+
		"but with on_conflicting_tables: ignore it may hold rows that were there before the copy, which sluice will not delete: "+
		"empty it yourself (TRUNCATE, or delete the copied rows) and run again", target))
}
