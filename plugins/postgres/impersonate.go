package postgres

// Name mapping for DDL written against the source's names (pg_dump's
// post-data: indexes, constraints, foreign keys, triggers, rules, views,
// comments, grants). Rewriting that text is not safe in general (a column
// name inside an index expression, a WHERE clause or a view's query is
// only recognised by a full parser), so the sink's catalog is made to
// match the text instead: inside the one transaction that creates the
// objects, each renamed sink table is given its source schema and name and
// its renamed columns their source names; the statements run unchanged;
// then every table and column gets its sink name back. PostgreSQL keeps
// the created objects attached by OID (an index to its table, a view to
// the columns it reads), so they follow the renames back, and the result
// is what the statements would have created had they been written with
// the sink's names. Nobody else sees the intermediate names: the
// transaction holds ACCESS EXCLUSIVE locks on the renamed tables until it
// commits.
//
// What this cannot map: names inside function bodies (text, not
// dependencies), and objects that need a dropped column (those fail and
// are reported by name).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/engine/record"
)

// MappedTable is a selected table whose sink name or columns differ from
// the source's.
type MappedTable struct {
	Source, Sink record.TableName
	// Columns maps a renamed column's source name to its sink name.
	Columns map[string]string
}

// ImpersonationError is a failure to give the sink's tables their source
// names (a source name is taken at the sink by another object, say).
type ImpersonationError struct {
	SQL string
	Err error
}

func (e *ImpersonationError) Error() string {
	return fmt.Sprintf("sink: building the post-data objects under the name mapping gives the renamed tables their source names inside its transaction, and %s failed: %v (is the source name taken at the sink by another object? rename or drop it, or create the indexes, constraints and other objects at the sink yourself)", e.SQL, e.Err)
}

func (e *ImpersonationError) Unwrap() error { return e.Err }

// impersonation returns the statements that give the mapped sink tables
// their source names (before) and their sink names back (after). Every
// table first goes to a temporary name, and every renamed column too, so
// that swapped names never collide.
func impersonation(mapped []MappedTable) (before, after []string) {
	tmp := func(i int) string { return "sluice_as_source_" + strconv.Itoa(i) }
	for i, m := range mapped {
		before = append(before, "ALTER TABLE "+m.Sink.Quoted()+" RENAME TO "+record.QuoteIdent(tmp(i)))
	}
	for i, m := range mapped {
		at := record.TableName{Schema: m.Sink.Schema, Name: tmp(i)}
		before = append(before, renameColumns(at, m.Columns, false)...)
		if m.Sink.Schema != m.Source.Schema {
			before = append(before,
				"CREATE SCHEMA IF NOT EXISTS "+record.QuoteIdent(m.Source.Schema),
				"ALTER TABLE "+at.Quoted()+" SET SCHEMA "+record.QuoteIdent(m.Source.Schema))
			at.Schema = m.Source.Schema
		}
		before = append(before, "ALTER TABLE "+at.Quoted()+" RENAME TO "+record.QuoteIdent(m.Source.Name))
	}
	for i, m := range mapped {
		after = append(after, "ALTER TABLE "+m.Source.Quoted()+" RENAME TO "+record.QuoteIdent(tmp(i)))
	}
	for i, m := range mapped {
		at := record.TableName{Schema: m.Source.Schema, Name: tmp(i)}
		after = append(after, renameColumns(at, m.Columns, true)...)
		if m.Sink.Schema != m.Source.Schema {
			after = append(after, "ALTER TABLE "+at.Quoted()+" SET SCHEMA "+record.QuoteIdent(m.Sink.Schema))
			at.Schema = m.Sink.Schema
		}
		after = append(after, "ALTER TABLE "+at.Quoted()+" RENAME TO "+record.QuoteIdent(m.Sink.Name))
	}
	// A source schema created only to hold the tables for the moment goes
	// again; one that has other objects now (a view, a function) stays.
	dropped := map[string]bool{}
	for _, m := range mapped {
		if m.Sink.Schema != m.Source.Schema && !dropped[m.Source.Schema] && !strings.Contains(m.Source.Schema, "$") {
			dropped[m.Source.Schema] = true
			after = append(after, `DO $sluice$ BEGIN
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = '`+strings.ReplaceAll(m.Source.Schema, "'", "''")+`'
		AND xmin::text::bigint = pg_catalog.pg_current_xact_id()::text::bigint % 4294967296) THEN
		DROP SCHEMA `+record.QuoteIdent(m.Source.Schema)+`;
	END IF;
EXCEPTION WHEN dependent_objects_still_exist THEN NULL;
END $sluice$`)
		}
	}
	return before, after
}

// renameColumns renames a table's mapped columns from their sink names to
// their source names (back: the other way), through temporary names.
func renameColumns(t record.TableName, cols map[string]string, back bool) []string {
	srcs := make([]string, 0, len(cols))
	for s := range cols {
		srcs = append(srcs, s)
	}
	slices.Sort(srcs)
	var out []string
	for j, s := range srcs {
		from := cols[s]
		if back {
			from = s
		}
		out = append(out, "ALTER TABLE "+t.Quoted()+" RENAME COLUMN "+record.QuoteIdent(from)+" TO "+record.QuoteIdent("sluice_as_source_c"+strconv.Itoa(j)))
	}
	for j, s := range srcs {
		to := s
		if back {
			to = cols[s]
		}
		out = append(out, "ALTER TABLE "+t.Quoted()+" RENAME COLUMN "+record.QuoteIdent("sluice_as_source_c"+strconv.Itoa(j))+" TO "+record.QuoteIdent(to))
	}
	return out
}

// alreadyExists reports whether the sink refused a statement because its
// object exists.
func alreadyExists(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "42P07", // duplicate_table (a relation: index, view, sequence)
		"42710", // duplicate_object (constraint, trigger, rule, type)
		"42723", // duplicate_function
		"42P06", // duplicate_schema
		"42P16": // invalid_table_definition: multiple primary keys
		return true
	}
	return false
}

// entryKeys names a source dump entry as the sink's dump names the object
// it creates under the name mapping, so that what the sink has is found.
type entryKeys struct {
	// tables by source schema and name.
	tables map[record.TableName]*MappedTable
	// indexSchema: the sink schema of each index of a mapped table that
	// moves to another schema, by source schema and index name.
	indexSchema map[record.TableName]string
}

func newEntryKeys(ctx context.Context, src *pgx.Conn, mapped []MappedTable) (*entryKeys, error) {
	k := &entryKeys{tables: map[record.TableName]*MappedTable{}, indexSchema: map[record.TableName]string{}}
	var schemas, names []string
	for i := range mapped {
		m := &mapped[i]
		k.tables[m.Source] = m
		if m.Source.Schema != m.Sink.Schema {
			schemas, names = append(schemas, m.Source.Schema), append(names, m.Source.Name)
		}
	}
	if len(schemas) == 0 {
		return k, nil
	}
	rows, err := src.Query(ctx, `SELECT n.nspname::text, c.relname::text, i.relname::text
		FROM unnest($1::text[], $2::text[]) AS k(s, t)
		JOIN pg_catalog.pg_namespace n ON n.nspname = k.s
		JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = k.t
		JOIN pg_catalog.pg_index x ON x.indrelid = c.oid
		JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid`, schemas, names)
	if err != nil {
		return nil, fmt.Errorf("source: list the indexes of the renamed tables: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sch, tbl, idx string
		if err := rows.Scan(&sch, &tbl, &idx); err != nil {
			return nil, fmt.Errorf("source: list the indexes of the renamed tables: %w", err)
		}
		k.indexSchema[record.TableName{Schema: sch, Name: idx}] = k.tables[record.TableName{Schema: sch, Name: tbl}].Sink.Schema
	}
	return k, rows.Err()
}

// sinkKey is e's key with the mapped names: pg_dump names an entry of a
// table's object "table rest" (constraints, triggers, rules, defaults,
// policies) or, for comments and privileges, "TABLE t", "COLUMN t.c", or
// "KIND x ON t".
func (k *entryKeys) sinkKey(e DumpEntry) string {
	if len(k.tables) == 0 || e.Schema == "-" {
		return e.key()
	}
	if e.Type == "INDEX" || e.Type == "INDEX ATTACH" {
		if s, ok := k.indexSchema[record.TableName{Schema: e.Schema, Name: e.Name}]; ok {
			e.Schema = s
		}
		return e.key()
	}
	// The entry names at most one table of its schema; try each mapped
	// table of that schema.
	for src, m := range k.tables {
		if src.Schema != e.Schema {
			continue
		}
		name, ok := mapEntryName(e.Name, src.Name, m)
		if !ok {
			continue
		}
		e.Name = name
		if e.Type != "COMMENT" && e.Type != "ACL" || strings.HasPrefix(e.Name, "TABLE ") || strings.HasPrefix(e.Name, "COLUMN ") || strings.Contains(e.Name, " ON ") {
			e.Schema = m.Sink.Schema
		}
		return e.key()
	}
	return e.key()
}

// mapEntryName rewrites an entry name that refers to table t (source name)
// into the sink's, and reports whether it referred to t.
func mapEntryName(name, t string, m *MappedTable) (string, bool) {
	col := func(c string) string {
		if to, ok := m.Columns[c]; ok {
			return to
		}
		return c
	}
	switch {
	case name == t:
		return m.Sink.Name, true
	case strings.HasPrefix(name, "TABLE "+t) && len(name) == len("TABLE "+t):
		return "TABLE " + m.Sink.Name, true
	case strings.HasPrefix(name, "COLUMN "+t+"."):
		return "COLUMN " + m.Sink.Name + "." + col(strings.TrimPrefix(name, "COLUMN "+t+".")), true
	case strings.HasSuffix(name, " ON "+t):
		return strings.TrimSuffix(name, t) + m.Sink.Name, true
	case strings.HasPrefix(name, t+" "):
		rest := strings.TrimPrefix(name, t+" ")
		if to, ok := m.Columns[rest]; ok { // a DEFAULT entry: "table column"
			rest = to
		}
		return m.Sink.Name + " " + rest, true
	}
	return name, false
}

// movedSchema reports whether schema is the source schema of a mapped
// table that lives in another schema at the sink.
func movedSchema(mapped []MappedTable, schema string) bool {
	for _, m := range mapped {
		if m.Source.Schema == schema && m.Sink.Schema != schema {
			return true
		}
	}
	return false
}
