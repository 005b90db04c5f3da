package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluicehq/sluice/engine/record"
)

// BatchLimits bound the size of the batches a reader emits.
type BatchLimits struct {
	Rows  int
	Bytes int
}

// DefaultBatchLimits suit the full copy: big enough to amortize per-batch
// work, small enough that a few in flight per worker keep memory low (each
// worker holds about four batches: two queued, one being encoded, one
// being read; 1 MB keeps tables of large values, whose chunks all workers
// copy at once, well within the memory budget).
var DefaultBatchLimits = BatchLimits{Rows: 4096, Bytes: 1 << 20}

// Reader reads chunks of source tables inside one snapshot. It owns one
// source connection; use one Reader per worker.
type Reader struct {
	conn *pgx.Conn
	free chan []byte // released raw batch buffers (rawcopy.go)
}

// OpenReader connects to the source and imports the snapshot (empty id:
// a fresh repeatable-read transaction).
func OpenReader(ctx context.Context, dsn, snapshotID string) (*Reader, error) {
	cfg, err := ParseConfig(dsn, "source")
	if err != nil {
		return nil, err
	}
	bufferReads(cfg)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, connectError("source", cfg, err)
	}
	if err := importSnapshot(ctx, conn, snapshotID); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return &Reader{conn: conn}, nil
}

// Close ends the snapshot transaction and the connection.
func (r *Reader) Close(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	_, _ = r.conn.Exec(ctx, "ROLLBACK")
	return r.conn.Close(ctx)
}

// ReadChunk reads one chunk and calls emit with batches of insert records
// whose values are in the table's copy format. Each batch passed to emit
// belongs to the callee from then on.
func (r *Reader) ReadChunk(ctx context.Context, t *Table, plan *Plan, c Chunk, lim BatchLimits, emit func(*record.Batch) error) error {
	sql, params, oids, err := chunkQuery(t, plan.Method, plan.Key, c)
	if err != nil {
		return err
	}
	format := record.Text
	resultFormat := int16(pgtype.TextFormatCode)
	if t.Binary {
		format = record.Binary
		resultFormat = pgtype.BinaryFormatCode
	}
	rel := t.Relation()
	ncols := len(rel.Columns)
	paramFormats := make([]int16, len(params))
	rr := r.conn.PgConn().ExecParams(ctx, sql, params, oids, paramFormats, []int16{resultFormat})

	batch := &record.Batch{Records: make([]record.Record, 0, lim.Rows)}
	// Values are sub-slices of arena and vals with their capacity capped,
	// so growing either by append leaves earlier values intact.
	arena := make([]byte, 0, 64<<10)
	vals := make([]record.Value, 0, 256*ncols)
	flush := func() error {
		if len(batch.Records) == 0 {
			return nil
		}
		err := emit(batch)
		// The batch now belongs to emit's receiver: start new buffers.
		batch = &record.Batch{Records: make([]record.Record, 0, len(batch.Records))}
		arena = make([]byte, 0, cap(arena))
		vals = make([]record.Value, 0, cap(vals))
		return err
	}
	for rr.NextRow() {
		raw := rr.Values()
		if len(raw) != ncols {
			rr.Close()
			return fmt.Errorf("read %s chunk %d: got %d columns, want %d", t.Name, c.ID, len(raw), ncols)
		}
		start := len(vals)
		for _, v := range raw {
			if v == nil {
				vals = append(vals, record.Value{Null: true})
				continue
			}
			off := len(arena)
			arena = append(arena, v...)
			vals = append(vals, record.Value{Data: arena[off:len(arena):len(arena)]})
		}
		batch.Records = append(batch.Records, record.Record{Op: record.Insert, Rel: rel, Format: format, New: vals[start:len(vals):len(vals)]})
		batch.Bytes += int64(rowSize(raw))
		if len(batch.Records) >= lim.Rows || len(arena) >= lim.Bytes {
			if err := flush(); err != nil {
				rr.Close()
				return err
			}
		}
	}
	if _, err := rr.Close(); err != nil {
		return fmt.Errorf("read %s chunk %d: %w", t.Name, c.ID, err)
	}
	return flush()
}

func rowSize(raw [][]byte) int {
	n := 0
	for _, v := range raw {
		n += len(v)
	}
	return n
}
