package main

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/alert"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/engine/throttle"
	"github.com/sluicehq/sluice/pipelines"
	"github.com/sluicehq/sluice/plugins/postgres"
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
		Heartbeat:   p.Stream.Heartbeat,

		RetryConnection: p.Retry.Connection,
		RetryOther:      p.Retry.Other,

		Throttle:      throttle.New(throttleLimits(p.Throttle)),
		MetricsListen: p.Metrics.Listen,
		Alerts:        alert.Config{LagSeconds: p.Alerts.LagSeconds, Command: p.Alerts.Command, Webhook: p.Alerts.Webhook},
	}
	for i, o := range p.Objects {
		where := fmt.Sprintf("%s:%d: objects[%d]", p.File, o.Line, i)
		if err := notWiredYet(o); err != nil {
			return cfg, fmt.Errorf("%s: %w", where, err)
		}
		if o.Schema != "" {
			name, err := o.SchemaName()
			if err != nil {
				return cfg, fmt.Errorf("%s: %w", where, err)
			}
			cfg.Objects = append(cfg.Objects, postgres.Selection{Schema: name, Where: where})
			continue
		}
		schema, name, err := o.TableName()
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", where, err)
		}
		cfg.Objects = append(cfg.Objects, postgres.Selection{Table: record.TableName{Schema: schema, Name: name}, Where: where})
	}
	return cfg, nil
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

// notWiredYet refuses the per-object options the engine does not apply
// yet, so that a pipeline never runs with an option silently ignored.
func notWiredYet(o pipelines.Object) error {
	var keys []string
	if o.Where != "" {
		keys = append(keys, "where")
	}
	if o.Rename != "" {
		keys = append(keys, "rename")
	}
	if o.Columns != nil {
		keys = append(keys, "columns")
	}
	if o.Operations != nil {
		keys = append(keys, "operations")
	}
	if len(keys) == 0 {
		return nil
	}
	return fmt.Errorf("%s: not supported by this version of sluice yet; remove it to run the pipeline", strings.Join(keys, ", "))
}
