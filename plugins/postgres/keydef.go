package postgres

// Primary keys and unique constraints written at the sink from their
// catalog parts, under the pipeline's column names: one writer for the
// keys built after the copy (keys.go) and for those added by DDL
// replicated while streaming (ddlplan.go). pg_get_constraintdef cannot
// serve: it names the columns as at the source and leaves out the index's
// storage parameters and tablespace.

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/engine/record"
)

// keyParts is a primary key or unique constraint in its catalog parts.
type keyParts struct {
	name                 string
	def                  string // pg_get_constraintdef, used as it is WITHOUT OVERLAPS
	unique               bool   // UNIQUE; else PRIMARY KEY
	nullsNotDistinct     bool   // UNIQUE NULLS NOT DISTINCT (PostgreSQL 15)
	deferrable, deferred bool
	period               bool     // WITHOUT OVERLAPS (PostgreSQL 18)
	keyCols              []string // key columns, source names, in order
	include              []string // INCLUDE columns, source names
	options              string   // the index's storage parameters as name='value', ...
	tablespace           string   // the index's tablespace, quoted; empty for the default
}

// kind names the constraint's kind for messages.
func (k keyParts) kind() string {
	if k.unique {
		return "unique constraint"
	}
	return "primary key"
}

// sinkDef is the constraint's definition at the sink, for ADD CONSTRAINT
// or CREATE TABLE: the key and INCLUDE columns by their sink names
// (columns nil: as they are), the index's storage parameters and
// tablespace, and deferrability.
func (k keyParts) sinkDef(table record.TableName, columns ColumnName) (string, error) {
	return k.write(table, columns, true)
}

// shownDef is sinkDef as pg_get_constraintdef shows it (without the
// storage parameters and tablespace), to compare with a sink
// constraint's.
func (k keyParts) shownDef(table record.TableName, columns ColumnName) (string, error) {
	return k.write(table, columns, false)
}

func (k keyParts) write(table record.TableName, columns ColumnName, storage bool) (string, error) {
	if columns == nil {
		columns = func(_ record.TableName, c string) (string, bool) { return c, false }
	}
	renamed := false
	sinkNames := func(cols []string, what string) ([]string, error) {
		out := make([]string, len(cols))
		for i, c := range cols {
			n, dropped := columns(table, c)
			if dropped {
				return nil, fmt.Errorf("columns: table %s: %s column %s of %s %s is dropped by the pipeline; keep it (remove its `null` rule under columns:)", table, what, record.QuoteIdent(c), k.kind(), record.QuoteIdent(k.name))
			}
			renamed = renamed || n != c
			out[i] = record.QuoteIdent(n)
		}
		return out, nil
	}
	key, err := sinkNames(k.keyCols, "key")
	if err != nil {
		return "", err
	}
	inc, err := sinkNames(k.include, "INCLUDE")
	if err != nil {
		return "", err
	}
	if k.period {
		// A key WITHOUT OVERLAPS is not written from parts here.
		if renamed {
			return "", fmt.Errorf("columns: table %s: %s %s is WITHOUT OVERLAPS; renaming its columns is not supported: keep their names", table, k.kind(), record.QuoteIdent(k.name))
		}
		return k.def, nil
	}
	def := "PRIMARY KEY ("
	if k.unique {
		def = "UNIQUE ("
		if k.nullsNotDistinct {
			def = "UNIQUE NULLS NOT DISTINCT ("
		}
	}
	def += strings.Join(key, ", ") + ")"
	if len(inc) > 0 {
		def += " INCLUDE (" + strings.Join(inc, ", ") + ")"
	}
	if storage && k.options != "" {
		def += " WITH (" + k.options + ")"
	}
	if storage && k.tablespace != "" {
		def += " USING INDEX TABLESPACE " + k.tablespace
	}
	if k.deferrable {
		def += " DEFERRABLE"
		if k.deferred {
			def += " INITIALLY DEFERRED"
		}
	}
	return def, nil
}

// ConstraintKey is what a captured primary key or unique constraint holds
// beyond its key columns (ConstraintState.Cols): the parts its sink
// definition is written from.
type ConstraintKey struct {
	Include          []string `json:"include"`
	Options          string   `json:"options"`    // storage parameters as name='value', ...
	Tablespace       string   `json:"tablespace"` // quoted; empty for the default
	Deferrable       bool     `json:"deferrable"`
	Deferred         bool     `json:"deferred"`
	NullsNotDistinct bool     `json:"nulls_not_distinct"`
	Period           bool     `json:"period"`
}

// constraintKeySQL renders ConstraintKey for the constraint k (of
// tableStateSQL, and of readKeyDefs for the key builds), or NULL for
// other kinds. Columns only PostgreSQL 15 (indnullsnotdistinct) and 18
// (conperiod) have are read through jsonb.
const constraintKeySQL = `CASE WHEN k.contype IN ('p', 'u') THEN (SELECT pg_catalog.jsonb_build_object(
		'include', COALESCE((SELECT pg_catalog.jsonb_agg(a.attname ORDER BY u.i)
			FROM pg_catalog.unnest(x.indkey::pg_catalog.int2[]) WITH ORDINALITY u(n, i)
			JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = u.n
			WHERE u.i > x.indnkeyatts), '[]'),
		'options', COALESCE((SELECT pg_catalog.string_agg(pg_catalog.quote_ident(pg_catalog.split_part(o, '=', 1)) || '=' ||
			pg_catalog.quote_literal(pg_catalog.substr(o, pg_catalog.strpos(o, '=') + 1)), ', ')
			FROM pg_catalog.unnest(ic.reloptions) o), ''),
		'tablespace', COALESCE((SELECT pg_catalog.quote_ident(ts.spcname) FROM pg_catalog.pg_tablespace ts WHERE ts.oid = ic.reltablespace), ''),
		'deferrable', k.condeferrable,
		'deferred', k.condeferred,
		'nulls_not_distinct', COALESCE((pg_catalog.to_jsonb(x) ->> 'indnullsnotdistinct')::boolean, false),
		'period', COALESCE((pg_catalog.to_jsonb(k) ->> 'conperiod')::boolean, false))
	FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
	WHERE x.indexrelid = k.conindid) END`

// keyParts returns a captured primary key or unique constraint in its
// parts; ok is false for other kinds, and for a state captured by an
// older sluice, which did not record them.
func (c ConstraintState) keyParts() (k keyParts, ok bool) {
	if (c.Type != "p" && c.Type != "u") || c.Key == nil {
		return keyParts{}, false
	}
	return c.Key.keyParts(c.Name, c.Def, c.Type == "u", c.Cols), true
}

// keyParts is the constraint name (a unique constraint if unique, else a
// primary key), with pg_get_constraintdef's def and key columns cols, in
// its parts.
func (ck ConstraintKey) keyParts(name, def string, unique bool, cols []string) keyParts {
	return keyParts{
		name: name, def: def, unique: unique,
		nullsNotDistinct: ck.NullsNotDistinct,
		deferrable:       ck.Deferrable, deferred: ck.Deferred,
		period:  ck.Period,
		keyCols: cols, include: ck.Include,
		options: ck.Options, tablespace: ck.Tablespace,
	}
}
