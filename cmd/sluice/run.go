package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/display"
	"github.com/sluicehq/sluice/engine/failpoint"
	"github.com/sluicehq/sluice/engine/throttle"
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
started streaming). Exits 0 with a summary when done.

While it runs, SIGHUP reloads the pipeline file's throttle limits (other
changes need a restart), the run's status is written to the state dir for
` + "`sluice status`" + `, metrics are served when metrics.listen is set, and
the alerts configured under alerts: fire.`,
		Args: exactArgs(1, "PIPELINE (the pipeline file)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, cfg, err := a.load(args[0], !noProgress)
			if err != nil {
				return err
			}
			log := cfg.Log
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
			// SIGHUP reloads the throttle limits from the file.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			hupCtx, stopHUP := context.WithCancel(cmd.Context())
			defer stopHUP()
			go a.reloadOnHUP(hupCtx, hup, args[0], p, cfg.Throttle, log)
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
				sum.Pipeline, sum.Tables, sum.TablesCreated, sum.Rows, display.Bytes(sum.Bytes), sum.Duration.Round(1e6), sum.RowsPerSec(), sum.ChunksCopied, sum.ChunksSkipped)
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

// reloadOnHUP reloads the pipeline file on each SIGHUP and applies its
// throttle limits to the running pipeline. A file with errors changes
// nothing; other changed keys are named in a warning: they need a restart.
func (a *app) reloadOnHUP(ctx context.Context, hup <-chan os.Signal, path string, running *pipelines.Pipeline, t *throttle.Throttle, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		p, err := pipelines.Load(path, a.env)
		if err != nil {
			log.Error("SIGHUP: the pipeline file has errors; keeping the current limits", "file", path, "error", err.Error())
			continue
		}
		full, incremental := throttleLimits(p.Throttle)
		t.Set(full, incremental)
		log.Warn("SIGHUP: throttle limits reloaded", "file", path,
			"full", describeLimits(p.Throttle.Full), "incremental", describeLimits(p.Throttle.Incremental))
		if keys := changedKeys(running, p); len(keys) > 0 {
			log.Warn("SIGHUP: only throttle limits change while running; restart the pipeline to apply the other changes", "changed", strings.Join(keys, ", "))
		}
	}
}

// describeLimits renders limits for a log line.
func describeLimits(l pipelines.Limits) string {
	return limitsText(engine.LimitsStatus{RowsPerSec: l.RowsPerSec, MBPerSec: l.MBPerSec, SourceQPS: l.SourceQPS})
}

// changedKeys names the top-level keys, other than throttle, whose values
// differ between two loads of a pipeline file. Line numbers don't count.
func changedKeys(old, cur *pipelines.Pipeline) []string {
	a, b := *old, *cur
	a.Objects = withoutLines(a.Objects)
	b.Objects = withoutLines(b.Objects)
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var keys []string
	for i := 0; i < va.NumField(); i++ {
		f := va.Type().Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" || key == "-" || key == "throttle" {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			keys = append(keys, key)
		}
	}
	return keys
}

func withoutLines(objs []pipelines.Object) []pipelines.Object {
	out := make([]pipelines.Object, len(objs))
	for i, o := range objs {
		o.Line = 0
		out[i] = o
	}
	return out
}
