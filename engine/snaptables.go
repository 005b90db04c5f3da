package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// fpBeforeSlot is reached before a new pipeline's replication slot (and
// the copy's snapshot) is made.
const fpBeforeSlot = "stream.before_slot"

// checkSnapshotTables makes sure the copy's snapshot holds no table of a
// selected schema that the pipeline did not discover: one created after
// the tables were listed and before the slot (or the resuming copy's
// temporary slot) was made. The copy would leave it out and the stream,
// which starts after its creation, holds none of its earlier rows, so they
// would never reach the sink. The error (not permanent) has the run list
// its tables again; the copy then reads a snapshot of its own (see
// prepareStreaming) with the table in it. It asks on the connection that
// holds the snapshot for the copy (postgres.ExportSnapshot).
func (r *runner) checkSnapshotTables(ctx context.Context, snap *postgres.Snapshot, tables []*postgres.Table) error {
	late, err := snap.TablesSince(ctx, r.cfg.Objects, tables)
	if err != nil {
		return err
	}
	if len(late) == 0 {
		return nil
	}
	names := make([]string, len(late))
	for i, n := range late {
		names[i] = n.String()
	}
	return fmt.Errorf("source: table(s) %s were created in a selected schema after the pipeline listed its tables and before the copy's snapshot: starting again to copy them too", strings.Join(names, ", "))
}
