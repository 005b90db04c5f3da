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
		if o.filter != nil {
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
	if o := m.opts[oid]; o != nil && o.filter != nil {
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
	f, err := compileWhere(o.origin, o.filter.String(), sh.name, sh.where)
	if err != nil {
		return fmt.Errorf("%w; after %s at the source (source transaction committed at %s: %s) the objects item's where condition no longer fits table %s: the pipeline stops before this change (nothing of this source transaction or after it is applied at the sink; a rerun resumes there); change the where condition in the pipeline file to fit the table's new columns, or undo the change at the source, then run again",
			err, ev.Tag, lsn, ev.ShortStatement(200), sh.name)
	}
	next := *o
	next.filter = f
	d.r.mapping.opts[sh.oid] = &next
	if f.SQL() != o.filter.SQL() {
		d.r.log.Info("where condition compiled again for the table's new columns", "table", sh.name.String(), "item", o.origin,
			"condition", f.SQL(), "tag", ev.Tag, "lsn", lsn.String())
	}
	return nil
}
