package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
)

// runBlockers lists what at the sink forbids sending a table's changes in
// runs (applybatch.go), as "unique index x", "trigger y", "partitioned
// table"; none means runs are safe.
//
// A run checks its rows' unique indexes one row at a time inside one
// statement, in an order the source's statements did not have, so an
// index that a run can violate while the row-at-a-time order does not
// (two rows swapping values of a unique column) forbids runs. An index
// cannot be violated that way when it is a plain unique index (no
// expression, no predicate, not an exclusion constraint) whose key
// columns include every column of the table's key: a run never changes a
// key and holds each key once, so rows that differ in the key differ in
// that index too. That covers the key's own index, a second index on the
// same columns, and wider ones; every other unique or exclusion index
// blocks runs, whichever index the key came from (a primary key, or a
// unique index that is the replica identity while the table also has a
// primary key). Triggers that fire under session_replication_role =
// replica and partitioned targets (whose partitions' indexes and triggers
// are not looked at) block runs too.
func runBlockers(ctx context.Context, conn *pgx.Conn, target record.TableName, key []string) ([]string, error) {
	var out []string
	err := conn.QueryRow(ctx, `SELECT ARRAY(
			SELECT 'unique index ' || pg_catalog.quote_ident(ic.relname)
			FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
			WHERE i.indrelid = c.oid AND (i.indisunique OR i.indisexclusion)
				AND NOT (i.indisunique AND NOT i.indisexclusion AND i.indexprs IS NULL AND i.indpred IS NULL
					AND $3::text[] <@ ARRAY(SELECT a.attname::text
						FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
						JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
						WHERE k.ord <= i.indnkeyatts))
			UNION ALL
			SELECT 'trigger ' || pg_catalog.quote_ident(g.tgname)
			FROM pg_catalog.pg_trigger g
			WHERE g.tgrelid = c.oid AND g.tgenabled IN ('A', 'R') AND NOT g.tgisinternal
			UNION ALL
			SELECT 'partitioned table' WHERE c.relkind = 'p'
			ORDER BY 1)
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2`, target.Schema, target.Name, key).Scan(&out)
	if err != nil {
		return nil, fmt.Errorf("sink: read the indexes and triggers of %s: %w", target, err)
	}
	return out, nil
}
