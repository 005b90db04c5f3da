// Command sluice keeps one PostgreSQL database copied into another, driven
// by a declarative pipeline file.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cmd, err := newRootCommand(os.Stdout, os.Stderr, os.LookupEnv).ExecuteContextC(ctx)
	stop()
	if err != nil {
		var ue usageError
		// cobra's own "unknown command" errors are usage errors too.
		if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command ") {
			fmt.Fprintf(os.Stderr, "sluice: %v\n", err)
			os.Exit(2)
		}
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			if cmd != nil && cmd.Name() == "run" {
				fmt.Fprintln(os.Stderr, "sluice: stopped by signal; progress is saved, run the same command again to resume")
			} else {
				fmt.Fprintln(os.Stderr, "sluice: stopped by signal")
			}
			os.Exit(130)
		}
		fmt.Fprintf(os.Stderr, "sluice: %s\n", strings.TrimSpace(err.Error()))
		os.Exit(1)
	}
}

// usageError marks errors in how the command was called.
type usageError struct{ error }
