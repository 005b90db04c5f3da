package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/engine"
)

func (a *app) dropCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "drop PIPELINE",
		Short: "Remove the pipeline's replication slot, publication, helper objects and local state",
		Long: `Drop removes what the pipeline made: at the source its replication slot,
publication and heartbeat row (and the sluice schema when no other pipeline
uses it); at the sink its progress rows; and its local state dir. The
copied tables at the sink stay. Safe to run twice. Refuses while a run of
the same pipeline is live; --force terminates that run's replication
connection first.`,
		Args: exactArgs(1, "PIPELINE (the pipeline file)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, cfg, err := a.load(args[0], false)
			if err != nil {
				return err
			}
			rep, err := engine.Drop(cmd.Context(), cfg, force)
			if rep != nil {
				for _, r := range rep.Removed {
					fmt.Fprintf(a.stdout, "removed %s\n", r)
				}
			}
			if err != nil {
				return err
			}
			if len(rep.Removed) == 0 {
				fmt.Fprintf(a.stdout, "nothing to remove for pipeline %s\n", cfg.Name)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "terminate a live run's replication connection and drop anyway")
	return cmd
}
