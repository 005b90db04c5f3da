package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/engine/record"
)

// ProgressSchema is the schema sluice keeps its own bookkeeping in, at the
// sink (and, for streaming, at the source).
const ProgressSchema = "sluice"

// EnsureSinkState creates the sink's bookkeeping tables: per-chunk progress
// of the full copy and the applied stream position (the last applied source
// commit and the position just past it), both written in the same
// transaction as the data they describe.
func EnsureSinkState(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS sluice;
CREATE TABLE IF NOT EXISTS sluice.copy_progress (
	pipeline   text        NOT NULL,
	table_name text        NOT NULL,
	chunk      integer     NOT NULL,
	rows       bigint      NOT NULL,
	bytes      bigint      NOT NULL,
	done_at    timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (pipeline, table_name, chunk)
);
CREATE TABLE IF NOT EXISTS sluice.apply_progress (
	pipeline   text        PRIMARY KEY,
	lsn        pg_lsn      NOT NULL,
	end_lsn    pg_lsn      NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);`)
	if err != nil {
		return fmt.Errorf("sink: create the sluice schema for progress tracking (the sink role needs CREATE on the database): %w", err)
	}
	return EnsureBackfillSink(ctx, conn)
}

// DoneChunks returns, per table key, the chunks whose data the sink has
// committed for this pipeline: the truth the local checkpoint is reconciled
// against after a crash.
func DoneChunks(ctx context.Context, conn *pgx.Conn, pipeline string) (map[string]map[int]int64, error) {
	rows, err := conn.Query(ctx, `SELECT table_name, chunk, rows FROM sluice.copy_progress WHERE pipeline = $1`, pipeline)
	if err != nil {
		return nil, fmt.Errorf("sink: read copy progress: %w", err)
	}
	defer rows.Close()
	out := map[string]map[int]int64{}
	for rows.Next() {
		var table string
		var chunk int
		var n int64
		if err := rows.Scan(&table, &chunk, &n); err != nil {
			return nil, fmt.Errorf("sink: read copy progress: %w", err)
		}
		if out[table] == nil {
			out[table] = map[int]int64{}
		}
		out[table][chunk] = n
	}
	return out, rows.Err()
}

// ResetTable empties a sink table and forgets its copy progress, in one
// transaction, so its full copy can start over. A table that other sink
// tables reference by foreign key (post-data built them) cannot be
// truncated alone: it is emptied by DELETE with session_replication_role =
// replica, so the foreign keys do not cascade or fail, as for copied rows.
func ResetTable(ctx context.Context, conn *pgx.Conn, pipeline, key string, target record.TableName) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := sp.Exec(ctx, "TRUNCATE ONLY "+target.Quoted()); err != nil {
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "0A000" {
				return err
			}
			if err := sp.Rollback(ctx); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
				return fmt.Errorf("%w (TRUNCATE failed because other tables reference it by foreign key; emptying it without firing them needs session_replication_role)", err)
			}
			if _, err := tx.Exec(ctx, "DELETE FROM ONLY "+target.Quoted()); err != nil {
				return err
			}
		} else if err := sp.Commit(ctx); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM sluice.copy_progress WHERE pipeline = $1 AND table_name = $2`, pipeline, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("sink: reset %s to copy it again: %w", target, err)
	}
	return nil
}

// Writer writes chunks into sink tables with COPY. It owns one sink
// connection; use one Writer per worker.
type Writer struct {
	conn     *pgx.Conn
	pipeline string
}

// OpenWriter connects to the sink. The session runs with
// session_replication_role = replica where the role may set it, so user
// triggers and foreign-key checks do not fire for copied rows.
func OpenWriter(ctx context.Context, dsn, pipeline string, log *slog.Logger) (*Writer, error) {
	conn, err := Connect(ctx, dsn, "sink")
	if err != nil {
		return nil, err
	}
	if err := holdFence(ctx, conn, pipeline); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	if _, err := conn.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		if log != nil {
			log.Warn("sink: cannot set session_replication_role = replica; triggers and foreign keys at the sink will fire for copied rows (grant SET ON PARAMETER session_replication_role, or use a superuser)", "error", err)
		}
	}
	return &Writer{conn: conn, pipeline: pipeline}, nil
}

// Close closes the connection.
func (w *Writer) Close(ctx context.Context) error {
	return w.conn.Close(context.WithoutCancel(ctx))
}

// CopyChunk writes every batch received from batches into target with one
// COPY, records the chunk as done in sluice.copy_progress, and commits, all
// in one transaction: the chunk is at the sink whole, with its progress row,
// or not at all. key identifies the table in the progress table. It returns
// the rows and bytes written. If batches yields an error (via errc) the
// transaction is rolled back.
func (w *Writer) CopyChunk(ctx context.Context, target record.TableName, rel *record.Relation, format record.Format, key string, chunk int, batches <-chan *record.Batch, errc <-chan error) (rows, size int64, err error) {
	enc := &copyEncoder{ctx: ctx, format: format, batches: batches, errc: errc}
	return w.copyChunk(ctx, target, copyFromSQL(target, rel, format), key, chunk, enc)
}

// chunkSource is a chunk's COPY data with what it holds and, after a read
// error, whether the error came from the data's producer.
type chunkSource interface {
	io.Reader
	counts() (rows, bytes int64)
	sourceErr() error
}

// copyChunk runs sql (a COPY FROM STDIN) with src's data, records the chunk
// in sluice.copy_progress and commits, in one transaction.
func (w *Writer) copyChunk(ctx context.Context, target record.TableName, sql, key string, chunk int, src chunkSource) (rows, size int64, err error) {
	tx, err := w.conn.Begin(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("sink: begin chunk %d of %s: %w", chunk, target, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if _, err := w.conn.PgConn().CopyFrom(ctx, src, sql); err != nil {
		if serr := src.sourceErr(); serr != nil {
			return 0, 0, serr
		}
		return 0, 0, fmt.Errorf("sink: copy chunk %d into %s: %w", chunk, target, describeRowError(err))
	}
	rows, size = src.counts()
	if _, err := tx.Exec(ctx, `INSERT INTO sluice.copy_progress (pipeline, table_name, chunk, rows, bytes) VALUES ($1, $2, $3, $4, $5)`,
		w.pipeline, key, chunk, rows, size); err != nil {
		return 0, 0, fmt.Errorf("sink: record chunk %d of %s as copied: %w", chunk, target, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, fmt.Errorf("sink: commit chunk %d of %s: %w", chunk, target, err)
	}
	return rows, size, nil
}

func copyFromSQL(target record.TableName, rel *record.Relation, format record.Format) string {
	cols := make([]string, len(rel.Columns))
	for i, c := range rel.Columns {
		cols[i] = record.QuoteIdent(c.Name)
	}
	f := "text"
	if format == record.Binary {
		f = "binary"
	}
	list := ""
	if len(cols) > 0 { // a table may have no columns at all
		list = " (" + strings.Join(cols, ", ") + ")"
	}
	return "COPY " + target.Quoted() + list + " FROM STDIN (FORMAT " + f + ")"
}

// describeRowError keeps PostgreSQL's detail, hint and context (which name
// the failing COPY line) in the message.
func describeRowError(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	msg := pgErr.Message
	if pgErr.Detail != "" {
		msg += "; detail: " + pgErr.Detail
	}
	if pgErr.Hint != "" {
		msg += "; hint: " + pgErr.Hint
	}
	if pgErr.Where != "" {
		msg += "; at: " + pgErr.Where
	}
	return fmt.Errorf("%s (SQLSTATE %s): %w", msg, pgErr.Code, err)
}

// copyEncoder turns a stream of batches into COPY data in binary or text
// format, as an io.Reader for pgconn's CopyFrom.
type copyEncoder struct {
	ctx     context.Context
	format  record.Format
	batches <-chan *record.Batch
	errc    <-chan error
	buf     bytes.Buffer
	started bool
	done    bool
	rows    int64
	bytes   int64
	srcErr  error
}

var binaryCopyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

func (e *copyEncoder) Read(p []byte) (int, error) {
	for e.buf.Len() == 0 {
		if e.done {
			return 0, io.EOF
		}
		if !e.started {
			e.started = true
			if e.format == record.Binary {
				e.buf.Write(binaryCopyHeader)
				continue
			}
		}
		select {
		case <-e.ctx.Done():
			return 0, e.ctx.Err()
		case b, ok := <-e.batches:
			if !ok {
				// The producer closed the stream: it either finished or
				// failed; errc tells which.
				if e.errc != nil {
					if err := <-e.errc; err != nil {
						e.srcErr = err
						return 0, err
					}
				}
				e.done = true
				if e.format == record.Binary {
					e.buf.Write([]byte{0xff, 0xff})
				}
				continue
			}
			e.encode(b)
		}
	}
	return e.buf.Read(p)
}

func (e *copyEncoder) counts() (rows, bytes int64) { return e.rows, e.bytes }
func (e *copyEncoder) sourceErr() error            { return e.srcErr }

func (e *copyEncoder) encode(b *record.Batch) {
	e.rows += int64(len(b.Records))
	e.bytes += b.Bytes
	var tmp [4]byte
	for i := range b.Records {
		vals := b.Records[i].New
		if e.format == record.Binary {
			binary.BigEndian.PutUint16(tmp[:2], uint16(len(vals)))
			e.buf.Write(tmp[:2])
			for _, v := range vals {
				if v.Null {
					e.buf.Write([]byte{0xff, 0xff, 0xff, 0xff})
					continue
				}
				binary.BigEndian.PutUint32(tmp[:], uint32(len(v.Data)))
				e.buf.Write(tmp[:])
				e.buf.Write(v.Data)
			}
			continue
		}
		for j, v := range vals {
			if j > 0 {
				e.buf.WriteByte('\t')
			}
			if v.Null {
				e.buf.WriteString(`\N`)
				continue
			}
			writeCopyText(&e.buf, v.Data)
		}
		e.buf.WriteByte('\n')
	}
}

// writeCopyText escapes a text-format value for COPY's text format.
func writeCopyText(buf *bytes.Buffer, data []byte) {
	start := 0
	for i, c := range data {
		var esc string
		switch c {
		case '\\':
			esc = `\\`
		case '\n':
			esc = `\n`
		case '\r':
			esc = `\r`
		case '\t':
			esc = `\t`
		default:
			continue
		}
		buf.Write(data[start:i])
		buf.WriteString(esc)
		start = i + 1
	}
	buf.Write(data[start:])
}

// DropSinkState removes the pipeline's progress rows at the sink and
// returns how many there were. A sink without the sluice schema has none.
func DropSinkState(ctx context.Context, conn *pgx.Conn, pipeline string) (int64, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('sluice.copy_progress') IS NOT NULL AND to_regclass('sluice.apply_progress') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("sink: look up progress tables: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var n int64
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, sql := range []string{"DELETE FROM sluice.copy_progress WHERE pipeline = $1", "DELETE FROM sluice.apply_progress WHERE pipeline = $1"} {
			tag, err := tx.Exec(ctx, sql, pipeline)
			if err != nil {
				return err
			}
			n += tag.RowsAffected()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sink: remove progress rows: %w", err)
	}
	return n, nil
}

// The sink fence: every sink session that writes for a pipeline (copy
// writers, the applier) holds a shared advisory lock keyed by the pipeline
// name for its whole life. FenceSink takes the same lock exclusively and
// lets it go: it returns only once every writing session of an earlier,
// killed run has ended — after its last statements committed or rolled
// back — so the sink's progress rows read afterwards are final.
const fenceSQL = `(pg_catalog.hashtext('sluice.sink'), pg_catalog.hashtext($1))`

// FenceSink waits until no earlier session writes for the pipeline.
func FenceSink(ctx context.Context, conn *pgx.Conn, pipeline string) error {
	if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_advisory_lock"+fenceSQL, pipeline); err != nil {
		return fmt.Errorf("sink: wait for sessions of an earlier run to end: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_advisory_unlock"+fenceSQL, pipeline); err != nil {
		return fmt.Errorf("sink: release the fence lock: %w", err)
	}
	return nil
}

// holdFence marks a session as writing for the pipeline (see FenceSink).
func holdFence(ctx context.Context, conn *pgx.Conn, pipeline string) error {
	if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_advisory_lock_shared"+fenceSQL, pipeline); err != nil {
		return fmt.Errorf("sink: take the pipeline's session lock: %w", err)
	}
	return nil
}
