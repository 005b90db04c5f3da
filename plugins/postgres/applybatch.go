package postgres

// Runs: consecutive inserts, or consecutive full-row updates, of one table
// within a flush are sent as one statement that reads its rows from
// parameter arrays (unnest), instead of one statement per row. The sink then
// pays the per-statement costs (bind, executor start-up, command
// completion) once per run rather than once per row.
//
// Order: a run is emitted into the statement pipeline before any other
// statement for the same table, and at every flush, so each table sees its
// changes in source order. Across tables the order within a sink
// transaction may change; that is safe only where nothing at the sink
// observes it, so runs are used only when session_replication_role =
// replica holds (no foreign-key checks, no ordinary triggers) and the sink
// table has no trigger that fires under it, and no unique or exclusion
// index besides its key's (a row-by-row unique check could fail on a batch
// that the row-at-a-time order passes; applyunique.go says which indexes
// count). Within an update run a key
// updated twice keeps its last image: every image is the whole row and the
// key does not change inside a run, so that is the row the sink must end
// with.

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/engine/record"
)

// Runs shorter than minRunRows go out row by row (a plain prepared
// statement plans and checks each row best); a flush happens once
// maxRunRows rows or maxRunBytes bytes of values are pending in runs (the
// values are held once in the records and once in the statement's
// parameters).
const (
	minRunRows  = 4
	maxRunRows  = 5000
	maxRunBytes = 16 << 20
)

type runKind uint8

const (
	runInsert runKind = iota + 1
	runUpdate
)

// applyRun is a pending run of one table.
type applyRun struct {
	table *ApplyTable
	rel   *record.Relation
	kind  runKind
	recs  []*record.Record
	keys  map[string]int // update runs: key -> index in recs
	bytes int            // of the values of recs (and of rows they replaced)
}

// batchInfo is what the sink says about whether a table's changes may go
// in runs, and its column types (by sink column name).
type batchInfo struct {
	ok    bool
	types map[string]string
	// The shapes of its runs' statements: the relation's ID and the
	// description's address (one sent again after DDL is another).
	insertShape, updateShape []byte
}

// runnable reports whether rec may join a run of its table, and of which
// kind.
func (a *Applier) runnable(ctx context.Context, t *ApplyTable, rec *record.Record) (runKind, error) {
	// Overwrite tables (on_conflicting_tables: ignore) insert by
	// delete-then-insert, one change at a time.
	if !a.replicaRole || len(t.Key) == 0 || t.Overwrite {
		return 0, nil
	}
	for _, k := range t.Key {
		if rec.Rel.ColumnIndex(k) < 0 {
			return 0, nil // the single-row path reports the missing key column
		}
	}
	if !slices.Equal(a.plan(t, rec.Rel).match, t.Key) {
		// The source's replica identity is another index than the key:
		// an update without an old key may still have changed the key.
		return 0, nil
	}
	var kind runKind
	switch rec.Op {
	case record.Insert:
		kind = runInsert
	case record.Update:
		kind = runUpdate
	default:
		return 0, nil
	}
	for _, v := range rec.New {
		if v.Unchanged {
			return 0, nil
		}
	}
	if len(rec.New) != len(rec.Rel.Columns) {
		return 0, nil
	}
	if kind == runUpdate {
		if len(t.Key) >= len(rec.Rel.Columns) {
			return 0, nil // nothing to set but the key
		}
		if rec.Old != nil {
			// The key must be the same in the old and new row.
			for _, k := range t.Key {
				i := rec.Rel.ColumnIndex(k)
				if i < 0 || i >= len(rec.Old) || rec.Old[i].Unchanged || rec.Old[i].Null != rec.New[i].Null || string(rec.Old[i].Data) != string(rec.New[i].Data) {
					return 0, nil
				}
			}
		}
	}
	info, err := a.tableBatchInfo(ctx, t, rec.Rel)
	if err != nil || !info.ok {
		return 0, err
	}
	return kind, nil
}

// tableBatchInfo reads whether the sink table may take runs, and its
// column types, once per relation description: the source describes a
// relation again after it changed, and by the first change under the new
// description the sink has the change too.
func (a *Applier) tableBatchInfo(ctx context.Context, t *ApplyTable, rel *record.Relation) (*batchInfo, error) {
	if info := a.batchInfo[rel]; info != nil {
		return info, nil
	}
	info := &batchInfo{types: map[string]string{},
		insertShape: fmt.Appendf(nil, "ri/%d/%p", rel.ID, rel), updateShape: fmt.Appendf(nil, "ru/%d/%p", rel.ID, rel)}
	// A catalog read is a round trip of its own: send what is queued first.
	if err := a.flush(ctx); err != nil {
		return nil, err
	}
	blockers, err := runBlockers(ctx, a.conn, t.Target, t.Key)
	if err != nil {
		return nil, err
	}
	// The column's type without its modifier (char(5) as "pg_catalog"."bpchar",
	// not character(5)): an explicit cast to a length-limited type cuts or
	// pads a value silently, while the INSERT or UPDATE's own assignment to
	// the column refuses one that does not fit (22001), as the row-by-row
	// path does. (format_type(oid, NULL) would not do: "character" and
	// "bit" read back as length 1.)
	rows, err := a.conn.Query(ctx, `SELECT a.attname::text, pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(ty.typname)
		FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid JOIN pg_catalog.pg_namespace tn ON tn.oid = ty.typnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''`, t.Target.Schema, t.Target.Name)
	if err != nil {
		return nil, fmt.Errorf("sink: read the column types of %s: %w", t.Target, err)
	}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sink: read the column types of %s: %w", t.Target, err)
		}
		info.types[name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sink: read the column types of %s: %w", t.Target, err)
	}
	info.ok = len(blockers) == 0
	if !info.ok {
		a.log.Debug("sink: changes go row by row, not in runs", "table", t.Target.String(), "because", blockers)
	}
	for _, c := range rel.Columns {
		if _, ok := info.types[c.Name]; !ok {
			info.ok = false
		}
	}
	a.batchInfo[rel] = info
	return info, nil
}

// addToRun puts rec into its table's run, emitting the table's pending run
// first when it is of another kind or shape.
func (a *Applier) addToRun(ctx context.Context, t *ApplyTable, rec *record.Record, kind runKind) error {
	r := a.runs[t]
	if r != nil && (r.kind != kind || r.rel != rec.Rel) {
		if err := a.emitRun(ctx, r); err != nil {
			return err
		}
		r = nil
	}
	if r == nil {
		r = &applyRun{table: t, rel: rec.Rel, kind: kind}
		if kind == runUpdate {
			r.keys = map[string]int{}
		}
		a.runs[t] = r
		a.runOrder = append(a.runOrder, r)
	}
	n := 0
	for _, v := range rec.New {
		n += len(v.Data)
	}
	r.bytes += n
	a.runBytes += n
	if kind == runUpdate {
		k := runKey(t, rec)
		if i, ok := r.keys[k]; ok {
			r.recs[i] = rec // the last image of the row wins
			if a.runBytes >= maxRunBytes {
				return a.flush(ctx)
			}
			return nil
		}
		r.keys[k] = len(r.recs)
	}
	r.recs = append(r.recs, rec)
	a.runRows++
	if a.runRows >= maxRunRows || a.runBytes >= maxRunBytes {
		return a.flush(ctx)
	}
	return nil
}

// runKey renders the key values of rec's new row as a map key.
func runKey(t *ApplyTable, rec *record.Record) string {
	var b []byte
	var n [4]byte
	for _, k := range t.Key {
		v := rec.New[rec.Rel.ColumnIndex(k)]
		if v.Null {
			b = append(b, 0xff, 0xff, 0xff, 0xff)
			continue
		}
		binary.BigEndian.PutUint32(n[:], uint32(len(v.Data)))
		b = append(b, n[:]...)
		b = append(b, v.Data...)
	}
	return string(b)
}

// emitPendingRun emits t's pending run, if any, before a statement of its
// own for t is queued.
func (a *Applier) emitPendingRun(ctx context.Context, t *ApplyTable) error {
	if r := a.runs[t]; r != nil {
		return a.emitRun(ctx, r)
	}
	return nil
}

// emitRuns emits every pending run into the statement pipeline.
func (a *Applier) emitRuns(ctx context.Context) error {
	for len(a.runOrder) > 0 {
		if err := a.emitRun(ctx, a.runOrder[0]); err != nil {
			return err
		}
	}
	return nil
}

// emitRun queues r as one statement (short runs: one per row) and forgets
// it.
func (a *Applier) emitRun(ctx context.Context, r *applyRun) error {
	delete(a.runs, r.table)
	for i, o := range a.runOrder {
		if o == r {
			a.runOrder = append(a.runOrder[:i], a.runOrder[i+1:]...)
			break
		}
	}
	a.runRows -= len(r.recs)
	a.runBytes -= r.bytes
	if len(r.recs) < minRunRows {
		for _, rec := range r.recs {
			var err error
			if r.kind == runInsert {
				err = a.queueInsert(ctx, r.table, rec)
			} else {
				err = a.queueUpdate(ctx, r.table, rec, false)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	info := a.batchInfo[r.rel]
	t, rel := r.table, r.rel
	params := make([][]byte, len(rel.Columns))
	for i := range rel.Columns {
		params[i] = arrayParam(r.recs, i)
	}
	// The statement's SQL, built only when it is prepared (once per
	// relation description and kind).
	from := func() string {
		src := make([]string, len(rel.Columns))
		alias := make([]string, len(rel.Columns))
		for i := range rel.Columns {
			src[i] = "$" + strconv.Itoa(i+1) + "::text[]"
			alias[i] = "v" + strconv.Itoa(i+1)
		}
		return "unnest(" + strings.Join(src, ", ") + ") AS sluice_s(" + strings.Join(alias, ", ") + ")"
	}
	val := func(i int) string {
		return "sluice_s.v" + strconv.Itoa(i+1) + "::" + info.types[rel.Columns[i].Name]
	}
	keyMatch := func(target string) string {
		conds := make([]string, len(t.Key))
		for j, k := range t.Key {
			conds[j] = target + "." + record.QuoteIdent(k) + " = " + val(rel.ColumnIndex(k))
		}
		return strings.Join(conds, " AND ")
	}
	insertSQL := func() string {
		cols := make([]string, len(rel.Columns))
		vals := make([]string, len(rel.Columns))
		for i, c := range rel.Columns {
			cols[i] = record.QuoteIdent(c.Name)
			vals[i] = val(i)
		}
		// OVERRIDING SYSTEM VALUE: identity columns GENERATED ALWAYS take
		// the source's values, as in the single-row insert.
		return "INSERT INTO " + t.Target.Quoted() + " (" + strings.Join(cols, ", ") + ") OVERRIDING SYSTEM VALUE SELECT " + strings.Join(vals, ", ") + " FROM " + from()
	}
	if r.kind == runInsert {
		return a.queueRun(ctx, info.insertShape, insertSQL, params,
			check{rec: r.recs[0], table: t, lenient: true, run: len(r.recs)})
	}
	build := func() string {
		var set []string
		for i, c := range rel.Columns {
			if !slices.Contains(t.Key, c.Name) {
				set = append(set, record.QuoteIdent(c.Name)+" = "+val(i))
			}
		}
		update := "UPDATE " + t.Target.Quoted() + " AS sluice_t SET " + strings.Join(set, ", ") + " FROM " + from() + " WHERE " + keyMatch("sluice_t")
		// Rows the sink lacks are inserted by the same statement, in order
		// with the statements around it (applyupsert.go).
		notThere := "NOT EXISTS (SELECT FROM " + t.Target.Quoted() + " AS sluice_t WHERE " + keyMatch("sluice_t") + ")"
		return upsertRunSQL(update, insertSQL(), notThere)
	}
	return a.queueRun(ctx, info.updateShape, build, params,
		check{rec: r.recs[0], table: t, lenient: true, upsert: true, run: len(r.recs)})
}

// queueRun queues a run's statement, preparing it without sending what is
// queued (preparing is a round trip of its own; the queued statements keep
// their order).
func (a *Applier) queueRun(ctx context.Context, shape []byte, build func() string, params [][]byte, c check) error {
	name, err := a.prepareShape(ctx, shape, build, false)
	if err != nil {
		return forChange(c, err)
	}
	if !a.joinsSet {
		// A run's rows are few next to its table: find each by its key's
		// index, never by scanning the table for a hash or merge join.
		a.batch.ExecParams("SET LOCAL enable_hashjoin = off", nil, nil, nil, nil)
		a.checks = append(a.checks, check{lenient: true})
		a.batch.ExecParams("SET LOCAL enable_mergejoin = off", nil, nil, nil, nil)
		a.checks = append(a.checks, check{lenient: true})
		a.joinsSet = true
	}
	a.batch.ExecPrepared(name, params, nil, nil)
	a.checks = append(a.checks, c)
	return nil
}

// arrayParam renders column i of every record's new row as a text[]
// literal.
func arrayParam(recs []*record.Record, i int) []byte {
	size := 2
	for _, rec := range recs {
		size += len(rec.New[i].Data) + 3
	}
	b := make([]byte, 0, size+size/8)
	b = append(b, '{')
	for j, rec := range recs {
		if j > 0 {
			b = append(b, ',')
		}
		v := rec.New[i]
		if v.Null {
			b = append(b, "NULL"...)
			continue
		}
		b = append(b, '"')
		for _, ch := range v.Data {
			if ch == '"' || ch == '\\' {
				b = append(b, '\\')
			}
			b = append(b, ch)
		}
		b = append(b, '"')
	}
	return append(b, '}')
}
