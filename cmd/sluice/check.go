package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/engine"
)

func (a *app) checkCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check PIPELINE",
		Short: "Precheck a pipeline against both databases",
		Long: `Check validates the pipeline file, connects to the source and the sink,
and checks everything the pipeline needs or will meet: credentials and
privileges at both sides, the selected objects (keys, partitions,
inheritance, extension-owned tables), conflicting tables and disk space at
the sink, and, with sync.incremental, wal_level, the REPLICATION attribute,
free replication slots and WAL senders, replica identities and
long-running transactions at the source. It changes nothing.

Each item is reported as pass, warn or fail with the reason and the fix.
Warnings can be acknowledged by name in the pipeline file
(ignore_checks: [name, ...]); failures cannot. Exits non-zero when any item
fails.`,
		Args: exactArgs(1, "PIPELINE (the pipeline file)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, cfg, err := a.load(args[0], false)
			if err != nil {
				return err
			}
			rep := engine.Check(cmd.Context(), cfg, engine.CheckOptions{IgnoreChecks: p.IgnoreChecks})
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else if err := writeCheckTable(a, rep); err != nil {
				return err
			}
			if rep.Failed() {
				return errors.New("check failed: fix the items marked FAIL")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// writeCheckTable prints the report as a table, one line per item, and a
// count line.
func writeCheckTable(a *app, rep *engine.CheckReport) error {
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, it := range rep.Items {
		// Keep each item on one line: error texts may hold newlines and
		// tabs, which would break the columns.
		detail := oneLine(it.Detail)
		if it.Fix != "" && it.Status != engine.Pass {
			detail += " — fix: " + oneLine(it.Fix)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", it.Name, strings.ToUpper(it.Status), detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	pass, warn, fail := rep.Counts()
	_, err := fmt.Fprintf(a.stdout, "\n%d passed, %d warnings, %d failed\n", pass, warn, fail)
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
