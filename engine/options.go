package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/transforms/rename"
	"github.com/sluicehq/sluice/transforms/where"
)

// ObjectOptions are the per-object options of one objects item: a whole
// schema (Schema set) or one table. A table item's options win over those
// of its schema's item.
type ObjectOptions struct {
	Schema string
	Table  record.TableName
	// Where keeps only the rows satisfying the SQL condition (table items
	// only); empty keeps every row.
	Where string
	// Operations lists the DML that reaches the sink (insert, update,
	// delete, truncate); empty means all.
	Operations []string
	// Origin says where the item is written, for messages, e.g.
	// "pipeline.yaml:12 (objects[2])".
	Origin string
}

// Operation bits of an operations list.
const (
	opInsert uint8 = 1 << iota
	opUpdate
	opDelete
	opTruncate
	opAll = opInsert | opUpdate | opDelete | opTruncate
)

func opMask(ops []string) (uint8, error) {
	if len(ops) == 0 {
		return opAll, nil
	}
	var m uint8
	for _, o := range ops {
		switch o {
		case "insert":
			m |= opInsert
		case "update":
			m |= opUpdate
		case "delete":
			m |= opDelete
		case "truncate":
			m |= opTruncate
		default:
			return 0, fmt.Errorf("%q is not an operation (valid: insert, update, delete, truncate)", o)
		}
	}
	return m, nil
}

func opBit(op record.Op) uint8 {
	switch op {
	case record.Insert:
		return opInsert
	case record.Update:
		return opUpdate
	case record.Delete:
		return opDelete
	}
	return 0
}

// tableOptions are the resolved options of one source table.
type tableOptions struct {
	filter *where.Filter
	ops    uint8
	// origin names the objects item the options come from, for messages;
	// cond is its where condition as written ("": none). A condition
	// with no filter yet is compiled at the table's first streamed change
	// (see resolveMappingAt).
	origin string
	cond   string
}

// mapping is what the pipeline does to the source's tables on the way to
// the sink: names (rules), row filters and operations per table OID.
type mapping struct {
	rules *rename.Rules
	opts  map[uint32]*tableOptions

	mu   sync.Mutex
	rels map[*record.Relation]mappedRel

	// deferred holds the tables whose where condition did not fit the
	// source's catalog when the run began (resolveMappingAt): their
	// Table.Filter is empty. Written only there, so backfills may read it.
	deferred map[uint32]bool
}

type mappedRel struct {
	rel  *record.Relation
	keep []int // nil: the columns are kept as they are
}

// relation returns the sink's relation for a source relation, cached per
// relation pointer.
func (m *mapping) relation(src *record.Relation) mappedRel {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mr, ok := m.rels[src]; ok {
		return mr
	}
	dst, keep := m.rules.Relation(src)
	identity := len(keep) == len(src.Columns)
	for i, k := range keep {
		if k != i {
			identity = false
		}
	}
	mr := mappedRel{rel: dst}
	if !identity {
		mr.keep = keep
	}
	if m.rels == nil {
		m.rels = map[*record.Relation]mappedRel{}
	}
	m.rels[src] = mr
	return mr
}

// project lines vals up with a mapped relation's columns.
func (mr mappedRel) project(vals []record.Value) []record.Value {
	if mr.keep == nil || vals == nil {
		return vals
	}
	out := make([]record.Value, 0, len(mr.keep))
	for _, k := range mr.keep {
		if k < len(vals) {
			out = append(out, vals[k])
		}
	}
	return out
}

// mapRecord returns rec with the sink's relation and values.
func (m *mapping) mapRecord(rec *record.Record) *record.Record {
	mr := m.relation(rec.Rel)
	out := *rec
	out.Rel = mr.rel
	out.New = mr.project(rec.New)
	out.Old = mr.project(rec.Old)
	return &out
}

// sinkKey maps key column names to the sink's.
func (m *mapping) sinkKey(t *postgres.Table) []string {
	if len(t.Key) == 0 {
		return nil
	}
	out := make([]string, len(t.Key))
	for i, k := range t.Key {
		out[i], _ = m.rules.Column(t.Name, k)
	}
	return out
}

// renames reports whether any selected table or column gets another name
// (or is dropped) at the sink.
func (m *mapping) renames(tables []*postgres.Table) bool {
	for _, t := range tables {
		if m.rules.Table(t.Name) != t.Name {
			return true
		}
		for _, c := range t.Columns {
			if name, dropped := m.rules.Column(t.Name, c.Name); dropped || name != c.Name {
				return true
			}
		}
	}
	return false
}

// resolveMapping builds the mapping for the discovered tables and checks
// it against the source's catalog: colliding or unknown names, dropped key
// columns and WHERE conditions the engine cannot evaluate exactly fail
// here, before any data is touched.
func resolveMapping(ctx context.Context, src *pgx.Conn, cfg *Config, tables []*postgres.Table) (*mapping, error) {
	return resolveMappingAt(ctx, src, cfg, tables, false)
}

// resolveMappingAt is resolveMapping for a run that resumes streaming
// with DDL capture when resume is set: the source's catalog may then be
// ahead of the stream (DDL not applied yet), so a where condition that
// does not fit the catalog is not an error yet; it is compiled for the
// table as the stream has it, at the table's first change or DDL event
// (whereChange, whereAltered), and stops the pipeline there if it does
// not fit.
func resolveMappingAt(ctx context.Context, src *pgx.Conn, cfg *Config, tables []*postgres.Table, resume bool) (*mapping, error) {
	return resolveMappingNamed(ctx, src, cfg, tables, resume, nil)
}

// resolveMappingNamed is resolveMappingAt with each table's options looked
// up by its name in bound, when it has one there (see optnames.go).
func resolveMappingNamed(ctx context.Context, src *pgx.Conn, cfg *Config, tables []*postgres.Table, resume bool, bound map[uint32]record.TableName) (*mapping, error) {
	rules, err := rename.New(cfg.Rename)
	if err != nil {
		return nil, permanent(err)
	}
	m := &mapping{rules: rules, opts: map[uint32]*tableOptions{}}
	names := make([]record.TableName, 0, len(tables))
	cols := map[record.TableName][]string{}
	var problems []error
	for _, t := range tables {
		names = append(names, t.Name)
		for _, c := range t.CopyColumns() {
			cols[t.Name] = append(cols[t.Name], c.Name)
		}
		mapped := false
		for _, c := range t.Columns {
			if n, dropped := rules.Column(t.Name, c.Name); dropped || n != c.Name {
				mapped = true
			}
		}
		if mapped && (t.Partitioned || t.Parent != nil) {
			problems = append(problems, fmt.Errorf("columns: table %s is partitioned or a partition: renaming or dropping its columns is not supported yet", t.Name))
		}
		if mapped {
			for _, c := range t.Columns {
				if c.Generated != 0 {
					problems = append(problems, fmt.Errorf("columns: table %s has the generated column %s: renaming or dropping columns of such a table is not supported yet", t.Name, record.QuoteIdent(c.Name)))
					break
				}
			}
		}
		for _, k := range t.Key {
			if _, dropped := rules.Column(t.Name, k); dropped {
				problems = append(problems, fmt.Errorf("columns: table %s: the key column %s cannot be dropped: the sink finds streamed rows by it", t.Name, record.QuoteIdent(k)))
			}
		}
	}
	if err := rules.Check(names, cols); err != nil {
		problems = append(problems, err)
	}
	for _, t := range tables {
		o, own := optionsFor(cfg.Options, optionsName(bound, t.OID, t.Name))
		if !own && t.Parent != nil {
			// A partition follows its partitioned table's item.
			if po, pown := optionsFor(cfg.Options, optionsName(bound, t.ParentOID, *t.Parent)); pown {
				o, own = po, true
			}
		}
		if o == nil {
			continue
		}
		ops, err := opMask(o.Operations)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: operations: %w", o.Origin, err))
			continue
		}
		to := &tableOptions{ops: ops, origin: o.Origin}
		if o.Where != "" && own {
			to.cond = o.Where
			wcols, err := whereColumns(ctx, src, t)
			if err != nil {
				return nil, err
			}
			f, err := compileWhere(o.Origin, o.Where, t.Name, wcols)
			switch {
			case err != nil && resume:
				if m.deferred == nil {
					m.deferred = map[uint32]bool{}
				}
				m.deferred[t.OID] = true
				cfg.Log.Warn("where condition does not fit the table as the source's catalog has it now; the stream may be behind the catalog (DDL not applied yet), so it is compiled for the table as the stream has it, at its first change", "table", t.Name.String(), "error", err.Error())
			case err != nil:
				problems = append(problems, err)
				continue
			default:
				to.filter = f
				t.Filter = f.SQL()
			}
		}
		if to.cond != "" || to.ops != opAll {
			m.opts[t.OID] = to
		}
	}
	if len(problems) > 0 {
		return nil, permanent(errors.Join(problems...))
	}
	return m, nil
}

// optionsFor finds the options of a table: its own item's (own true),
// else its schema's.
func optionsFor(opts []ObjectOptions, name record.TableName) (o *ObjectOptions, own bool) {
	var schema *ObjectOptions
	for i := range opts {
		o := &opts[i]
		if o.Schema == "" && o.Table == name {
			return o, true
		}
		if o.Schema != "" && o.Schema == name.Schema && schema == nil {
			schema = o
		}
	}
	return schema, false
}

// whereColumns reads what where.Compile needs to know about a table's
// columns: base types of domains and what their collations do.
func whereColumns(ctx context.Context, conn *pgx.Conn, t *postgres.Table) ([]where.Column, error) {
	dbC, err := databaseC(ctx, conn)
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, `
		WITH RECURSIVE base(attnum, typid, typtype, depth) AS (
			SELECT a.attnum, a.atttypid, t.typtype, 0
			FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
			WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
			UNION ALL
			SELECT b.attnum, t.typbasetype, bt.typtype, b.depth + 1
			FROM base b JOIN pg_catalog.pg_type t ON t.oid = b.typid
			JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
			WHERE b.typtype = 'd' AND b.depth < 32
		)
		SELECT a.attname, b.typid, pg_catalog.format_type(b.typid, NULL),
			COALESCE(co.collname, ''),
			COALESCE(co.collisdeterministic, true),
			COALESCE(co.collprovider = 'c' AND co.collcollate IN ('C', 'POSIX') AND co.collctype IN ('C', 'POSIX'), false)
		FROM pg_catalog.pg_attribute a
		JOIN base b ON b.attnum = a.attnum AND b.typtype <> 'd'
		LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, t.OID)
	if err != nil {
		return nil, fmt.Errorf("source: read the columns of %s: %w", t.Name, err)
	}
	defer rows.Close()
	var out []where.Column
	for rows.Next() {
		var c where.Column
		var coll string
		var deterministic, byteOrder bool
		if err := rows.Scan(&c.Name, &c.TypeOID, &c.TypeName, &coll, &deterministic, &byteOrder); err != nil {
			return nil, fmt.Errorf("source: read the columns of %s: %w", t.Name, err)
		}
		setCollation(&c, coll, deterministic, byteOrder, dbC)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("source: read the columns of %s: %w", t.Name, err)
	}
	return out, nil
}

// databaseC reports whether the database's default collation orders
// strings by bytes (datcollate and datctype both C or POSIX).
func databaseC(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var dbC bool
	if err := conn.QueryRow(ctx, `SELECT datcollate IN ('C', 'POSIX') AND datctype IN ('C', 'POSIX') FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()`).Scan(&dbC); err != nil {
		return false, fmt.Errorf("source: read the database's collation: %w", err)
	}
	return dbC, nil
}

// setCollation says what a column's collation (its name, "" for a type
// without one) does to a where condition: "C" for byte order (the
// database default under C, or a libc C/POSIX collation), else its name.
func setCollation(c *where.Column, coll string, deterministic, byteOrder, dbC bool) {
	c.Nondeterministic = !deterministic
	switch {
	case coll == "":
	case coll == "default" && dbC, byteOrder:
		c.Collation = "C"
	default:
		c.Collation = coll
	}
}
