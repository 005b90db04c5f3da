package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// app carries what every subcommand shares: output streams, the
// environment lookup and logging flags. It replaces package-level state.
type app struct {
	stdout, stderr io.Writer
	env            func(string) (string, bool)
	logLevel       string
	logFormat      string
}

func newRootCommand(stdout, stderr io.Writer, env func(string) (string, bool)) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr, env: env}
	root := &cobra.Command{
		Use:   "sluice",
		Short: "Keep one PostgreSQL database copied into another",
		Long: `sluice copies a PostgreSQL database into another: the schema, then all the
data at one consistent snapshot, in parallel chunks, resumable after any
interruption. A pipeline file (YAML) says what to copy and where.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(a.runCommand(), a.checkCommand(), a.dropCommand(), a.versionCommand())
	root.AddCommand(a.statusCommand())
	root.AddCommand(a.verifyCommand())
	root.AddCommand(a.cutoverCommand())
	root.AddCommand(a.backfillCommand())
	return root
}

// logger builds the logger for a command. On a terminal with live progress
// the default level is raised to warn so log lines don't tear the progress
// display.
func (a *app) logger(quietOnTerminal bool) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", a.logLevel)}
	}
	if quietOnTerminal && a.logLevel == "info" && a.isTerminal() {
		level = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(a.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(a.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(a.stderr, opts)), nil
	}
	return nil, usageError{fmt.Errorf("--log-format %q: want text or json", a.logFormat)}
}

func (a *app) isTerminal() bool {
	f, ok := a.stderr.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(a.stdout, "sluice %s\n", version)
			return nil
		},
	}
}
