package postgres

// Schema sync, the part of pre-data that must precede the tables: the
// schemas, extensions, types, domains, functions, procedures, aggregates,
// operators (and their comments and privileges) that pg_dump orders before
// the first table of the selection. A column default, a generated column
// or a domain's CHECK may call a user function; pg_dump's dependency order
// puts such a function before the table, and the objects that need a table
// (a function returning its row type, a view) after it. Everything up to
// the first table is therefore safe to create before the tables, and is
// needed there; what follows is created after the copy (PlanPostData).

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// preTableTypes are the entry types created before the tables when pg_dump
// orders them before the first table.
var preTableTypes = map[string]bool{
	"SCHEMA": true, "EXTENSION": true, "TYPE": true, "SHELL TYPE": true, "DOMAIN": true,
	"FUNCTION": true, "PROCEDURE": true, "AGGREGATE": true, "OPERATOR": true,
	"OPERATOR CLASS": true, "OPERATOR FAMILY": true, "CAST": true, "COLLATION": true,
	"CONVERSION": true, "TEXT SEARCH CONFIGURATION": true, "TEXT SEARCH DICTIONARY": true,
	"TEXT SEARCH PARSER": true, "TEXT SEARCH TEMPLATE": true, "PROCEDURAL LANGUAGE": true,
	"ACCESS METHOD": true, "SEQUENCE": true,
}

// tableEntryTypes end the pre-table prefix of a dump.
var tableEntryTypes = map[string]bool{
	"TABLE": true, "FOREIGN TABLE": true, "VIEW": true, "MATERIALIZED VIEW": true, "TABLE ATTACH": true,
	"DEFAULT": true, "SEQUENCE OWNED BY": true, "INDEX": true, "CONSTRAINT": true,
}

// preTableEntries returns the entries of a dump (in its order) that come
// before its first table and create one of preTableTypes, with their
// comments and privileges. A SEQUENCE entry is taken only when it creates
// the sequence (an identity column's is an ALTER TABLE).
func preTableEntries(entries []DumpEntry) []DumpEntry {
	var out []DumpEntry
	for _, e := range entries {
		if tableEntryTypes[e.Type] {
			break
		}
		switch {
		case e.Type == "COMMENT" || e.Type == "ACL":
			// Named after their object: "FUNCTION f(integer)", "SCHEMA zoo".
			for typ := range preTableTypes {
				if strings.HasPrefix(e.Name, typ+" ") {
					out = append(out, e)
					break
				}
			}
		case e.Type == "SEQUENCE" && !strings.Contains(stripSets(e.SQL), "CREATE SEQUENCE "):
		case preTableTypes[e.Type]:
			out = append(out, e)
		}
	}
	return out
}

// PlanPreTables returns the DDL to run before the tables are created: the
// entries of `pg_dump --schema-only` of the selection that pg_dump orders
// before the first table (schemas, extensions, types, domains, functions,
// procedures, aggregates, operators, sequences, with their comments), minus
// what the sink has. Arguments are as for PlanPostData.
//
// When the selected schemas hold no function, procedure, aggregate,
// operator or collation and the selection uses no extension, the tables
// need nothing the catalog planner does not make: the plan is empty and
// pg_dump is not run.
func PlanPreTables(ctx context.Context, src, dst *pgx.Conn, srcDSN, dstDSN string, sel []Selection, tables []*Table, target TargetName) (*SchemaPlan, error) {
	need, err := needPreTables(ctx, src, sel, tables)
	if err != nil || !need {
		return &SchemaPlan{}, err
	}
	return planDump(ctx, src, dst, srcDSN, dstDSN, sel, tables, target, stagePreTables, nil)
}

// selectionExtensions lists the extensions the selection uses: those
// installed in a selected schema, and those owning a type, operator class,
// function or other object that a selected table, its indexes or an object
// of a selected schema depends on. pg_dump leaves extensions out of a dump
// restricted to schemas or tables unless they are named (--extension).
func selectionExtensions(ctx context.Context, conn *pgx.Conn, sel []Selection, tables []*Table) ([]string, error) {
	var schemas []string
	for _, s := range sel {
		if s.Schema != "" {
			schemas = append(schemas, s.Schema)
		}
	}
	oids, _ := oidIndex(tables)
	rows, err := conn.Query(ctx, `WITH objs(classid, objid) AS (
			SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid FROM pg_catalog.pg_class c
			WHERE c.oid = ANY($2) OR c.relnamespace IN (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = ANY($1))
			UNION ALL
			SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, i.indexrelid FROM pg_catalog.pg_index i WHERE i.indrelid = ANY($2)
			UNION ALL
			SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid FROM pg_catalog.pg_proc p
			WHERE p.pronamespace IN (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = ANY($1))
			UNION ALL
			SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, t.oid FROM pg_catalog.pg_type t
			WHERE t.typnamespace IN (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = ANY($1))
		)
		SELECT e.extname::text FROM pg_catalog.pg_extension e
		WHERE e.extnamespace IN (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = ANY($1))
		   OR e.oid IN (SELECT m.refobjid FROM objs o
				JOIN pg_catalog.pg_depend d ON d.classid = o.classid AND d.objid = o.objid
				JOIN pg_catalog.pg_depend m ON m.classid = d.refclassid AND m.objid = d.refobjid AND m.deptype = 'e'
					AND m.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass)
		ORDER BY 1`, schemas, oids)
	if err != nil {
		return nil, fmt.Errorf("source: list the extensions the selection uses: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("source: list the extensions the selection uses: %w", err)
	}
	return names, nil
}

// installedExtensions returns those of names that are installed in
// conn's database.
func installedExtensions(ctx context.Context, conn *pgx.Conn, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	rows, err := conn.Query(ctx, "SELECT extname::text FROM pg_catalog.pg_extension WHERE extname = ANY($1) ORDER BY 1", names)
	if err != nil {
		return nil, fmt.Errorf("sink: list installed extensions: %w", err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("sink: list installed extensions: %w", err)
	}
	return have, nil
}

// withExtensions adds --extension for each extension to the first
// non-empty argument list (pg_dump dumps them with either).
func withExtensions(schemaArgs, tableArgs, exts []string) ([]string, []string) {
	var args []string
	for _, e := range exts {
		if e == "plpgsql" {
			continue // every database has it
		}
		args = append(args, "--extension="+quotePattern(e))
	}
	if len(args) == 0 {
		return schemaArgs, tableArgs
	}
	if len(schemaArgs) > 0 {
		return append(schemaArgs, args...), tableArgs
	}
	if len(tableArgs) > 0 {
		return schemaArgs, append(tableArgs, args...)
	}
	return schemaArgs, tableArgs
}

// existingAtSink returns the schema selections whose schema exists at the
// sink, and the tables whose sink table (under target) exists there.
func existingAtSink(ctx context.Context, dst *pgx.Conn, sel []Selection, tables []*Table, target TargetName) ([]Selection, []*Table, error) {
	var schemas, tschemas, tnames []string
	for _, s := range sel {
		if s.Schema != "" {
			schemas = append(schemas, s.Schema)
		}
	}
	for _, t := range tables {
		tn := target(t.Name)
		tschemas, tnames = append(tschemas, tn.Schema), append(tnames, tn.Name)
	}
	have := map[string]bool{}
	rows, err := dst.Query(ctx, `SELECT nspname::text FROM pg_catalog.pg_namespace WHERE nspname = ANY($1)`, schemas)
	if err != nil {
		return nil, nil, fmt.Errorf("sink: look up the selected schemas: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, nil, fmt.Errorf("sink: look up the selected schemas: %w", err)
	}
	for _, n := range names {
		have[n] = true
	}
	var outSel []Selection
	for _, s := range sel {
		if s.Schema == "" || have[s.Schema] {
			outSel = append(outSel, s)
		}
	}
	rows, err = dst.Query(ctx, `SELECT k.i::int FROM unnest($1::text[], $2::text[]) WITH ORDINALITY k(s, n, i)
		WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
			WHERE ns.nspname = k.s AND c.relname = k.n)`, tschemas, tnames)
	if err != nil {
		return nil, nil, fmt.Errorf("sink: look up the selected tables: %w", err)
	}
	idx, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, nil, fmt.Errorf("sink: look up the selected tables: %w", err)
	}
	var outTables []*Table
	for _, i := range idx {
		outTables = append(outTables, tables[i-1])
	}
	return outSel, outTables, nil
}

// needPreTables reports whether the selection has objects that the tables
// may need and only pg_dump creates (see PlanPreTables).
func needPreTables(ctx context.Context, conn *pgx.Conn, sel []Selection, tables []*Table) (bool, error) {
	exts, err := selectionExtensions(ctx, conn, sel, tables)
	if err != nil {
		return false, err
	}
	for _, e := range exts {
		if e != "plpgsql" {
			return true, nil
		}
	}
	var schemas []string
	for _, s := range sel {
		if s.Schema != "" {
			schemas = append(schemas, s.Schema)
		}
	}
	if len(schemas) == 0 {
		return false, nil
	}
	var n int
	err = conn.QueryRow(ctx, `WITH ns AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = ANY($1))
		SELECT (SELECT count(*) FROM pg_catalog.pg_proc WHERE pronamespace IN (SELECT oid FROM ns))
		     + (SELECT count(*) FROM pg_catalog.pg_operator WHERE oprnamespace IN (SELECT oid FROM ns))
		     + (SELECT count(*) FROM pg_catalog.pg_collation WHERE collnamespace IN (SELECT oid FROM ns))`, schemas).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("source: look for functions and operators in the selected schemas: %w", err)
	}
	return n > 0, nil
}
