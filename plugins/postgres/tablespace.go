package postgres

// Tablespaces the sink lacks. sluice builds each index (primary keys after
// the copy, the rest with post-data) in the tablespace it has at the
// source; a tablespace missing at the sink would fail that build only
// after the whole copy. Tables themselves are created in the sink's
// default tablespace (their source tablespace is not carried), so only
// indexes count here.

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
)

// MissingTablespace is a tablespace that indexes of the selected tables
// use at the source and the sink lacks.
type MissingTablespace struct {
	Name string // as at the source
	// Indexes are the indexes that would be built in it, as
	// "schema.index on schema.table" (source names).
	Indexes []string
}

// MissingTablespaces lists, by tablespace, the indexes of the selected
// tables that sit in a tablespace other than the database's default at the
// source, whose tablespace the sink lacks, and that the sink does not
// have yet (an index of the same name in the sink table's schema is taken
// as built already).
func MissingTablespaces(ctx context.Context, src, dst *pgx.Conn, tables []*Table, target TargetName) ([]MissingTablespace, error) {
	if target == nil {
		target = SameName
	}
	if len(tables) == 0 {
		return nil, nil
	}
	oids, byOID := oidIndex(tables)
	rows, err := src.Query(ctx, `SELECT ts.spcname::text, x.indrelid, i.relname::text
		FROM pg_catalog.pg_index x
		JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
		JOIN pg_catalog.pg_tablespace ts ON ts.oid = i.reltablespace
		WHERE x.indrelid = ANY($1)
		ORDER BY 1, 2, 3`, oids)
	if err != nil {
		return nil, fmt.Errorf("source: read the tablespaces of the selected tables' indexes: %w", err)
	}
	type use struct {
		space string
		table *Table
		index string
	}
	var uses []use
	for rows.Next() {
		var u use
		var rel uint32
		if err := rows.Scan(&u.space, &rel, &u.index); err != nil {
			rows.Close()
			return nil, fmt.Errorf("source: read the tablespaces of the selected tables' indexes: %w", err)
		}
		u.table = byOID[rel]
		uses = append(uses, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("source: read the tablespaces of the selected tables' indexes: %w", err)
	}
	if len(uses) == 0 {
		return nil, nil
	}
	// The sink's side in one round trip: which of the tablespaces it has,
	// and which of the indexes (by name in the sink table's schema).
	spaces := make([]string, 0, len(uses))
	names := make([]string, len(uses))
	for i, u := range uses {
		if i == 0 || u.space != uses[i-1].space { // ordered by tablespace
			spaces = append(spaces, u.space)
		}
		names[i] = record.QuoteIdent(target(u.table.Name).Schema) + "." + record.QuoteIdent(u.index)
	}
	var haveSpaces, builtNames []string
	if err := dst.QueryRow(ctx, `SELECT
			ARRAY(SELECT spcname::text FROM pg_catalog.pg_tablespace WHERE spcname = ANY($1)),
			ARRAY(SELECT n FROM pg_catalog.unnest($2::text[]) n WHERE pg_catalog.to_regclass(n) IS NOT NULL)`,
		spaces, names).Scan(&haveSpaces, &builtNames); err != nil {
		return nil, fmt.Errorf("sink: look up the tablespaces and indexes of the selected tables' indexes: %w", err)
	}
	haveSpace, built := map[string]bool{}, map[string]bool{}
	for _, n := range haveSpaces {
		haveSpace[n] = true
	}
	for _, n := range builtNames {
		built[n] = true
	}
	var out []MissingTablespace
	for i, u := range uses {
		if haveSpace[u.space] || built[names[i]] {
			continue
		}
		if len(out) == 0 || out[len(out)-1].Name != u.space {
			out = append(out, MissingTablespace{Name: u.space})
		}
		m := &out[len(out)-1]
		m.Indexes = append(m.Indexes, record.TableName{Schema: u.table.Name.Schema, Name: u.index}.String()+" on "+u.table.Name.String())
	}
	return out, nil
}
