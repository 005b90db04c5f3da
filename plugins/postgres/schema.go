package postgres

// Schema sync, pre-data part: create at the sink the selected tables that
// are missing there, with the schemas, types and sequences they need.
//
// Everything is read from the source catalog with search_path = '' (as
// Connect sets it), so every type name and expression the catalog renders
// (format_type, pg_get_expr, pg_get_constraintdef, quote_literal) is fully
// qualified and can be embedded as is; every identifier sluice itself puts
// into DDL is quoted with record.QuoteIdent. The plan is built in phases
// (schemas, extensions, types, sequences, tables, then statements that need
// the tables) so that a later post-data phase (indexes, foreign keys, check
// constraints, triggers, views) can append its own phase the same way.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/engine/record"
)

// TargetName maps a source table name to its sink name (the rename feature
// will plug in here; identity for now).
type TargetName func(record.TableName) record.TableName

// SameName is the identity TargetName.
func SameName(n record.TableName) record.TableName { return n }

// ColumnName maps a source table's column to its sink name, or dropped
// true when the column is not copied. nil keeps every column as it is.
type ColumnName func(table record.TableName, column string) (name string, dropped bool)

// SchemaPlan is what CreateMissing will do, so `check` can show it.
type SchemaPlan struct {
	// Prelude are settings (SET LOCAL …) Apply runs first in its
	// transaction.
	Prelude    []string
	Statements []Statement
	// Skipped lists, after Apply, the optional statements the sink
	// rejected, with the reason.
	Skipped []string
	// Mapped, when set, gives the sink's renamed tables and columns their
	// source names for the duration of Apply's transaction (see
	// impersonate.go), so that statements naming the source's objects
	// (pg_dump's) land on the mapped ones. Every statement then runs in a
	// savepoint: one whose object exists is counted in Existing, one the
	// sink rejects otherwise (it needs a dropped column, say) is listed in
	// Skipped.
	Mapped []MappedTable
	// Existing counts, after Apply with Mapped, the statements whose
	// object the sink already had.
	Existing int
}

// Statement is one DDL statement of a plan and the object it creates.
type Statement struct {
	// Object names what the statement creates or changes, for messages:
	// `schema sales`, `type public.mood`, `sequence public.orders_id_seq`,
	// `table public.orders`.
	Object string
	SQL    string
	// Optional statements run in a savepoint: when the sink rejects one
	// (a GRANT to a role the sink lacks), it is skipped and listed in the
	// plan's Skipped instead of failing the plan.
	Optional bool
	// Tablespaces are the tablespaces (quoted) the statement builds
	// indexes in, as the source has them: ExecDDL checks that the sink
	// has each before it runs the statement.
	Tablespaces []string
}

// Empty reports whether the plan has nothing to do.
func (p *SchemaPlan) Empty() bool { return p == nil || len(p.Statements) == 0 }

// String renders the plan as an SQL script, one statement per paragraph,
// each preceded by a comment naming its object.
func (p *SchemaPlan) String() string {
	if p.Empty() {
		return ""
	}
	var b strings.Builder
	for i, s := range p.Statements {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString("-- " + strings.ReplaceAll(s.Object, "\n", " ") + "\n")
		b.WriteString(s.SQL + ";\n")
	}
	return b.String()
}

// StatementError is the error of a plan statement that the sink rejected.
// It keeps PostgreSQL's error (errors.As finds the *pgconn.PgError).
type StatementError struct {
	Object string
	SQL    string
	Err    error
}

func (e *StatementError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sink: schema sync of %s failed: ", e.Object)
	var pgErr *pgconn.PgError
	if errors.As(e.Err, &pgErr) {
		fmt.Fprintf(&b, "%s: %s (SQLSTATE %s)", pgErr.Severity, pgErr.Message, pgErr.Code)
		if pgErr.Detail != "" {
			b.WriteString("\nDETAIL: " + pgErr.Detail)
		}
		if pgErr.Hint != "" {
			b.WriteString("\nHINT: " + pgErr.Hint)
		}
	} else {
		b.WriteString(e.Err.Error())
	}
	b.WriteString("\nSTATEMENT: " + firstLine(e.SQL))
	b.WriteString("\n(all schema changes run in one sink transaction, which was rolled back: nothing was created; fix the sink or the selection and run again)")
	return b.String()
}

func (e *StatementError) Unwrap() error { return e.Err }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}

// Apply runs the plan in ONE sink transaction (all or nothing); an error
// names the object and the statement's first line and keeps PostgreSQL's
// message, detail and hint.
func (p *SchemaPlan) Apply(ctx context.Context, dst *pgx.Conn) error {
	if p.Empty() {
		return nil
	}
	tx, err := dst.Begin(ctx)
	if err != nil {
		return fmt.Errorf("sink: begin the schema transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	// Connect already sets it; the DDL must resolve names exactly as the
	// catalog rendered them, so make sure.
	if _, err := tx.Exec(ctx, "SET LOCAL search_path = ''"); err != nil {
		return fmt.Errorf("sink: set search_path for the schema transaction: %w", err)
	}
	for _, set := range p.Prelude {
		if _, err := tx.Exec(ctx, set); err != nil {
			return fmt.Errorf("sink: %s: %w", set, err)
		}
	}
	before, after := impersonation(p.Mapped)
	for _, sql := range before {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return &ImpersonationError{SQL: sql, Err: err}
		}
	}
	for _, s := range p.Statements {
		if s.Optional || len(p.Mapped) > 0 {
			sp, err := tx.Begin(ctx)
			if err != nil {
				return fmt.Errorf("sink: savepoint for %s: %w", s.Object, err)
			}
			if _, err := sp.Exec(ctx, s.SQL); err != nil {
				if rerr := sp.Rollback(ctx); rerr != nil {
					return fmt.Errorf("sink: roll back to the savepoint of %s: %w", s.Object, rerr)
				}
				if len(p.Mapped) > 0 && alreadyExists(err) {
					p.Existing++
					continue
				}
				p.Skipped = append(p.Skipped, s.Object+": "+err.Error())
				continue
			}
			if err := sp.Commit(ctx); err != nil {
				return fmt.Errorf("sink: release the savepoint of %s: %w", s.Object, err)
			}
			continue
		}
		if _, err := tx.Exec(ctx, s.SQL); err != nil {
			return &StatementError{Object: s.Object, SQL: s.SQL, Err: err}
		}
	}
	for _, sql := range after {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return &ImpersonationError{SQL: sql, Err: err}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("sink: commit the schema transaction (nothing was created): %w", err)
	}
	return nil
}

// PlanMissing compares the source tables with the sink and returns the DDL
// needed to create, at the sink, every table that does not exist there yet,
// with the schemas, user types (enums, domains, composites, ranges, in
// dependency order) and sequences they need; objects that exist at the sink
// (by schema and name) are never recreated. A partition whose parent is
// missing at the sink brings its parent along even when the parent is not
// selected.
func PlanMissing(ctx context.Context, src, dst *pgx.Conn, tables []*Table, target TargetName) (*SchemaPlan, error) {
	return PlanMissingMapped(ctx, src, dst, tables, target, nil)
}

// PlanMissingMapped is PlanMissing with the tables' columns renamed or
// dropped by columns in the tables it creates.
func PlanMissingMapped(ctx context.Context, src, dst *pgx.Conn, tables []*Table, target TargetName, columns ColumnName) (*SchemaPlan, error) {
	return planMissing(ctx, src, dst, tables, target, columns, false)
}

// planMissing is PlanMissingMapped; with deferKeys the primary keys of
// plain tables (not partitioned, not partitions) are left out of their
// CREATE TABLE, for BuildKeys to add after the data.
func planMissing(ctx context.Context, src, dst *pgx.Conn, tables []*Table, target TargetName, columns ColumnName, deferKeys bool) (*SchemaPlan, error) {
	if target == nil {
		target = SameName
	}
	// Read the source catalog in one read-only repeatable-read transaction
	// with an empty search_path, unless the caller already has one open.
	if src.PgConn().TxStatus() == 'I' {
		if _, err := src.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
			return nil, fmt.Errorf("source: begin catalog transaction: %w", err)
		}
		defer src.Exec(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck // read only
		if _, err := src.Exec(ctx, "SET LOCAL search_path = ''"); err != nil {
			return nil, fmt.Errorf("source: set search_path: %w", err)
		}
	}
	p := &planner{
		ctx:        ctx,
		src:        src,
		dst:        dst,
		target:     target,
		columns:    columns,
		deferKeys:  deferKeys,
		schemas:    map[string]bool{},
		exts:       map[string]bool{},
		typeState:  map[uint32]int{},
		seqDone:    map[uint32]bool{},
		tables:     map[uint32]*Table{},
		tableState: map[uint32]int{},
		targets:    map[record.TableName]uint32{},
	}
	var err error
	if p.srcVersion, err = serverVersion(ctx, src); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if p.dstVersion, err = serverVersion(ctx, dst); err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	for _, t := range tables {
		p.tables[t.OID] = t
	}
	for _, t := range tables {
		if err := p.ensureTable(t); err != nil {
			return nil, err
		}
	}
	if err := p.planCreates(); err != nil {
		return nil, err
	}
	plan := &SchemaPlan{}
	for _, phase := range [][]Statement{p.schemaStmts, p.extStmts, p.typeStmts, p.seqStmts, p.tableStmts, p.attachStmts, p.postStmts} {
		plan.Statements = append(plan.Statements, phase...)
	}
	return plan, nil
}

// States of a table or type in the planner's walk.
const (
	stVisiting = iota + 1
	stExisting // exists at the sink
	stCreate   // created by the plan
)

type planner struct {
	ctx                    context.Context
	src, dst               *pgx.Conn
	target                 TargetName
	columns                ColumnName
	deferKeys              bool
	srcVersion, dstVersion int

	schemas    map[string]bool // sink schemas known to exist once the plan ran
	exts       map[string]bool
	typeState  map[uint32]int
	seqDone    map[uint32]bool
	tables     map[uint32]*Table // source tables known: selected, plus parents loaded
	tableState map[uint32]int
	targets    map[record.TableName]uint32
	creating   []*Table // in creation order: parents first

	schemaStmts, extStmts, typeStmts, seqStmts, tableStmts, attachStmts, postStmts []Statement
}

func serverVersion(ctx context.Context, conn *pgx.Conn) (int, error) {
	var v int
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.current_setting('server_version_num')::int").Scan(&v); err != nil {
		return 0, fmt.Errorf("read server_version_num: %w", err)
	}
	return v, nil
}

// dispIdent renders an identifier for messages: quoted only when needed.
func dispIdent(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return record.QuoteIdent(s)
		}
	}
	return s
}

// dispName renders schema.name for messages.
func dispName(schema, name string) string {
	return record.TableName{Schema: schema, Name: name}.String()
}

// qname renders schema.name as SQL, both parts quoted.
func qname(schema, name string) string {
	return record.TableName{Schema: schema, Name: name}.Quoted()
}

// needSchema makes sure schema exists at the sink once the plan has run.
func (p *planner) needSchema(schema string) error {
	if p.schemas[schema] {
		return nil
	}
	var exists bool
	if err := p.dst.QueryRow(p.ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		return fmt.Errorf("sink: look up schema %s: %w", dispIdent(schema), err)
	}
	if !exists {
		p.schemaStmts = append(p.schemaStmts, Statement{
			Object: "schema " + dispIdent(schema),
			SQL:    "CREATE SCHEMA IF NOT EXISTS " + record.QuoteIdent(schema),
		})
	}
	p.schemas[schema] = true
	return nil
}

// sinkRelkind returns the relkind of the sink relation schema.name, or ""
// when there is none.
func (p *planner) sinkRelkind(schema, name string) (string, error) {
	var kind string
	err := p.dst.QueryRow(p.ctx, `SELECT c.relkind::text FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`, schema, name).Scan(&kind)
	if err == pgx.ErrNoRows {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sink: look up %s: %w", dispName(schema, name), err)
	}
	return kind, nil
}

var relkindNames = map[string]string{
	"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "S": "sequence",
	"f": "foreign table", "i": "index", "I": "partitioned index", "c": "composite type", "t": "TOAST table",
}

// sourceTable returns the source table with the given OID, loading it from
// the catalog when it was not selected (a partition's parent).
func (p *planner) sourceTable(oid uint32) (*Table, error) {
	if t := p.tables[oid]; t != nil {
		return t, nil
	}
	got, err := LoadTables(p.ctx, p.src, []uint32{oid})
	if err != nil {
		return nil, err
	}
	if len(got) != 1 {
		return nil, fmt.Errorf("source: table with OID %d vanished from the catalog", oid)
	}
	p.tables[oid] = got[0]
	return got[0], nil
}

// ensureTable decides whether t is created at the sink, and brings its
// parent along when the parent is missing there.
func (p *planner) ensureTable(t *Table) error {
	switch p.tableState[t.OID] {
	case stVisiting:
		return fmt.Errorf("source: partition hierarchy of %s has a cycle", t.Name)
	case stExisting, stCreate:
		return nil
	}
	p.tableState[t.OID] = stVisiting
	tn := p.target(t.Name)
	if other, dup := p.targets[tn]; dup && other != t.OID {
		return fmt.Errorf("source tables %s and %s would both become sink table %s; rename one of them", p.tables[other].Name, t.Name, tn)
	}
	p.targets[tn] = t.OID
	kind, err := p.sinkRelkind(tn.Schema, tn.Name)
	if err != nil {
		return err
	}
	switch kind {
	case "r", "p":
		p.tableState[t.OID] = stExisting
		return nil
	case "":
	default:
		what := relkindNames[kind]
		if what == "" {
			what = "relation of kind " + strconv.Quote(kind)
		}
		return fmt.Errorf("sink: %s (for source table %s) exists at the sink as a %s, not a table; drop or rename it at the sink, or rename the table", tn, t.Name, what)
	}
	if t.Parent != nil {
		parent, err := p.sourceTable(t.ParentOID)
		if err != nil {
			return fmt.Errorf("source: load parent %s of partition %s: %w", *t.Parent, t.Name, err)
		}
		if err := p.ensureTable(parent); err != nil {
			return err
		}
	}
	p.tableState[t.OID] = stCreate
	p.creating = append(p.creating, t)
	return nil
}

// seqInfo describes a source sequence.
type seqInfo struct {
	OID                        uint32
	Schema, Name               string
	Unlogged                   bool
	Type                       string // format_type of the sequence's data type
	Increment, Min, Max, Start int64
	Cache                      int64
	Cycle                      bool
	OwnerTable                 uint32 // the table whose column owns it (deptype a or i), or 0
	OwnerColumn                string
	Identity                   bool // an identity column's sequence
}

// options renders the sequence options common to CREATE SEQUENCE and
// identity columns.
func (s *seqInfo) options(withType bool) string {
	var b strings.Builder
	if withType {
		b.WriteString("AS " + s.Type + " ")
	}
	fmt.Fprintf(&b, "INCREMENT BY %d MINVALUE %d MAXVALUE %d START WITH %d CACHE %d", s.Increment, s.Min, s.Max, s.Start, s.Cache)
	if s.Cycle {
		b.WriteString(" CYCLE")
	} else {
		b.WriteString(" NO CYCLE")
	}
	return b.String()
}

// loadSequences reads the given source sequences.
func (p *planner) loadSequences(oids []uint32) (map[uint32]*seqInfo, error) {
	out := map[uint32]*seqInfo{}
	if len(oids) == 0 {
		return out, nil
	}
	rows, err := p.src.Query(p.ctx, `SELECT c.oid, n.nspname, c.relname, c.relpersistence = 'u',
			pg_catalog.format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache, s.seqcycle,
			COALESCE(dep.refobjid, 0), COALESCE(a.attname::text, ''), COALESCE(dep.deptype = 'i', false)
		FROM pg_catalog.pg_sequence s
		JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_catalog.pg_depend dep ON dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND dep.objid = c.oid
			AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND dep.refobjsubid > 0 AND dep.deptype IN ('a', 'i')
		LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
		WHERE c.oid = ANY($1)`, oids)
	if err != nil {
		return nil, fmt.Errorf("source: read sequences: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		s := &seqInfo{}
		if err := rows.Scan(&s.OID, &s.Schema, &s.Name, &s.Unlogged, &s.Type, &s.Increment, &s.Min, &s.Max, &s.Start, &s.Cache, &s.Cycle,
			&s.OwnerTable, &s.OwnerColumn, &s.Identity); err != nil {
			return nil, fmt.Errorf("source: read sequences: %w", err)
		}
		out[s.OID] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("source: read sequences: %w", err)
	}
	return out, nil
}

// tableDeps is what the tables to create depend on, beyond their columns'
// types.
type tableDeps struct {
	pk          map[uint32]pkInfo           // table → its own primary key
	identity    map[uint32]map[int16]uint32 // table → column number → identity sequence
	defaultSeqs []uint32                    // sequences the column defaults use, in first-use order
	defaultTyps map[uint32][]uint32         // table → types its column defaults use
	seqs        map[uint32]*seqInfo         // every sequence above
}

type pkInfo struct {
	Name      string
	Inherited bool // a partition's key, created by its parent's
	key       keyDef
}

func (p *planner) loadDeps(oids []uint32) (*tableDeps, error) {
	d := &tableDeps{pk: map[uint32]pkInfo{}, identity: map[uint32]map[int16]uint32{}, defaultTyps: map[uint32][]uint32{}}
	// Primary keys: read here rather than taken from Table.Key, which
	// skips deferrable ones (no use as a replication key, but still part
	// of the schema).
	keys, err := readKeyDefs(p.ctx, p.src, oids)
	if err != nil {
		return nil, err
	}
	for rel, k := range keys {
		d.pk[rel] = pkInfo{Name: k.name, Inherited: k.inherited, key: k}
	}

	var seqOIDs []uint32
	// Identity sequences.
	rows, err := p.src.Query(p.ctx, `SELECT dep.refobjid, dep.refobjsubid::int2, dep.objid
		FROM pg_catalog.pg_depend dep JOIN pg_catalog.pg_class s ON s.oid = dep.objid AND s.relkind = 'S'
		WHERE dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
			AND dep.deptype = 'i' AND dep.refobjsubid > 0 AND dep.refobjid = ANY($1)`, oids)
	if err != nil {
		return nil, fmt.Errorf("source: read identity sequences: %w", err)
	}
	for rows.Next() {
		var rel, seq uint32
		var num int16
		if err := rows.Scan(&rel, &num, &seq); err != nil {
			rows.Close()
			return nil, fmt.Errorf("source: read identity sequences: %w", err)
		}
		if d.identity[rel] == nil {
			d.identity[rel] = map[int16]uint32{}
		}
		d.identity[rel][num] = seq
		seqOIDs = append(seqOIDs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("source: read identity sequences: %w", err)
	}

	// What the column defaults (and generation expressions) use: sequences
	// (nextval('…'::regclass) records one) and types (casts).
	rows, err = p.src.Query(p.ctx, `SELECT ad.adrelid, dep.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass, dep.refobjid
		FROM pg_catalog.pg_attrdef ad
		JOIN pg_catalog.pg_depend dep ON dep.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND dep.objid = ad.oid
		WHERE ad.adrelid = ANY($1)
			AND (dep.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass
				OR (dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
					AND EXISTS (SELECT 1 FROM pg_catalog.pg_class s WHERE s.oid = dep.refobjid AND s.relkind = 'S')))
		ORDER BY ad.adrelid, ad.adnum, dep.refobjid`, oids)
	if err != nil {
		return nil, fmt.Errorf("source: read what column defaults use: %w", err)
	}
	seen := map[uint32]bool{}
	for rows.Next() {
		var rel, ref uint32
		var isType bool
		if err := rows.Scan(&rel, &isType, &ref); err != nil {
			rows.Close()
			return nil, fmt.Errorf("source: read what column defaults use: %w", err)
		}
		if isType {
			d.defaultTyps[rel] = append(d.defaultTyps[rel], ref)
		} else if !seen[ref] {
			seen[ref] = true
			d.defaultSeqs = append(d.defaultSeqs, ref)
			seqOIDs = append(seqOIDs, ref)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("source: read what column defaults use: %w", err)
	}
	if d.seqs, err = p.loadSequences(seqOIDs); err != nil {
		return nil, err
	}
	return d, nil
}

// planCreates plans the types, sequences and tables for p.creating.
func (p *planner) planCreates() error {
	if len(p.creating) == 0 {
		return nil
	}
	oids := make([]uint32, len(p.creating))
	for i, t := range p.creating {
		oids[i] = t.OID
	}
	deps, err := p.loadDeps(oids)
	if err != nil {
		return err
	}
	// Types, in dependency order, each before its first user.
	for _, t := range p.creating {
		for _, c := range t.Columns {
			if err := p.ensureType(c.TypeOID, fmt.Sprintf("column %s of table %s", dispIdent(c.Name), t.Name)); err != nil {
				return err
			}
		}
		for _, typ := range deps.defaultTyps[t.OID] {
			if err := p.ensureType(typ, fmt.Sprintf("a column default of table %s", t.Name)); err != nil {
				return err
			}
		}
	}
	// Sequences the defaults use.
	for _, oid := range deps.defaultSeqs {
		s := deps.seqs[oid]
		if s == nil || s.Identity || p.seqDone[oid] {
			continue // an identity sequence comes with its table
		}
		p.seqDone[oid] = true
		kind, err := p.sinkRelkind(s.Schema, s.Name)
		if err != nil {
			return err
		}
		if kind == "S" {
			continue
		}
		if kind != "" {
			return fmt.Errorf("sink: %s, a sequence column defaults use at the source, exists at the sink as a %s; drop or rename it at the sink", dispName(s.Schema, s.Name), relkindNames[kind])
		}
		if err := p.needSchema(s.Schema); err != nil {
			return err
		}
		unlogged := ""
		if s.Unlogged {
			unlogged = "UNLOGGED "
		}
		p.seqStmts = append(p.seqStmts, Statement{
			Object: "sequence " + dispName(s.Schema, s.Name),
			SQL:    fmt.Sprintf("CREATE %sSEQUENCE %s %s", unlogged, qname(s.Schema, s.Name), s.options(true)),
		})
		// PostgreSQL links a sequence only to a table of its own schema:
		// a table renamed into another schema leaves it unowned.
		if s.OwnerTable == 0 || p.tableState[s.OwnerTable] != stCreate {
			continue
		}
		ownerCol, dropped := s.OwnerColumn, false
		if p.columns != nil {
			ownerCol, dropped = p.columns(p.tables[s.OwnerTable].Name, s.OwnerColumn)
		}
		if owner := p.target(p.tables[s.OwnerTable].Name); owner.Schema == s.Schema && !dropped {
			p.postStmts = append(p.postStmts, Statement{
				Object: "sequence " + dispName(s.Schema, s.Name),
				SQL: fmt.Sprintf("ALTER SEQUENCE %s OWNED BY %s.%s", qname(s.Schema, s.Name), owner.Quoted(),
					record.QuoteIdent(ownerCol)),
			})
		}
	}
	for _, t := range p.creating {
		if err := p.planTable(t, deps); err != nil {
			return err
		}
	}
	return nil
}

// planTable plans the CREATE TABLE of t.
func (p *planner) planTable(t *Table, deps *tableDeps) error {
	tn := p.target(t.Name)
	if err := p.needSchema(tn.Schema); err != nil {
		return err
	}
	var parent *Table
	if t.Parent != nil {
		parent = p.tables[t.ParentOID]
	}
	// A partition created as PARTITION OF takes its parent's column order.
	// One whose columns are ordered otherwise (it was created alone and
	// attached later) is created with its own columns and attached after,
	// as pg_dump does, so SELECT * reads the same on both sides.
	var attachTo *Table
	if parent != nil && !sameColumnOrder(t, parent) {
		attachTo, parent = parent, nil
	}
	colName := func(c string) (string, bool) { return c, false }
	if p.columns != nil {
		colName = func(c string) (string, bool) { return p.columns(t.Name, c) }
		mapped := false
		for _, c := range t.Columns {
			if n, dropped := colName(c.Name); dropped || n != c.Name {
				mapped = true
			}
		}
		if mapped && (t.Partitioned || t.Parent != nil) {
			return fmt.Errorf("columns: table %s is partitioned or a partition: renaming or dropping its columns is not supported yet", t.Name)
		}
		if mapped {
			for _, c := range t.Columns {
				if c.Generated != 0 {
					return fmt.Errorf("columns: table %s has the generated column %s: renaming or dropping columns of such a table is not supported yet", t.Name, dispIdent(c.Name))
				}
			}
		}
	}
	var elems []string
	for _, c := range t.Columns {
		name, dropped := colName(c.Name)
		if dropped {
			continue
		}
		// A column's own compression method and storage strategy, set
		// before any row arrives. Optional: a sink built without lz4 keeps
		// its default, which reads back the same values.
		for _, set := range []struct{ what, value string }{{"COMPRESSION", c.Compression}, {"STORAGE", c.Storage}} {
			if set.value != "" {
				p.postStmts = append(p.postStmts, Statement{
					Object:   "table " + tn.String(),
					SQL:      fmt.Sprintf("ALTER TABLE ONLY %s ALTER COLUMN %s SET %s %s", tn.Quoted(), record.QuoteIdent(name), set.what, set.value),
					Optional: true,
				})
			}
		}
		if parent != nil {
			// The partition gets its columns from the parent; only what
			// differs is said here.
			pc := findColumn(parent, c.Name)
			if pc == nil {
				return fmt.Errorf("source: column %s of partition %s is not in its parent %s", dispIdent(c.Name), t.Name, parent.Name)
			}
			var opts []string
			if c.Generated == 0 && c.Identity == 0 && c.Default != "" && c.Default != pc.Default {
				opts = append(opts, "DEFAULT "+c.Default)
			}
			if c.NotNull && !pc.NotNull {
				opts = append(opts, "NOT NULL")
			}
			if len(opts) > 0 {
				elems = append(elems, record.QuoteIdent(c.Name)+" WITH OPTIONS "+strings.Join(opts, " "))
			}
			if c.Generated == 0 && c.Identity == 0 && c.Default == "" && pc.Default != "" && pc.Generated == 0 {
				p.postStmts = append(p.postStmts, Statement{
					Object: "table " + tn.String(),
					SQL:    fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT", tn.Quoted(), record.QuoteIdent(c.Name)),
				})
			}
			continue
		}
		col := record.QuoteIdent(name) + " " + c.TypeName
		if c.Collation != "" {
			col += " COLLATE " + c.Collation
		}
		switch {
		case c.Generated == 's':
			col += " GENERATED ALWAYS AS (" + c.Default + ") STORED"
		case c.Generated == 'v':
			col += " GENERATED ALWAYS AS (" + c.Default + ") VIRTUAL"
		case c.Generated != 0:
			return fmt.Errorf("source: column %s of table %s is generated in a way sluice does not know (attgenerated %q)", dispIdent(c.Name), t.Name, c.Generated)
		case c.Identity != 0:
			how := "ALWAYS"
			if c.Identity == 'd' {
				how = "BY DEFAULT"
			}
			col += " GENERATED " + how + " AS IDENTITY"
			if seq := deps.seqs[deps.identity[t.OID][c.Num]]; seq != nil {
				// An identity sequence lives in its table's schema.
				// The sequence takes the column's type (AS is refused
				// here); a type changed since is set afterwards.
				col += " (SEQUENCE NAME " + qname(tn.Schema, seq.Name) + " " + seq.options(false) + ")"
				if seq.Type != c.TypeName {
					p.postStmts = append(p.postStmts, Statement{
						Object: "sequence " + dispName(tn.Schema, seq.Name),
						SQL:    "ALTER SEQUENCE " + qname(tn.Schema, seq.Name) + " AS " + seq.Type,
					})
				}
			}
		case c.Default != "":
			col += " DEFAULT " + c.Default
		}
		if c.NotNull {
			col += " NOT NULL"
		}
		elems = append(elems, col)
	}
	plain := parent == nil && attachTo == nil && t.Parent == nil && !t.Partitioned
	var spaces []string
	if pk, ok := deps.pk[t.OID]; ok && !((parent != nil || attachTo != nil) && pk.Inherited) && !(p.deferKeys && plain) {
		def, err := pk.key.sinkDef(t.Name, p.columns)
		if err != nil {
			return err
		}
		elems = append(elems, "CONSTRAINT "+record.QuoteIdent(pk.Name)+" "+def)
		if pk.key.tablespace != "" {
			spaces = append(spaces, pk.key.tablespace)
		}
	}
	var b strings.Builder
	b.WriteString("CREATE ")
	if t.Unlogged {
		b.WriteString("UNLOGGED ")
	}
	b.WriteString("TABLE " + tn.Quoted())
	if parent != nil {
		b.WriteString(" PARTITION OF " + p.target(parent.Name).Quoted())
	}
	if len(elems) > 0 || parent == nil {
		b.WriteString(" (\n")
		for i, e := range elems {
			b.WriteString("\t" + e)
			if i < len(elems)-1 {
				b.WriteString(",")
			}
			b.WriteString("\n")
		}
		b.WriteString(")")
	}
	if parent != nil {
		if t.PartitionBound == "" {
			return fmt.Errorf("source: partition %s has no partition bound in the catalog", t.Name)
		}
		b.WriteString(" " + t.PartitionBound)
	}
	if t.Partitioned {
		b.WriteString(" PARTITION BY " + t.PartitionKey)
	}
	p.tableStmts = append(p.tableStmts, Statement{Object: "table " + tn.String(), SQL: b.String(), Tablespaces: spaces})
	if attachTo != nil {
		if t.PartitionBound == "" {
			return fmt.Errorf("source: partition %s has no partition bound in the catalog", t.Name)
		}
		p.attachStmts = append(p.attachStmts, Statement{
			Object: "table " + tn.String(),
			SQL:    "ALTER TABLE " + p.target(attachTo.Name).Quoted() + " ATTACH PARTITION " + tn.Quoted() + " " + t.PartitionBound,
		})
	}
	return nil
}

// sameColumnOrder reports whether a partition lists its columns in its
// parent's order.
func sameColumnOrder(t, parent *Table) bool {
	if len(t.Columns) != len(parent.Columns) {
		return false
	}
	for i := range t.Columns {
		if t.Columns[i].Name != parent.Columns[i].Name {
			return false
		}
	}
	return true
}

func findColumn(t *Table, name string) *Column {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

// typeInfo is a source type as ensureType needs it.
type typeInfo struct {
	Schema, Name string
	Kind         byte // typtype: b c d e p r m
	Elem         uint32
	IsArray      bool
	RelID        uint32
	RelKind      string
	ExtName      string // the extension it belongs to, if any
	ExtSchema    string
}

// ensureType makes sure the source type oid exists at the sink once the
// plan has run, planning it (after what it depends on) when it is missing
// there. user names who needs it, for errors.
func (p *planner) ensureType(oid uint32, user string) error {
	if oid < firstUserOID {
		return nil // built in: the same in every database
	}
	switch p.typeState[oid] {
	case stVisiting:
		return fmt.Errorf("source: type with OID %d (used by %s) depends on itself", oid, user)
	case stExisting, stCreate:
		return nil
	}
	p.typeState[oid] = stVisiting
	var ti typeInfo
	var kind string
	err := p.src.QueryRow(p.ctx, `SELECT n.nspname, t.typname, t.typtype::text, t.typelem,
			t.typelem <> 0 AND t.typlen = -1 AND t.typcategory = 'A', t.typrelid, COALESCE(c.relkind::text, ''),
			COALESCE(e.extname::text, ''), COALESCE(en.nspname::text, '')
		FROM pg_catalog.pg_type t
		JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
		LEFT JOIN pg_catalog.pg_class c ON c.oid = t.typrelid
		LEFT JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.objid = t.oid
			AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'
		LEFT JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
		LEFT JOIN pg_catalog.pg_namespace en ON en.oid = e.extnamespace
		WHERE t.oid = $1`, oid).Scan(&ti.Schema, &ti.Name, &kind, &ti.Elem, &ti.IsArray, &ti.RelID, &ti.RelKind, &ti.ExtName, &ti.ExtSchema)
	if err != nil {
		return fmt.Errorf("source: read type with OID %d (used by %s): %w", oid, user, err)
	}
	ti.Kind = kind[0]
	name := dispName(ti.Schema, ti.Name)
	if ti.IsArray {
		// An array type comes with its element type.
		if err := p.ensureType(ti.Elem, user); err != nil {
			return err
		}
		p.typeState[oid] = p.typeState[ti.Elem]
		return nil
	}
	var exists bool
	if err := p.dst.QueryRow(p.ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
		WHERE n.nspname = $1 AND t.typname = $2)`, ti.Schema, ti.Name).Scan(&exists); err != nil {
		return fmt.Errorf("sink: look up type %s: %w", name, err)
	}
	if exists {
		p.typeState[oid] = stExisting
		return nil
	}
	if ti.ExtName != "" {
		if err := p.ensureExtension(ti.ExtName, ti.ExtSchema, name, user); err != nil {
			return err
		}
		p.typeState[oid] = stCreate
		return nil
	}
	if err := p.needSchema(ti.Schema); err != nil {
		return err
	}
	var sql string
	switch ti.Kind {
	case 'e':
		sql, err = p.enumDDL(oid, ti)
	case 'd':
		sql, err = p.domainDDL(oid, ti, name)
	case 'c':
		if ti.RelKind != "c" {
			return fmt.Errorf("%s uses the row type of %s %s, which does not exist at the sink; select that table too, or create it at the sink first", user, relkindNames[ti.RelKind], name)
		}
		sql, err = p.compositeDDL(ti, name)
	case 'r':
		sql, err = p.rangeDDL(oid, ti, name)
	case 'm':
		// A multirange comes with its range type.
		var rng uint32
		if err := p.src.QueryRow(p.ctx, `SELECT rngtypid FROM pg_catalog.pg_range WHERE rngmultitypid = $1`, oid).Scan(&rng); err != nil {
			return fmt.Errorf("source: read the range type of multirange %s: %w", name, err)
		}
		if err := p.ensureType(rng, user); err != nil {
			return err
		}
		p.typeState[oid] = stCreate
		return nil
	default:
		return fmt.Errorf("type %s (used by %s) is a base or pseudo type (typtype %q) that is not part of an extension; sluice cannot create it: create it at the sink first", name, user, ti.Kind)
	}
	if err != nil {
		return err
	}
	p.typeStmts = append(p.typeStmts, Statement{Object: "type " + name, SQL: sql})
	p.typeState[oid] = stCreate
	return nil
}

// ensureExtension plans CREATE EXTENSION for the extension a missing type
// belongs to.
func (p *planner) ensureExtension(ext, schema, typeName, user string) error {
	if p.exts[ext] {
		return nil
	}
	var sinkSchema string
	err := p.dst.QueryRow(p.ctx, `SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
		WHERE e.extname = $1`, ext).Scan(&sinkSchema)
	switch {
	case err == pgx.ErrNoRows:
	case err != nil:
		return fmt.Errorf("sink: look up extension %s: %w", dispIdent(ext), err)
	default:
		return fmt.Errorf("sink: type %s (used by %s) comes from extension %s, which the sink has in schema %s but without that type; install the extension at the sink in schema %s (or the same version as the source)",
			typeName, user, dispIdent(ext), dispIdent(sinkSchema), dispIdent(schema))
	}
	if err := p.needSchema(schema); err != nil {
		return err
	}
	p.extStmts = append(p.extStmts, Statement{
		Object: "extension " + dispIdent(ext),
		SQL:    "CREATE EXTENSION IF NOT EXISTS " + record.QuoteIdent(ext) + " WITH SCHEMA " + record.QuoteIdent(schema),
	})
	p.exts[ext] = true
	return nil
}

func (p *planner) enumDDL(oid uint32, ti typeInfo) (string, error) {
	rows, err := p.src.Query(p.ctx, `SELECT pg_catalog.quote_literal(enumlabel::pg_catalog.text) FROM pg_catalog.pg_enum
		WHERE enumtypid = $1 ORDER BY enumsortorder`, oid)
	if err != nil {
		return "", fmt.Errorf("source: read labels of enum %s: %w", dispName(ti.Schema, ti.Name), err)
	}
	labels, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("source: read labels of enum %s: %w", dispName(ti.Schema, ti.Name), err)
	}
	return "CREATE TYPE " + qname(ti.Schema, ti.Name) + " AS ENUM (" + strings.Join(labels, ", ") + ")", nil
}

func (p *planner) domainDDL(oid uint32, ti typeInfo, name string) (string, error) {
	var base uint32
	var baseName, def, coll string
	var notNull bool
	err := p.src.QueryRow(p.ctx, `SELECT t.typbasetype, pg_catalog.format_type(t.typbasetype, t.typtypmod), t.typnotnull,
			COALESCE(pg_catalog.pg_get_expr(t.typdefaultbin, 0), ''),
			COALESCE((SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)
				FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
				WHERE co.oid = t.typcollation AND t.typcollation <> bt.typcollation), '')
		FROM pg_catalog.pg_type t JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
		WHERE t.oid = $1`, oid).Scan(&base, &baseName, &notNull, &def, &coll)
	if err != nil {
		return "", fmt.Errorf("source: read domain %s: %w", name, err)
	}
	if err := p.ensureType(base, "domain "+name); err != nil {
		return "", err
	}
	rows, err := p.src.Query(p.ctx, `SELECT conname, pg_catalog.pg_get_constraintdef(oid), convalidated
		FROM pg_catalog.pg_constraint WHERE contypid = $1 AND contype = 'c' ORDER BY conname`, oid)
	if err != nil {
		return "", fmt.Errorf("source: read constraints of domain %s: %w", name, err)
	}
	var checks []string
	for rows.Next() {
		var cname, cdef string
		var valid bool
		if err := rows.Scan(&cname, &cdef, &valid); err != nil {
			rows.Close()
			return "", fmt.Errorf("source: read constraints of domain %s: %w", name, err)
		}
		con := "CONSTRAINT " + record.QuoteIdent(cname) + " " + cdef
		if valid {
			checks = append(checks, con)
		} else {
			// NOT VALID is not allowed in CREATE DOMAIN; the definition
			// ends with it.
			p.postStmts = append(p.postStmts, Statement{
				Object: "type " + name,
				SQL:    "ALTER DOMAIN " + qname(ti.Schema, ti.Name) + " ADD " + con,
			})
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("source: read constraints of domain %s: %w", name, err)
	}
	sql := "CREATE DOMAIN " + qname(ti.Schema, ti.Name) + " AS " + baseName
	if coll != "" {
		sql += " COLLATE " + coll
	}
	if def != "" {
		sql += " DEFAULT " + def
	}
	if notNull {
		sql += " NOT NULL"
	}
	for _, c := range checks {
		sql += "\n\t" + c
	}
	return sql, nil
}

func (p *planner) compositeDDL(ti typeInfo, name string) (string, error) {
	rows, err := p.src.Query(p.ctx, `SELECT a.attname::text, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod),
			COALESCE((SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)
				FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
				WHERE co.oid = a.attcollation AND a.attcollation <> at.typcollation), '')
		FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type at ON at.oid = a.atttypid
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, ti.RelID)
	if err != nil {
		return "", fmt.Errorf("source: read attributes of type %s: %w", name, err)
	}
	type attr struct {
		name      string
		typ       uint32
		typeName  string
		collation string
	}
	var attrs []attr
	for rows.Next() {
		var a attr
		if err := rows.Scan(&a.name, &a.typ, &a.typeName, &a.collation); err != nil {
			rows.Close()
			return "", fmt.Errorf("source: read attributes of type %s: %w", name, err)
		}
		attrs = append(attrs, a)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("source: read attributes of type %s: %w", name, err)
	}
	var b strings.Builder
	b.WriteString("CREATE TYPE " + qname(ti.Schema, ti.Name) + " AS (")
	for i, a := range attrs {
		if err := p.ensureType(a.typ, fmt.Sprintf("attribute %s of type %s", dispIdent(a.name), name)); err != nil {
			return "", err
		}
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n\t" + record.QuoteIdent(a.name) + " " + a.typeName)
		if a.collation != "" {
			b.WriteString(" COLLATE " + a.collation)
		}
	}
	if len(attrs) > 0 {
		b.WriteString("\n")
	}
	b.WriteString(")")
	return b.String(), nil
}

func (p *planner) rangeDDL(oid uint32, ti typeInfo, name string) (string, error) {
	multi := "''"
	if p.srcVersion >= 140000 {
		multi = `COALESCE((SELECT pg_catalog.quote_ident(mn.nspname) || '.' || pg_catalog.quote_ident(mt.typname)
				FROM pg_catalog.pg_type mt JOIN pg_catalog.pg_namespace mn ON mn.oid = mt.typnamespace WHERE mt.oid = r.rngmultitypid), '')`
	}
	var sub uint32
	var subName, opclass, coll, canonical, subdiff, multiName string
	var opcDefault bool
	err := p.src.QueryRow(p.ctx, `SELECT r.rngsubtype, pg_catalog.format_type(r.rngsubtype, NULL),
			pg_catalog.quote_ident(opn.nspname) || '.' || pg_catalog.quote_ident(opc.opcname), opc.opcdefault,
			COALESCE((SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)
				FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
				WHERE co.oid = r.rngcollation AND r.rngcollation <> st.typcollation), ''),
			COALESCE((SELECT pg_catalog.quote_ident(pn.nspname) || '.' || pg_catalog.quote_ident(pr.proname)
				FROM pg_catalog.pg_proc pr JOIN pg_catalog.pg_namespace pn ON pn.oid = pr.pronamespace
				WHERE pr.oid = r.rngcanonical AND pr.oid < $2), ''),
			COALESCE((SELECT pg_catalog.quote_ident(pn.nspname) || '.' || pg_catalog.quote_ident(pr.proname)
				FROM pg_catalog.pg_proc pr JOIN pg_catalog.pg_namespace pn ON pn.oid = pr.pronamespace
				WHERE pr.oid = r.rngsubdiff AND pr.oid < $2), ''),
			`+multi+`
		FROM pg_catalog.pg_range r
		JOIN pg_catalog.pg_type st ON st.oid = r.rngsubtype
		JOIN pg_catalog.pg_opclass opc ON opc.oid = r.rngsubopc
		JOIN pg_catalog.pg_namespace opn ON opn.oid = opc.opcnamespace
		WHERE r.rngtypid = $1`, oid, uint32(firstUserOID)).Scan(&sub, &subName, &opclass, &opcDefault, &coll, &canonical, &subdiff, &multiName)
	if err != nil {
		return "", fmt.Errorf("source: read range type %s: %w", name, err)
	}
	if err := p.ensureType(sub, "range type "+name); err != nil {
		return "", err
	}
	opts := []string{"SUBTYPE = " + subName}
	if !opcDefault {
		opts = append(opts, "SUBTYPE_OPCLASS = "+opclass)
	}
	if coll != "" {
		opts = append(opts, "COLLATION = "+coll)
	}
	if canonical != "" {
		opts = append(opts, "CANONICAL = "+canonical)
	}
	if subdiff != "" {
		opts = append(opts, "SUBTYPE_DIFF = "+subdiff)
	}
	if multiName != "" && p.dstVersion >= 140000 {
		opts = append(opts, "MULTIRANGE_TYPE_NAME = "+multiName)
	}
	return "CREATE TYPE " + qname(ti.Schema, ti.Name) + " AS RANGE (" + strings.Join(opts, ", ") + ")", nil
}

// columnSequence is a sequence a column's default or identity uses.
type columnSequence struct {
	Table        uint32
	Column       string
	Seq          uint32
	Schema, Name string
}

// columnSequences lists, for the given tables, the sequences their column
// defaults (nextval) and identity columns use.
func columnSequences(ctx context.Context, conn *pgx.Conn, oids []uint32) ([]columnSequence, error) {
	rows, err := conn.Query(ctx, `SELECT ad.adrelid, a.attname::text, s.oid, sn.nspname::text, s.relname::text
		FROM pg_catalog.pg_attrdef ad
		JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
		JOIN pg_catalog.pg_depend dep ON dep.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND dep.objid = ad.oid
			AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
		JOIN pg_catalog.pg_class s ON s.oid = dep.refobjid AND s.relkind = 'S'
		JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
		WHERE ad.adrelid = ANY($1)
		UNION
		SELECT dep.refobjid, a.attname::text, s.oid, sn.nspname::text, s.relname::text
		FROM pg_catalog.pg_depend dep
		JOIN pg_catalog.pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
		JOIN pg_catalog.pg_class s ON s.oid = dep.objid AND s.relkind = 'S'
		JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
		WHERE dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
			AND dep.deptype = 'i' AND dep.refobjid = ANY($1)
		ORDER BY 1, 2, 3`, oids)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (columnSequence, error) {
		var c columnSequence
		err := r.Scan(&c.Table, &c.Column, &c.Seq, &c.Schema, &c.Name)
		return c, err
	})
}

// SyncSequences sets each sink sequence that the tables' defaults or
// identity columns use to the source's state (last_value, is_called), so
// that new ids at the sink never collide. Source and sink sequences are
// matched through the columns that use them, so a sink sequence with
// another name (a renamed table's identity) is found too. Returns how many
// sink sequences it set.
func SyncSequences(ctx context.Context, src, dst *pgx.Conn, tables []*Table, target TargetName) (int, error) {
	return SyncSequencesMapped(ctx, src, dst, tables, target, nil)
}

// SyncSequencesMapped is SyncSequences with columns renamed or dropped by
// columns: a dropped column's sequence is left alone.
func SyncSequencesMapped(ctx context.Context, src, dst *pgx.Conn, tables []*Table, target TargetName, columns ColumnName) (int, error) {
	pairs, err := columnSequencePairs(ctx, src, dst, tables, target, columns)
	if err != nil {
		return 0, err
	}
	set, err := setSequences(ctx, src, dst, pairs)
	return len(set), err
}

// seqPair is a source sequence and the sink sequence that takes its value.
type seqPair struct{ src, dst columnSequence }

// columnSequencePairs matches the sequences the tables' columns use at the
// source with those the sink tables' columns use.
func columnSequencePairs(ctx context.Context, src, dst *pgx.Conn, tables []*Table, target TargetName, columns ColumnName) ([]seqPair, error) {
	if target == nil {
		target = SameName
	}
	if len(tables) == 0 {
		return nil, nil
	}
	srcOIDs := make([]uint32, len(tables))
	schemas := make([]string, len(tables))
	names := make([]string, len(tables))
	for i, t := range tables {
		srcOIDs[i] = t.OID
		tn := target(t.Name)
		schemas[i], names[i] = tn.Schema, tn.Name
	}
	srcSeqs, err := columnSequences(ctx, src, srcOIDs)
	if err != nil {
		return nil, fmt.Errorf("source: read the sequences the tables use: %w", err)
	}
	if len(srcSeqs) == 0 {
		return nil, nil
	}
	// The sink tables, by position in tables.
	rows, err := dst.Query(ctx, `SELECT k.i::int, COALESCE(c.oid, 0)
		FROM unnest($1::text[], $2::text[]) WITH ORDINALITY k(s, n, i)
		LEFT JOIN pg_catalog.pg_namespace ns ON ns.nspname = k.s
		LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = ns.oid AND c.relname = k.n AND c.relkind IN ('r', 'p')`, schemas, names)
	if err != nil {
		return nil, fmt.Errorf("sink: look up the tables: %w", err)
	}
	dstOIDs := make([]uint32, len(tables))
	for rows.Next() {
		var i int
		var oid uint32
		if err := rows.Scan(&i, &oid); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sink: look up the tables: %w", err)
		}
		dstOIDs[i-1] = oid
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sink: look up the tables: %w", err)
	}
	srcToDst := map[uint32]uint32{}
	bySrc := map[uint32]*Table{}
	for i, t := range tables {
		bySrc[t.OID] = t
		if dstOIDs[i] == 0 {
			return nil, fmt.Errorf("sink: table %s (for source table %s) does not exist; run the schema sync first", target(t.Name), t.Name)
		}
		srcToDst[t.OID] = dstOIDs[i]
	}
	dstSeqs, err := columnSequences(ctx, dst, dstOIDs)
	if err != nil {
		return nil, fmt.Errorf("sink: read the sequences the tables use: %w", err)
	}
	type colKey struct {
		table  uint32
		column string
	}
	sinkSeq := map[colKey]columnSequence{}
	for _, s := range dstSeqs {
		sinkSeq[colKey{s.Table, s.Column}] = s
	}
	var pairs []seqPair
	done := map[uint32]bool{}
	for _, s := range srcSeqs {
		col := s.Column
		if columns != nil {
			var dropped bool
			if col, dropped = columns(bySrc[s.Table].Name, s.Column); dropped {
				continue
			}
		}
		d, ok := sinkSeq[colKey{srcToDst[s.Table], col}]
		if !ok {
			return nil, fmt.Errorf("sink: column %s of table %s uses no sequence at the sink, while at the source it uses sequence %s; fix its default or identity at the sink",
				dispIdent(s.Column), target(bySrc[s.Table].Name), dispName(s.Schema, s.Name))
		}
		if done[d.Seq] {
			continue
		}
		done[d.Seq] = true
		pairs = append(pairs, seqPair{s, d})
	}
	return pairs, nil
}

// setSequences sets each pair's sink sequence to its source sequence's
// state (last_value, is_called), in one sink transaction, and returns
// what it set.
func setSequences(ctx context.Context, src, dst *pgx.Conn, pairs []seqPair) ([]SequenceSet, error) {
	tx, err := dst.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("sink: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	out := make([]SequenceSet, 0, len(pairs))
	for _, pr := range pairs {
		var last int64
		var called bool
		// The sequence relation itself holds both; pg_sequences hides
		// is_called.
		if err := src.QueryRow(ctx, "SELECT last_value, is_called FROM "+qname(pr.src.Schema, pr.src.Name)).Scan(&last, &called); err != nil {
			return nil, fmt.Errorf("source: read sequence %s (the user needs SELECT on it): %w", dispName(pr.src.Schema, pr.src.Name), err)
		}
		// Never backwards: a sink that handed out ids past the source's
		// (the application writes there after a cutover, and cutover or
		// the periodic sync runs again) keeps its value.
		var dLast, inc int64
		var dCalled bool
		if err := tx.QueryRow(ctx, "SELECT s.last_value, s.is_called, q.seqincrement FROM "+qname(pr.dst.Schema, pr.dst.Name)+
			" s, pg_catalog.pg_sequence q WHERE q.seqrelid = $1", pr.dst.Seq).Scan(&dLast, &dCalled, &inc); err != nil {
			return nil, fmt.Errorf("sink: read sequence %s: %w", dispName(pr.dst.Schema, pr.dst.Name), err)
		}
		if ahead(dLast, dCalled, last, called, inc) {
			out = append(out, SequenceSet{
				Source: record.TableName{Schema: pr.src.Schema, Name: pr.src.Name},
				Sink:   record.TableName{Schema: pr.dst.Schema, Name: pr.dst.Name},
				Value:  dLast, IsCalled: dCalled, Kept: true,
			})
			continue
		}
		if _, err := tx.Exec(ctx, "SELECT pg_catalog.setval($1::pg_catalog.oid::pg_catalog.regclass, $2, $3)", pr.dst.Seq, last, called); err != nil {
			return nil, fmt.Errorf("sink: set sequence %s to %d (from source sequence %s): %w",
				dispName(pr.dst.Schema, pr.dst.Name), last, dispName(pr.src.Schema, pr.src.Name), err)
		}
		out = append(out, SequenceSet{
			Source: record.TableName{Schema: pr.src.Schema, Name: pr.src.Name},
			Sink:   record.TableName{Schema: pr.dst.Schema, Name: pr.dst.Name},
			Value:  last, IsCalled: called,
		})
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("sink: commit the sequence values: %w", err)
	}
	return out, nil
}
