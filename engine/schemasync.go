package engine

import (
	"context"
	"errors"
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
func (r *runner) preData(ctx context.Context, src, dst *pgx.Conn, tables []*postgres.Table, copyPending bool, sum *Summary) error {
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
	// With a copy to come, primary keys are left out and built after it
	// (buildKeys): loading into a table without its index is faster.
	plan, err := r.planSchema(ctx, src, dst, tables, copyPending)
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
//
// ahead, when started, is the source's dump taken as the copy ended
// (sourceDumpAhead): the sink is dumped while it finishes. Else both are
// dumped here.
func (r *runner) postData(ctx context.Context, src, dst *pgx.Conn, tables []*postgres.Table, sum *Summary, ahead *sourceDumpAhead) error {
	done, err := r.store.PostDataDone()
	if err != nil || done {
		return err
	}
	if err := r.setPhase(checkpoint.PhasePostData); err != nil {
		return err
	}
	start := time.Now()
	var mapped []postgres.MappedTable
	if r.mapping != nil {
		mapped = r.mappedTables(tables)
	}
	var plan *postgres.SchemaPlan
	sink := ahead.sinkDump(ctx, dst, r.target)
	if pre := ahead.result(); pre != nil {
		plan, err = postgres.PlanPostDataFrom(ctx, src, dst, pre, sink, r.cfg.SinkDSN, r.cfg.Objects, tables, r.target, mapped)
	} else {
		plan, err = postgres.PlanPostDataMapped(ctx, src, dst, r.cfg.SourceDSN, r.cfg.SinkDSN, r.cfg.Objects, tables, r.target, mapped)
	}
	if err != nil {
		if postgres.IsConnectionError(err) {
			return err
		}
		return permanent(err)
	}
	if !plan.Empty() {
		r.log.Info("building post-data schema at the sink", "statements", len(plan.Statements))
		for _, st := range plan.Statements {
			r.log.Debug("post-data statement", "object", st.Object)
		}
		if err := plan.Apply(ctx, dst); err != nil {
			var imp *postgres.ImpersonationError
			if errors.As(err, &imp) {
				// The data is there; only the post-data objects are not.
				r.log.Warn("post-data schema sync skipped: "+err.Error(), "pipeline", r.cfg.Name)
				return r.store.SetPostDataDone()
			}
			if postgres.IsConnectionError(err) {
				return err
			}
			return permanent(err)
		}
	}
	for _, sk := range plan.Skipped {
		if len(mapped) > 0 {
			r.log.Warn("post-data: object not created at the sink under the name mapping (it needs a dropped column, or names the source's objects in a way the mapping cannot follow); create it yourself", "skipped", sk)
			continue
		}
		r.log.Warn("post-data: statement skipped (create the role at the sink and grant it yourself)", "skipped", sk)
	}
	if len(mapped) > 0 {
		r.log.Warn("post-data under the name mapping: the bodies of functions and procedures are copied as written and still name the source's tables and columns; check those that use renamed ones", "mapped_tables", len(mapped))
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

// mappedTables lists the selected tables whose sink name or columns differ
// from the source's, for post-data under the name mapping. A dropped
// column is not listed: objects that need it cannot be created.
func (r *runner) mappedTables(tables []*postgres.Table) []postgres.MappedTable {
	var out []postgres.MappedTable
	for _, t := range tables {
		m := postgres.MappedTable{Source: t.Name, Sink: r.target(t.Name), Columns: map[string]string{}}
		for _, c := range t.Columns {
			if name, dropped := r.mapping.rules.Column(t.Name, c.Name); !dropped && name != c.Name {
				m.Columns[c.Name] = name
			}
		}
		if m.Sink != m.Source || len(m.Columns) > 0 {
			out = append(out, m)
		}
	}
	return out
}
