package engine

// Which tables the pipeline replicates at each point of the stream, when
// DDL moves tables in and out of the selection or the run began with the
// source's catalog ahead of the stream.
//
// A table selected by its schema (published with the schema: FOR TABLES
// IN SCHEMA) that moves to a schema the pipeline does not select leaves
// the publication at that point of the stream: none of its later changes
// arrive. It leaves the pipeline there too, its sink table kept as it is,
// rather than being moved at the sink into a schema the pipeline does not
// select (which the sink may not have) and kept there without its
// changes.
//
// A run that resumes behind the source's catalog discovers its tables in
// the catalog as it is now, tables created since the stream's position
// included, under their current names. When the stream reaches such a
// table's CREATE, the table joins the pipeline anew, as it would have had
// the run been streaming then: selected, and given its objects item's
// options, by its name in the CREATE.

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// leaves reports whether a DDL event moves a table the pipeline
// replicates, known by the name was, out of the selection: from a
// selected schema to a name the objects list does not select. Partitions
// and partitioned tables stay (their publication follows their root); a
// CREATE is no move (see creates).
func (d *ddlRun) leaves(ev *postgres.DDLEvent, was record.TableName) bool {
	next := ev.New
	if ev.Old == nil || next == nil || next.Kind != "r" || next.Parent != nil || d.parents[ev.RelID] != 0 {
		return false
	}
	return d.schemas[was.Schema] && !d.items[was] && !d.selectedName(next.TableName())
}

// leave takes a table that left the selection out of the pipeline: its
// sink table stays under the name it had, with the rows it had, and a
// warning says so.
func (d *ddlRun) leave(ev *postgres.DDLEvent, lsn record.LSN, was record.TableName) error {
	d.warn(ev, lsn, fmt.Sprintf("table %s left the selection (it is now %s, in a schema the pipeline does not select): its changes from now on are not replicated; its sink table %s stays as it is (drop it there if it is not wanted, or add the table to the objects list and run again)",
		was, ev.New.TableName(), d.r.target(was)))
	d.drop(ev.RelID)
	d.ignored[ev.RelID] = true
	return d.r.unbindName(ev.RelID)
}

// creates reports whether a DDL event creates its table.
func creates(ev *postgres.DDLEvent) bool {
	return ev.Old == nil && ev.New != nil && (strings.HasPrefix(ev.Tag, "CREATE TABLE") || ev.Tag == "SELECT INTO")
}

// rejoin forgets a table the run knows (from its discovery, or by its
// rows that came before its CREATE) when the stream reaches its CREATE:
// the CREATE joins it again by the name it has there.
func (d *ddlRun) rejoin(oid uint32) {
	d.drop(oid)
	d.r.mapping.clearOptions(oid)
}

// drop takes a table out of the run's tables.
func (d *ddlRun) drop(oid uint32) {
	delete(d.known, oid)
	delete(d.tables, oid)
	delete(d.rels, oid)
	delete(d.checked, oid)
	d.r.chain.untrack(oid)
}

// clearOptions leaves a table without options (where, operations).
func (m *mapping) clearOptions(oid uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.opts, oid)
}
