package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// Check outcomes.
const (
	Pass = "pass"
	Warn = "warn"
	Fail = "fail"
)

// CheckItem is one line of a precheck: what was checked, the outcome, and
// for a warning or failure the reason and what to do.
type CheckItem struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
	Fix    string `json:"fix,omitempty"`
}

// CheckReport is the result of Check.
type CheckReport struct {
	Pipeline string      `json:"pipeline"`
	Items    []CheckItem `json:"items"`
}

// Failed reports whether any item failed.
func (r *CheckReport) Failed() bool {
	for _, it := range r.Items {
		if it.Status == Fail {
			return true
		}
	}
	return false
}

// Check verifies that the pipeline can run: both databases are reachable
// with the given credentials and the selected objects resolve to tables.
func Check(ctx context.Context, cfg Config) *CheckReport {
	rep := &CheckReport{Pipeline: cfg.Name}
	add := func(name, status, detail, fix string) {
		rep.Items = append(rep.Items, CheckItem{Name: name, Status: status, Detail: detail, Fix: fix})
	}
	add("config", Pass, "pipeline file is valid", "")

	src, err := postgres.Connect(ctx, cfg.SourceDSN, "source")
	if err != nil {
		add("source_connection", Fail, err.Error(), "check the source DSN, that the server runs, and pg_hba.conf")
	} else {
		defer src.Close(context.WithoutCancel(ctx))
		var ver string
		_ = src.QueryRow(ctx, "SHOW server_version").Scan(&ver)
		add("source_connection", Pass, "connected, PostgreSQL "+ver, "")
	}
	dst, err := postgres.Connect(ctx, cfg.SinkDSN, "sink")
	if err != nil {
		add("sink_connection", Fail, err.Error(), "check the sink DSN, that the server runs, and pg_hba.conf")
	} else {
		defer dst.Close(context.WithoutCancel(ctx))
		var ver string
		_ = dst.QueryRow(ctx, "SHOW server_version").Scan(&ver)
		add("sink_connection", Pass, "connected, PostgreSQL "+ver, "")
	}
	if src == nil {
		return rep
	}
	tables, err := postgres.Discover(ctx, src, cfg.Objects)
	switch {
	case err != nil:
		add("objects", Fail, err.Error(), "fix the objects list in the pipeline file")
	case len(tables) == 0:
		add("objects", Fail, "the selected objects contain no tables", "select a schema with tables, or list tables")
	default:
		var keyless []string
		for _, t := range tables {
			if !t.Partitioned && len(t.Key) == 0 {
				keyless = append(keyless, t.Name.String())
			}
		}
		add("objects", Pass, fmt.Sprintf("%d tables selected", len(tables)), "")
		if len(keyless) > 0 {
			add("tables_without_key", Warn, "no primary key or unique NOT NULL index: "+strings.Join(keyless, ", "),
				"these are copied by block ranges; an interrupted copy restarts them whole")
		}
	}
	return rep
}
