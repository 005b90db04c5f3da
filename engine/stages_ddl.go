package engine

// Transform stages and DDL replication: a table that joins the pipeline
// while streaming goes through the stages whose tables: scope takes it,
// and a table whose columns, key or name change by replicated DDL has
// them compiled again for its new shape. A stage that no longer fits
// stops the pipeline before the change, naming the stage, the table and
// the problem; its rows never pass a stage unchecked.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/transforms/rowexpr"
	"github.com/sluicehq/sluice/transforms/where"
)

// stageEpoch changes whenever changes staged before may have been staged
// wrongly: a table joined the pipeline (its where and operations), or the
// transform stages' coverage or compiled expressions changed.
func (r *runner) stageEpoch() int {
	return r.ddl.joinedCount() + r.chain.generation()
}

// stageBarrier reports whether the stream must apply a change before the
// changes after it are staged, because applying it may change what the
// stages and options do with them: a DDL event, or a change arriving with
// a relation the stream has not seen yet (its table may join the
// pipeline, or be renamed).
func (d *ddlRun) stageBarrier(rel *record.Relation, op record.Op) bool {
	if d == nil || rel == nil {
		return false
	}
	if rel.Table == postgres.DDLLogTable {
		return op == record.Insert
	}
	if rel.Table.Schema == postgres.ProgressSchema {
		return false
	}
	return d.rels[rel.ID] != rel && !d.ignored[rel.ID]
}

// truncateBarrier is stageBarrier for the relations of a TRUNCATE.
func (d *ddlRun) truncateBarrier(rels []*record.Relation) bool {
	for _, rel := range rels {
		if d.stageBarrier(rel, record.Truncate) {
			return true
		}
	}
	return false
}

// stagesJoined has the transform stages whose scope takes a table that
// joined the pipeline while streaming cover it, compiled for its shape:
// as the DDL event that created it captured it (state), else as the
// source's catalog has it.
func (d *ddlRun) stagesJoined(ctx context.Context, src *pgx.Conn, t *postgres.Table, state *postgres.TableState, lsn record.LSN) error {
	if t.ParentOID != 0 {
		d.parents[t.OID] = t.ParentOID
	}
	if t.Partitioned || d.r.chain.empty() {
		return nil
	}
	var sh *tableShape
	var err error
	if state != nil {
		sh, err = stateShape(ctx, src, state, t.OID, t.Name, t.Parent, state.Key)
	} else {
		sh, err = catalogShape(ctx, src, t)
	}
	if err != nil {
		return err
	}
	gained, _, _, err := d.r.chain.track(sh)
	if err != nil {
		return permanent(fmt.Errorf("%w; table %s joined the pipeline while streaming (source transaction committed at %s) and a transform stage whose tables: scope takes it does not fit it: the pipeline stops before the table's changes (nothing of this source transaction or after it is applied at the sink; a rerun resumes there); change the stage (its expression, or its tables: scope) in the pipeline file, then run again",
			err, t.Name, lsn))
	}
	if len(gained) > 0 {
		d.r.log.Info("table joined transform stages", "table", t.Name.String(), "stages", strings.Join(gained, ", "), "lsn", lsn.String())
	}
	return nil
}

// tableAltered compiles the stages and the objects' where conditions
// again for a table whose DDL the stream applied: its own, or each of its
// partitions' when it is partitioned (their columns are its columns; the
// partitioned table's own where, which partitions joining later take, too).
// A stage or a where condition that no longer fits stops the pipeline
// before the change, every problem of the table reported at once.
func (d *ddlRun) tableAltered(ctx context.Context, ev *postgres.DDLEvent, lsn record.LSN) error {
	next := ev.New
	if next == nil {
		return nil
	}
	if next.Parent != nil {
		d.parents[ev.RelID] = next.Parent.OID
	} else if d.parents[ev.RelID] != 0 {
		delete(d.parents, ev.RelID) // detached
	}
	if next.Kind == "p" {
		if ev.Old != nil {
			for _, p := range ev.Old.Partitions {
				if d.parents[p.OID] == ev.RelID {
					delete(d.parents, p.OID)
				}
			}
		}
		for _, p := range next.Partitions {
			d.parents[p.OID] = ev.RelID
		}
	}
	stages, wheres := !d.r.chain.empty(), d.r.mapping.hasWhere()
	if !stages && !wheres {
		return nil
	}
	src, err := d.source(ctx)
	if err != nil {
		return err
	}
	var oids []uint32
	if next.Kind == "p" {
		if wheres && d.r.mapping.where(ev.RelID) != nil {
			oids = append(oids, ev.RelID)
		}
		oids = append(oids, d.partitionsOf(ev.RelID)...)
	} else if d.tables[ev.RelID] != nil {
		oids = []uint32{ev.RelID}
	}
	for _, oid := range oids {
		name := next.TableName()
		var parent *record.TableName
		if p, ok := d.known[d.parents[oid]]; ok && d.parents[oid] != 0 {
			parent = &p
		}
		if oid != ev.RelID {
			name = d.known[oid]
		} else if next.Parent != nil {
			p := record.TableName{Schema: next.Parent.Schema, Name: next.Parent.Name}
			parent = &p
		}
		sh, err := stateShape(ctx, src, next, oid, name, parent, d.stageKey(oid, next))
		if err != nil {
			return err
		}
		var problems []error
		if stages && d.tables[oid] != nil {
			gained, lost, _, err := d.r.chain.track(sh)
			if err != nil {
				problems = append(problems, fmt.Errorf("%w; after %s at the source (source transaction committed at %s: %s) a transform stage no longer fits table %s: the pipeline stops before this change (nothing of this source transaction or after it is applied at the sink; a rerun resumes there); change the stage (its expression, or its tables: scope) in the pipeline file to fit the table's new columns, or undo the change at the source, then run again",
					err, ev.Tag, lsn, ev.ShortStatement(200), name))
			}
			if len(gained) > 0 {
				d.r.log.Info("table entered the scope of transform stages", "table", name.String(), "stages", strings.Join(gained, ", "), "tag", ev.Tag, "lsn", lsn.String())
			}
			if len(lost) > 0 {
				d.r.log.Warn("table left the scope of transform stages: its changes no longer go through them", "table", name.String(), "stages", strings.Join(lost, ", "), "tag", ev.Tag, "lsn", lsn.String())
			}
		}
		if err := d.whereAltered(sh, ev, lsn); err != nil {
			problems = append(problems, err)
		}
		if len(problems) > 0 {
			return permanent(errors.Join(problems...))
		}
	}
	return nil
}

// partitionsOf lists the pipeline's tables that are partitions of the
// table anc, at any depth, by OID in order.
func (d *ddlRun) partitionsOf(anc uint32) []uint32 {
	var oids []uint32
	for oid := range d.tables {
		if d.descends(oid, anc) {
			oids = append(oids, oid)
		}
	}
	slices.Sort(oids)
	return oids
}

// descends reports whether a table is a partition of the table anc, at
// any depth.
func (d *ddlRun) descends(oid, anc uint32) bool {
	for i := 0; i < 64 && oid != 0; i++ {
		oid = d.parents[oid]
		if oid == anc {
			return true
		}
	}
	return false
}

// stageKey is a table's key after DDL, as the applier keeps it (ddlRun.key):
// the primary key or replica identity index of the new state, else the
// key it had while its columns remain.
func (d *ddlRun) stageKey(oid uint32, st *postgres.TableState) []string {
	if len(st.Key) > 0 {
		return st.Key
	}
	c := d.r.chain
	c.mu.RLock()
	var cur []string
	if t := c.tables[oid]; t != nil && t.shape != nil {
		cur = t.shape.key
	}
	c.mu.RUnlock()
	for _, k := range cur {
		if !slices.ContainsFunc(st.Columns, func(col postgres.ColumnState) bool { return col.Name == k }) {
			return nil
		}
	}
	return cur
}

// stateShape is a table's shape from a captured catalog state: its copied
// columns (generated ones left out) with their types resolved at the
// source (a domain as its base type), and every column as a where
// condition sees it.
func stateShape(ctx context.Context, src *pgx.Conn, st *postgres.TableState, oid uint32, name record.TableName, parent *record.TableName, key []string) (*tableShape, error) {
	sh := &tableShape{oid: oid, name: name, parent: parent, key: slices.Clone(key), cols: rowexpr.Table{Name: name}}
	wcols, err := stateColumns(ctx, src, st.Columns)
	if err != nil {
		return nil, fmt.Errorf("source: the columns of %s: %w", name, err)
	}
	sh.where = wcols
	for i, c := range st.Columns {
		if c.Generated != "" {
			continue
		}
		sh.cols.Columns = append(sh.cols.Columns, rowexpr.Column{Name: c.Name, TypeOID: wcols[i].TypeOID, TypeName: wcols[i].TypeName, Key: slices.Contains(key, c.Name)})
	}
	return sh, nil
}

// stateColumns resolves captured columns (types as format_type renders
// them, qualified; a collation when it is not the type's) at the source
// as whereColumns reads a table's: the OID and name of the base type (a
// domain's, at any depth) and what the collation does. A type gone from
// the source since is left 0 with its own name: its values are strings in
// expressions, and a where condition can only test it for NULL.
func stateColumns(ctx context.Context, src *pgx.Conn, cols []postgres.ColumnState) ([]where.Column, error) {
	out := make([]where.Column, len(cols))
	if len(cols) == 0 {
		return out, nil
	}
	types, colls := make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		out[i] = where.Column{Name: c.Name, TypeName: c.Type}
		types[i], colls[i] = c.Type, c.Collation
	}
	dbC, err := databaseC(ctx, src)
	if err != nil {
		return nil, err
	}
	rows, err := src.Query(ctx, `
		WITH RECURSIVE col(i, typid, collid) AS (
			SELECT u.i, t.oid, COALESCE(pg_catalog.to_regcollation(NULLIF(u.coll, ''))::oid, t.typcollation)
			FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) WITH ORDINALITY u(typ, coll, i)
			JOIN pg_catalog.pg_type t ON t.oid = pg_catalog.to_regtype(u.typ)
		), base(i, typid, typtype, depth) AS (
			SELECT c.i, t.oid, t.typtype, 0
			FROM col c JOIN pg_catalog.pg_type t ON t.oid = c.typid
			UNION ALL
			SELECT b.i, t.typbasetype, bt.typtype, b.depth + 1
			FROM base b JOIN pg_catalog.pg_type t ON t.oid = b.typid
			JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
			WHERE b.typtype = 'd' AND b.depth < 32
		)
		SELECT c.i, b.typid, pg_catalog.format_type(b.typid, NULL),
			COALESCE(co.collname, ''),
			COALESCE(co.collisdeterministic, true),
			COALESCE(co.collprovider = 'c' AND co.collcollate IN ('C', 'POSIX') AND co.collctype IN ('C', 'POSIX'), false)
		FROM col c JOIN base b ON b.i = c.i AND b.typtype <> 'd'
		LEFT JOIN pg_catalog.pg_collation co ON co.oid = c.collid`, types, colls)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var i int64
		var c where.Column
		var coll string
		var deterministic, byteOrder bool
		if err := rows.Scan(&i, &c.TypeOID, &c.TypeName, &coll, &deterministic, &byteOrder); err != nil {
			return nil, err
		}
		if i < 1 || int(i) > len(out) {
			continue
		}
		c.Name = out[i-1].Name
		setCollation(&c, coll, deterministic, byteOrder, dbC)
		out[i-1] = c
	}
	return out, rows.Err()
}
