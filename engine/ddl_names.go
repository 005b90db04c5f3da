package engine

// Names of tables as the stream has them. The source's catalog may be
// ahead of the stream: DDL the source ran since (a run that resumes
// behind it, or a stream that lags) renamed tables the stream still
// carries changes of under their earlier names, and the sink has them
// under those names until the renames' own events reach it.

import (
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// parentAs is the name the stream has partition t's partitioned table by
// at this point: as the DDL event's state names it (state, when it has
// the parent), else as the run last knew it; empty when unknown.
func (d *ddlRun) parentAs(t *postgres.Table, state *postgres.TableState) record.TableName {
	if state != nil && state.Parent != nil && state.Parent.OID == t.ParentOID {
		return state.Parent.TableName()
	}
	return d.known[t.ParentOID]
}

// streamTarget is the pipeline's table mapping for creating t at the sink,
// with t and its partitioned table mapped from the names the stream has
// them by here (as, parent; empty: as the catalog names them) rather than
// their names in the source's catalog now.
func (d *ddlRun) streamTarget(t *postgres.Table, as, parent record.TableName) postgres.TargetName {
	now := map[record.TableName]record.TableName{}
	if as.Name != "" && as != t.Name {
		now[t.Name] = as
	}
	if parent.Name != "" && t.Parent != nil && parent != *t.Parent {
		now[*t.Parent] = parent
	}
	if len(now) == 0 {
		return d.r.target
	}
	return func(n record.TableName) record.TableName {
		if s, ok := now[n]; ok {
			n = s
		}
		return d.r.target(n)
	}
}

// asStreamed names t, as read from the source's catalog now, by the name
// the stream has it by at this point (as; empty: unknown, the catalog's
// name stays). Whether a table created while streaming joins the
// pipeline, which objects item's options (where, operations) it takes,
// and its sink name are decided by that name, so that the stream's own
// order of events decides them and not what DDL the source ran since: a
// table created under its item's name and renamed away before sluice
// reads its CREATE keeps its item's options, and one created under
// another name and renamed to an item's name later does not take them
// (the options, once taken, stay with the table across renames, as they
// do for the tables the pipeline started with).
func asStreamed(t *postgres.Table, as record.TableName) {
	if as.Name != "" {
		t.Name = as
	}
}
