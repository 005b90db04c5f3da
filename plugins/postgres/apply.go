package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/engine/record"
)

// ApplyTable tells the applier how to write one source table's changes.
type ApplyTable struct {
	Target record.TableName
	// Key names the columns that find a row at the sink; empty for a
	// table without a key (rows are then found by their whole old value).
	Key []string
	// CopyLSN is the consistent point of the snapshot the table's rows were
	// last copied at. Changes committed before it are already in the copied
	// rows (a transaction whose commit record starts exactly at the
	// consistent point is not: the slot decodes it and the snapshot does
	// not see it). For a keyed table, changes before it are applied
	// idempotently (the table may mix chunks copied at two snapshots after a
	// resumed copy); for a table without a key they are skipped.
	CopyLSN record.LSN
	// Overwrite makes an INSERT replace a sink row with the same key (the
	// table held rows before the copy: on_conflicting_tables: ignore).
	Overwrite bool
}

// Applier writes streamed changes into the sink: many source transactions
// per sink transaction, statements pipelined, and the position of the last
// applied source commit written in the same sink transaction.
type Applier struct {
	conn     *pgx.Conn
	pipeline string
	log      *slog.Logger
	tables   map[uint32]*ApplyTable    // by source relation OID
	skip     map[record.TableName]bool // source relations whose changes are dropped (the heartbeat)
	prepared map[string]string         // statement shape -> prepared statement name
	batch    *pgconn.Batch
	checks   []check
	inTx     bool
	// mustFind is set when a queued statement of the open transaction
	// must find its row (a change of a table without a key): COMMIT then
	// waits for its result, so a miss stops the group (diverged.go).
	mustFind bool
	// Runs of inserts or updates per table not yet queued (applybatch.go).
	runs        map[*ApplyTable]*applyRun
	runOrder    []*applyRun
	runRows     int
	runBytes    int
	batchInfo   map[*record.Relation]*batchInfo
	plans       map[*record.Relation]*relPlan // applyplan.go
	replicaRole bool                          // session_replication_role = replica holds
	// mayLack reports whether the sink may lack rows of a source relation
	// (a backfill of it is unfinished); nil: it may not (diverged.go).
	mayLack  func(relID uint32) bool
	joinsSet bool // the open transaction has SET LOCAL the join methods
	// Statistics for the caller.
	Rows int64
}

// check remembers what one queued statement was, to verify how many rows it
// touched and to name it in errors.
type check struct {
	rec     *record.Record
	table   *ApplyTable
	lenient bool // 0 rows is fine (idempotent replay)
	commit  bool // the COMMIT closing the group
	// upsert: an update that inserts the rows it does not find
	// (applyupsert.go); its command tag counts those.
	upsert bool
	// mustFind: 0 rows means the sink diverged (a table without a key, or
	// a keyed UPDATE without its unchanged TOASTed values).
	mustFind bool
	stmt     byte // 'i', 'u' or 'd': the statement's kind, to name a failing parameter's column
	// run is the number of rows of a run's statement (0: one row).
	run int
}

// OpenApplier connects to the sink for applying changes.
func OpenApplier(ctx context.Context, dsn, pipeline string, tables map[uint32]*ApplyTable, log *slog.Logger) (*Applier, error) {
	conn, err := Connect(ctx, dsn, "sink")
	if err != nil {
		return nil, err
	}
	if err := holdFence(ctx, conn, pipeline); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	replica := true
	if _, err := conn.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		replica = false
		log.Warn("sink: cannot set session_replication_role = replica; sink triggers and foreign keys will fire for applied changes (grant SET ON PARAMETER session_replication_role, or use a superuser)", "error", err)
	}
	return &Applier{conn: conn, pipeline: pipeline, log: log, tables: tables,
		skip:     map[record.TableName]bool{HeartbeatTable: true},
		prepared: map[string]string{}, batch: &pgconn.Batch{},
		runs: map[*ApplyTable]*applyRun{}, batchInfo: map[*record.Relation]*batchInfo{},
		plans: map[*record.Relation]*relPlan{}, replicaRole: replica}, nil
}

// Close closes the sink connection, rolling back an open transaction.
func (a *Applier) Close(ctx context.Context) error {
	return a.conn.Close(context.WithoutCancel(ctx))
}

// Position returns the last source commit the sink applied for this
// pipeline and the position just past it, or zeros when none.
func (a *Applier) Position(ctx context.Context) (commit, end record.LSN, err error) {
	var c, e *string
	err = a.conn.QueryRow(ctx, `SELECT lsn::text, end_lsn::text FROM sluice.apply_progress WHERE pipeline = $1`, a.pipeline).Scan(&c, &e)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("sink: read applied position: %w", err)
	}
	if c != nil {
		if commit, err = record.ParseLSN(*c); err != nil {
			return 0, 0, err
		}
	}
	if e != nil {
		if end, err = record.ParseLSN(*e); err != nil {
			return 0, 0, err
		}
	}
	return commit, end, nil
}

// SetMayLack tells the applier which source relations the sink may lack
// rows of for now (a backfill of them is unfinished): an UPDATE of such a
// keyed table without its unchanged TOASTed values that finds no row is
// logged, not a DivergedError. f is called from the applier's goroutine.
func (a *Applier) SetMayLack(f func(relID uint32) bool) { a.mayLack = f }

// InTx reports whether a sink transaction is open.
func (a *Applier) InTx() bool { return a.inTx }

// begin opens a sink transaction: BEGIN goes out with the first pipeline
// of statements, saving a round trip.
func (a *Applier) begin(ctx context.Context) error {
	if a.inTx {
		return nil
	}
	a.batch.ExecParams("BEGIN", nil, nil, nil, nil)
	a.checks = append(a.checks, check{lenient: true})
	a.inTx = true
	return nil
}

// Apply queues one change of a transaction committed at commitLSN.
func (a *Applier) Apply(ctx context.Context, rec *record.Record, commitLSN record.LSN) error {
	t, err := a.table(rec, commitLSN)
	if t == nil || err != nil {
		return err
	}
	if err := a.begin(ctx); err != nil {
		return err
	}
	replay := commitLSN < t.CopyLSN
	a.Rows++
	if !replay {
		kind, err := a.runnable(ctx, t, rec)
		if err != nil {
			return err
		}
		if kind != 0 {
			return a.addToRun(ctx, t, rec, kind)
		}
	}
	switch rec.Op {
	case record.Insert:
		if replay || (t.Overwrite && len(t.Key) > 0) {
			err = a.queueDelete(ctx, t, rec, rec.New, true)
			if err == nil {
				err = a.queueInsert(ctx, t, rec)
			}
		} else {
			err = a.queueInsert(ctx, t, rec)
		}
	case record.Update:
		err = a.queueUpdate(ctx, t, rec, replay)
	case record.Delete:
		err = a.queueDelete(ctx, t, rec, rec.Old, replay)
	default:
		err = fmt.Errorf("unexpected operation %s", rec.Op)
	}
	if err != nil {
		return err
	}
	if len(a.checks) >= 2000 {
		return a.flush(ctx)
	}
	return nil
}

// Upsert makes the sink's row with rec's key equal to rec's new row: the
// rows under the old key (when the source sent one) and the new key are
// deleted if present, then the new row is inserted. It is how a row
// filter applies an UPDATE whose old row may or may not have passed. The
// table must have a key.
func (a *Applier) Upsert(ctx context.Context, rec *record.Record, commitLSN record.LSN) error {
	t, err := a.table(rec, commitLSN)
	if t == nil || err != nil {
		return err
	}
	if len(t.Key) == 0 {
		return fmt.Errorf("sink: %s on %s at %s: a filtered UPDATE whose old row is unknown needs a key to find the row (add a primary key, or set REPLICA IDENTITY FULL on the source table)", rec.Op, t.Target, rec.Position)
	}
	if err := a.begin(ctx); err != nil {
		return err
	}
	a.Rows++
	if rec.Old != nil {
		if err := a.queueDelete(ctx, t, rec, rec.Old, true); err != nil {
			return err
		}
	}
	if err := a.queueDelete(ctx, t, rec, rec.New, true); err != nil {
		return err
	}
	return a.queueInsert(ctx, t, rec)
}

// DeleteIfPresent deletes the sink's row with the old key (the new row's
// when the source sent no old key), finding none being fine.
func (a *Applier) DeleteIfPresent(ctx context.Context, rec *record.Record, commitLSN record.LSN) error {
	t, err := a.table(rec, commitLSN)
	if t == nil || err != nil {
		return err
	}
	if err := a.begin(ctx); err != nil {
		return err
	}
	a.Rows++
	old := rec.Old
	if old == nil {
		old = rec.New
	}
	return a.queueDelete(ctx, t, rec, old, true)
}

// table finds the ApplyTable of rec; nil without an error when the
// change is to be skipped (the heartbeat, or a keyless table's change
// already in the copied rows).
func (a *Applier) table(rec *record.Record, commitLSN record.LSN) (*ApplyTable, error) {
	if a.skip[rec.Rel.Table] {
		return nil, nil
	}
	t := a.tables[rec.Rel.ID]
	if t == nil {
		return nil, fmt.Errorf("change at %s for %s, which the pipeline does not copy (was it added to the publication by hand?)", commitLSN, rec.Rel.Table)
	}
	if commitLSN < t.CopyLSN && len(t.Key) == 0 {
		return nil, nil
	}
	return t, nil
}

// Truncate empties the truncated tables at the sink, in order with the
// changes around it.
func (a *Applier) Truncate(ctx context.Context, rels []*record.Relation, restartIdentity bool, commitLSN record.LSN) error {
	var names []string
	for _, rel := range rels {
		if a.skip[rel.Table] {
			continue
		}
		t := a.tables[rel.ID]
		if t == nil {
			return fmt.Errorf("truncate at %s of %s, which the pipeline does not copy", commitLSN, rel.Table)
		}
		if commitLSN < t.CopyLSN {
			continue
		}
		names = append(names, t.Target.Quoted())
	}
	if len(names) == 0 {
		return nil
	}
	if err := a.begin(ctx); err != nil {
		return err
	}
	if err := a.flush(ctx); err != nil {
		return err
	}
	sql := "TRUNCATE ONLY " + strings.Join(names, ", ")
	if restartIdentity {
		sql += " RESTART IDENTITY"
	}
	if _, err := a.conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("sink: apply truncate at %s (%s): %w", commitLSN, sql, describeRowError(err))
	}
	return nil
}

// Commit applies what is queued, records commitLSN/endLSN as the applied
// position in the same transaction, and commits. After it returns the
// position is durable at the sink.
func (a *Applier) Commit(ctx context.Context, commitLSN, endLSN record.LSN) error {
	if err := a.begin(ctx); err != nil {
		return err
	}
	if err := a.emitRuns(ctx); err != nil {
		return err
	}
	// When a statement must find its row (a table without a key), its
	// result is checked before COMMIT is sent: a miss must stop the
	// group. Otherwise the data, the position and COMMIT share one round
	// trip (updates that may find no row insert it in the same statement).
	if a.mustFind {
		if err := a.flush(ctx); err != nil {
			return err
		}
	}
	a.batch.ExecParams(`INSERT INTO sluice.apply_progress (pipeline, lsn, end_lsn, updated_at) VALUES ($1, $2::pg_lsn, $3::pg_lsn, now())
		ON CONFLICT (pipeline) DO UPDATE SET lsn = EXCLUDED.lsn, end_lsn = EXCLUDED.end_lsn, updated_at = EXCLUDED.updated_at`,
		[][]byte{[]byte(a.pipeline), []byte(commitLSN.String()), []byte(endLSN.String())}, nil, nil, nil)
	a.checks = append(a.checks, check{lenient: true})
	// COMMIT rides in the same pipeline: one round trip for the group. If
	// any statement fails, the server skips the rest, COMMIT included.
	a.batch.ExecParams("COMMIT", nil, nil, nil, nil)
	a.checks = append(a.checks, check{lenient: true, commit: true})
	if err := a.flush(ctx); err != nil {
		return err
	}
	a.inTx, a.mustFind, a.joinsSet = false, false, false
	return nil
}

// Rollback abandons the open sink transaction.
func (a *Applier) Rollback(ctx context.Context) {
	a.batch = &pgconn.Batch{}
	a.checks = nil
	a.mustFind, a.joinsSet = false, false
	clear(a.runs)
	a.runOrder, a.runRows, a.runBytes = nil, 0, 0
	if a.inTx {
		a.inTx = false
		if !a.conn.IsClosed() {
			_, _ = a.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}
}

// flush sends the queued statements in one pipeline and checks each
// result.
func (a *Applier) flush(ctx context.Context) error {
	if err := a.emitRuns(ctx); err != nil {
		return err
	}
	if len(a.checks) == 0 {
		return nil
	}
	batch, checks := a.batch, a.checks
	a.batch, a.checks = &pgconn.Batch{}, nil
	mrr := a.conn.PgConn().ExecBatch(ctx, batch)
	i := 0
	for mrr.NextResult() {
		tag, err := mrr.ResultReader().Close()
		if err != nil {
			_ = mrr.Close()
			return a.statementError(checks, i, err)
		}
		if i < len(checks) && checks[i].commit && tag.String() != "COMMIT" {
			_ = mrr.Close()
			return fmt.Errorf("sink: the transaction was rolled back instead of committed (%s)", tag)
		}
		if i < len(checks) {
			if err := a.checkRows(checks[i], tag.RowsAffected()); err != nil {
				_ = mrr.Close()
				return err
			}
		}
		i++
	}
	if err := mrr.Close(); err != nil {
		return a.statementError(checks, i, err)
	}
	return nil
}

// checkRows looks at how many rows a statement touched: an update that
// inserted rows it did not find, or a change that found no row, is
// logged; a change of a table without a key that found no row is a
// DivergedError (diverged.go says why).
func (a *Applier) checkRows(c check, rows int64) error {
	switch {
	case c.rec == nil:
	case c.upsert && c.run > 0 && rows > 0:
		a.warnNoRow(c, rows, "inserted the new rows")
	case c.upsert && rows > 0:
		a.warnNoRow(c, rows, "inserted the new row")
	case rows > 0 || c.lenient || c.run > 0:
	case c.mustFind:
		return diverged(c.table, c.rec)
	default:
		a.warnNoRow(c, rows, "nothing to do")
	}
	return nil
}

// warnNoRow logs that a statement found no row (rows of a run's, which
// it then inserted) and what the applier did about it.
func (a *Applier) warnNoRow(c check, rows int64, action string) {
	msg := "sink: a streamed change found no row to change; the sink had diverged from the source"
	attrs := []any{"table", c.table.Target.String()}
	if c.run > 0 {
		msg = "sink: streamed updates found no row to change; the sink had diverged from the source"
		attrs = append(attrs, "rows", rows, "of", c.run)
	} else {
		attrs = append(attrs, "op", c.rec.Op.String(), "key", keyText(c.table, c.rec))
	}
	a.log.Warn(msg, append(attrs, "lsn", c.rec.Position.String(), "action", action)...)
}

func (a *Applier) statementError(checks []check, i int, err error) error {
	if i < len(checks) && checks[i].run > 0 {
		c := checks[i]
		return fmt.Errorf("sink: apply a batch of %d %ss on %s (first key %s) from the source transactions committed at %s and after: %w",
			c.run, c.rec.Op, c.table.Target, keyText(c.table, c.rec), c.rec.Position, describeRowError(err))
	}
	if i < len(checks) && checks[i].rec != nil {
		c := checks[i]
		return fmt.Errorf("sink: apply %s on %s (key %s) from the source transaction committed at %s: %w",
			c.rec.Op, c.table.Target, keyText(c.table, c.rec), c.rec.Position, describeChangeError(c, err))
	}
	return fmt.Errorf("sink: apply changes: %w", describeRowError(err))
}

// keyText renders a change's key for messages: the key columns' values, or
// for a table without a key a note saying so.
func keyText(t *ApplyTable, rec *record.Record) string {
	vals := rec.Old
	if vals == nil {
		vals = rec.New
	}
	if len(t.Key) == 0 {
		return "(none: table without a key)"
	}
	var parts []string
	for _, k := range matchKey(t, rec.Rel) {
		i := rec.Rel.ColumnIndex(k)
		if i < 0 || i >= len(vals) {
			continue
		}
		v := "NULL"
		if !vals[i].Null {
			v = string(vals[i].Data)
			if len(v) > 64 {
				v = v[:64] + "…"
			}
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ", ")
}

// prepare returns the name of the prepared statement for a shape,
// building its SQL and preparing it the first time only: building SQL per
// change would cost more than sending it.
func (a *Applier) prepare(ctx context.Context, shape []byte, build func() string) (string, error) {
	return a.prepareShape(ctx, shape, build, true)
}

// prepareShape is prepare; with flush false the queued statements stay
// queued (they keep their order: the prepared statement is only queued
// after them).
func (a *Applier) prepareShape(ctx context.Context, shape []byte, build func() string, flush bool) (string, error) {
	if name, ok := a.prepared[string(shape)]; ok {
		return name, nil
	}
	key, sql := string(shape), build()
	// Preparing is a round trip of its own.
	if flush {
		if err := a.flush(ctx); err != nil {
			return "", err
		}
	}
	name := "sluice_" + strconv.Itoa(len(a.prepared)+1)
	if _, err := a.conn.PgConn().Prepare(ctx, name, sql, nil); err != nil {
		return "", prepareError{fmt.Errorf("sink: prepare %s: %w", firstLine(sql), describeRowError(err))}
	}
	a.prepared[key] = name
	return name, nil
}

// queue queues a change's statement of the given shape (prepared first
// when new; build makes its SQL) with its parameters.
func (a *Applier) queue(ctx context.Context, shape []byte, build func() string, params [][]byte, c check) error {
	if c.table != nil {
		// The table's pending run goes first: its changes came first.
		if err := a.emitPendingRun(ctx, c.table); err != nil {
			return err
		}
	}
	name, err := a.prepare(ctx, shape, build)
	if err != nil {
		return forChange(c, err)
	}
	a.batch.ExecPrepared(name, params, nil, nil)
	a.checks = append(a.checks, c)
	return nil
}

func (a *Applier) queueInsert(ctx context.Context, t *ApplyTable, rec *record.Record) error {
	p := a.plan(t, rec.Rel)
	var pbuf [64]int
	var sbuf [128]byte
	present, params, shape := appendPresent(rec.Rel, rec.New, pbuf[:0], make([][]byte, 0, len(rec.New)), p.shapeStart(sbuf[:0], "i"))
	build := func() string {
		cols := columnNames(rec.Rel, present)
		ph := make([]string, len(cols))
		for i := range cols {
			ph[i] = "$" + strconv.Itoa(i+1)
		}
		// OVERRIDING SYSTEM VALUE: an identity column GENERATED ALWAYS
		// takes the source's value (a no-op for other tables).
		return "INSERT INTO " + t.Target.Quoted() + " (" + strings.Join(cols, ", ") + ") OVERRIDING SYSTEM VALUE VALUES (" + strings.Join(ph, ", ") + ")"
	}
	return a.queue(ctx, shape, build, params, check{rec: rec, table: t, lenient: true, stmt: 'i'})
}

func (a *Applier) queueUpdate(ctx context.Context, t *ApplyTable, rec *record.Record, replay bool) error {
	complete := true
	for _, v := range rec.New {
		if v.Unchanged {
			complete = false
		}
	}
	if replay && complete {
		// Idempotent: remove the row under its old and new key, insert it.
		if rec.Old != nil {
			if err := a.queueDelete(ctx, t, rec, rec.Old, true); err != nil {
				return err
			}
		}
		if err := a.queueDelete(ctx, t, rec, rec.New, true); err != nil {
			return err
		}
		return a.queueInsert(ctx, t, rec)
	}
	old := rec.Old
	if old == nil {
		old = rec.New // the key did not change
	}
	if complete && len(t.Key) > 0 {
		return a.queueUpsert(ctx, t, rec, old)
	}
	p := a.plan(t, rec.Rel)
	var pbuf [64]int
	var sbuf [128]byte
	shape := p.shapeStart(sbuf[:0], "u")
	maskAt := len(shape) + 1
	present, params, shape := appendPresent(rec.Rel, rec.New, pbuf[:0], make([][]byte, 0, len(rec.New)+len(old)), shape)
	// Key columns that keep their value are left out of SET: the WHERE
	// already pins them, and an identity column GENERATED ALWAYS may not
	// be set at all.
	present, params = withoutSameKey(p, rec, old, present, params, shape[maskAt:])
	n := len(params)
	params, shape, err := a.rowMatch(p, rec, old, params, shape)
	if err != nil {
		return err
	}
	build := func() string {
		set := columnNames(rec.Rel, present)
		for i := range set {
			set[i] += " = $" + strconv.Itoa(i+1)
		}
		return "UPDATE " + t.Target.Quoted() + " SET " + strings.Join(set, ", ") + whereSQL(p, rec, old, n)
	}
	c := check{rec: rec, table: t, lenient: replay, stmt: 'u'}
	// Without a key the old row must be there; with one, an update
	// lacking values finds its row or nothing can be inserted for it
	// (diverged.go).
	if !replay && (len(t.Key) == 0 || a.mayLack == nil || !a.mayLack(rec.Rel.ID)) {
		c.mustFind, a.mustFind = true, true
	}
	return a.queue(ctx, shape, build, params, c)
}

func (a *Applier) queueDelete(ctx context.Context, t *ApplyTable, rec *record.Record, old []record.Value, lenient bool) error {
	if old == nil {
		return fmt.Errorf("sink: %s on %s at %s carries no old key (is the source table's REPLICA IDENTITY NOTHING?)", rec.Op, t.Target, rec.Position)
	}
	p := a.plan(t, rec.Rel)
	var sbuf [128]byte
	params, shape, err := a.rowMatch(p, rec, old, make([][]byte, 0, len(old)), p.shapeStart(sbuf[:0], "d"))
	if err != nil {
		return err
	}
	build := func() string { return "DELETE FROM " + t.Target.Quoted() + whereSQL(p, rec, old, 0) }
	c := check{rec: rec, table: t, lenient: lenient, stmt: 'd'}
	if len(t.Key) == 0 && !lenient {
		c.mustFind, a.mustFind = true, true
	}
	return a.queue(ctx, shape, build, params, c)
}

// rowMatch finds the changed row: by key columns, or for a table without a
// key by every column of the old row (compared as text, so types without
// an equality operator work), limited to exactly one row even when
// duplicates exist. It appends this change's values to params and a '/'
// and the mask naming how the row is found to shape; whereSQL renders the
// clause (once per shape).
func (a *Applier) rowMatch(p *relPlan, rec *record.Record, old []record.Value, params [][]byte, shape []byte) ([][]byte, []byte, error) {
	t := p.t
	shape = append(shape, '/')
	if len(t.Key) > 0 {
		for j, i := range p.matchIdx {
			if i < 0 || i >= len(old) || old[i].Unchanged {
				return nil, nil, fmt.Errorf("sink: %s on %s at %s lacks key column %s", rec.Op, t.Target, rec.Position, record.QuoteIdent(p.match[j]))
			}
			params = append(params, valueParam(old[i]))
		}
		return params, append(shape, p.mask...), nil
	}
	found := false
	for i := range rec.Rel.Columns {
		k := matchKind(old, i)
		if k != '-' {
			found = true
		}
		if k == 'v' {
			params = append(params, old[i].Data)
		}
		shape = append(shape, k)
	}
	if !found {
		return nil, nil, fmt.Errorf("sink: %s on %s at %s: no old values to find the row by (set REPLICA IDENTITY FULL on the source table)", rec.Op, t.Target, rec.Position)
	}
	return params, shape, nil
}

// matchKind is how column i of a keyless table's old row finds it: 'v' by
// its value, 'n' as NULL, '-' not at all (an unchanged TOASTed value).
func matchKind(old []record.Value, i int) byte {
	switch {
	case i >= len(old) || old[i].Unchanged:
		return '-'
	case old[i].Null:
		return 'n'
	}
	return 'v'
}

// whereSQL is the WHERE clause of rowMatch, its parameters numbered from
// offset+1.
func whereSQL(p *relPlan, rec *record.Record, old []record.Value, offset int) string {
	t := p.t
	if len(t.Key) > 0 {
		conds := make([]string, len(p.match))
		for i, k := range p.match {
			conds[i] = record.QuoteIdent(k) + " = $" + strconv.Itoa(offset+i+1)
		}
		return " WHERE " + strings.Join(conds, " AND ")
	}
	var conds []string
	n := offset
	for i, c := range rec.Rel.Columns {
		switch matchKind(old, i) {
		case 'n':
			conds = append(conds, record.QuoteIdent(c.Name)+" IS NULL")
		case 'v':
			n++
			conds = append(conds, record.QuoteIdent(c.Name)+"::text = $"+strconv.Itoa(n)+"::text")
		}
	}
	return " WHERE ctid = (SELECT ctid FROM ONLY " + t.Target.Quoted() + " WHERE " + strings.Join(conds, " AND ") + " LIMIT 1)"
}

// withoutSameKey removes from an UPDATE's present columns the columns the
// row is found by (matchKey) whose new value equals the old one (in
// place); their letter in mask (one per column) becomes 'k'.
func withoutSameKey(p *relPlan, rec *record.Record, old []record.Value, present []int, params [][]byte, mask []byte) ([]int, [][]byte) {
	if len(p.t.Key) == 0 {
		return present, params
	}
	kept := 0
	for _, i := range present {
		if p.keeps(i, old, rec.New) {
			kept++
		}
	}
	if kept == 0 || kept == len(present) {
		return present, params // nothing to leave out, or SET needs a column
	}
	n := 0
	for j, i := range present {
		if p.keeps(i, old, rec.New) {
			mask[i] = 'k'
			continue
		}
		present[n], params[n] = i, params[j]
		n++
	}
	return present[:n], params[:n]
}

// columnNames quotes the names of the columns at the given positions.
func columnNames(rel *record.Relation, positions []int) []string {
	names := make([]string, len(positions))
	for i, p := range positions {
		names[i] = record.QuoteIdent(rel.Columns[p].Name)
	}
	return names
}

func valueParam(v record.Value) []byte {
	if v.Null {
		return nil
	}
	if v.Data == nil {
		return []byte{}
	}
	return v.Data
}
