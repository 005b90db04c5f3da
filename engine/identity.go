package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// checkIdentity makes sure the state dir belongs to this pipeline and the
// same source and sink databases, so a resumed run never mixes two copies.
func (r *runner) checkIdentity(ctx context.Context, src, dst *pgx.Conn) error {
	cur := &checkpoint.Identity{Pipeline: r.cfg.Name, CreatedAt: time.Now().UTC()}
	if err := src.QueryRow(ctx, `SELECT system_identifier::text, current_database() FROM pg_catalog.pg_control_system()`).Scan(&cur.SourceSystemID, &cur.SourceDatabase); err != nil {
		return fmt.Errorf("source: read system identifier: %w", err)
	}
	var sinkSystem string
	if err := dst.QueryRow(ctx, `SELECT system_identifier::text, current_database() FROM pg_catalog.pg_control_system()`).Scan(&sinkSystem, &cur.SinkDatabase); err != nil {
		return fmt.Errorf("sink: read system identifier: %w", err)
	}
	if sinkSystem == cur.SourceSystemID && cur.SinkDatabase == cur.SourceDatabase {
		return permanentError{fmt.Errorf("source and sink are the same database (%s on system %s): point the sink at another database", cur.SourceDatabase, sinkSystem)}
	}
	old, found, err := r.store.Identity()
	if err != nil {
		return err
	}
	if !found {
		return r.store.SetIdentity(cur)
	}
	if old.Pipeline != cur.Pipeline || old.SourceSystemID != cur.SourceSystemID || old.SourceDatabase != cur.SourceDatabase || old.SinkDatabase != cur.SinkDatabase {
		return permanentError{fmt.Errorf("state dir %s belongs to pipeline %q copying database %q (system %s) into %q, not pipeline %q copying %q (system %s) into %q: use another state_dir, or remove this one to start over",
			r.store.Dir(), old.Pipeline, old.SourceDatabase, old.SourceSystemID, old.SinkDatabase,
			cur.Pipeline, cur.SourceDatabase, cur.SourceSystemID, cur.SinkDatabase)}
	}
	return nil
}

// requireSinkTables checks, when schema sync is off, that every table
// already exists at the sink.
func (r *runner) requireSinkTables(ctx context.Context, dst *pgx.Conn, tables []*postgres.Table) error {
	var missing []string
	for _, t := range tables {
		name := r.target(t.Name)
		var exists bool
		if err := dst.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','p'))`, name.Schema, name.Name).Scan(&exists); err != nil {
			return fmt.Errorf("sink: look up table %s: %w", name, err)
		}
		if !exists {
			missing = append(missing, name.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("sync.schema is false but these tables do not exist at the sink: %s (create them, or set sync.schema: true)", strings.Join(missing, ", "))
	}
	return nil
}

// tableKey identifies a source table in the state dir and the sink's
// progress table.
func tableKey(n record.TableName) string { return n.Quoted() }
