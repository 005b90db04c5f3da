package engine

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// checkSchemaTools: schema sync runs pg_dump (of the source's major
// version, or newer and able to read both servers); a missing or too old
// one fails here, naming what to install, instead of after the copy.
func (c *checker) checkSchemaTools(ctx context.Context) {
	if !c.cfg.Schema {
		c.add(CheckSchemaTools, Pass, "not needed: sync.schema is off", "")
		return
	}
	d, err := postgres.FindPgDumpFor(ctx, c.src, c.dst)
	if err != nil {
		c.add(CheckSchemaTools, Fail, err.Error(), "install the PostgreSQL client tools of the source's major version (or newer) on this machine, or set PG_BINDIR to their bin directory")
		return
	}
	c.add(CheckSchemaTools, Pass, fmt.Sprintf("pg_dump %d at %s", d.Major, d.Path), "")
}
