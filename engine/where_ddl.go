package engine

// The objects' where conditions and DDL replication: a where condition is
// compiled for the table's columns as they are where the stream is. When
// DDL changes a filtered table's columns, the condition is compiled again
// for the shape the DDL event captured (tableAltered), so a column whose
// type changed is read as its new type; a condition that no longer fits
// (a column it reads dropped or renamed, a type or collation it cannot
// evaluate exactly as PostgreSQL does) stops the pipeline at the DDL,
// naming the objects item, the table, the problem and the statement. Rows
// are never decided by a condition compiled for another shape.

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/transforms/where"
)

// hasWhere reports whether any table has a where condition.
func (m *mapping) hasWhere() bool {
	if m == nil {
		return false
	}
	for _, o := range m.opts {
		if o.cond != "" {
			return true
		}
	}
	return false
}

// where returns a table's options when it has a where condition.
func (m *mapping) where(oid uint32) *tableOptions {
	if m == nil {
		return nil
	}
	if o := m.opts[oid]; o != nil && o.cond != "" {
		return o
	}
	return nil
}

// compileWhere compiles an objects item's where condition for a table's
// columns; the error names the item and the table.
func compileWhere(origin, cond string, name record.TableName, cols []where.Column) (*where.Filter, error) {
	f, err := where.Compile(cond, cols)
	if err != nil {
		return nil, fmt.Errorf("%s: where on table %s: %w", origin, name, err)
	}
	return f, nil
}

// whereColumnsAt reads a table's columns for a where condition: as the
// DDL event that brings the table captured them (state), else as the
// source's catalog has them.
func whereColumnsAt(ctx context.Context, src *pgx.Conn, t *postgres.Table, state *postgres.TableState) ([]where.Column, error) {
	if state == nil {
		return whereColumns(ctx, src, t)
	}
	cols, err := stateColumns(ctx, src, state.Columns)
	if err != nil {
		return nil, fmt.Errorf("source: the columns of %s: %w", t.Name, err)
	}
	return cols, nil
}

// whereAltered compiles a table's where condition again for its shape
// after a DDL event (sh, from the state the event captured). The options
// are replaced, not changed in place: partitions that joined while
// streaming share their partitioned table's. The error says what to do;
// the caller makes it permanent.
func (d *ddlRun) whereAltered(sh *tableShape, ev *postgres.DDLEvent, lsn record.LSN) error {
	o := d.r.mapping.where(sh.oid)
	if o == nil {
		return nil
	}
	f, err := compileWhere(o.origin, o.cond, sh.name, sh.where)
	if err != nil {
		return whereUnfit(err, ev, lsn, sh.name)
	}
	next := *o
	next.filter = f
	d.r.mapping.setOptions(sh.oid, &next)
	if o.filter == nil || f.SQL() != o.filter.SQL() {
		d.r.log.Info("where condition compiled again for the table's new columns", "table", sh.name.String(), "item", o.origin,
			"condition", f.SQL(), "tag", ev.Tag, "lsn", lsn.String())
	}
	return nil
}

// whereFor returns a table's options with its where condition compiled
// for the relation a streamed change of it comes with. The condition is
// compiled again when it was compiled for other columns: the stream is
// behind the source's catalog the run started from (a rerun with DDL not
// applied yet), or DDL changed the table without being captured. A
// condition that does not fit the relation stops the pipeline before the
// change. rel's type OIDs are resolved at the source (domains to their
// base types); collations are the catalog's for the same column and type.
func (r *runner) whereFor(ctx context.Context, o *tableOptions, rel *record.Relation, lsn record.LSN) (*tableOptions, error) {
	if o.cond == "" || (o.filter != nil && o.filter.Fits(rel) == nil) {
		return o, nil
	}
	if r.ddl == nil {
		return nil, permanent(fmt.Errorf("%s: where on table %s: the condition was not compiled for the table's columns where the stream is (source transaction committed at %s); run again", o.origin, rel.Table, lsn))
	}
	src, err := r.ddl.source(ctx)
	if err != nil {
		return nil, err
	}
	cols, err := relationColumns(ctx, src, rel)
	if err != nil {
		return nil, fmt.Errorf("source: the columns of %s: %w", rel.Table, err)
	}
	f, err := compileWhere(o.origin, o.cond, rel.Table, cols)
	if err != nil {
		return nil, permanent(fmt.Errorf("%w; this is the table as the stream has it at the source transaction committed at %s (its columns differ from the source's catalog now: DDL not applied yet, or not captured): the pipeline stops before this change (nothing of this source transaction or after it is applied at the sink; a rerun resumes there); change the where condition in the pipeline file to fit the table's columns at that point, then run again",
			err, lsn))
	}
	next := *o
	next.filter = f
	r.mapping.setOptions(rel.ID, &next)
	r.log.Info("where condition compiled for the table's columns where the stream is", "table", rel.Table.String(), "item", o.origin,
		"condition", f.SQL(), "lsn", lsn.String())
	return &next, nil
}

// relationColumns reads a streamed relation's columns for a where
// condition: each column's type (by OID) as stateColumns takes it, with
// the collation the source's catalog gives the table's column of that
// name and type now, when it is not the type's.
func relationColumns(ctx context.Context, src *pgx.Conn, rel *record.Relation) ([]where.Column, error) {
	names, oids := make([]string, len(rel.Columns)), make([]uint32, len(rel.Columns))
	for i, c := range rel.Columns {
		names[i], oids[i] = c.Name, c.TypeOID
	}
	rows, err := src.Query(ctx, `
		SELECT COALESCE(pg_catalog.format_type(t.oid, NULL), ''),
			COALESCE((SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)
				FROM pg_catalog.pg_attribute a
				JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
				JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
				WHERE a.attrelid = $1 AND a.attname = u.name AND a.atttypid = u.typ AND NOT a.attisdropped
				AND a.attcollation <> t.typcollation), '')
		FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::oid[])) WITH ORDINALITY u(name, typ, i)
		LEFT JOIN pg_catalog.pg_type t ON t.oid = u.typ
		ORDER BY u.i`, rel.ID, names, oids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := make([]postgres.ColumnState, 0, len(rel.Columns))
	for rows.Next() {
		c := postgres.ColumnState{Name: rel.Columns[len(cols)].Name}
		if err := rows.Scan(&c.Type, &c.Collation); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return stateColumns(ctx, src, cols)
}

// whereUnfit is the error of a where condition that does not fit its
// table after a DDL event.
func whereUnfit(err error, ev *postgres.DDLEvent, lsn record.LSN, name record.TableName) error {
	return fmt.Errorf("%w; after %s at the source (source transaction committed at %s: %s) the objects item's where condition no longer fits table %s: the pipeline stops before this change (nothing of this source transaction or after it is applied at the sink; a rerun resumes there); change the where condition in the pipeline file to fit the table's new columns, or undo the change at the source, then run again",
		err, ev.Tag, lsn, ev.ShortStatement(200), name)
}

// whereAhead looks in a slice of received events for the first source
// transaction with a DDL event after which a table's where condition will
// not fit it (tableAltered will stop the pipeline there). It returns the
// number of events before that transaction's Begin and the error to stop
// with: the stream loop applies and commits those first, so that the
// pipeline stops right before the transaction and a rerun with the
// condition edited for the new columns does not meet rows of the old
// columns first (a renamed column fits one or the other, never both).
// n is len(evs) and err nil when no such transaction begins in evs.
// skipping is the stream loop's state at the slice's start.
func (r *runner) whereAhead(ctx context.Context, evs []postgres.Event, skipping bool, applied record.LSN) (n int, err error) {
	d := r.ddl
	if d == nil || !r.mapping.hasWhere() {
		return len(evs), nil
	}
	begin := 0
	for i := range evs {
		ev := &evs[i]
		switch ev.Kind {
		case postgres.EventBegin:
			skipping = ev.CommitLSN <= applied
			begin = i
			continue
		case postgres.EventChange:
		default:
			continue
		}
		rec := &ev.Record
		if skipping || rec.Rel == nil || rec.Rel.Table != postgres.DDLLogTable || rec.Op != record.Insert {
			continue
		}
		de, err := postgres.DecodeDDLEvent(rec)
		if err != nil || de.Error != "" || !de.Table() || de.New == nil || !slices.Contains(replicatedTags, de.Tag) || d.routed[de.RelID] {
			continue // tableAltered has its say
		}
		oids := []uint32{de.RelID}
		if de.New.Kind == "p" {
			oids = append(oids, d.partitionsOf(de.RelID)...)
		}
		var cols []where.Column
		for _, oid := range oids {
			o := r.mapping.where(oid)
			if o == nil {
				continue
			}
			if cols == nil {
				src, err := d.source(ctx)
				if err != nil {
					return 0, err
				}
				if cols, err = stateColumns(ctx, src, de.New.Columns); err != nil {
					return 0, fmt.Errorf("source: the columns of %s: %w", de.New.TableName(), err)
				}
			}
			name := de.New.TableName()
			if oid != de.RelID {
				name = d.known[oid]
			}
			if _, err := compileWhere(o.origin, o.cond, name, cols); err != nil {
				return begin, permanent(whereUnfit(err, de, ev.CommitLSN, name))
			}
		}
	}
	return len(evs), nil
}

// whereStop cuts a staged window (or, without stages, a received slice)
// before a transaction whose DDL makes a where condition unfit
// (whereAhead), giving the error to stop with after the rest is applied
// and committed, as a staging error is; hows is cut alike.
func (r *runner) whereStop(ctx context.Context, evs []postgres.Event, hows []how, stageErr error, skipping bool, applied record.LSN) ([]postgres.Event, []how, error) {
	if stageErr != nil {
		return evs, hows, stageErr
	}
	n, err := r.whereAhead(ctx, evs, skipping, applied)
	if err == nil {
		return evs, hows, nil
	}
	if hows != nil {
		hows = hows[:n]
	}
	return evs[:n], hows, err
}
