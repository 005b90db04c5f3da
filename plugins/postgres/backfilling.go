package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// BackfillingRelations returns the OIDs of the source relations that the
// pipeline's unfinished backfill requests cover: each requested table and
// its partitions. The sink may lack rows of those until the backfill is
// done (see diverged.go). A source without the backfill table has none.
func BackfillingRelations(ctx context.Context, conn *pgx.Conn, pipeline string) ([]uint32, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('sluice.backfill') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("source: look up the backfill table: %w", err)
	}
	if !exists {
		return nil, nil
	}
	var oids []uint32
	// pg_partition_tree has no rows for a table that is not partitioned.
	err := conn.QueryRow(ctx, `SELECT ARRAY(SELECT DISTINCT r.oid
		FROM sluice.backfill b, pg_catalog.to_regclass(b.table_name) t,
			LATERAL (SELECT t::oid UNION SELECT p.relid::oid FROM pg_catalog.pg_partition_tree(t) p) r(oid)
		WHERE b.pipeline = $1 AND b.status = 'pending' AND r.oid IS NOT NULL)`, pipeline).Scan(&oids)
	if err != nil {
		return nil, fmt.Errorf("source: read the tables of unfinished backfills: %w", err)
	}
	return oids, nil
}
