package main

import (
	"fmt"
	"maps"
	"slices"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/alert"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/engine/throttle"
	"github.com/sluicehq/sluice/pipelines"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/transforms/rename"
)

// engineConfig turns a loaded pipeline file into the engine's config.
func engineConfig(p *pipelines.Pipeline) (engine.Config, error) {
	cfg := engine.Config{
		Name:        p.Name,
		SourceDSN:   p.Source.DSN.Reveal(),
		SinkDSN:     p.Sink.DSN.Reveal(),
		Schema:      p.Sync.Schema,
		Full:        p.Sync.Full,
		Incremental: p.Sync.Incremental,
		StateDir:    p.StateDir,
		Parallel:    p.Copy.Parallel,
		ChunkRows:   p.Copy.ChunkRows,

		ToastCompression:   p.Copy.ToastCompression,
		SharedScanMaxBytes: sharedScanMax(p.Copy.SharedScanMaxMB),
		Heartbeat:          p.Stream.Heartbeat,

		RetryConnection: p.Retry.Connection,
		RetryOther:      p.Retry.Other,

		Throttle:      throttle.New(throttleLimits(p.Throttle)),
		MetricsListen: p.Metrics.Listen,
		Alerts:        alert.Config{LagSeconds: p.Alerts.LagSeconds, Command: p.Alerts.Command, Webhook: p.Alerts.Webhook},
	}
	cfg.SequenceSync = p.Stream.SequenceSync
	cfg.IgnoreConflictingTables = p.OnConflictingTables == "ignore"
	for i, o := range p.Objects {
		where := fmt.Sprintf("%s:%d: objects[%d]", p.File, o.Line, i)
		if o.Schema != "" {
			name, err := o.SchemaName()
			if err != nil {
				return cfg, fmt.Errorf("%s: %w", where, err)
			}
			cfg.Objects = append(cfg.Objects, postgres.Selection{Schema: name, Where: where})
			to, ok, err := o.RenameSchema()
			if err != nil {
				return cfg, fmt.Errorf("%s.rename: %w", where, err)
			}
			if ok {
				cfg.Rename.Schemas = append(cfg.Rename.Schemas, rename.SchemaRename{From: name, To: to, Origin: origin(p, o, i, "rename")})
			}
			if len(o.Operations) > 0 {
				cfg.Options = append(cfg.Options, engine.ObjectOptions{Schema: name, Operations: o.Operations, Origin: origin(p, o, i, "")})
			}
			continue
		}
		schema, name, err := o.TableName()
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", where, err)
		}
		tn := record.TableName{Schema: schema, Name: name}
		cfg.Objects = append(cfg.Objects, postgres.Selection{Table: tn, Where: where})
		toSchema, toName, ok, err := o.RenameTable()
		if err != nil {
			return cfg, fmt.Errorf("%s.rename: %w", where, err)
		}
		if ok {
			cfg.Rename.Tables = append(cfg.Rename.Tables, rename.TableRename{From: tn, To: record.TableName{Schema: toSchema, Name: toName}, Origin: origin(p, o, i, "rename")})
		}
		for _, from := range slices.Sorted(maps.Keys(o.Columns)) {
			c := rename.ColumnRename{Table: tn, From: from, Origin: origin(p, o, i, "columns")}
			if to := o.Columns[from]; to == nil {
				c.Drop = true
			} else {
				c.To = *to
			}
			cfg.Rename.Columns = append(cfg.Rename.Columns, c)
		}
		if o.Where != "" || len(o.Operations) > 0 {
			cfg.Options = append(cfg.Options, engine.ObjectOptions{Table: tn, Where: o.Where, Operations: o.Operations, Origin: origin(p, o, i, "")})
		}
	}
	if err := transformConfig(p, &cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// origin names an objects item (and one of its keys) for messages, e.g.
// "pipeline.yaml:12 (objects[2].rename)".
func origin(p *pipelines.Pipeline, o pipelines.Object, i int, key string) string {
	path := fmt.Sprintf("objects[%d]", i)
	if key != "" {
		path += "." + key
	}
	return fmt.Sprintf("%s:%d (%s)", p.File, o.Line, path)
}

// throttleLimits turns the file's throttle section into the limits of the
// full copy and of streaming.
func throttleLimits(t pipelines.Throttle) (full, incremental throttle.Limits) {
	conv := func(l pipelines.Limits) throttle.Limits {
		return throttle.Limits{Rows: l.RowsPerSec, Bytes: l.MBPerSec * throttle.MiB, Queries: l.SourceQPS}
	}
	return conv(t.Full), conv(t.Incremental)
}

// load reads the pipeline file and builds the engine's config, with a
// logger (quiet on a terminal when live progress is drawn).
func (a *app) load(path string, quietOnTerminal bool) (*pipelines.Pipeline, engine.Config, error) {
	p, err := pipelines.Load(path, a.env)
	if err != nil {
		return nil, engine.Config{}, err
	}
	cfg, err := engineConfig(p)
	if err != nil {
		return nil, engine.Config{}, err
	}
	if cfg.Log, err = a.logger(quietOnTerminal); err != nil {
		return nil, engine.Config{}, err
	}
	return p, cfg, nil
}

// sharedScanMax turns copy.shared_scan_max_mb into the engine's setting,
// where 0 is the default and a negative size turns shared scans off.
func sharedScanMax(mb int64) int64 {
	if mb == 0 {
		return -1
	}
	return mb << 20
}
