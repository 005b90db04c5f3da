package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/display"
)

func (a *app) statusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status PIPELINE",
		Short: "Show a pipeline's phase, copy progress, stream position and lag",
		Long: `Status shows where a pipeline is: whether a run is live, its phase, each
table's copy progress (chunks done of planned, rows), the stream's applied
position and lag, and the throttle limits in force, from the status file a
run keeps in the state dir (so it works while the run is live and after it
ended); then, from the source, the replication slot's confirmed position,
the WAL it retains and the process using it; and from the sink, the last
applied source position and when it was applied; last, the unfinished
backfill requests with the chunks and rows the sink committed so far.
Unreachable databases are reported, not fatal.`,
		Args: exactArgs(1, "PIPELINE (the pipeline file)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, cfg, err := a.load(args[0], false)
			if err != nil {
				return err
			}
			rep, err := engine.Inspect(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return writeStatus(a.stdout, rep, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

// writeStatus prints the report for people.
func writeStatus(w io.Writer, rep *engine.Report, now time.Time) error {
	ago := func(t time.Time) string {
		d := now.Sub(t)
		if d < time.Second {
			return "just now"
		}
		return d.Round(time.Second).String() + " ago"
	}
	run := rep.Run
	switch {
	case run == nil:
		state := "not running"
		if rep.Live {
			state = "running"
		}
		fmt.Fprintf(w, "pipeline %s: %s\n", rep.Pipeline, state)
	case rep.Live:
		fmt.Fprintf(w, "pipeline %s: running (pid %d, started %s, status updated %s)\n",
			rep.Pipeline, run.PID, run.StartedAt.Local().Format(time.DateTime), ago(run.UpdatedAt))
	case run.EndedAt != nil && run.Stopped:
		fmt.Fprintf(w, "pipeline %s: not running; the last run was stopped %s\n", rep.Pipeline, ago(*run.EndedAt))
	case run.EndedAt != nil && run.Error != "":
		fmt.Fprintf(w, "pipeline %s: not running; the last run failed %s: %s\n", rep.Pipeline, ago(*run.EndedAt), flatten(run.Error))
	case run.EndedAt != nil:
		fmt.Fprintf(w, "pipeline %s: not running; the last run ended %s\n", rep.Pipeline, ago(*run.EndedAt))
	default:
		fmt.Fprintf(w, "pipeline %s: not running\n", rep.Pipeline)
	}
	if rep.Note != "" {
		fmt.Fprintf(w, "  (%s)\n", rep.Note)
	}
	if run != nil {
		fmt.Fprintf(w, "phase: %s\n", run.Phase)
		if len(run.Tables) > 0 {
			var chunks, done int
			var rows int64
			for _, t := range run.Tables {
				chunks += t.Chunks
				done += t.ChunksDone
				rows += t.Rows
			}
			fmt.Fprintf(w, "copy: %d/%d chunks, %d rows\n", done, chunks, rows)
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  TABLE\tCHUNKS\tROWS\tEST. ROWS\tBYTES")
			for _, t := range run.Tables {
				fmt.Fprintf(tw, "  %s\t%d/%d\t%d\t%d\t%s\n", t.Table, t.ChunksDone, t.Chunks, t.Rows, t.EstRows, display.Bytes(t.Bytes))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		if s := run.Stream; s != nil {
			applied := s.AppliedLSN
			if applied == "" || applied == "0/0" {
				applied = "nothing yet"
			}
			fmt.Fprintf(w, "stream: applied %s; %d transactions, %d row changes, %d sink commits; lag %.1fs, %s",
				applied, s.Transactions, s.Rows, s.SinkCommits, s.LagSeconds, display.Bytes(s.LagBytes))
			if s.LastCommitAt != nil {
				fmt.Fprintf(w, "; last applied commit from %s", s.LastCommitAt.Local().Format(time.DateTime))
			}
			if s.DDLApplied > 0 || s.DDLWarnings > 0 {
				fmt.Fprintf(w, "; DDL: %d applied, %d not replicated (see the log's warnings)", s.DDLApplied, s.DDLWarnings)
			}
			fmt.Fprintln(w)
		}
		if t := run.Throttle; t != nil {
			fmt.Fprintf(w, "throttle: full %s; incremental %s\n", limitsText(t.Full), limitsText(t.Incremental))
		}
		if run.Retries > 0 {
			fmt.Fprintf(w, "retries: %d\n", run.Retries)
		}
	}
	if src := rep.Source; src != nil {
		switch {
		case src.Error != "":
			fmt.Fprintf(w, "source: %s\n", flatten(src.Error))
		case !src.SlotExists:
			fmt.Fprintf(w, "source: no replication slot %s\n", src.Slot)
		default:
			active := "inactive"
			if src.Active {
				active = fmt.Sprintf("active (pid %d)", src.ActivePID)
			}
			fmt.Fprintf(w, "source: slot %s confirmed %s, retains %s of WAL, %s\n", src.Slot, src.ConfirmedLSN, display.Bytes(src.RetainedBytes), active)
		}
	}
	if snk := rep.Sink; snk != nil {
		switch {
		case snk.Error != "":
			fmt.Fprintf(w, "sink: %s\n", flatten(snk.Error))
		case snk.AppliedLSN == "":
			fmt.Fprintf(w, "sink: no streamed changes applied; %d copy chunks committed\n", snk.CopiedChunks)
		default:
			when := ""
			if snk.AppliedAt != nil {
				when = fmt.Sprintf(" at %s (%s)", snk.AppliedAt.Local().Format(time.DateTime), ago(*snk.AppliedAt))
			}
			fmt.Fprintf(w, "sink: applied up to %s%s; %d copy chunks committed\n", snk.AppliedLSN, when, snk.CopiedChunks)
		}
	}
	writeBackfills(w, rep, ago)
	return nil
}

func limitsText(l engine.LimitsStatus) string {
	var parts []string
	if l.RowsPerSec > 0 {
		parts = append(parts, fmt.Sprintf("%g rows/s", l.RowsPerSec))
	}
	if l.MBPerSec > 0 {
		parts = append(parts, fmt.Sprintf("%g MiB/s", l.MBPerSec))
	}
	if l.SourceQPS > 0 {
		parts = append(parts, fmt.Sprintf("%g source queries/s", l.SourceQPS))
	}
	if len(parts) == 0 {
		return "no limit"
	}
	return strings.Join(parts, ", ")
}

// flatten puts a message on one line.
func flatten(s string) string { return strings.Join(strings.Fields(s), " ") }
