package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/display"
	"github.com/sluicehq/sluice/engine/failpoint"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/pipelines"
)

func (a *app) backfillCommand() *cobra.Command {
	var table, cond string
	var chunkRows int
	var asJSON, noProgress bool
	cmd := &cobra.Command{
		Use:   "backfill PIPELINE --table T [--where SQL]",
		Short: "Copy a table's (matching) source rows into the sink again, upserting, while the pipeline streams",
		Long: `Backfill copies the rows of one of the pipeline's tables that match --where
(ANDed with the object's where) from the source into the sink again, through
the pipeline's mapping, in chunks throttled like the full copy, upserting by
key so that it can be run again at any time. It repairs rows the sink lost or
that were changed there.

With sync.incremental the pipeline's streaming process executes it: each
chunk is read between a low and a high watermark written to the source, and
rows changed in between are left to the stream, so a backfill never
overwrites a newer streamed change (Netflix's DBLog method). If no run of the
pipeline is live, this command runs the pipeline itself until the backfill is
done. A killed backfill resumes when the same command is run again. Tables
need a primary key or a unique index.`,
		Args: exactArgs(1, "PIPELINE (the pipeline file)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if table == "" {
				return usageError{fmt.Errorf("backfill: --table is required, e.g. --table sales.orders")}
			}
			schema, name, err := pipelines.Object{Table: table}.TableName()
			if err != nil {
				return usageError{fmt.Errorf("backfill: --table: %w", err)}
			}
			if chunkRows < 0 {
				return usageError{fmt.Errorf("backfill: --chunk-rows must be 0 (the default: %d rows per chunk) or more, got %d", engine.DefaultBackfillChunkRows, chunkRows)}
			}
			_, cfg, err := a.load(args[0], !noProgress && !asJSON)
			if err != nil {
				return err
			}
			spec, _ := a.env(failpoint.EnvVar)
			if cfg.Failpoints, err = failpoint.Parse(spec); err != nil {
				return usageError{fmt.Errorf("%s: %w", failpoint.EnvVar, err)}
			}
			terminal := !noProgress && a.isTerminal()
			start := time.Now()
			opts := engine.BackfillOptions{
				Table: record.TableName{Schema: schema, Name: name}, Where: cond, ChunkRows: chunkRows,
				Progress: func(s engine.BackfillStatus) {
					rate := float64(s.Rows) / max(time.Since(start).Seconds(), 1e-3)
					if terminal {
						fmt.Fprintf(a.stderr, "\r\x1b[2Kbackfill %s: %d chunks, %s rows (%s rows/s)", table, s.Chunks, display.Count(s.Rows), display.Count(int64(rate)))
						return
					}
					cfg.Log.Info("backfill progress", "table", table, "request", s.Request, "chunks", s.Chunks, "rows", s.Rows, "rows_per_sec", fmt.Sprintf("%.0f", rate))
				},
			}
			res, err := engine.Backfill(cmd.Context(), cfg, opts)
			if terminal {
				fmt.Fprintln(a.stderr)
			}
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(backfillJSON{Pipeline: res.Pipeline, Request: res.Request, Table: res.Table, Where: res.Where,
					Resumed: res.Resumed, Chunks: res.Chunks, Rows: res.Rows, Runner: res.Runner, Seconds: res.Duration.Seconds()})
			}
			resumed := ""
			if res.Resumed {
				resumed = " (resumed)"
			}
			fmt.Fprintf(a.stdout, "backfill %d of %s done%s: %d chunks, %d rows written in %s, by %s\n",
				res.Request, res.Table, resumed, res.Chunks, res.Rows, res.Duration.Round(time.Millisecond), res.Runner)
			return nil
		},
	}
	cmd.Flags().StringVar(&table, "table", "", "the source table, schema.table (quote names with dots: '\"a.b\".c')")
	cmd.Flags().StringVar(&cond, "where", "", "only rows satisfying this SQL condition over the table's columns")
	cmd.Flags().IntVar(&chunkRows, "chunk-rows", 0, fmt.Sprintf("rows per chunk; 0 means the default, %d", engine.DefaultBackfillChunkRows))
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "no live progress display on a terminal")
	return cmd
}

type backfillJSON struct {
	Pipeline string  `json:"pipeline"`
	Request  int64   `json:"request"`
	Table    string  `json:"table"`
	Where    string  `json:"where,omitempty"`
	Resumed  bool    `json:"resumed"`
	Chunks   int     `json:"chunks"`
	Rows     int64   `json:"rows"`
	Runner   string  `json:"runner"`
	Seconds  float64 `json:"seconds"`
}
