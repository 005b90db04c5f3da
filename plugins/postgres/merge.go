package postgres

// Merging a chunk into a sink table that already holds rows
// (on_conflicting_tables: ignore): COPY cannot skip a row whose key the
// table has, so the chunk is copied into a temporary staging table and
// moved over with INSERT … ON CONFLICT DO NOTHING, keeping the sink's row
// on a key clash.

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
)

// stageTable is the session's temporary staging table of a merged chunk;
// it lives for the chunk's transaction only.
const stageTable = "sluice_merge_stage"

// MergeChunk is CopyChunk for a table that held rows before the copy: the
// chunk's rows go through a temporary staging table into target with
// INSERT … ON CONFLICT DO NOTHING, so a row whose primary key or unique
// key is already at the sink keeps the sink's version. The chunk's
// progress row is written in the same transaction. It returns the rows
// read (as CopyChunk does) and the bytes; skipped counts the rows the sink
// kept.
func (w *Writer) MergeChunk(ctx context.Context, target record.TableName, rel *record.Relation, format record.Format, key string, chunk int, batches <-chan *record.Batch, errc <-chan error) (rows, size, skipped int64, err error) {
	tx, err := w.conn.Begin(ctx)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("sink: begin chunk %d of %s: %w", chunk, target, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	cols := make([]string, len(rel.Columns))
	for i, c := range rel.Columns {
		cols[i] = record.QuoteIdent(c.Name)
	}
	list := strings.Join(cols, ", ")
	stage := record.TableName{Schema: "pg_temp", Name: stageTable}
	// The staging table has exactly the copied columns, with the sink
	// table's types (domains included).
	if _, err := tx.Exec(ctx, "CREATE TEMPORARY TABLE "+record.QuoteIdent(stageTable)+" ON COMMIT DROP AS SELECT "+list+" FROM ONLY "+target.Quoted()+" WITH NO DATA"); err != nil {
		return 0, 0, 0, fmt.Errorf("sink: create the staging table for chunk %d of %s: %w", chunk, target, err)
	}
	enc := &copyEncoder{ctx: ctx, format: format, batches: batches, errc: errc}
	if _, err := w.conn.PgConn().CopyFrom(ctx, enc, copyFromSQL(stage, rel, format)); err != nil {
		if enc.srcErr != nil {
			return 0, 0, 0, enc.srcErr
		}
		return 0, 0, 0, fmt.Errorf("sink: copy chunk %d of %s into its staging table: %w", chunk, target, describeRowError(err))
	}
	// OVERRIDING SYSTEM VALUE: identity columns GENERATED ALWAYS take the
	// source's values, as COPY gives them.
	tag, err := tx.Exec(ctx, "INSERT INTO "+target.Quoted()+" ("+list+") OVERRIDING SYSTEM VALUE SELECT "+list+" FROM "+stage.Quoted()+" ON CONFLICT DO NOTHING")
	if err != nil {
		return 0, 0, 0, fmt.Errorf("sink: merge chunk %d into %s: %w", chunk, target, describeRowError(err))
	}
	skipped = enc.rows - tag.RowsAffected()
	if _, err := tx.Exec(ctx, `INSERT INTO sluice.copy_progress (pipeline, table_name, chunk, rows, bytes) VALUES ($1, $2, $3, $4, $5)`,
		w.pipeline, key, chunk, enc.rows, enc.bytes); err != nil {
		return 0, 0, 0, fmt.Errorf("sink: record chunk %d of %s as copied: %w", chunk, target, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, 0, fmt.Errorf("sink: commit chunk %d of %s: %w", chunk, target, err)
	}
	return enc.rows, enc.bytes, skipped, nil
}

// TableHasRows reports whether the sink table holds any row (its
// partitions included).
func TableHasRows(ctx context.Context, conn *pgx.Conn, target record.TableName) (bool, error) {
	var has bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+target.Quoted()+")").Scan(&has); err != nil {
		return false, fmt.Errorf("sink: look whether %s holds rows: %w", target, err)
	}
	return has, nil
}
