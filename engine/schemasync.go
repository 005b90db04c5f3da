package engine

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// preData creates at the sink, before the copy, what the tables need:
// first pg_dump's entries that precede the tables (schemas, extensions,
// types, functions a default or a domain's check calls, ...), then the
// tables themselves from the catalog, with their names mapped. Both steps
// skip what the sink has, so a rerun does nothing twice. Errors the sink
// returns are permanent (retrying the same DDL gives the same error).
func (r *runner) preData(ctx context.Context, src, dst *pgx.Conn, tables []*postgres.Table, sum *Summary) error {
	done, err := r.store.PostDataDone()
	if err != nil {
		return err
	}
	if !done {
		pre, err := postgres.PlanPreTables(ctx, src, dst, r.cfg.SourceDSN, r.cfg.SinkDSN, r.cfg.Objects, tables, r.target)
		if err != nil {
			return schemaErr(err)
		}
		if !pre.Empty() {
			r.log.Info("creating the types, functions and other objects the tables need at the sink", "statements", len(pre.Statements))
			if err := pre.Apply(ctx, dst); err != nil {
				return schemaErr(err)
			}
			for _, sk := range pre.Skipped {
				r.log.Warn("pre-data: statement skipped (create the role at the sink and grant it yourself)", "skipped", sk)
			}
		}
	}
	plan, err := postgres.PlanMissingMapped(ctx, src, dst, tables, r.target, r.mapping.rules.Column)
	if err != nil {
		return schemaErr(err)
	}
	if len(plan.Statements) > 0 {
		r.log.Info("creating missing objects at the sink", "statements", len(plan.Statements))
		if err := plan.Apply(ctx, dst); err != nil {
			return schemaErr(err)
		}
	}
	for _, st := range plan.Statements {
		if strings.HasPrefix(st.Object, "table ") {
			sum.TablesCreated++
		}
	}
	return nil
}

// schemaErr keeps connection errors retryable and makes the rest
// permanent.
func schemaErr(err error) error {
	if postgres.IsConnectionError(err) {
		return err
	}
	return permanent(err)
}

// postData builds the post-data schema at the sink (indexes, constraints,
// triggers, views, functions, ...) once the copy is done and before
// streaming starts, so that the sink applies changes with its indexes in
// place. A run after a successful post-data step skips it; an interrupted
// one is redone (the step is one sink transaction and skips what exists).
func (r *runner) postData(ctx context.Context, src, dst *pgx.Conn, tables []*postgres.Table, sum *Summary) error {
	done, err := r.store.PostDataDone()
	if err != nil || done {
		return err
	}
	if r.mapping != nil && r.mapping.renames(tables) {
		// pg_dump's statements name the source's objects; mapping them to
		// renamed tables and columns is not done yet, so nothing is applied
		// rather than something wrong.
		r.log.Warn("post-data schema sync (indexes, constraints, triggers, views, functions) is skipped because the pipeline renames tables or columns; create those objects at the sink yourself")
		return nil
	}
	if err := r.setPhase(checkpoint.PhasePostData); err != nil {
		return err
	}
	start := time.Now()
	plan, err := postgres.PlanPostData(ctx, src, dst, r.cfg.SourceDSN, r.cfg.SinkDSN, r.cfg.Objects, tables, r.target)
	if err != nil {
		if postgres.IsConnectionError(err) {
			return err
		}
		return permanent(err)
	}
	if !plan.Empty() {
		r.log.Info("building post-data schema at the sink", "statements", len(plan.Statements))
		if err := plan.Apply(ctx, dst); err != nil {
			if postgres.IsConnectionError(err) {
				return err
			}
			return permanent(err)
		}
	}
	for _, sk := range plan.Skipped {
		r.log.Warn("post-data: statement skipped (create the role at the sink and grant it yourself)", "skipped", sk)
	}
	created, refreshed, owners := plan.PostDataCounts()
	sum.PostDataCreated += created
	sum.PostDataRefreshed += refreshed
	r.log.Info("post-data schema built", "created", created, "refreshed", refreshed, "owners_set", owners, "duration", time.Since(start).Round(time.Millisecond))
	if created > 0 && r.cfg.Full {
		// Sequences post-data created (standalone ones, which pg_dump
		// orders after the tables) take the source's values too.
		set, err := r.syncSequences(ctx, src, dst, tables)
		if err != nil {
			return err
		}
		sum.SequencesSet = max(sum.SequencesSet, len(set))
	}
	return r.store.SetPostDataDone()
}
