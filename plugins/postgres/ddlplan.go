package postgres

// DDL regenerated at the sink from captured table states (see ddl.go).

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
)

// DDLNames are the pipeline's names for DDL replication.
type DDLNames struct {
	// Table maps a source table to its sink name.
	Table TargetName
	// Column maps a source table's column to its sink name (dropped when
	// the column is not replicated); nil keeps every column as it is.
	Column ColumnName
	// Selected reports whether a source table is replicated by the
	// pipeline (a foreign key to a table that is not cannot be created).
	Selected func(record.TableName) bool
}

func (n DDLNames) column(table record.TableName, col string) (string, bool) {
	if n.Column == nil {
		return col, false
	}
	return n.Column(table, col)
}

// TableDDL is what it takes to make a sink table match a captured state.
type TableDDL struct {
	Statements []Statement
	// Warnings name what could not be replicated, and why.
	Warnings []string
	// Attach lists the source's partitions that the sink table lacks.
	Attach []RelRef
}

// PlanTableDDL returns the statements that make the sink table, whose
// current state is sink, match the source table's captured state next,
// with the pipeline's names. prev is the source table's state before the
// statement (nil when unknown): renames of tables, columns, constraints and
// indexes are told from drops and adds by their OIDs in prev and next, and
// only what prev had is dropped, never what exists at the sink alone. The
// plan is computed from the difference, so applying an event twice, or one
// the sink is already past, does no harm. With exact (the sink table was
// just created for the event, from the source's catalog as it is now,
// which may be ahead of the event) the sink's columns, constraints and
// indexes the event's state lacks are dropped too.
func PlanTableDDL(prev, next, sink *TableState, names DDLNames, exact bool) *TableDDL {
	out := &TableDDL{}
	src := next.TableName()
	want := names.Table(src)
	obj := "table " + want.String()
	add := func(sql string) { out.Statements = append(out.Statements, Statement{Object: obj, SQL: sql}) }
	warn := func(format string, args ...any) { out.Warnings = append(out.Warnings, fmt.Sprintf(format, args...)) }

	cur := sink.TableName()
	if cur.Schema != want.Schema {
		add("ALTER TABLE " + cur.Quoted() + " SET SCHEMA " + record.QuoteIdent(want.Schema))
		cur.Schema = want.Schema
	}
	if cur.Name != want.Name {
		add("ALTER TABLE " + cur.Quoted() + " RENAME TO " + record.QuoteIdent(want.Name))
	}
	tq := want.Quoted()
	// A partition at one side only: attach or detach at the sink.
	switch {
	case next.Parent == nil && sink.Parent != nil:
		add("ALTER TABLE " + sink.Parent.TableName().Quoted() + " DETACH PARTITION " + tq)
	case next.Parent != nil && sink.Parent == nil && next.Bound != "":
		add("ALTER TABLE " + names.Table(next.Parent.TableName()).Quoted() + " ATTACH PARTITION " + tq + " " + next.Bound)
	}
	col := func(name string) (string, bool) { return names.column(src, name) }
	mappedCol := func(name string) bool {
		n, dropped := col(name)
		return dropped || n != name
	}
	anyMapped := false
	for _, c := range next.Columns {
		if mappedCol(c.Name) {
			anyMapped = true
		}
	}

	sinkCols := map[string]*ColumnState{}
	for i := range sink.Columns {
		sinkCols[sink.Columns[i].Name] = &sink.Columns[i]
	}
	sinkCons := map[string]*ConstraintState{}
	for i := range sink.Constraints {
		sinkCons[sink.Constraints[i].Name] = &sink.Constraints[i]
	}
	sinkIdx := map[string]*IndexState{}
	for i := range sink.Indexes {
		sinkIdx[sink.Indexes[i].Name] = &sink.Indexes[i]
	}

	// Renames, told by attnum and OID.
	if prev != nil {
		for _, pc := range prev.Columns {
			nc := next.columnNum(pc.Num)
			if nc == nil || nc.Name == pc.Name {
				continue
			}
			from, d1 := col(pc.Name)
			to, d2 := col(nc.Name)
			if d1 || d2 || from == to || sinkCols[from] == nil || sinkCols[to] != nil {
				continue
			}
			add(fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", tq, record.QuoteIdent(from), record.QuoteIdent(to)))
			sinkCols[to] = sinkCols[from]
			delete(sinkCols, from)
		}
		for _, pk := range prev.Constraints {
			nk := findConstraintOID(next, pk.OID)
			if nk == nil || nk.Name == pk.Name || sinkCons[pk.Name] == nil || sinkCons[nk.Name] != nil {
				continue
			}
			add(fmt.Sprintf("ALTER TABLE %s RENAME CONSTRAINT %s TO %s", tq, record.QuoteIdent(pk.Name), record.QuoteIdent(nk.Name)))
			sinkCons[nk.Name] = sinkCons[pk.Name]
			delete(sinkCons, pk.Name)
			// Renaming a key constraint renames its index.
			if ix := sinkIdx[pk.Name]; ix != nil && sinkIdx[nk.Name] == nil {
				sinkIdx[nk.Name] = ix
				delete(sinkIdx, pk.Name)
			}
		}
		for _, pi := range prev.Indexes {
			ni := findIndexOID(next, pi.OID)
			if ni == nil || ni.Name == pi.Name || sinkIdx[pi.Name] == nil || sinkIdx[ni.Name] != nil {
				continue
			}
			add(fmt.Sprintf("ALTER INDEX %s RENAME TO %s", qname(want.Schema, pi.Name), record.QuoteIdent(ni.Name)))
			sinkIdx[ni.Name] = sinkIdx[pi.Name]
			delete(sinkIdx, pi.Name)
		}
	}
	inPrev := func(kind, name string) bool {
		if exact {
			return true
		}
		if prev == nil {
			return false
		}
		switch kind {
		case "constraint":
			return slices.ContainsFunc(prev.Constraints, func(c ConstraintState) bool { return c.Name == name })
		case "index":
			return slices.ContainsFunc(prev.Indexes, func(c IndexState) bool { return c.Name == name })
		}
		return false
	}

	// Constraints wanted at the sink, with their sink definitions.
	type wantCon struct {
		c        ConstraintState
		def, cmp string // to add it; as the sink's catalog shows it
	}
	var wantCons []wantCon
	wanted := map[string]bool{}
	for _, c := range next.Constraints {
		if !c.Local {
			continue // inherited from a parent: comes with the parent's
		}
		def, cmp, why := sinkConstraintDef(c, src, names, anyMapped)
		if why != "" {
			warn("constraint %s of table %s is not replicated: %s", dispIdent(c.Name), src, why)
			if sinkCons[c.Name] != nil {
				wanted[c.Name] = true // leave the sink's own alone
			}
			continue
		}
		wanted[c.Name] = true
		wantCons = append(wantCons, wantCon{c, def, cmp})
	}
	// Drop the constraints the source dropped, and those whose definition
	// changed (added again below).
	for _, sc := range sink.Constraints {
		if !sc.Local {
			continue
		}
		changed := false
		for _, w := range wantCons {
			if w.c.Name == sc.Name && normDef(w.cmp) != normDef(sc.Def) {
				changed = true
			}
		}
		if (!wanted[sc.Name] && inPrev("constraint", sc.Name)) || changed {
			add(fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", tq, record.QuoteIdent(sc.Name)))
			delete(sinkCons, sc.Name)
			delete(sinkIdx, sc.Name)
		}
	}

	// Indexes wanted (those not backing a constraint, nor attached to a
	// parent's index: both come with their owner).
	type wantIdx struct {
		ix  IndexState
		def string
	}
	var wantIdxs []wantIdx
	wantedIdx := map[string]bool{}
	for _, ix := range next.Indexes {
		if ix.Constraint || ix.Inherited {
			continue
		}
		wantedIdx[ix.Name] = true
		def, why := sinkIndexDef(ix, next.Regclass, want, src, names, anyMapped)
		if why != "" {
			warn("index %s of table %s is not replicated: %s", dispIdent(ix.Name), src, why)
			continue
		}
		wantIdxs = append(wantIdxs, wantIdx{ix, def})
	}
	for _, si := range sink.Indexes {
		if si.Constraint || si.Inherited || sinkIdx[si.Name] == nil {
			continue
		}
		changed := false
		for _, w := range wantIdxs {
			if w.ix.Name == si.Name && indexKey(w.def, want.Quoted()) != indexKey(si.Def, sink.Regclass) {
				changed = true
			}
		}
		if (!wantedIdx[si.Name] && inPrev("index", si.Name)) || changed {
			add("DROP INDEX " + qname(want.Schema, si.Name))
			delete(sinkIdx, si.Name)
		}
	}

	// Columns the source dropped.
	if prev != nil {
		for _, pc := range prev.Columns {
			if next.columnNum(pc.Num) != nil {
				continue
			}
			name, dropped := col(pc.Name)
			if dropped || sinkCols[name] == nil {
				continue
			}
			if next.Parent != nil && !sinkCols[name].Local {
				continue // dropped through the parent
			}
			add(fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", tq, record.QuoteIdent(name)))
			delete(sinkCols, name)
		}
	}
	if exact {
		want := map[string]bool{}
		for _, c := range next.Columns {
			if n, dropped := col(c.Name); !dropped {
				want[n] = true
			}
		}
		for _, sc := range sink.Columns {
			if want[sc.Name] || sinkCols[sc.Name] == nil || (next.Parent != nil && !sc.Local) {
				continue
			}
			add(fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", tq, record.QuoteIdent(sc.Name)))
			delete(sinkCols, sc.Name)
		}
	}
	// Columns added and changed.
	for _, c := range next.Columns {
		name, dropped := col(c.Name)
		if dropped {
			continue
		}
		qc := record.QuoteIdent(name)
		sc := sinkCols[name]
		if sc == nil {
			if next.Parent != nil && !c.Local {
				continue // comes with the parent's
			}
			add(fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s", tq, columnDef(qc, c)))
			continue
		}
		if next.Parent != nil && !c.Local {
			continue
		}
		defaultChanged := c.Generated == "" && c.Default != sc.Default && c.Identity == ""
		if c.Type != sc.Type {
			if defaultChanged && sc.Default != "" {
				add(fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT", tq, qc))
				sc.Default = ""
			}
			sql := fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s", tq, qc, c.Type)
			if c.Collation != "" {
				sql += " COLLATE " + c.Collation
			}
			if c.Generated == "" {
				sql += fmt.Sprintf(" USING %s::%s", qc, c.Type)
			}
			add(sql)
		}
		switch {
		case c.Generated == "" && sc.Generated != "":
			add(fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP EXPRESSION", tq, qc))
		case c.Generated != sc.Generated || (c.Generated != "" && c.Default != sc.Default):
			warn("column %s of table %s: a change of its generation expression is not replicated", dispIdent(c.Name), src)
		}
		if c.Identity != sc.Identity {
			switch {
			case sc.Identity == "":
				add(fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s ADD GENERATED %s AS IDENTITY", tq, qc, identityWord(c.Identity)))
			case c.Identity == "":
				add(fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP IDENTITY IF EXISTS", tq, qc))
			default:
				add(fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET GENERATED %s", tq, qc, identityWord(c.Identity)))
			}
		}
		if defaultChanged && c.Default != sc.Default {
			if c.Default == "" {
				add(fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT", tq, qc))
			} else {
				add(fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", tq, qc, c.Default))
			}
		}
		if c.NotNull != sc.NotNull {
			how := "DROP"
			if c.NotNull {
				how = "SET"
			}
			add(fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s %s NOT NULL", tq, qc, how))
		}
	}
	// Constraints missing at the sink: keys first (foreign keys may need
	// them), then checks and exclusions, then foreign keys.
	rank := map[string]int{"p": 0, "u": 1, "c": 2, "x": 3, "f": 4}
	slices.SortStableFunc(wantCons, func(a, b wantCon) int { return rank[a.c.Type] - rank[b.c.Type] })
	for _, w := range wantCons {
		if sinkCons[w.c.Name] != nil {
			continue
		}
		add(fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", tq, record.QuoteIdent(w.c.Name), w.def))
		if w.c.Key != nil && w.c.Key.Tablespace != "" {
			out.Statements[len(out.Statements)-1].Tablespaces = []string{w.c.Key.Tablespace}
		}
	}
	for _, w := range wantIdxs {
		if sinkIdx[w.ix.Name] != nil {
			continue
		}
		def, placed := w.ix.inTablespace(w.def)
		if !placed {
			warn("index %s of table %s is built in the sink's default tablespace, not in %s as at the source: its definition has a predicate sluice cannot place the TABLESPACE clause before; move it at the sink yourself (ALTER INDEX ... SET TABLESPACE) if the sink needs it", dispIdent(w.ix.Name), src, w.ix.Tablespace)
		}
		add(def)
		if placed && w.ix.Tablespace != "" {
			out.Statements[len(out.Statements)-1].Tablespaces = []string{w.ix.Tablespace}
		}
	}
	moved, movedWarn := moveIndexes(prev, next, sinkIdx, want.Schema, obj)
	out.Statements = append(out.Statements, moved...)
	out.Warnings = append(out.Warnings, movedWarn...)
	// Partitions: detach what the source detached; report what is missing.
	if next.Kind == "p" {
		attached := map[record.TableName]bool{}
		for _, p := range sink.Partitions {
			attached[p.TableName()] = true
		}
		for _, p := range next.Partitions {
			if !attached[names.Table(p.TableName())] {
				out.Attach = append(out.Attach, p)
			}
		}
		if prev != nil {
			for _, p := range prev.Partitions {
				if slices.ContainsFunc(next.Partitions, func(n RelRef) bool { return n.OID == p.OID }) {
					continue
				}
				pn := names.Table(p.TableName())
				if attached[pn] {
					add("ALTER TABLE " + tq + " DETACH PARTITION " + pn.Quoted())
				}
			}
		}
	}
	return out
}

func identityWord(kind string) string {
	if kind == "a" {
		return "ALWAYS"
	}
	return "BY DEFAULT"
}

// columnDef is a column's definition for ADD COLUMN.
func columnDef(quoted string, c ColumnState) string {
	s := quoted + " " + c.Type
	if c.Collation != "" {
		s += " COLLATE " + c.Collation
	}
	switch {
	case c.Generated == "s":
		s += " GENERATED ALWAYS AS (" + c.Default + ") STORED"
	case c.Identity != "":
		s += " GENERATED " + identityWord(c.Identity) + " AS IDENTITY"
	case c.Default != "":
		s += " DEFAULT " + c.Default
	}
	if c.NotNull {
		s += " NOT NULL"
	}
	return s
}

func findConstraintOID(s *TableState, oid uint32) *ConstraintState {
	for i := range s.Constraints {
		if s.Constraints[i].OID == oid {
			return &s.Constraints[i]
		}
	}
	return nil
}

func findIndexOID(s *TableState, oid uint32) *IndexState {
	for i := range s.Indexes {
		if s.Indexes[i].OID == oid {
			return &s.Indexes[i]
		}
	}
	return nil
}

// normDef is a definition for comparison: the catalog quotes names only
// where needed, sluice always.
func normDef(def string) string { return strings.ReplaceAll(def, `"`, "") }

// sinkConstraintDef is a captured constraint's definition with the sink's
// names (def, to add it; cmp, as the sink's pg_get_constraintdef would
// show it), or the reason it cannot be given one. Primary keys and unique
// constraints are written from their parts (keyParts), with their
// INCLUDE columns, storage parameters, tablespace and deferrability.
func sinkConstraintDef(c ConstraintState, table record.TableName, names DDLNames, anyMapped bool) (def, cmp, why string) {
	if k, ok := c.keyParts(); ok {
		def, err := k.sinkDef(table, names.Column)
		if err != nil {
			return "", "", err.Error()
		}
		cmp, err := k.shownDef(table, names.Column)
		if err != nil {
			return "", "", err.Error()
		}
		return def, cmp, ""
	}
	touchesMapped := false
	for _, col := range c.Cols {
		if n, dropped := names.column(table, col); dropped || n != col {
			touchesMapped = true
		}
	}
	switch {
	case touchesMapped && (c.Type == "p" || c.Type == "u"):
		// Captured by an older sluice, without the key's parts.
		return "", "", "it uses a renamed or dropped column, and its state was captured by an older sluice without the parts to write it again: make the change at the sink"
	case touchesMapped:
		return "", "", "it uses a column the pipeline renames or drops (sluice does not rewrite expressions)"
	case anyMapped && (c.Type == "c" || c.Type == "x") && len(c.Cols) == 0:
		return "", "", "it is an expression on a table whose columns the pipeline renames"
	}
	def = c.Def
	if c.Type == "f" {
		ref := record.TableName{Schema: c.RefSchema, Name: c.RefName}
		if names.Selected != nil && !names.Selected(ref) {
			return "", "", "it references " + ref.String() + ", which the pipeline does not replicate"
		}
		for _, rc := range c.RefCols {
			if n, dropped := names.column(ref, rc); dropped || n != rc {
				return "", "", "it references a column the pipeline renames or drops"
			}
		}
		from := "REFERENCES " + c.Ref + "("
		if !strings.Contains(def, from) {
			return "", "", "its definition does not name the referenced table as expected"
		}
		def = strings.Replace(def, from, "REFERENCES "+names.Table(ref).Quoted()+"(", 1)
	}
	return def, def, ""
}

// sinkIndexDef is a captured index's CREATE INDEX with the sink's table
// name, or the reason it cannot be given one.
func sinkIndexDef(ix IndexState, regclass string, target, table record.TableName, names DDLNames, anyMapped bool) (def, why string) {
	for _, c := range ix.Cols {
		if c == nil {
			continue
		}
		if n, dropped := names.column(table, *c); dropped || n != *c {
			return "", "it uses the column " + dispIdent(*c) + ", which the pipeline renames or drops (sluice does not rewrite index definitions)"
		}
	}
	if ix.Exprs && anyMapped {
		return "", "it has expressions or a predicate on a table whose columns the pipeline renames"
	}
	for _, on := range []string{" ON ONLY " + regclass + " USING ", " ON " + regclass + " USING "} {
		if i := strings.Index(ix.Def, on); i >= 0 {
			// Not ONLY at the sink: the index then reaches the partitions.
			return ix.Def[:i] + " ON " + target.Quoted() + " USING " + ix.Def[i+len(on):], ""
		}
	}
	return "", "its definition does not name its table as expected"
}

// indexKey is an index definition without its table, for comparison.
func indexKey(def, table string) string {
	for _, on := range []string{" ON ONLY " + table + " USING ", " ON " + table + " USING "} {
		if i := strings.Index(def, on); i >= 0 {
			return normDef(def[:i] + "|" + def[i+len(on):])
		}
	}
	return normDef(def)
}

// ExecDDL runs DDL statements in the open sink transaction, after the
// changes queued before them; optional ones run in a savepoint and are
// skipped (returned) when the sink rejects them. The prepared statements
// of the applier are dropped afterwards: they may name columns, types or
// tables the DDL changed.
func (a *Applier) ExecDDL(ctx context.Context, stmts []Statement, commitLSN record.LSN) (skipped []string, err error) {
	if len(stmts) == 0 {
		return nil, nil
	}
	conn, err := a.SinkConn(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range stmts {
		if err := sinkHasTablespaces(ctx, conn, s, commitLSN); err != nil {
			return skipped, err
		}
		if s.Optional {
			if _, err := conn.Exec(ctx, "SAVEPOINT sluice_ddl"); err != nil {
				return skipped, fmt.Errorf("sink: savepoint for %s: %w", s.Object, err)
			}
			if _, err := conn.Exec(ctx, s.SQL); err != nil {
				if _, rerr := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT sluice_ddl"); rerr != nil {
					return skipped, fmt.Errorf("sink: roll back to the savepoint of %s: %w", s.Object, rerr)
				}
				skipped = append(skipped, s.Object+": "+err.Error())
				continue
			}
			if _, err := conn.Exec(ctx, "RELEASE SAVEPOINT sluice_ddl"); err != nil {
				return skipped, fmt.Errorf("sink: release the savepoint of %s: %w", s.Object, err)
			}
			continue
		}
		if _, err := conn.Exec(ctx, s.SQL); err != nil {
			return skipped, fmt.Errorf("sink: apply DDL of the source transaction committed at %s to %s (%s): %w; fix the sink so the statement can run, and the pipeline resumes with it",
				commitLSN, s.Object, firstLine(s.SQL), describeRowError(err))
		}
	}
	return skipped, a.dropPrepared(ctx)
}

// ForgetStatements drops the applier's prepared statements (after
// sending what is queued): for when a table's sink name changed under
// them.
func (a *Applier) ForgetStatements(ctx context.Context) error {
	if _, err := a.SinkConn(ctx); err != nil {
		return err
	}
	return a.dropPrepared(ctx)
}

// SinkConn sends what is queued and returns the sink connection, inside
// the open sink transaction (begun if needed), for reading the sink's
// catalog as the DDL applied so far left it.
func (a *Applier) SinkConn(ctx context.Context) (*pgx.Conn, error) {
	if err := a.begin(ctx); err != nil {
		return nil, err
	}
	if err := a.flush(ctx); err != nil {
		return nil, err
	}
	return a.conn, nil
}

// dropPrepared deallocates the applier's prepared statements; the next
// change of each shape prepares its statement again.
func (a *Applier) dropPrepared(ctx context.Context) error {
	for _, name := range a.prepared {
		if _, err := a.conn.Exec(ctx, "DEALLOCATE "+record.QuoteIdent(name)); err != nil {
			return fmt.Errorf("sink: deallocate a prepared statement after DDL: %w", err)
		}
	}
	clear(a.prepared)
	// What decides runs (the sink's unique indexes and triggers, its column
	// types) may have changed with the DDL, with no new relation message
	// from the source (CREATE INDEX sends none): read it again.
	clear(a.batchInfo)
	return nil
}

// Tables returns the applier's tables by source relation OID: the map the
// applier was opened with, which the caller may change between changes
// (a table created by replicated DDL joins it).
func (a *Applier) Tables() map[uint32]*ApplyTable { return a.tables }
