package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/failpoint"
	"github.com/sluicehq/sluice/pipelines"
)

func (a *app) runCommand() *cobra.Command {
	var asJSON, noProgress, untilCaughtUp bool
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "run PIPELINE",
		Short: "Run a pipeline: create missing tables, copy the data, resume where a previous run stopped",
		Long: `Run the pipeline file: create the selected tables that are missing at the
sink, then copy every table at one consistent snapshot in parallel chunks.
Progress is saved per chunk, so running it again after an interruption
resumes the unfinished chunks. With sync.incremental it then streams every
committed change through a replication slot until stopped (or, with
--until-caught-up, until it has applied everything committed before it
started streaming). Exits 0 with a summary when done.`,
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
			cfg.UntilCaughtUp = untilCaughtUp
			if !noProgress && a.isTerminal() {
				cfg.Progress, cfg.Terminal = a.stderr, true
			}
			spec, _ := a.env(failpoint.EnvVar)
			if cfg.Failpoints, err = failpoint.Parse(spec); err != nil {
				return usageError{fmt.Errorf("%s: %w", failpoint.EnvVar, err)}
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			sum, err := engine.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				out := summaryJSON(sum)
				if cfg.Incremental {
					out = withStream(out, sum)
				}
				return enc.Encode(out)
			}
			fmt.Fprintf(a.stdout, "pipeline %s done: %d tables (%d created at the sink), %d rows, %s in %s (%.0f rows/s); chunks: %d copied, %d already done",
				sum.Pipeline, sum.Tables, sum.TablesCreated, sum.Rows, humanBytes(sum.Bytes), sum.Duration.Round(1e6), sum.RowsPerSec(), sum.ChunksCopied, sum.ChunksSkipped)
			if sum.TablesReset > 0 {
				fmt.Fprintf(a.stdout, ", %d keyless tables restarted", sum.TablesReset)
			}
			fmt.Fprintf(a.stdout, "; sequences set: %d", sum.SequencesSet)
			if cfg.Incremental {
				fmt.Fprintf(a.stdout, "; streamed %d transactions, %d row changes, applied up to %s, lag %.1fs",
					sum.Stream.Transactions, sum.Stream.Rows, sum.Stream.LastCommit, sum.Stream.LagSeconds)
			}
			fmt.Fprintln(a.stdout)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "no live progress display on a terminal")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (pprof) to this file")
	cmd.Flags().BoolVar(&untilCaughtUp, "until-caught-up", false, "with sync.incremental: stop once every change committed at the source before streaming began is applied")
	return cmd
}

type runSummary struct {
	Pipeline      string      `json:"pipeline"`
	Tables        int         `json:"tables"`
	TablesCreated int         `json:"tables_created"`
	Rows          int64       `json:"rows"`
	Bytes         int64       `json:"bytes"`
	Seconds       float64     `json:"seconds"`
	RowsPerSec    float64     `json:"rows_per_sec"`
	ChunksCopied  int         `json:"chunks_copied"`
	ChunksSkipped int         `json:"chunks_skipped"`
	TablesReset   int         `json:"tables_reset"`
	SequencesSet  int         `json:"sequences_set"`
	Stream        *streamJSON `json:"stream,omitempty"`
}

func summaryJSON(s *engine.Summary) runSummary {
	return runSummary{Pipeline: s.Pipeline, Tables: s.Tables, TablesCreated: s.TablesCreated, Rows: s.Rows, Bytes: s.Bytes,
		Seconds: s.Duration.Seconds(), RowsPerSec: s.RowsPerSec(), ChunksCopied: s.ChunksCopied, ChunksSkipped: s.ChunksSkipped,
		TablesReset: s.TablesReset, SequencesSet: s.SequencesSet}
}

type streamJSON struct {
	Transactions int64   `json:"transactions"`
	Rows         int64   `json:"rows"`
	Reconnects   int     `json:"reconnects"`
	SinkCommits  int64   `json:"sink_commits"`
	LastCommit   string  `json:"last_commit_lsn"`
	LagSeconds   float64 `json:"lag_seconds"`
	LagBytes     int64   `json:"lag_bytes"`
}

func withStream(out runSummary, s *engine.Summary) runSummary {
	out.Stream = &streamJSON{s.Stream.Transactions, s.Stream.Rows, s.Stream.Reconnects, s.Stream.SinkCommits, s.Stream.LastCommit.String(), s.Stream.LagSeconds, s.Stream.LagBytes}
	return out
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
