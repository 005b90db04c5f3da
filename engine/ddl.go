package engine

// DDL replication while streaming: DDL events captured at the source (see
// plugins/postgres/ddl.go) arrive as inserts into sluice.ddl_log, in their
// place among the data changes, and are applied here, inside the sink
// transaction that holds the rest of their source transaction. Tables
// created in the selection join the pipeline without a restart.

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// fpDDLApply is reached with DDL about to run inside an open sink
// transaction.
const fpDDLApply = "ddl.apply"

// CheckDDLCapture is the precheck item of DDL replication.
const CheckDDLCapture = "ddl_capture"

// replicatedTags are the command tags whose table changes are replicated.
var replicatedTags = []string{"CREATE TABLE", "CREATE TABLE AS", "SELECT INTO", "ALTER TABLE",
	"DROP TABLE", "CREATE INDEX", "ALTER INDEX"}

// droppable are the object types whose DROP is replicated (IF EXISTS at
// the sink): they hold no data, and the source's DROP succeeded, so
// nothing at the sink that the pipeline made depends on them.
var droppable = map[string]string{"index": "INDEX", "view": "VIEW", "materialized view": "MATERIALIZED VIEW"}

// ddlRun is one streaming run's DDL replication: which source relations
// the pipeline replicates, by OID, kept current as tables come and go.
type ddlRun struct {
	r *runner
	// tables are the applier's tables (row-holding relations), shared
	// with it; known are the names of every replicated relation,
	// partitioned parents included.
	tables  map[uint32]*postgres.ApplyTable
	known   map[uint32]record.TableName
	ignored map[uint32]bool // relations dropped at the source since: their changes are moot
	schemas map[string]bool // schema items
	items   map[record.TableName]bool
	// tableSchemas holds the schemas of the selected tables: DDL there
	// that is not replicated gets a warning.
	tableSchemas map[string]bool
	src          *pgx.Conn // the source, for the catalog; opened on first use
	// commit asks for the sink transaction to end after the current
	// source transaction (a new enum label is usable only once committed).
	commit bool
	// rels are the stream's relations last seen per OID, checked holds
	// the OIDs whose sink table was checked this run.
	rels    map[uint32]*record.Relation
	checked map[uint32]bool
	// routed are partitions whose changes go through the sink's
	// partitioned table, because the sink's layout differs.
	routed map[uint32]bool
	// joined counts the tables that joined the pipeline while streaming:
	// changes staged before a join were staged without the new table's
	// options (see streamOnce).
	joined int
	// parents holds each partition's partitioned table, by OID: DDL on a
	// partitioned table changes its partitions' columns too.
	parents map[uint32]uint32
}

// joinedCount returns how many tables joined while streaming so far.
func (d *ddlRun) joinedCount() int {
	if d == nil {
		return 0
	}
	return d.joined
}

func (r *runner) newDDLRun(tables []*postgres.Table, apply map[uint32]*postgres.ApplyTable) *ddlRun {
	d := &ddlRun{r: r, tables: apply, known: map[uint32]record.TableName{}, ignored: map[uint32]bool{},
		rels: map[uint32]*record.Relation{}, checked: map[uint32]bool{}, routed: map[uint32]bool{},
		schemas: map[string]bool{}, items: map[record.TableName]bool{}, tableSchemas: map[string]bool{}, parents: map[uint32]uint32{}}
	for _, s := range r.cfg.Objects {
		if s.Schema != "" {
			d.schemas[s.Schema] = true
			d.tableSchemas[s.Schema] = true
		} else {
			d.items[s.Table] = true
		}
	}
	for _, t := range tables {
		d.known[t.OID] = t.Name
		d.tableSchemas[t.Name.Schema] = true
		if t.ParentOID != 0 {
			d.parents[t.OID] = t.ParentOID
		}
	}
	return d
}

func (d *ddlRun) close(ctx context.Context) {
	if d != nil && d.src != nil {
		d.src.Close(context.WithoutCancel(ctx))
		d.src = nil
	}
}

func (d *ddlRun) source(ctx context.Context) (*pgx.Conn, error) {
	if d.src != nil && !d.src.IsClosed() {
		return d.src, nil
	}
	c, err := postgres.Connect(ctx, d.r.cfg.SourceDSN, "source")
	if err != nil {
		return nil, err
	}
	d.src = c
	return c, nil
}

// selectedName reports whether the pipeline's objects list selects a table
// by its name.
func (d *ddlRun) selectedName(n record.TableName) bool {
	return n.Schema != postgres.ProgressSchema && (d.schemas[n.Schema] || d.items[n])
}

// replicated reports whether a source table is replicated, by name: for
// foreign keys created by DDL.
func (d *ddlRun) replicated(n record.TableName) bool {
	if d.selectedName(n) {
		return true
	}
	for _, k := range d.known {
		if k == n {
			return true
		}
	}
	return false
}

func (d *ddlRun) names() postgres.DDLNames {
	return postgres.DDLNames{Table: d.r.target, Column: d.r.mapping.rules.Column, Selected: d.replicated}
}

// warn reports a DDL statement that is not (or not wholly) replicated:
// a warning naming it, and a counter in the status.
func (d *ddlRun) warn(ev *postgres.DDLEvent, lsn record.LSN, reason string) {
	d.r.log.Warn("DDL not replicated to the sink: "+reason, "tag", ev.Tag, "object", ev.Identity,
		"statement", ev.ShortStatement(300), "lsn", lsn.String())
	d.r.mon.ddlCounted(false)
}

// change handles what DDL replication must see of a streamed change before
// it is applied: a DDL event is applied here (done); a change of a table
// dropped at the source since is moot (done); a table created since
// joins the pipeline first (not done: the change is then applied as
// usual).
func (d *ddlRun) change(ctx context.Context, a *postgres.Applier, rec *record.Record, lsn record.LSN) (done bool, err error) {
	if rec.Rel == nil || rec.Rel.Table == postgres.HeartbeatTable {
		return false, nil
	}
	if rec.Rel.Table == postgres.DDLLogTable {
		return true, d.event(ctx, a, rec, lsn)
	}
	return d.unknown(ctx, a, rec, lsn)
}

// unknown handles a change of a relation the applier does not know: a
// table created at the source since the run began (CREATE TABLE AS and
// SELECT INTO write their rows before their DDL event) or a partition
// attached since. A selected one is created at the sink and joins the
// pipeline; skip is true when the change is moot (its table was dropped
// at the source since, and that drop follows in the stream).
//
// It also keeps each table's sink name in step with the stream: the
// relation a change arrives with names the table as it was then, which
// after a restart may differ from the source's catalog now (a rename not
// yet applied at the sink).
func (d *ddlRun) unknown(ctx context.Context, a *postgres.Applier, rec *record.Record, lsn record.LSN) (skip bool, err error) {
	if d == nil || rec.Rel == nil {
		return false, nil
	}
	return d.relation(ctx, a, rec.Rel, lsn)
}

// truncated leaves out of a TRUNCATE the tables dropped at the source
// since, and has the tables created since join the pipeline.
func (d *ddlRun) truncated(ctx context.Context, a *postgres.Applier, rels []*record.Relation, lsn record.LSN) ([]*record.Relation, error) {
	out := rels[:0:0]
	for _, rel := range rels {
		skip, err := d.relation(ctx, a, rel, lsn)
		if err != nil {
			return nil, err
		}
		if !skip {
			out = append(out, rel)
		}
	}
	return out, nil
}

// relation is unknown's work for one relation.
func (d *ddlRun) relation(ctx context.Context, a *postgres.Applier, rel *record.Relation, lsn record.LSN) (skip bool, err error) {
	if rel.Table == postgres.HeartbeatTable || rel.Table == postgres.DDLLogTable {
		return false, nil
	}
	id := rel.ID
	if d.rels[id] == rel {
		return false, nil // the common case: nothing changed
	}
	if d.tables[id] == nil {
		if d.ignored[id] {
			return true, nil
		}
		joined, err := d.join(ctx, a, id, lsn, nil, rel.Table)
		if err != nil || !joined {
			return !joined && d.ignored[id], err
		}
	}
	t := d.tables[id]
	if t == nil {
		return false, nil
	}
	if old := d.rels[id]; old != nil {
		d.r.mapping.forget(old) // superseded: a new relation message came
	}
	d.rels[id] = rel
	conn, err := a.SinkConn(ctx)
	if err != nil {
		return false, err
	}
	if d.routed[id] {
		return false, nil
	}
	if want := d.r.target(rel.Table); want != t.Target {
		if err := a.ForgetStatements(ctx); err != nil {
			return false, err
		}
		t.Target = want
	}
	if d.checked[id] {
		return false, nil
	}
	d.checked[id] = true
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", t.Target.Quoted()).Scan(&exists); err != nil {
		return false, fmt.Errorf("sink: look up table %s: %w", t.Target, err)
	}
	if !exists {
		// Created at the source after the sink's position, and its rows
		// come before its DDL event (CREATE TABLE AS after a restart).
		if _, err := d.join(ctx, a, id, lsn, nil, rel.Table); err != nil {
			return false, err
		}
		// Joining registers the table anew: set the new entry's name.
		if d.routed[id] {
			return false, nil
		}
		if nt := d.tables[id]; nt != nil {
			t = nt
		}
		t.Target = d.r.target(rel.Table)
	}
	return false, nil
}

// join creates a source table at the sink (mapped) from the source's
// catalog, as the schema sync does, and adds it to the pipeline, if the
// pipeline selects it (by schema or name, or as a partition of a table it
// replicates). It reports whether the table joined. state is the table as
// the DDL event that brings it captured it (nil: none); as is its name at
// this point of the stream (empty: unknown).
//
// The source's catalog may be ahead of the stream (the source ran more
// DDL since; a run resumed behind it): a table, or its partitioned table,
// renamed since is selected, given its objects item's options, created
// at the sink and attached under its name as the stream has it here,
// which its later changes use until the rename's own event renames it at
// the sink (see asStreamed).
func (d *ddlRun) join(ctx context.Context, a *postgres.Applier, oid uint32, lsn record.LSN, state *postgres.TableState, as record.TableName) (bool, error) {
	src, err := d.source(ctx)
	if err != nil {
		return false, err
	}
	loaded, err := postgres.LoadTables(ctx, src, []uint32{oid})
	if err != nil {
		return false, fmt.Errorf("source: %w", err)
	}
	var t *postgres.Table
	for _, lt := range loaded {
		if lt.OID == oid {
			t = lt
		}
	}
	if t == nil {
		// Gone at the source since: its DROP follows in the stream, so
		// nothing about it needs to reach the sink.
		d.ignored[oid] = true
		return false, nil
	}
	asStreamed(t, as)
	_, parentKnown := d.known[t.ParentOID]
	if !d.selectedName(t.Name) && !(t.ParentOID != 0 && parentKnown) {
		return false, nil
	}
	sink, err := a.SinkConn(ctx)
	if err != nil {
		return false, err
	}
	var parentAs record.TableName
	if t.Parent != nil {
		parentAs = d.parentAs(t, state)
	}
	target := d.streamTarget(t, as, parentAs)
	if parentAs.Name != "" {
		t.Parent = &parentAs
	}
	plan, err := postgres.PlanMissingMapped(ctx, src, sink, loaded, target, d.r.mapping.rules.Column)
	if err != nil {
		return false, fmt.Errorf("table %s, created at the source while streaming: %w", t.Name, err)
	}
	stmts := make([]postgres.Statement, 0, len(plan.Prelude)+len(plan.Statements))
	for _, p := range plan.Prelude {
		stmts = append(stmts, postgres.Statement{Object: "settings", SQL: p})
	}
	stmts = append(stmts, plan.Statements...)
	var route *record.TableName
	if len(plan.Statements) > 0 {
		if err := d.r.hit(fpDDLApply); err != nil {
			return false, err
		}
		route, err = d.create(ctx, a, t, stmts, lsn)
		if err != nil {
			return false, err
		}
	}
	if err := d.register(ctx, src, t, state, lsn); err != nil {
		return false, err
	}
	if route != nil {
		d.routed[t.OID] = true
		d.tables[t.OID].Target = *route
		d.r.log.Warn("a partition created at the source does not fit the sink's partitions: its changes go through the sink's partitioned table, which routes them by its own layout",
			"partition", t.Name.String(), "sink", route.String(), "lsn", lsn.String())
		return true, nil
	}
	d.r.log.Info("table joined the pipeline", "table", t.Name.String(), "sink", target(t.Name).String(), "lsn", lsn.String())
	return true, nil
}

// create runs the statements that create a table at the sink. For a
// partition that the sink's partitioned table cannot take (its layout
// differs: another key, or its own partitions already cover the range)
// it creates nothing and returns the sink table to route the partition's
// changes through instead.
func (d *ddlRun) create(ctx context.Context, a *postgres.Applier, t *postgres.Table, stmts []postgres.Statement, lsn record.LSN) (route *record.TableName, err error) {
	var parent record.TableName
	if t.ParentOID != 0 && t.Parent != nil {
		parent = d.r.target(*t.Parent)
		if len(t.Key) == 0 {
			// Rows of a table without a key are found with FROM ONLY, which
			// a partitioned table cannot serve: no routing.
			skipped, err := a.ExecDDL(ctx, stmts, lsn)
			for _, s := range skipped {
				d.r.log.Warn("sink: an optional statement was skipped", "reason", s)
			}
			if err != nil {
				return nil, fmt.Errorf("partition %s (without a key) cannot be created in the sink's %s, whose partitions differ, and its changes cannot be routed through it (add a primary key at the source, or make the sink's partitions match): %w", t.Name, parent, err)
			}
			return nil, nil
		}
		conn, err := a.SinkConn(ctx)
		if err != nil {
			return nil, err
		}
		var kind string
		if err := conn.QueryRow(ctx, `SELECT COALESCE((SELECT relkind::text FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass($1)), '')`, parent.Quoted()).Scan(&kind); err != nil {
			return nil, fmt.Errorf("sink: look up %s: %w", parent, err)
		}
		switch kind {
		case "r":
			return &parent, nil // not partitioned at the sink
		case "p":
			if _, err := conn.Exec(ctx, "SAVEPOINT sluice_partition"); err != nil {
				return nil, fmt.Errorf("sink: savepoint: %w", err)
			}
			if _, err := a.ExecDDL(ctx, stmts, lsn); err != nil {
				if _, rerr := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT sluice_partition"); rerr != nil {
					return nil, fmt.Errorf("sink: roll back to the savepoint: %w (after: %w)", rerr, err)
				}
				d.r.log.Warn("sink: the partitioned table cannot take the partition as the source has it", "partition", t.Name.String(), "sink", parent.String(), "error", err)
				return &parent, nil
			}
			if _, err := conn.Exec(ctx, "RELEASE SAVEPOINT sluice_partition"); err != nil {
				return nil, fmt.Errorf("sink: release savepoint: %w", err)
			}
			return nil, nil
		}
	}
	skipped, err := a.ExecDDL(ctx, stmts, lsn)
	for _, s := range skipped {
		d.r.log.Warn("sink: an optional statement was skipped", "reason", s)
	}
	return nil, err
}

// register adds a source table to the pipeline, with its item's options:
// a partition takes its partitioned table's (row filter included), a table
// its own item's or its schema's; the transform stages whose scope takes
// it cover it.
func (d *ddlRun) register(ctx context.Context, src *pgx.Conn, t *postgres.Table, state *postgres.TableState, lsn record.LSN) error {
	d.joined++
	d.known[t.OID] = t.Name
	d.tableSchemas[t.Name.Schema] = true
	delete(d.ignored, t.OID)
	if po := d.r.mapping.opts[t.ParentOID]; t.ParentOID != 0 && po != nil {
		d.r.mapping.setOptions(t.OID, po)
	} else if o, own := optionsFor(d.r.cfg.Options, t.Name); o != nil {
		ops, err := opMask(o.Operations)
		if err != nil {
			return permanent(fmt.Errorf("%s: operations: %w", o.Origin, err))
		}
		to := &tableOptions{ops: ops, origin: o.Origin}
		if o.Where != "" && own {
			to.cond = o.Where
			cols, err := whereColumnsAt(ctx, src, t, state)
			if err != nil {
				return err
			}
			f, err := compileWhere(o.Origin, o.Where, t.Name, cols)
			if err != nil {
				return permanent(fmt.Errorf("%w; table %s joined the pipeline while streaming (source transaction committed at %s) and its objects item's where condition does not fit it: the pipeline stops before the table's changes (nothing of this source transaction or after it is applied at the sink; a rerun resumes there); change the where condition in the pipeline file, then run again", err, t.Name, lsn))
			}
			to.filter = f
		}
		if to.cond != "" || to.ops != opAll {
			d.r.mapping.setOptions(t.OID, to)
		} else {
			d.r.mapping.clearOptions(t.OID)
		}
	} else {
		d.r.mapping.clearOptions(t.OID) // none: a table joining again may have had some
	}
	if err := d.r.bindName(t.OID, t.Name); err != nil {
		return err
	}
	if err := d.stagesJoined(ctx, src, t, state, lsn); err != nil {
		return err
	}
	if t.Partitioned {
		return nil
	}
	d.tables[t.OID] = &postgres.ApplyTable{Target: d.r.target(t.Name), Key: d.r.mapping.sinkKey(t)}
	return nil
}

// event applies one streamed insert into sluice.ddl_log.
func (d *ddlRun) event(ctx context.Context, a *postgres.Applier, rec *record.Record, lsn record.LSN) error {
	if rec.Op != record.Insert {
		return nil // the trigger's own clean-up of old log rows
	}
	ev, err := postgres.DecodeDDLEvent(rec)
	if err != nil {
		return permanent(fmt.Errorf("source transaction committed at %s: %w", lsn, err))
	}
	if ev.Error != "" {
		if ev.Schema == "" || d.tableSchemas[ev.Schema] {
			d.warn(ev, lsn, "the source failed to capture the statement ("+ev.Error+"): make the same change at the sink")
		}
		return nil
	}
	switch {
	case ev.Table() && ev.New == nil:
		return d.dropTable(ctx, a, ev, lsn)
	case ev.Table():
		return d.alterTable(ctx, a, ev, lsn)
	}
	return d.other(ctx, a, ev, lsn)
}

// dropTable applies a DROP TABLE of a replicated table.
func (d *ddlRun) dropTable(ctx context.Context, a *postgres.Applier, ev *postgres.DDLEvent, lsn record.LSN) error {
	name, ok := d.known[ev.RelID]
	if !ok {
		if ev.Old == nil || !d.selectedName(ev.Old.TableName()) {
			return nil
		}
		name = ev.Old.TableName()
	}
	target := d.r.target(name)
	if d.routed[ev.RelID] {
		d.warn(ev, lsn, fmt.Sprintf("partition %s, whose changes went through the sink's partitioned table, was dropped at the source: its rows stay at the sink (delete them there)", name))
	} else {
		if err := d.r.hit(fpDDLApply); err != nil {
			return err
		}
		if _, err := a.ExecDDL(ctx, []postgres.Statement{{Object: "table " + target.String(), SQL: "DROP TABLE IF EXISTS " + target.Quoted()}}, lsn); err != nil {
			return err
		}
	}
	delete(d.known, ev.RelID)
	delete(d.tables, ev.RelID)
	delete(d.rels, ev.RelID)
	delete(d.parents, ev.RelID)
	d.r.chain.untrack(ev.RelID)
	d.ignored[ev.RelID] = true
	if err := d.r.unbindName(ev.RelID); err != nil {
		return err
	}
	d.r.log.Info("DDL applied", "tag", ev.Tag, "table", name.String(), "sink", target.String(), "lsn", lsn.String())
	d.r.mon.ddlCounted(true)
	return nil
}

// alterTable makes the sink table match the state the event captured.
func (d *ddlRun) alterTable(ctx context.Context, a *postgres.Applier, ev *postgres.DDLEvent, lsn record.LSN) error {
	next, prev := ev.New, ev.Old
	srcName := next.TableName()
	knownName, known := d.known[ev.RelID]
	if known && creates(ev) && !d.routed[ev.RelID] {
		d.rejoin(ev.RelID)
		knownName, known = record.TableName{}, false
	}
	if !known {
		_, parentKnown := d.known[parentOID(next)]
		if !d.selectedName(srcName) && !parentKnown {
			return nil // not the pipeline's
		}
	} else if d.leaves(ev, knownName) {
		return d.leave(ev, lsn, knownName)
	}
	if !slices.Contains(replicatedTags, ev.Tag) {
		d.warn(ev, lsn, ev.Tag+" is not replicated")
		return nil
	}
	if d.routed[ev.RelID] {
		return nil // no table of its own at the sink: its parent's DDL reaches its rows
	}
	created := creates(ev)
	if !known {
		if !created {
			d.warn(ev, lsn, fmt.Sprintf("table %s entered the selection by %s: it is created at the sink and its changes from now on are replicated, but the rows it held before are not copied (run `sluice verify`)", srcName, ev.Tag))
		}
		joined, err := d.join(ctx, a, ev.RelID, lsn, next, srcName)
		if err != nil || !joined || d.routed[ev.RelID] {
			return err
		}
	}
	sink, err := d.sinkTable(ctx, a, ev.RelID, srcName, prev, knownName)
	if err != nil {
		return err
	}
	if sink == nil {
		// Known but missing at the sink (dropped there by hand?): create
		// it again from the source's catalog.
		if _, err := d.join(ctx, a, ev.RelID, lsn, next, srcName); err != nil || d.routed[ev.RelID] {
			return err
		}
		if sink, err = d.sinkTable(ctx, a, ev.RelID, srcName, prev, knownName); err != nil {
			return err
		}
		if sink == nil {
			d.warn(ev, lsn, fmt.Sprintf("table %s is not at the sink and could not be created there", srcName))
			return nil
		}
	}
	sinkConn, err := a.SinkConn(ctx)
	if err != nil {
		return err
	}
	// A table created by this event was made at the sink from the
	// source's catalog as it is now, or by an earlier run's schema sync:
	// either may be ahead of the event, so it is made to match it exactly.
	plan := postgres.PlanTableDDL(prev, next, sink, d.names(), created)
	for _, w := range plan.Warnings {
		d.warn(ev, lsn, w)
	}
	stmts := plan.Statements
	var create []postgres.RelRef
	for _, p := range plan.Attach {
		pn := d.r.target(p.TableName())
		ps, err := postgres.ReadTableState(ctx, sinkConn, pn)
		if err != nil {
			return fmt.Errorf("sink: %w", err)
		}
		switch {
		case ps == nil:
			create = append(create, p)
			if _, was := d.known[p.OID]; !was && ev.Tag == "ALTER TABLE" {
				d.warn(ev, lsn, fmt.Sprintf("partition %s was attached to %s: it is created at the sink and its changes from now on are replicated, but the rows it held before are not copied (run `sluice verify`)", p.TableName(), srcName))
			}
		case ps.Parent == nil:
			stmts = append(stmts, postgres.Statement{Object: "table " + pn.String(),
				SQL: "ALTER TABLE " + d.r.target(srcName).Quoted() + " ATTACH PARTITION " + pn.Quoted() + " " + p.Bound})
		}
	}
	if len(stmts) > 0 {
		if err := d.r.hit(fpDDLApply); err != nil {
			return err
		}
		if _, err := a.ExecDDL(ctx, stmts, lsn); err != nil {
			return err
		}
	}
	d.known[ev.RelID] = srcName // before its partitions join: their parent's name
	for _, p := range create {
		if _, err := d.join(ctx, a, p.OID, lsn, nil, p.TableName()); err != nil {
			return err
		}
	}
	if len(stmts) == 0 && len(create) == 0 && ev.Tag == "ALTER TABLE" && prev != nil && reflect.DeepEqual(prev, next) {
		d.warn(ev, lsn, "this ALTER TABLE changes nothing sluice replicates (storage parameters, tablespace, triggers, row security, statistics, ...); apply it at the sink yourself if the sink needs it")
	}
	if t := d.tables[ev.RelID]; t != nil {
		t.Target = d.r.target(srcName)
		t.Key = d.key(srcName, next, t.Key)
	}
	if err := d.tableAltered(ctx, ev, lsn); err != nil {
		return err
	}
	if len(stmts) > 0 || len(create) > 0 {
		d.r.log.Info("DDL applied", "tag", ev.Tag, "table", srcName.String(), "sink", d.r.target(srcName).String(),
			"statements", len(stmts), "lsn", lsn.String())
		d.r.mon.ddlCounted(true)
	}
	return nil
}

// sinkTable finds the sink table of a source table: under the name the
// event gives it, the name it had before, or the name the pipeline last
// knew it by.
func (d *ddlRun) sinkTable(ctx context.Context, a *postgres.Applier, oid uint32, name record.TableName, prev *postgres.TableState, knownName record.TableName) (*postgres.TableState, error) {
	conn, err := a.SinkConn(ctx)
	if err != nil {
		return nil, err
	}
	names := []record.TableName{name}
	if prev != nil {
		names = append(names, prev.TableName())
	}
	if knownName.Name != "" {
		names = append(names, knownName)
	}
	if n, ok := d.known[oid]; ok {
		names = append(names, n)
	}
	for _, n := range names {
		st, err := postgres.ReadTableState(ctx, conn, d.r.target(n))
		if err != nil {
			return nil, fmt.Errorf("sink: %w", err)
		}
		if st != nil {
			return st, nil
		}
	}
	return nil, nil
}

func parentOID(s *postgres.TableState) uint32 {
	if s.Parent == nil {
		return 0
	}
	return s.Parent.OID
}

// key is the sink key of a table after DDL: its primary key (or replica
// identity index), else the key it had while its columns remain.
func (d *ddlRun) key(name record.TableName, st *postgres.TableState, cur []string) []string {
	if len(st.Key) > 0 {
		out := make([]string, len(st.Key))
		for i, k := range st.Key {
			out[i], _ = d.r.mapping.rules.Column(name, k)
		}
		return out
	}
	for _, k := range cur {
		found := false
		for _, c := range st.Columns {
			if n, _ := d.r.mapping.rules.Column(name, c.Name); n == k {
				found = true
			}
		}
		if !found {
			return nil
		}
	}
	return cur
}

// commitDue reports (once) that the sink transaction should end after
// the current source transaction.
func (d *ddlRun) commitDue() bool {
	if d == nil || !d.commit {
		return false
	}
	d.commit = false
	return true
}

// other handles DDL on objects other than tables: labels added to an enum
// and drops of indexes and views in the selection are replicated, the rest
// gets a warning when it touches a schema of the selection.
func (d *ddlRun) other(ctx context.Context, a *postgres.Applier, ev *postgres.DDLEvent, lsn record.LSN) error {
	if ev.Schema == "" || !d.tableSchemas[ev.Schema] {
		return nil
	}
	if ev.ObjectType == "enum" && ev.Tag == "ALTER TYPE" && ev.New != nil {
		return d.enumLabels(ctx, a, ev, lsn)
	}
	if ev.ObjectType == "enum" {
		d.warn(ev, lsn, fmt.Sprintf("%s on a type is not replicated; apply it at the sink yourself if the sink needs it", ev.Tag))
		return nil
	}
	kind, drop := droppable[ev.ObjectType]
	if !drop || !strings.HasPrefix(ev.Tag, "DROP ") {
		d.warn(ev, lsn, fmt.Sprintf("%s on a %s is not replicated; apply it at the sink yourself if the sink needs it", ev.Tag, ev.ObjectType))
		return nil
	}
	schema, name, ok := splitIdentity(ev.Identity)
	if !ok || schema != ev.Schema {
		d.warn(ev, lsn, "cannot read the dropped object's name "+ev.Identity)
		return nil
	}
	target := d.r.target(record.TableName{Schema: schema, Name: name})
	if err := d.r.hit(fpDDLApply); err != nil {
		return err
	}
	sql := "DROP " + kind + " IF EXISTS " + target.Quoted()
	if _, err := a.ExecDDL(ctx, []postgres.Statement{{Object: ev.ObjectType + " " + target.String(), SQL: sql}}, lsn); err != nil {
		return err
	}
	d.r.log.Info("DDL applied", "tag", ev.Tag, "object", ev.Identity, "lsn", lsn.String())
	d.r.mon.ddlCounted(true)
	return nil
}

// enumLabels adds at the sink the labels an enum gained at the source, each
// in its place (ALTER TYPE ... ADD VALUE ... BEFORE/AFTER; types keep
// their source names at the sink). A label added inside the sink
// transaction cannot be used before it commits, so the sink transaction
// ends with this source transaction.
func (d *ddlRun) enumLabels(ctx context.Context, a *postgres.Applier, ev *postgres.DDLEvent, lsn record.LSN) error {
	conn, err := a.SinkConn(ctx)
	if err != nil {
		return err
	}
	var have []string
	if err := conn.QueryRow(ctx, `SELECT COALESCE(pg_catalog.array_agg(e.enumlabel ORDER BY e.enumsortorder), '{}')
		FROM pg_catalog.pg_enum e WHERE e.enumtypid = pg_catalog.to_regtype($1)`, ev.Identity).Scan(&have); err != nil {
		return fmt.Errorf("sink: read the labels of enum %s: %w", ev.Identity, err)
	}
	if len(have) == 0 {
		d.warn(ev, lsn, "enum "+ev.Identity+" is not at the sink")
		return nil
	}
	var stmts []postgres.Statement
	// The same number of labels with one different: RENAME VALUE.
	if len(have) == len(ev.New.Enum) {
		var diff []int
		for i := range have {
			if have[i] != ev.New.Enum[i] {
				diff = append(diff, i)
			}
		}
		if len(diff) == 1 {
			var sql string
			if err := conn.QueryRow(ctx, `SELECT pg_catalog.format('ALTER TYPE %s RENAME VALUE %L TO %L', pg_catalog.to_regtype($1), $2::text, $3::text)`,
				ev.Identity, have[diff[0]], ev.New.Enum[diff[0]]).Scan(&sql); err != nil {
				return fmt.Errorf("sink: build ALTER TYPE for enum %s: %w", ev.Identity, err)
			}
			stmts = append(stmts, postgres.Statement{Object: "type " + ev.Identity, SQL: sql})
			have[diff[0]] = ev.New.Enum[diff[0]]
		}
	}
	for i, l := range ev.New.Enum {
		if slices.Contains(have, l) {
			continue
		}
		// Quoted by the sink itself (format %L), placed after the label
		// before it, or before the first.
		where, anchor := "AFTER", ""
		if i == 0 {
			if len(ev.New.Enum) > 1 {
				where, anchor = "BEFORE", ev.New.Enum[1]
			}
		} else {
			anchor = ev.New.Enum[i-1]
		}
		var sql string
		if err := conn.QueryRow(ctx, `SELECT pg_catalog.format('ALTER TYPE %s ADD VALUE IF NOT EXISTS %L', pg_catalog.to_regtype($1), $2::text)
			|| CASE WHEN $4::text = '' THEN '' ELSE pg_catalog.format(' %s %L', $3::text, $4::text) END`,
			ev.Identity, l, where, anchor).Scan(&sql); err != nil {
			return fmt.Errorf("sink: build ALTER TYPE for enum %s: %w", ev.Identity, err)
		}
		stmts = append(stmts, postgres.Statement{Object: "type " + ev.Identity, SQL: sql})
		have = append(have, l)
	}
	if len(stmts) == 0 {
		return nil
	}
	if err := d.r.hit(fpDDLApply); err != nil {
		return err
	}
	if _, err := a.ExecDDL(ctx, stmts, lsn); err != nil {
		return err
	}
	d.commit = true
	d.r.log.Info("DDL applied", "tag", ev.Tag, "object", ev.Identity, "statements", len(stmts), "lsn", lsn.String())
	d.r.mon.ddlCounted(true)
	return nil
}

// splitIdentity splits a qualified name as PostgreSQL's object identity
// renders it (quote_ident applied to each part).
func splitIdentity(s string) (schema, name string, ok bool) {
	var parts []string
	var b strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' && quoted && i+1 < len(s) && s[i+1] == '"':
			b.WriteByte('"')
			i++
		case c == '"':
			quoted = !quoted
		case c == '.' && !quoted:
			parts = append(parts, b.String())
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	parts = append(parts, b.String())
	if len(parts) != 2 || quoted {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// publication installs the DDL capture at the source and says what the
// pipeline's publication holds besides the selected tables: with the
// capture, the DDL log and the selected schemas as a whole (FOR TABLES IN
// SCHEMA: a table created there is published from its creation, so all
// its rows are in the stream and it needs no copy). Without a superuser
// the capture degrades with a warning: DDL is not replicated.
func (r *runner) publication(ctx context.Context, src *pgx.Conn) postgres.Publish {
	if err := postgres.InstallDDLCapture(ctx, src); err != nil {
		r.log.Warn("DDL replication is off", "reason", err.Error())
		return postgres.Publish{}
	}
	p := postgres.Publish{DDLLog: true}
	for _, s := range r.cfg.Objects {
		if s.Schema != "" && !slices.Contains(p.Schemas, s.Schema) {
			p.Schemas = append(p.Schemas, s.Schema)
		}
	}
	return p
}

// forget drops the mapping's cache entry for a relation the stream has
// replaced.
func (m *mapping) forget(rel *record.Relation) {
	m.mu.Lock()
	delete(m.rels, rel)
	m.mu.Unlock()
}

// ddlCounted counts a DDL event applied, or a warning about one.
func (m *monitor) ddlCounted(applied bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Stream == nil {
		m.st.Stream = &StreamStatus{}
	}
	if applied {
		m.st.Stream.DDLApplied++
	} else {
		m.st.Stream.DDLWarnings++
	}
}

// streamOwnsSchema reports whether the schema step must leave missing
// tables to the stream: once streaming has begun with DDL capture, the
// source's catalog may be ahead of the sink's position (a table created,
// or created and renamed, in changes not applied yet), and the stream's
// DDL events create and rename tables in their order.
func (r *runner) streamOwnsSchema(ctx context.Context, src *pgx.Conn, phase checkpoint.Phase) bool {
	if !r.cfg.Incremental || phase != checkpoint.PhaseStream {
		return false
	}
	on, err := postgres.DDLCaptureInstalled(ctx, src)
	return err == nil && on
}

// checkDDLCapture is the precheck item of DDL replication.
func (c *checker) checkDDLCapture() {
	if !c.srcRole.Super {
		c.add(CheckDDLCapture, Warn, "user "+c.srcRole.User+" is not a superuser: DDL run at the source while streaming (CREATE/ALTER/DROP TABLE, CREATE INDEX) will not be replicated, and tables created in a selected schema will not join the pipeline",
			fmt.Sprintf("run the pipeline as a superuser at the source (event triggers need one); or do not change the schema while streaming, and acknowledge with ignore_checks: [%s]", CheckDDLCapture))
		return
	}
	c.add(CheckDDLCapture, Pass, "user "+c.srcRole.User+" is a superuser: DDL is captured by an event trigger and replicated", "")
}
