package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// CheckTablespaces is the precheck item for the tablespaces the selected
// tables' indexes use at the source: the sink must have each, or building
// the index (after the whole copy) fails.
const CheckTablespaces = "tablespaces"

// tablespacesFix is what to do about tablespaces missing at the sink: the
// pipeline has no option to map or drop tablespaces.
func tablespacesFix(missing []postgres.MissingTablespace) string {
	stmts := make([]string, len(missing))
	for i, m := range missing {
		stmts[i] = "CREATE TABLESPACE " + record.QuoteIdent(m.Name) + " LOCATION '<an empty directory owned by the sink server's OS user>';"
	}
	return "create them at the sink as a superuser: " + strings.Join(stmts, " ") + " (sluice builds each index in the tablespace it has at the source, and has no option to map or drop tablespaces)"
}

// tablespacesDetail names the missing tablespaces and the indexes in each.
func tablespacesDetail(missing []postgres.MissingTablespace) string {
	parts := make([]string, len(missing))
	for i, m := range missing {
		n := "1 index"
		if len(m.Indexes) > 1 {
			n = fmt.Sprintf("%d indexes", len(m.Indexes))
		}
		parts[i] = fmt.Sprintf("%s (%s: %s)", record.QuoteIdent(m.Name), n, shortList(m.Indexes, 5))
	}
	return "the sink lacks tablespaces that indexes of the selected tables use at the source: " + strings.Join(parts, "; ")
}

// checkTablespaces reports the source tablespaces of the selected tables'
// indexes that the sink lacks.
func (c *checker) checkTablespaces(ctx context.Context) {
	if !c.cfg.Schema {
		c.add(CheckTablespaces, Pass, "not needed: sync.schema is off, sluice builds no indexes", "")
		return
	}
	missing, err := postgres.MissingTablespaces(ctx, c.src, c.dst, c.tables, c.mapping.rules.Table)
	if err != nil {
		c.add(CheckTablespaces, Fail, err.Error(), "check that both roles can read the catalog (pg_index, pg_class, pg_tablespace)")
		return
	}
	if len(missing) > 0 {
		c.add(CheckTablespaces, Fail, tablespacesDetail(missing), tablespacesFix(missing))
		return
	}
	c.add(CheckTablespaces, Pass, "the sink has every tablespace the selected tables' indexes use at the source (tables are created in the sink's default tablespace)", "")
}

// requireTablespaces refuses a run whose schema sync would build an index
// in a tablespace the sink lacks, before anything is created or copied.
func (r *runner) requireTablespaces(ctx context.Context, src, dst *pgx.Conn, tables []*postgres.Table) error {
	missing, err := postgres.MissingTablespaces(ctx, src, dst, tables, r.target)
	if err != nil {
		if postgres.IsConnectionError(err) {
			return err
		}
		return permanent(err)
	}
	if len(missing) == 0 {
		return nil
	}
	return permanent(errors.New(tablespacesDetail(missing) + "; nothing was created or copied: " + tablespacesFix(missing) + "; then run again (`sluice check` lists them too)"))
}
