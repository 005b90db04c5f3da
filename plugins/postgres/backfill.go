package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluicehq/sluice/engine/record"
)

// Backfills: `sluice backfill` records a request in sluice.backfill at the
// source; the pipeline's streaming process copies the requested rows in
// chunks between a low and a high watermark written to sluice.watermark
// (a published table, so both marks arrive in the change stream in order
// with the changes around them), and commits each chunk at the sink
// together with its row in sluice.backfill_progress.

// WatermarkTable is the source table the backfill watermarks are written
// to. It is in the pipeline's publication; its changes are never applied
// at the sink.
var WatermarkTable = record.TableName{Schema: ProgressSchema, Name: "watermark"}

// Backfill request states at the source.
const (
	BackfillPending = "pending"
	BackfillDone    = "done"
	BackfillFailed  = "failed"
)

// EnsureBackfillSource creates the source tables of backfills: the
// requests and the watermark row per pipeline.
func EnsureBackfillSource(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS sluice;
CREATE TABLE IF NOT EXISTS sluice.backfill (
	id         bigserial   PRIMARY KEY,
	pipeline   text        NOT NULL,
	table_name text        NOT NULL,
	where_sql  text        NOT NULL DEFAULT '',
	chunk_rows integer     NOT NULL,
	status     text        NOT NULL DEFAULT 'pending',
	error      text,
	created    timestamptz NOT NULL DEFAULT now(),
	finished   timestamptz
);
CREATE TABLE IF NOT EXISTS sluice.watermark (
	pipeline   text        PRIMARY KEY,
	mark       text        NOT NULL,
	written_at timestamptz NOT NULL DEFAULT now()
)`)
	if err != nil {
		return fmt.Errorf("source: create the backfill tables in schema sluice (the source role needs CREATE on the database): %w", err)
	}
	return nil
}

// BackfillRequest is one row of sluice.backfill.
type BackfillRequest struct {
	ID        int64
	Pipeline  string
	Table     string // the source table, quoted and qualified
	Where     string // the user's condition as given, "" for none
	ChunkRows int
	Status    string
	Error     string
	Created   time.Time
}

// RequestBackfill returns the unfinished request of the pipeline for the
// same table and condition (resumed true), or records a new one.
func RequestBackfill(ctx context.Context, conn *pgx.Conn, pipeline, table, where string, chunkRows int) (req BackfillRequest, resumed bool, err error) {
	req = BackfillRequest{Pipeline: pipeline, Table: table, Where: where, Status: BackfillPending}
	err = conn.QueryRow(ctx, `SELECT id, chunk_rows, created FROM sluice.backfill
		WHERE pipeline = $1 AND table_name = $2 AND where_sql = $3 AND status = 'pending'
		ORDER BY id LIMIT 1`, pipeline, table, where).Scan(&req.ID, &req.ChunkRows, &req.Created)
	if err == nil {
		return req, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return req, false, fmt.Errorf("source: look for an unfinished backfill of %s: %w", table, err)
	}
	req.ChunkRows = chunkRows
	if err := conn.QueryRow(ctx, `INSERT INTO sluice.backfill (pipeline, table_name, where_sql, chunk_rows) VALUES ($1, $2, $3, $4)
		RETURNING id, created`, pipeline, table, where, chunkRows).Scan(&req.ID, &req.Created); err != nil {
		return req, false, fmt.Errorf("source: record the backfill request of %s: %w", table, err)
	}
	return req, false, nil
}

// PendingBackfills lists the pipeline's unfinished requests, oldest first.
// A source without the backfill table has none.
func PendingBackfills(ctx context.Context, conn *pgx.Conn, pipeline string) ([]BackfillRequest, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('sluice.backfill') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("source: look up the backfill table: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := conn.Query(ctx, `SELECT id, table_name, where_sql, chunk_rows, created FROM sluice.backfill
		WHERE pipeline = $1 AND status = 'pending' ORDER BY id`, pipeline)
	if err != nil {
		return nil, fmt.Errorf("source: read pending backfills: %w", err)
	}
	defer rows.Close()
	var out []BackfillRequest
	for rows.Next() {
		r := BackfillRequest{Pipeline: pipeline, Status: BackfillPending}
		if err := rows.Scan(&r.ID, &r.Table, &r.Where, &r.ChunkRows, &r.Created); err != nil {
			return nil, fmt.Errorf("source: read pending backfills: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ReadBackfillRequest reads one request's state.
func ReadBackfillRequest(ctx context.Context, conn *pgx.Conn, id int64) (BackfillRequest, error) {
	var r BackfillRequest
	var errText *string
	err := conn.QueryRow(ctx, `SELECT id, pipeline, table_name, where_sql, chunk_rows, status, error, created FROM sluice.backfill WHERE id = $1`, id).
		Scan(&r.ID, &r.Pipeline, &r.Table, &r.Where, &r.ChunkRows, &r.Status, &errText, &r.Created)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("source: backfill request %d no longer exists (was the pipeline dropped?)", id)
	}
	if err != nil {
		return r, fmt.Errorf("source: read backfill request %d: %w", id, err)
	}
	if errText != nil {
		r.Error = *errText
	}
	return r, nil
}

// FinishBackfill marks a request done, or failed with the reason.
func FinishBackfill(ctx context.Context, conn *pgx.Conn, id int64, status, reason string) error {
	var errText *string
	if reason != "" {
		errText = &reason
	}
	if _, err := conn.Exec(ctx, `UPDATE sluice.backfill SET status = $2, error = $3, finished = now() WHERE id = $1`, id, status, errText); err != nil {
		return fmt.Errorf("source: mark backfill request %d %s: %w", id, status, err)
	}
	return nil
}

// WriteWatermark writes the pipeline's watermark row at the source in a
// transaction of its own; the change reaches the stream with mark in it.
func WriteWatermark(ctx context.Context, conn *pgx.Conn, pipeline, mark string) error {
	_, err := conn.Exec(ctx, `INSERT INTO sluice.watermark (pipeline, mark, written_at) VALUES ($1, $2, now())
		ON CONFLICT (pipeline) DO UPDATE SET mark = EXCLUDED.mark, written_at = EXCLUDED.written_at`, pipeline, mark)
	if err != nil {
		return fmt.Errorf("source: write backfill watermark: %w", err)
	}
	return nil
}

// WatermarkMark returns the mark carried by a streamed change of the
// watermark table, and whether it belongs to the pipeline.
func WatermarkMark(rec *record.Record, pipeline string) (string, bool) {
	p, m := rec.Rel.ColumnIndex("pipeline"), rec.Rel.ColumnIndex("mark")
	if p < 0 || m < 0 || p >= len(rec.New) || m >= len(rec.New) {
		return "", false
	}
	if string(rec.New[p].Data) != pipeline {
		return "", false
	}
	return string(rec.New[m].Data), true
}

// DropBackfillSource removes the pipeline's backfill requests and
// watermark row at the source (the tables go with the sluice schema).
func DropBackfillSource(ctx context.Context, conn *pgx.Conn, pipeline string) (int64, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('sluice.backfill') IS NOT NULL AND to_regclass('sluice.watermark') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("source: look up the backfill tables: %w", err)
	}
	if !exists {
		return 0, nil
	}
	tag, err := conn.Exec(ctx, "DELETE FROM sluice.backfill WHERE pipeline = $1", pipeline)
	if err != nil {
		return 0, fmt.Errorf("source: remove backfill requests: %w", err)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM sluice.watermark WHERE pipeline = $1", pipeline); err != nil {
		return 0, fmt.Errorf("source: remove the backfill watermark: %w", err)
	}
	return tag.RowsAffected(), nil
}

// EnsureBackfillSink creates sluice.backfill_progress at the sink: per
// request and table, the chunks done, rows written and the last key read,
// written in the same transaction as the chunk's rows.
func EnsureBackfillSink(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS sluice;
CREATE TABLE IF NOT EXISTS sluice.backfill_progress (
	pipeline   text        NOT NULL,
	request    bigint      NOT NULL,
	table_name text        NOT NULL,
	chunks     integer     NOT NULL,
	rows       bigint      NOT NULL,
	last_key   text[],
	done       boolean     NOT NULL DEFAULT false,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (pipeline, request, table_name)
)`)
	if err != nil {
		return fmt.Errorf("sink: create sluice.backfill_progress (the sink role needs CREATE on the database): %w", err)
	}
	return nil
}

// BackfillProgress is how far a request has come on one table, as the sink
// committed it.
type BackfillProgress struct {
	Request int64
	Table   string
	Chunks  int
	Rows    int64    // rows written (read rows less those changed meanwhile)
	LastKey []string // the key of the last row read; nil before the first
	Done    bool
	Updated time.Time
}

// ReadBackfillProgress reads a request's progress on a table; zero
// progress when there is none.
func ReadBackfillProgress(ctx context.Context, conn *pgx.Conn, pipeline string, request int64, table string) (BackfillProgress, error) {
	p := BackfillProgress{Request: request, Table: table}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('sluice.backfill_progress') IS NOT NULL").Scan(&exists); err != nil {
		return p, fmt.Errorf("sink: look up sluice.backfill_progress: %w", err)
	}
	if !exists {
		return p, nil
	}
	err := conn.QueryRow(ctx, `SELECT chunks, rows, last_key, done, updated_at FROM sluice.backfill_progress
		WHERE pipeline = $1 AND request = $2 AND table_name = $3`, pipeline, request, table).
		Scan(&p.Chunks, &p.Rows, &p.LastKey, &p.Done, &p.Updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("sink: read the progress of backfill %d on %s: %w", request, table, err)
	}
	return p, nil
}

// ReadBackfillTotals sums a request's progress over its tables (a
// partitioned table's partitions): chunks and rows committed at the sink.
func ReadBackfillTotals(ctx context.Context, conn *pgx.Conn, pipeline string, request int64) (chunks int, rows int64, err error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('sluice.backfill_progress') IS NOT NULL").Scan(&exists); err != nil {
		return 0, 0, fmt.Errorf("sink: look up sluice.backfill_progress: %w", err)
	}
	if !exists {
		return 0, 0, nil
	}
	if err := conn.QueryRow(ctx, `SELECT COALESCE(sum(chunks), 0)::int, COALESCE(sum(rows), 0)::bigint FROM sluice.backfill_progress
		WHERE pipeline = $1 AND request = $2`, pipeline, request).Scan(&chunks, &rows); err != nil {
		return 0, 0, fmt.Errorf("sink: read the progress of backfill %d: %w", request, err)
	}
	return chunks, rows, nil
}

// DropBackfillSink removes the pipeline's backfill progress rows.
func DropBackfillSink(ctx context.Context, conn *pgx.Conn, pipeline string) (int64, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('sluice.backfill_progress') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("sink: look up sluice.backfill_progress: %w", err)
	}
	if !exists {
		return 0, nil
	}
	tag, err := conn.Exec(ctx, "DELETE FROM sluice.backfill_progress WHERE pipeline = $1", pipeline)
	if err != nil {
		return 0, fmt.Errorf("sink: remove backfill progress rows: %w", err)
	}
	return tag.RowsAffected(), nil
}

// KeysetChunk is one chunk of a backfill: rows in key order after a key.
type KeysetChunk struct {
	Rows  []record.Record
	Bytes int64
	// Last is the key of the last row read (nil when none was).
	Last []string
	// Snap is the snapshot the chunk was read at.
	Snap XidSnapshot
}

// XidSnapshot is what a source snapshot says about transactions, in the low
// 32 bits of their ids, as pgoutput sends them: every transaction before
// Xmax that is not in Xip had ended when it was taken.
type XidSnapshot struct {
	Xmin, Xmax uint32
	Xip        []uint32
}

// Sees reports whether the effects of a transaction known to have
// committed are visible in the snapshot: it ended before the snapshot was
// taken. One that was still in progress (in Xip, or not before Xmax) is
// not seen, even when its commit record was already written.
func (s *XidSnapshot) Sees(xid uint32) bool {
	if !XidBefore(xid, s.Xmax) {
		return false
	}
	for _, x := range s.Xip {
		if x == xid {
			return false
		}
	}
	return true
}

// MayRunAtOrBefore reports whether a transaction with an id up to hi may
// have been in progress for the snapshot.
func (s *XidSnapshot) MayRunAtOrBefore(hi uint32) bool {
	if !XidBefore(hi, s.Xmax) {
		return true // ids from Xmax up to hi were running or not yet begun
	}
	for _, x := range s.Xip {
		if !XidBefore(hi, x) {
			return true
		}
	}
	return false
}

// XidBefore compares two 32-bit transaction ids as PostgreSQL does
// (modulo 2^32): a was assigned before b.
func XidBefore(a, b uint32) bool { return int32(a-b) < 0 }

// snapshotSQL reads the current snapshot (in a repeatable-read
// transaction: the transaction's) as XidSnapshot's three fields.
const snapshotSQL = `SELECT (pg_catalog.pg_snapshot_xmin(s)::text::numeric % 4294967296)::bigint,
	(pg_catalog.pg_snapshot_xmax(s)::text::numeric % 4294967296)::bigint,
	ARRAY(SELECT (x::text::numeric % 4294967296)::bigint FROM pg_catalog.pg_snapshot_xip(s) x)
	FROM pg_catalog.pg_current_snapshot() s`

// CurrentXidSnapshot reads the source's current snapshot.
func CurrentXidSnapshot(ctx context.Context, conn *pgx.Conn) (*XidSnapshot, error) {
	s, err := scanSnapshot(conn.QueryRow(ctx, snapshotSQL))
	if err != nil {
		return nil, fmt.Errorf("source: read the current snapshot: %w", err)
	}
	return s, nil
}

func scanSnapshot(row pgx.Row) (*XidSnapshot, error) {
	var xmin, xmax int64
	var xip []int64
	if err := row.Scan(&xmin, &xmax, &xip); err != nil {
		return nil, err
	}
	s := &XidSnapshot{Xmin: uint32(xmin), Xmax: uint32(xmax), Xip: make([]uint32, len(xip))}
	for i, x := range xip {
		s.Xip[i] = uint32(x)
	}
	return s, nil
}

// ReadKeyset reads, in one repeatable-read transaction, its snapshot and
// then the first limit rows of t whose key sorts after after (all rows
// when after is nil) and that satisfy filter (SQL, "" for none), in key
// order, as text: the form the change stream sends values in. rel must be
// t.Relation().
func ReadKeyset(ctx context.Context, conn *pgx.Conn, t *Table, rel *record.Relation, filter string, after []string, limit int) (*KeysetChunk, error) {
	if len(t.Key) == 0 {
		return nil, fmt.Errorf("table %s has no primary key or unique index: a backfill cannot upsert its rows", t.Name)
	}
	keyIdx := make([]int, len(t.Key))
	keyOIDs := make([]uint32, len(t.Key))
	keyNames := make([]string, len(t.Key))
	for i, k := range t.Key {
		keyIdx[i] = rel.ColumnIndex(k)
		if keyIdx[i] < 0 {
			return nil, fmt.Errorf("table %s: key column %s is not among the copied columns", t.Name, record.QuoteIdent(k))
		}
		keyOIDs[i] = rel.Columns[keyIdx[i]].TypeOID
		keyNames[i] = record.QuoteIdent(k)
	}
	names := make([]string, len(rel.Columns))
	for i, c := range rel.Columns {
		names[i] = record.QuoteIdent(c.Name)
	}
	sql := "SELECT " + strings.Join(names, ", ") + " FROM ONLY " + t.Name.Quoted()
	var conds []string
	var params [][]byte
	var oids []uint32
	if after != nil {
		if len(after) != len(t.Key) {
			return nil, fmt.Errorf("table %s: the saved backfill position has %d key values for %d key columns", t.Name, len(after), len(t.Key))
		}
		ph := make([]string, len(after))
		for i, v := range after {
			params = append(params, []byte(v))
			oids = append(oids, keyOIDs[i])
			ph[i] = "$" + strconv.Itoa(i+1)
		}
		conds = append(conds, "("+strings.Join(keyNames, ", ")+") > ("+strings.Join(ph, ", ")+")")
	}
	if filter != "" {
		conds = append(conds, "("+filter+")")
	}
	if len(conds) > 0 {
		sql += " WHERE " + strings.Join(conds, " AND ")
	}
	sql += " ORDER BY " + strings.Join(keyNames, ", ") + " LIMIT " + strconv.Itoa(limit)

	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("source: begin reading a backfill chunk of %s: %w", t.Name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	out := &KeysetChunk{}
	// The first statement fixes the snapshot: the chunk is read at the
	// one it returns.
	snap, err := scanSnapshot(tx.QueryRow(ctx, snapshotSQL))
	if err != nil {
		return nil, fmt.Errorf("source: read the snapshot of a backfill chunk of %s: %w", t.Name, err)
	}
	out.Snap = *snap
	paramFormats := make([]int16, len(params))
	rr := conn.PgConn().ExecParams(ctx, sql, params, oids, paramFormats, []int16{pgtype.TextFormatCode})
	ncols := len(rel.Columns)
	arena := make([]byte, 0, 64<<10)
	var last [][]byte
	for rr.NextRow() {
		raw := rr.Values()
		if len(raw) != ncols {
			rr.Close()
			return nil, fmt.Errorf("source: backfill chunk of %s: got %d columns, want %d", t.Name, len(raw), ncols)
		}
		vals := make([]record.Value, ncols)
		for i, v := range raw {
			if v == nil {
				vals[i].Null = true
				continue
			}
			if len(arena)+len(v) > cap(arena) {
				arena = make([]byte, 0, max(64<<10, len(v)))
			}
			off := len(arena)
			arena = append(arena, v...)
			vals[i].Data = arena[off:len(arena):len(arena)]
			out.Bytes += int64(len(v))
		}
		out.Rows = append(out.Rows, record.Record{Op: record.Insert, Rel: rel, Format: record.Text, New: vals})
		last = last[:0]
		for _, i := range keyIdx {
			last = append(last, vals[i].Data)
		}
	}
	if _, err := rr.Close(); err != nil {
		return nil, fmt.Errorf("source: read a backfill chunk of %s (%s): %w", t.Name, firstLine(sql), describeRowError(err))
	}
	if len(out.Rows) > 0 {
		out.Last = make([]string, len(last))
		for i, v := range last {
			out.Last[i] = string(v)
		}
	}
	return out, tx.Commit(ctx)
}

// TableExists reports whether a table (or any relation) of that name
// exists at the source.
func TableExists(ctx context.Context, conn *pgx.Conn, name record.TableName) (bool, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", name.Quoted()).Scan(&exists); err != nil {
		return false, fmt.Errorf("source: look up table %s: %w", name, err)
	}
	return exists, nil
}

// PartitionAncestors returns the OIDs of the partitioned tables a table
// is a partition of, at any level (none for a table that is not a
// partition).
func PartitionAncestors(ctx context.Context, conn *pgx.Conn, oid uint32) ([]uint32, error) {
	rows, err := conn.Query(ctx, "SELECT relid::oid FROM pg_catalog.pg_partition_ancestors($1::oid) WHERE relid <> $1::oid::regclass", oid)
	if err != nil {
		return nil, fmt.Errorf("source: look up the partitioned tables above table OID %d: %w", oid, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[uint32])
	if err != nil {
		return nil, fmt.Errorf("source: look up the partitioned tables above table OID %d: %w", oid, err)
	}
	return out, nil
}

// ValidateFilter asks the source to plan a SELECT of t with filter, so an
// error in the condition is reported before anything is recorded.
func ValidateFilter(ctx context.Context, conn *pgx.Conn, t *Table, filter string) error {
	if _, err := conn.Exec(ctx, "EXPLAIN SELECT 1 FROM ONLY "+t.Name.Quoted()+" WHERE ("+filter+")"); err != nil {
		return describeRowError(err)
	}
	return nil
}

// Upsert modes: what a backfill may do to the sink's rows, after the
// object's operations list.
const (
	// UpsertAll replaces rows with the same key and inserts the others.
	UpsertAll = iota
	// UpsertInsertOnly inserts the rows whose key the sink lacks and
	// leaves the sink's rows as they are (operations without update).
	UpsertInsertOnly
	// UpsertUpdateOnly replaces the rows whose key the sink has and
	// inserts none (operations without insert).
	UpsertUpdateOnly
)

// UpsertRows writes rows (inserts carrying whole rows, all of one
// relation) as upserts in the open sink transaction: each row replaces the
// sink's row with its key, or is inserted (mode may restrict it to one or
// the other). The rows are copied into a temporary table, then the sink's
// rows with their keys are deleted and the rows inserted (OVERRIDING
// SYSTEM VALUE, as the source's values of identity columns are kept): a
// few statements per chunk, not two per row.
func (a *Applier) UpsertRows(ctx context.Context, rows []*record.Record, commitLSN record.LSN, mode int) error {
	if len(rows) == 0 {
		return nil
	}
	return a.upsertBulk(ctx, rows, commitLSN, mode)
}

func (a *Applier) upsertBulk(ctx context.Context, rows []*record.Record, commitLSN record.LSN, mode int) error {
	rel := rows[0].Rel
	t, err := a.table(rows[0], commitLSN)
	if t == nil || err != nil {
		return err
	}
	if len(t.Key) == 0 {
		return fmt.Errorf("sink: backfill of %s: the table has no key to upsert by", t.Target)
	}
	if err := a.begin(ctx); err != nil {
		return err
	}
	// COPY needs the pipeline empty (and BEGIN sent).
	if err := a.flush(ctx); err != nil {
		return err
	}
	cols := make([]string, len(rel.Columns))
	for i, c := range rel.Columns {
		cols[i] = record.QuoteIdent(c.Name)
	}
	list := strings.Join(cols, ", ")
	// One chunk at a time: the table is dropped at the end (and at
	// commit, should a statement in between fail).
	tmp := "pg_temp.sluice_backfill"
	if _, err := a.conn.Exec(ctx, "CREATE TEMPORARY TABLE sluice_backfill ON COMMIT DROP AS SELECT "+list+" FROM ONLY "+t.Target.Quoted()+" WITH NO DATA"); err != nil {
		return fmt.Errorf("sink: backfill of %s: create a temporary table: %w", t.Target, describeRowError(err))
	}
	var buf bytes.Buffer
	for _, rec := range rows {
		if rec.Rel != rel {
			return fmt.Errorf("sink: backfill of %s: rows of several relations in one chunk", t.Target)
		}
		for j, v := range rec.New {
			if j > 0 {
				buf.WriteByte('\t')
			}
			switch {
			case v.Null:
				buf.WriteString(`\N`)
			case v.Unchanged:
				return fmt.Errorf("sink: backfill of %s: a row lacks the value of column %s", t.Target, cols[j])
			default:
				writeCopyText(&buf, v.Data)
			}
		}
		buf.WriteByte('\n')
	}
	if _, err := a.conn.PgConn().CopyFrom(ctx, &buf, "COPY "+tmp+" ("+list+") FROM STDIN (FORMAT text)"); err != nil {
		return fmt.Errorf("sink: backfill of %s: copy %d rows: %w", t.Target, len(rows), describeRowError(err))
	}
	conds := make([]string, len(t.Key))
	for i, k := range t.Key {
		conds[i] = "t." + record.QuoteIdent(k) + " = s." + record.QuoteIdent(k)
	}
	if mode != UpsertAll {
		// Leave out the rows the mode does not write.
		not := ""
		if mode == UpsertUpdateOnly {
			not = "NOT "
		}
		if _, err := a.conn.Exec(ctx, "DELETE FROM "+tmp+" s WHERE "+not+"EXISTS (SELECT 1 FROM ONLY "+t.Target.Quoted()+" t WHERE "+strings.Join(conds, " AND ")+")"); err != nil {
			return fmt.Errorf("sink: backfill of %s: leave out the rows the object's operations exclude: %w", t.Target, describeRowError(err))
		}
	}
	// With an index on the key, the rows to replace are found through it
	// one by one: the planner, left alone, may scan the whole table for a
	// hash join, for every chunk.
	var indexed bool
	if err := a.conn.QueryRow(ctx, `SELECT EXISTS (
		SELECT 1 FROM pg_catalog.pg_index i
		WHERE i.indrelid = $1::regclass AND i.indisvalid AND i.indpred IS NULL AND i.indnkeyatts >= $3
		AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_catalog.pg_attribute a
			WHERE a.attrelid = i.indrelid AND a.attnum = ANY ((i.indkey::int2[])[0:$3 - 1]))
			= (SELECT array_agg(x ORDER BY x) FROM unnest($2::text[]) x))`, t.Target.Quoted(), t.Key, len(t.Key)).Scan(&indexed); err != nil {
		return fmt.Errorf("sink: backfill of %s: look up an index on its key: %w", t.Target, describeRowError(err))
	}
	if indexed {
		if _, err := a.conn.Exec(ctx, "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"); err != nil {
			return fmt.Errorf("sink: backfill of %s: %w", t.Target, describeRowError(err))
		}
	}
	if _, err := a.conn.Exec(ctx, "DELETE FROM ONLY "+t.Target.Quoted()+" t USING "+tmp+" s WHERE "+strings.Join(conds, " AND ")); err != nil {
		return fmt.Errorf("sink: backfill of %s: delete the rows to replace: %w", t.Target, describeRowError(err))
	}
	if indexed {
		if _, err := a.conn.Exec(ctx, "SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT"); err != nil {
			return fmt.Errorf("sink: backfill of %s: %w", t.Target, describeRowError(err))
		}
	}
	if _, err := a.conn.Exec(ctx, "INSERT INTO "+t.Target.Quoted()+" ("+list+") OVERRIDING SYSTEM VALUE SELECT "+list+" FROM "+tmp); err != nil {
		return fmt.Errorf("sink: backfill of %s: insert %d rows: %w", t.Target, len(rows), describeRowError(err))
	}
	if _, err := a.conn.Exec(ctx, "DROP TABLE "+tmp); err != nil {
		return fmt.Errorf("sink: backfill of %s: drop the temporary table: %w", t.Target, describeRowError(err))
	}
	return nil
}

// QueueBackfillProgress queues the progress row of a backfill chunk in the
// open sink transaction, so it commits with the chunk's rows.
func (a *Applier) QueueBackfillProgress(ctx context.Context, p BackfillProgress) error {
	if err := a.begin(ctx); err != nil {
		return err
	}
	var last []byte
	if p.LastKey != nil {
		var b strings.Builder
		b.WriteByte('{')
		for i, v := range p.LastKey {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('"')
			b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v))
			b.WriteByte('"')
		}
		b.WriteByte('}')
		last = []byte(b.String())
	}
	done := "false"
	if p.Done {
		done = "true"
	}
	a.batch.ExecParams(`INSERT INTO sluice.backfill_progress (pipeline, request, table_name, chunks, rows, last_key, done, updated_at)
		VALUES ($1, $2::bigint, $3, $4::integer, $5::bigint, $6::text[], $7::boolean, now())
		ON CONFLICT (pipeline, request, table_name) DO UPDATE SET chunks = EXCLUDED.chunks, rows = EXCLUDED.rows,
			last_key = EXCLUDED.last_key, done = EXCLUDED.done, updated_at = EXCLUDED.updated_at`,
		[][]byte{[]byte(a.pipeline), []byte(strconv.FormatInt(p.Request, 10)), []byte(p.Table), []byte(strconv.Itoa(p.Chunks)),
			[]byte(strconv.FormatInt(p.Rows, 10)), last, []byte(done)}, nil, nil, nil)
	a.checks = append(a.checks, check{lenient: true})
	return nil
}

// CommitBackfill commits the open sink transaction without a stream
// position: for pipelines that do not stream.
func (a *Applier) CommitBackfill(ctx context.Context) error {
	if err := a.begin(ctx); err != nil {
		return err
	}
	if a.mustFind {
		if err := a.flush(ctx); err != nil {
			return err
		}
	}
	a.batch.ExecParams("COMMIT", nil, nil, nil, nil)
	a.checks = append(a.checks, check{lenient: true, commit: true})
	if err := a.flush(ctx); err != nil {
		return err
	}
	a.inTx, a.mustFind = false, false
	return nil
}
