package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/pipelines"
)

func (a *app) checkCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check PIPELINE",
		Short: "Validate a pipeline file and check both databases are reachable",
		Long: `Check validates the pipeline file, connects to the source and the sink,
and resolves the selected objects. Each item is reported as pass, warn or
fail with the reason and the fix. Exits non-zero when any item fails.`,
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
			rep := engine.Check(cmd.Context(), cfg)
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
				for _, it := range rep.Items {
					// Keep each item on one line: error texts may hold
					// newlines and tabs, which would break the columns.
					detail := strings.Join(strings.Fields(it.Detail), " ")
					if it.Fix != "" && it.Status != engine.Pass {
						detail += " — fix: " + strings.Join(strings.Fields(it.Fix), " ")
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", it.Name, strings.ToUpper(it.Status), detail)
				}
				tw.Flush()
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
