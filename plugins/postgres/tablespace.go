package postgres

// Tablespaces the sink lacks. sluice builds each index (primary keys after
// the copy, the rest with post-data) in the tablespace it has at the
// source; a tablespace missing at the sink would fail that build only
// after the whole copy. Tables themselves are created in the sink's
// default tablespace (their source tablespace is not carried), so only
// indexes count here.

import (
	"context"
	"errors"
	"fmt"
	"strings"

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

// inTablespace returns the index's sink definition def (as
// pg_get_indexdef renders it, which leaves out the tablespace) with the
// index's source tablespace, as the full copy builds it: the TABLESPACE
// clause goes before the predicate. placed is false when the index has a
// tablespace that could not be placed (def does not end with the
// predicate as captured); def is then returned as it is.
func (ix IndexState) inTablespace(def string) (out string, placed bool) {
	if ix.Tablespace == "" {
		return def, true
	}
	if ix.Pred == "" {
		return def + " TABLESPACE " + ix.Tablespace, true
	}
	where := " WHERE " + ix.Pred
	if !strings.HasSuffix(def, where) {
		return def, false
	}
	i := len(def) - len(where)
	return def[:i] + " TABLESPACE " + ix.Tablespace + def[i:], true
}

// MissingTablespaceError is streamed DDL that would build an index in a
// tablespace the sink lacks. Retrying cannot fix it: a person must create
// the tablespace at the sink.
type MissingTablespaceError struct {
	Tablespace string // quoted, as at the source
	Object     string // what the statement creates or changes, e.g. "table app.t"
	Statement  string
	LSN        record.LSN
}

func (e *MissingTablespaceError) Error() string {
	return fmt.Sprintf("sink: tablespace %s does not exist at the sink, and DDL of the source transaction committed at %s builds an index of %s in it, as at the source (%s): the pipeline stopped before that transaction (nothing of it or after it is applied at the sink); create the tablespace at the sink as a superuser (CREATE TABLESPACE %s LOCATION '<an empty directory owned by the sink server's OS user>'), then run again",
		e.Tablespace, e.LSN, e.Object, firstLine(e.Statement), e.Tablespace)
}

// IsMissingTablespace reports whether err is a MissingTablespaceError.
func IsMissingTablespace(err error) bool {
	var m *MissingTablespaceError
	return errors.As(err, &m)
}

// sinkHasTablespaces fails with a MissingTablespaceError when the sink
// lacks a tablespace statement s builds an index in.
func sinkHasTablespaces(ctx context.Context, conn *pgx.Conn, s Statement, lsn record.LSN) error {
	for _, ts := range s.Tablespaces {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tablespace WHERE pg_catalog.quote_ident(spcname) = $1)`, ts).Scan(&exists); err != nil {
			return fmt.Errorf("sink: look up tablespace %s: %w", ts, err)
		}
		if !exists {
			return &MissingTablespaceError{Tablespace: ts, Object: s.Object, Statement: s.SQL, LSN: lsn}
		}
	}
	return nil
}

// moveIndexes returns the statements that move the sink's indexes whose
// tablespace the source changed between prev and next (ALTER INDEX ...
// SET TABLESPACE, or ALTER TABLE ... SET TABLESPACE on an index): each to
// its new tablespace, when the sink's index is not there already. An
// index the source moved back to the database's default gets a warning
// instead: which tablespace that is at the sink is the sink's own choice.
func moveIndexes(prev, next *TableState, sinkIdx map[string]*IndexState, schema string, obj string) (stmts []Statement, warnings []string) {
	if prev == nil {
		return nil, nil
	}
	for _, ix := range next.Indexes {
		if ix.Inherited {
			continue
		}
		var was *IndexState
		for i := range prev.Indexes {
			if prev.Indexes[i].OID == ix.OID {
				was = &prev.Indexes[i]
			}
		}
		si := sinkIdx[ix.Name]
		if was == nil || si == nil || was.Tablespace == ix.Tablespace || si.Tablespace == ix.Tablespace {
			continue
		}
		if ix.Tablespace == "" {
			warnings = append(warnings, fmt.Sprintf("index %s was moved to the database's default tablespace at the source; move it at the sink yourself (ALTER INDEX ... SET TABLESPACE) if the sink needs it", dispIdent(ix.Name)))
			continue
		}
		stmts = append(stmts, Statement{Object: obj, SQL: "ALTER INDEX " + qname(schema, ix.Name) + " SET TABLESPACE " + ix.Tablespace,
			Tablespaces: []string{ix.Tablespace}})
	}
	return stmts, warnings
}
