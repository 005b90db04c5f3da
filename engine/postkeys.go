package engine

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// planSchema plans the pre-data schema. When the full copy is still to run,
// the primary keys of the plain tables it creates are left for buildKeys,
// after the data.
func (r *runner) planSchema(ctx context.Context, src, dst *pgx.Conn, tables []*postgres.Table, copyPending bool) (*postgres.SchemaPlan, error) {
	if copyPending {
		return postgres.PlanMissingDeferKeys(ctx, src, dst, tables, r.target, r.mapping.rules.Column)
	}
	return postgres.PlanMissingMapped(ctx, src, dst, tables, r.target, r.mapping.rules.Column)
}

// buildKeys adds, after the full copy, the primary keys the sink tables
// lack, several tables at once (copy.parallel connections), before
// post-data (whose foreign keys need them) and streaming (which finds rows
// by them). It builds only what is missing, so a run interrupted here
// builds the rest the next time.
func (r *runner) buildKeys(ctx context.Context, src, dst *pgx.Conn, tables []*postgres.Table) error {
	builds, err := postgres.MissingKeys(ctx, src, dst, tables, r.target, r.mapping.rules.Column)
	if err != nil || len(builds) == 0 {
		return err
	}
	start := time.Now()
	r.log.Info("building primary keys after the copy", "keys", len(builds), "workers", min(r.cfg.Parallel, len(builds)))
	err = postgres.BuildKeys(ctx, r.cfg.SinkDSN, builds, r.cfg.Parallel, func(b postgres.KeyBuild) {
		r.log.Debug("primary key built", "table", b.Table.String(), "key", b.Name)
	})
	if err != nil {
		if postgres.IsConnectionError(err) {
			return err
		}
		return permanent(err)
	}
	r.log.Info("primary keys built", "keys", len(builds), "duration", time.Since(start).Round(time.Millisecond))
	return nil
}
