package main

import (
	"fmt"
	"io"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// writeBackfills prints the unfinished backfill requests of the report.
func writeBackfills(w io.Writer, rep *engine.Report, ago func(time.Time) string) {
	if rep.BackfillError != "" {
		fmt.Fprintf(w, "backfills: %s\n", flatten(rep.BackfillError))
	}
	for _, b := range rep.Backfills {
		where := ""
		if b.Where != "" {
			where = " where " + b.Where
		}
		fmt.Fprintf(w, "backfill %d of %s%s: requested %s; %d chunks, %d rows committed\n", b.Request, b.Table, where, ago(b.Created), b.Chunks, b.Rows)
	}
}
