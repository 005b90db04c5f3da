package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/engine"
)

func (a *app) cutoverCommand() *cobra.Command {
	var asJSON, lockSource, unlockSource, noCount bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "cutover PIPELINE",
		Short: "Catch the sink up with the source, sync sequences, and report what to do to switch over",
		Long: `Cutover is the last step of moving a database. With --lock-source it
first revokes INSERT, UPDATE, DELETE and TRUNCATE on the selected tables at
the source from every role but superusers (recording each privilege in
sluice.cutover_revoked at the source) and waits for the transactions
running at that moment to end. Then it takes the source's WAL position and
waits until the sink has applied everything up to it: a live ` + "`sluice run`" + `
keeps streaming and cutover waits for it; without one, cutover streams
itself until caught up. Then every sink sequence is set to the source's
value, and a report shows the lag, per-table row counts on both sides,
the sequences set, the revoked privileges and what to do next.

Safe to run again: nothing is revoked twice, the sequences are set again.
--unlock-source grants the recorded privileges back (a rollback) and does
nothing else.`,
		Args: exactArgs(1, "PIPELINE (the pipeline file)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, cfg, err := a.load(args[0], false)
			if err != nil {
				return err
			}
			if unlockSource {
				if lockSource {
					return usageError{fmt.Errorf("--lock-source and --unlock-source exclude each other")}
				}
				granted, gone, err := engine.UnlockSource(cmd.Context(), cfg)
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(a.stdout).Encode(map[string]any{"pipeline": cfg.Name, "granted": granted, "not_granted": gone})
				}
				for _, g := range granted {
					fmt.Fprintf(a.stdout, "granted: %s\n", g.GrantSQL())
				}
				for _, g := range gone {
					fmt.Fprintf(a.stdout, "not granted: %s\n", g)
				}
				if len(granted)+len(gone) == 0 {
					fmt.Fprintf(a.stdout, "nothing to grant back: no cutover of pipeline %s revoked privileges at the source\n", cfg.Name)
				}
				return nil
			}
			rep, err := engine.Cutover(cmd.Context(), cfg, engine.CutoverOptions{Timeout: timeout, LockSource: lockSource, NoCount: noCount})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return writeCutoverReport(a, rep)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&lockSource, "lock-source", false, "revoke write privileges on the selected tables at the source first (from every role but superusers)")
	cmd.Flags().BoolVar(&unlockSource, "unlock-source", false, "grant back the write privileges earlier cutovers revoked at the source, and nothing else")
	cmd.Flags().BoolVar(&noCount, "no-count", false, "do not count every table's rows on both sides (exact counts read whole tables)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up when the cutover (waiting for writers and catching up) takes longer")
	return cmd
}

// writeCutoverReport prints the cutover report for a person.
func writeCutoverReport(a *app, rep *engine.CutoverReport) error {
	w := a.stdout
	how := "a live `sluice run` applied it"
	if rep.StreamedHere {
		how = "streamed by this cutover"
	}
	fmt.Fprintf(w, "pipeline %s: caught up\n", rep.Pipeline)
	fmt.Fprintf(w, "lag: 0 B now (sink applied %s, source at %s when caught up); %d B behind when cutover began, caught up in %.1fs (%s)\n",
		rep.AppliedLSN, rep.SourceLSN, rep.LagBytesBefore, rep.CaughtUpSeconds, how)
	switch {
	case rep.SourceLocked:
		fmt.Fprintf(w, "source: locked: %d write privileges revoked (%d by this run), recorded in sluice.cutover_revoked at the source\n", len(rep.Revoked), rep.RevokedNow)
		for _, r := range rep.Revoked {
			col := ""
			if r.Column != "" {
				col = " (column " + r.Column + ")"
			}
			fmt.Fprintf(w, "  %s on %s%s from %s   (undo: %s)\n", r.Privilege, r.Table, col, r.Role, r.GrantSQL())
		}
		if len(rep.Superusers) > 0 {
			fmt.Fprintf(w, "  these roles can still write (superusers, pg_write_all_data): %s\n", strings.Join(rep.Superusers, ", "))
		}
	default:
		fmt.Fprintln(w, "source: not locked (writes still possible)")
	}
	fmt.Fprintf(w, "tables: %d\n", len(rep.Tables))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  SOURCE\tSINK\tSOURCE ROWS\tSINK ROWS\t")
	for _, t := range rep.Tables {
		note := ""
		switch {
		case t.SourceRows < 0:
			fmt.Fprintf(tw, "  %s\t%s\t-\t-\tnot counted\n", t.Source, t.Sink)
			continue
		case t.Filtered:
			note = "filtered"
		case t.SourceRows != t.SinkRows:
			note = "DIFFERENT"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%s\n", t.Source, t.Sink, t.SourceRows, t.SinkRows, note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "sequences synced: %d\n", len(rep.Sequences))
	for _, s := range rep.Sequences {
		if s.Kept {
			fmt.Fprintf(w, "  %s = %d (kept: already past the source's %s)\n", s.Sink, s.LastValue, s.Source)
			continue
		}
		fmt.Fprintf(w, "  %s = %d (from %s)\n", s.Sink, s.LastValue, s.Source)
	}
	fmt.Fprintln(w, "next:")
	for i, n := range rep.Next {
		fmt.Fprintf(w, "  %d. %s\n", i+1, n)
	}
	return nil
}
