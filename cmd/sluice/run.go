package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/failpoint"
	"github.com/sluicehq/sluice/pipelines"
)

func (a *app) runCommand() *cobra.Command {
	var asJSON, noProgress bool
	cmd := &cobra.Command{
		Use:   "run PIPELINE",
		Short: "Run a pipeline: create missing tables, copy the data, resume where a previous run stopped",
		Long: `Run the pipeline file: create the selected tables that are missing at the
sink, then copy every table at one consistent snapshot in parallel chunks.
Progress is saved per chunk, so running it again after an interruption
resumes the unfinished chunks. Exits 0 with a summary when done.`,
		Args: exactArgs(1, "PIPELINE (the pipeline file)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := pipelines.Load(args[0], a.env)
			if err != nil {
				return err
			}
			cfg, err := engineConfig(p)
			if err != nil {
				return err
			}
			log, err := a.logger(!noProgress)
			if err != nil {
				return err
			}
			cfg.Log = log
			if !noProgress && a.isTerminal() {
				cfg.Progress, cfg.Terminal = a.stderr, true
			}
			spec, _ := a.env(failpoint.EnvVar)
			if cfg.Failpoints, err = failpoint.Parse(spec); err != nil {
				return usageError{fmt.Errorf("%s: %w", failpoint.EnvVar, err)}
			}
			sum, err := engine.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(summaryJSON(sum))
			}
			fmt.Fprintf(a.stdout, "pipeline %s done: %d tables (%d created at the sink), %d rows, %s in %s (%.0f rows/s); chunks: %d copied, %d already done",
				sum.Pipeline, sum.Tables, sum.TablesCreated, sum.Rows, humanBytes(sum.Bytes), sum.Duration.Round(1e6), sum.RowsPerSec(), sum.ChunksCopied, sum.ChunksSkipped)
			if sum.TablesReset > 0 {
				fmt.Fprintf(a.stdout, ", %d keyless tables restarted", sum.TablesReset)
			}
			fmt.Fprintf(a.stdout, "; sequences set: %d\n", sum.SequencesSet)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "no live progress display on a terminal")
	return cmd
}

type runSummary struct {
	Pipeline      string  `json:"pipeline"`
	Tables        int     `json:"tables"`
	TablesCreated int     `json:"tables_created"`
	Rows          int64   `json:"rows"`
	Bytes         int64   `json:"bytes"`
	Seconds       float64 `json:"seconds"`
	RowsPerSec    float64 `json:"rows_per_sec"`
	ChunksCopied  int     `json:"chunks_copied"`
	ChunksSkipped int     `json:"chunks_skipped"`
	TablesReset   int     `json:"tables_reset"`
	SequencesSet  int     `json:"sequences_set"`
}

func summaryJSON(s *engine.Summary) runSummary {
	return runSummary{Pipeline: s.Pipeline, Tables: s.Tables, TablesCreated: s.TablesCreated, Rows: s.Rows, Bytes: s.Bytes,
		Seconds: s.Duration.Seconds(), RowsPerSec: s.RowsPerSec(), ChunksCopied: s.ChunksCopied, ChunksSkipped: s.ChunksSkipped,
		TablesReset: s.TablesReset, SequencesSet: s.SequencesSet}
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s: want %s; see `%s --help`", cmd.Name(), what, cmd.CommandPath())}
		}
		return nil
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
