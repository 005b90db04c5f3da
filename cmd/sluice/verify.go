package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/engine/verify"
	"github.com/sluicehq/sluice/pipelines"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/transforms/rename"
)

func (a *app) verifyCommand() *cobra.Command {
	var asJSON, noProgress bool
	var tables []string
	var recheck, maxDiffs int
	var recheckDelay time.Duration
	cmd := &cobra.Command{
		Use:   "verify PIPELINE",
		Short: "Compare the source and the sink: row counts, checksums, and the rows that differ",
		Long: `Verify compares every table of the pipeline at the source and at the sink,
each side read at one consistent point: row counts, then checksums over
chunks of key ranges (hash buckets for tables without a key), then, for the
chunks that differ, the rows: missing at the sink, extra at the sink, or
different, each shown with its key. Tables without a key are compared as
multisets of rows.

While a pipeline streams, the sink lags the source: chunks that differ are
compared again at new snapshots (--recheck times, --recheck-delay apart;
by default 3 times 2s apart when sync.incremental is on, else not), and a
chunk equal on any re-check is equal.

Exits 0 when both sides are equal, 1 when they differ.`,
		Args: exactArgs(1, "PIPELINE (the pipeline file)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, ecfg, err := a.load(args[0], !noProgress)
			if err != nil {
				return err
			}
			log := ecfg.Log
			cfg := verify.Config{
				Name:         ecfg.Name,
				SourceDSN:    ecfg.SourceDSN,
				SinkDSN:      ecfg.SinkDSN,
				Objects:      ecfg.Objects,
				Parallel:     ecfg.Parallel,
				ChunkRows:    ecfg.ChunkRows,
				RecheckDelay: recheckDelay,
				MaxDiffRows:  maxDiffs,
				Log:          log,
			}
			if maxDiffs == 0 {
				cfg.MaxDiffRows = -1
			}
			if cfg.Target, cfg.Rules, err = verifyRules(ecfg); err != nil {
				return err
			}
			switch {
			case recheck > 0:
				cfg.Recheck = recheck
			case recheck == 0, recheck < 0 && !ecfg.Incremental:
				cfg.Recheck = -1
			}
			for _, s := range tables {
				schema, name, err := pipelines.Object{Table: s}.TableName()
				if err != nil {
					return usageError{fmt.Errorf("--table %q: %w", s, err)}
				}
				cfg.Only = append(cfg.Only, record.TableName{Schema: schema, Name: name})
			}
			if !noProgress && a.isTerminal() {
				cfg.Progress, cfg.Terminal = a.stderr, true
			}
			rep, err := verify.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			differ := len(rep.Differing())
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(verifyJSON{Pipeline: p.Name, Equal: differ == 0, DifferingTables: differ, Report: rep}); err != nil {
					return err
				}
			} else {
				a.printVerify(p.Name, rep)
			}
			if differ > 0 {
				return fmt.Errorf("verify found differences in %d %s", differ, plural(differ, "table", "tables"))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "no live progress display on a terminal")
	cmd.Flags().StringArrayVar(&tables, "table", nil, "compare only this table (SCHEMA.TABLE, quoted as in the pipeline file; repeatable)")
	cmd.Flags().IntVar(&recheck, "recheck", -1, "re-check chunks that differ this many times (default: 3 with sync.incremental, else 0)")
	cmd.Flags().Lookup("recheck").DefValue = "" // the usage text says it
	cmd.Flags().DurationVar(&recheckDelay, "recheck-delay", 2*time.Second, "wait between re-checks")
	cmd.Flags().IntVar(&maxDiffs, "max-diffs", 100, "list at most this many differing rows per table (all are counted)")
	return cmd
}

type verifyJSON struct {
	Pipeline        string `json:"pipeline"`
	Equal           bool   `json:"equal"`
	DifferingTables int    `json:"differing_tables"`
	*verify.Report
}

// printVerify prints the per-table results, the listed differences and a
// summary line.
func (a *app) printVerify(name string, rep *verify.Report) {
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tSOURCE ROWS\tSINK ROWS\tCHUNKS\tDIFFER\tRESULT")
	for _, t := range rep.Tables {
		result := "equal"
		switch {
		case t.Error != "":
			result = "error: " + strings.Join(strings.Fields(t.Error), " ")
		case t.Differences() == 0 && !t.Equal():
			result = fmt.Sprintf("%d %s differ", t.Mismatched, plural(t.Mismatched, "chunk", "chunks"))
		case !t.Equal():
			var parts []string
			for _, c := range []struct {
				n    int64
				what string
			}{{t.Missing, "missing at sink"}, {t.Extra, "extra at sink"}, {t.Different, "different"}} {
				if c.n > 0 {
					parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
				}
			}
			result = fmt.Sprintf("%d %s: %s", t.Differences(), plural(int(t.Differences()), "row differs", "rows differ"), strings.Join(parts, ", "))
		case t.Rechecked > 0:
			result = fmt.Sprintf("equal (%d %s equal on a re-check)", t.Rechecked, plural(t.Rechecked, "chunk", "chunks"))
		}
		name := t.Table
		if t.SinkTable != t.Table {
			name += " -> " + t.SinkTable
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", name, t.SourceRows, t.SinkRows, t.Chunks, t.Mismatched, result)
	}
	tw.Flush()
	for _, t := range rep.Tables {
		if len(t.Diffs) == 0 {
			continue
		}
		fmt.Fprintf(a.stdout, "\n%s:\n", t.Table)
		for _, d := range t.Diffs {
			fmt.Fprintf(a.stdout, "  %s\n", d.Text)
		}
		if t.Truncated {
			fmt.Fprintf(a.stdout, "  … and more (%d differing rows in all; --max-diffs lists more)\n", t.Differences())
		}
	}
	fmt.Fprintln(a.stdout)
	verdict := "equal"
	if n := len(rep.Differing()); n > 0 {
		verdict = fmt.Sprintf("%d of %d tables differ", n, len(rep.Tables))
	}
	fmt.Fprintf(a.stdout, "verify %s: %s: %d tables, %d rows at the source, %d at the sink, %d chunks (%d differ) in %s (%.0f rows/s)",
		name, verdict, len(rep.Tables), rep.SourceRows, rep.SinkRows, rep.Chunks, rep.Mismatched, rep.Duration.Round(time.Millisecond), rep.RowsPerSec())
	if rep.Rechecks > 0 {
		fmt.Fprintf(a.stdout, "; %d re-check %s", rep.Rechecks, plural(rep.Rechecks, "round", "rounds"))
	}
	fmt.Fprintln(a.stdout)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// verifyRules compares what the pipeline's options make of each table:
// its sink name, only the source rows its where keeps, renamed columns
// under their sink names, dropped columns not at all.
func verifyRules(ecfg engine.Config) (postgres.TargetName, func(record.TableName) verify.Rule, error) {
	rules, err := rename.New(ecfg.Rename)
	if err != nil {
		return nil, nil, err
	}
	byTable := map[record.TableName]verify.Rule{}
	for _, c := range ecfg.Rename.Columns {
		r := byTable[c.Table]
		if name, dropped := rules.Column(c.Table, c.From); dropped {
			r.Skip = append(r.Skip, c.From)
		} else {
			if r.Columns == nil {
				r.Columns = map[string]string{}
			}
			r.Columns[c.From] = name
		}
		byTable[c.Table] = r
	}
	for _, o := range ecfg.Options {
		if o.Schema == "" && o.Where != "" {
			r := byTable[o.Table]
			r.Where = o.Where
			byTable[o.Table] = r
		}
	}
	return rules.Table, func(n record.TableName) verify.Rule {
		r := byTable[n]
		r.ColumnName = func(c string) string {
			name, _ := rules.Column(n, c)
			return name
		}
		stageRule(ecfg.Transforms, n, &r)
		return r
	}, nil
}
