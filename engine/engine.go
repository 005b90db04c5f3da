// Package engine runs a pipeline: it resolves the selected tables, creates
// what is missing at the sink, copies every table at one consistent
// snapshot in parallel chunks, and records progress so that a restart
// resumes where the last run stopped.
//
// The flow of one full copy, per chunk:
//
//	source reader ──batches──► sink writer (COPY + progress row, one tx) ──► checkpoint
//
// The sink transaction carries its own progress row, so after a crash the
// sink is the truth and the local checkpoint is reconciled against it.
package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine/alert"
	"github.com/sluicehq/sluice/engine/failpoint"
	"github.com/sluicehq/sluice/engine/metrics"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/engine/throttle"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/transforms/rename"
)

// Config is everything the engine needs to run one pipeline. The pipelines
// package builds it from a pipeline file.
type Config struct {
	// Name identifies the pipeline in the state dir and the sink's
	// progress tables.
	Name string
	// SourceDSN and SinkDSN are connection strings (with secrets): never
	// log them.
	SourceDSN, SinkDSN string
	// Schema creates missing tables at the sink; Full copies the data;
	// Incremental streams changes afterwards.
	Schema, Full, Incremental bool
	Objects                   []postgres.Selection
	// Options are the objects' per-table options (where, operations);
	// Rename the sink names of tables, schemas and columns. Both are
	// checked against the source's catalog before any data is touched.
	Options []ObjectOptions
	Rename  rename.Config
	// Transforms are the transform stages, in order; their expressions
	// are type-checked against the source's catalog before any data is
	// touched.
	Transforms []TransformStage
	StateDir   string
	// Parallel is the number of copy workers; ChunkRows the target rows per
	// chunk.
	Parallel  int
	ChunkRows int64
	// ToastCompression is copy.toast_compression: auto (or empty), lz4,
	// pglz or server.
	ToastCompression string
	// SharedScanMaxBytes is the largest table read by one sequential scan
	// shared by the copy's writers (postgres.MethodScan); 0 is the
	// default, 4 GiB; negative turns shared scans off.
	SharedScanMaxBytes int64

	// Log receives structured logs; nil discards them.
	Log *slog.Logger
	// Progress, when set, receives live progress: redrawn lines when
	// Terminal is true, else nothing (progress then goes to Log).
	Progress io.Writer
	Terminal bool
	// ProgressInterval is how often progress is logged when not on a
	// terminal (default 10s).
	ProgressInterval time.Duration
	// Failpoints, when non-nil, stop the engine at named crash points.
	Failpoints *failpoint.Set

	// UntilCaughtUp ends streaming once every change committed at the
	// source before streaming started is applied; otherwise streaming runs
	// until ctx ends.
	UntilCaughtUp bool
	// Heartbeat is how often the source's heartbeat row is written
	// (default 10s).
	Heartbeat time.Duration
	// StatusInterval is how often the applied position is reported to the
	// source (default 10s).
	StatusInterval time.Duration
	// MaxGroupDelay and MaxGroupTxns bound how many source transactions
	// share one sink transaction (defaults 50ms, 1000).
	MaxGroupDelay time.Duration
	MaxGroupTxns  int

	// RetryConnection and RetryOther are how long connection errors and
	// other errors are retried (each incident counted from its first
	// failure since the last progress) before the run stops; defaults 720m
	// and 10m.
	RetryConnection, RetryOther time.Duration

	// Throttle limits the rates of the full copy and of streaming; nil
	// means no limit. Its limits may be changed while Run runs
	// (Throttle.Set), and take effect within a fraction of a second.
	Throttle *throttle.Throttle
	// MetricsListen, when set (host:port), serves the run's Prometheus
	// metrics at /metrics and its status as JSON at /status.
	MetricsListen string
	// Alerts fire on lag above a threshold and when the run fails.
	Alerts alert.Config
	// IgnoreConflictingTables copies into selected tables that exist at
	// the sink holding rows (on_conflicting_tables: ignore): the full copy
	// keeps the sink's row on a key clash, streaming overwrites it.
	// Otherwise such a table stops the run before any data moves.
	IgnoreConflictingTables bool
	// SequenceSync is how often the sink's sequences are set to the
	// source's values while streaming; zero turns it off.
	SequenceSync time.Duration
	// SlotCheckInterval is how often the replication slot's retained WAL
	// is read at the source, for metrics and status (default 10s).
	SlotCheckInterval time.Duration
}

// Summary reports what a run did.
type Summary struct {
	Pipeline      string
	Tables        int
	TablesCreated int
	Rows          int64
	Bytes         int64
	Duration      time.Duration
	ChunksCopied  int
	ChunksSkipped int // already copied by an earlier run
	// ChunksRaw counts the copied chunks that went through the raw path:
	// the source's binary COPY stream passed to the sink unchanged.
	ChunksRaw    int
	TablesReset  int // keyless tables restarted after an interrupted run
	SequencesSet int
	// PostDataCreated counts the post-data objects (indexes, constraints,
	// triggers, views, functions, ...) created at the sink;
	// PostDataRefreshed the materialized views populated there.
	PostDataCreated   int
	PostDataRefreshed int
	// Stream describes the streaming phase, when it ran.
	Stream StreamStats
}

// RowsPerSec is the copy rate over the whole run.
func (s *Summary) RowsPerSec() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Rows) / s.Duration.Seconds()
}

func (c *Config) validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("pipeline name is empty"))
	}
	if c.SourceDSN == "" || c.SinkDSN == "" {
		errs = append(errs, errors.New("source and sink DSNs are required"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("state dir is empty"))
	}
	if c.Parallel < 1 {
		c.Parallel = 1
	}
	if c.ChunkRows < 1 {
		c.ChunkRows = 100000
	}
	if c.SharedScanMaxBytes == 0 {
		c.SharedScanMaxBytes = DefaultSharedScanMaxBytes
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = 10 * time.Second
	}
	if c.MaxGroupDelay <= 0 {
		c.MaxGroupDelay = 50 * time.Millisecond
	}
	if c.MaxGroupTxns <= 0 {
		c.MaxGroupTxns = 1000
	}
	if c.RetryConnection <= 0 {
		c.RetryConnection = 720 * time.Minute
	}
	if c.RetryOther <= 0 {
		c.RetryOther = 10 * time.Minute
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 10 * time.Second
	}
	if c.SlotCheckInterval <= 0 {
		c.SlotCheckInterval = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return errors.Join(errs...)
}

// Run runs the pipeline until its work is done: schema and full copy, as
// configured. It is safe to run again after any interruption.
//
// While it runs it writes its status to the state dir (StatusFile), serves
// metrics when MetricsListen is set, and fires the configured alerts; a
// run that stops with an error (other than ctx ending) fires the failure
// alert before Run returns.
func Run(ctx context.Context, cfg Config) (sum *Summary, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	obs, err := startObservers(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer func() { obs.stop(ctx, err) }()
	r := &runner{cfg: cfg, log: cfg.Log, target: postgres.SameName, mon: obs.mon, metrics: obs.metrics}
	defer func() {
		if r.store != nil {
			r.store.Close()
		}
	}()
	policy := retryPolicy{connection: cfg.RetryConnection, other: cfg.RetryOther, log: cfg.Log, onRetry: obs.mon.retried}
	attempts := 0
	err = policy.run(ctx, func() (bool, error) {
		before := r.progressMarks.Load()
		s, err := r.run(ctx)
		if s != nil {
			sum = s
		}
		attempts++
		return r.progressMarks.Load() != before, err
	})
	if err != nil {
		return nil, err
	}
	sum.Stream.Reconnects = attempts - 1
	return sum, nil
}

type runner struct {
	// stateOpened is set once the state dir was opened by this process.
	stateOpened bool
	// progressMarks counts durable steps (chunks copied, groups applied);
	// a retry incident ends when it moves.
	progressMarks atomic.Int64
	cfg           Config
	store         *checkpoint.Store
	log           *slog.Logger
	target        postgres.TargetName
	// mapping is what happens to the tables on the way to the sink,
	// resolved against the source's catalog on each run.
	mapping *mapping
	// chain is the transform stages, built for the run's tables.
	chain *transformChain
	// keysBuilt is set by fullCopy when every primary key the copied
	// tables lacked was built while it ran and every table had chunks to
	// copy: buildKeys then has nothing to look for.
	keysBuilt bool
	// mon keeps the live status; metrics is nil unless served.
	mon     *monitor
	metrics *metrics.Metrics
	// merge are the tables (by key) the full copy merges into rows already
	// at the sink (see IgnoreConflictingTables).
	merge map[string]bool
	// backfill runs backfill requests while the pipeline streams.
	backfill *backfiller
	// ddl is the streaming run's DDL replication (ddl.go).
	ddl *ddlRun
}

// observers are what watch a run from outside its stages: the status
// monitor, the metrics endpoint and the alerts.
type observers struct {
	mon     *monitor
	metrics *metrics.Metrics
	alerts  *alert.Alerter
	server  *metrics.Server
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// startObservers starts the status monitor (and, for an incremental
// pipeline, the slot watch) and the metrics endpoint. A metrics address
// that cannot be bound is an error before any work starts.
func startObservers(ctx context.Context, cfg *Config) (*observers, error) {
	o := &observers{alerts: alert.New(cfg.Name, cfg.Alerts, cfg.Log)}
	if cfg.MetricsListen != "" {
		o.metrics = metrics.New(cfg.Name)
		o.metrics.WatchThrottle(cfg.Throttle)
	}
	o.mon = newMonitor(cfg, o.metrics, o.alerts)
	if o.metrics != nil {
		srv, err := metrics.Listen(cfg.MetricsListen, o.metrics, func() any { return o.mon.snapshot() }, cfg.Log)
		if err != nil {
			o.alerts.Failure(ctx, err)
			return nil, err
		}
		o.server = srv
	}
	var mctx context.Context
	mctx, o.cancel = context.WithCancel(ctx)
	o.wg.Add(1)
	go func() { defer o.wg.Done(); o.mon.run(mctx) }()
	if cfg.Incremental {
		o.wg.Add(1)
		go func() { defer o.wg.Done(); o.mon.watchSlot(mctx, cfg.SlotCheckInterval) }()
	}
	return o, nil
}

// stop ends the observers: the final status is written, the metrics
// endpoint closed, and on failure (not on ctx's end) the failure alert
// delivered.
func (o *observers) stop(ctx context.Context, runErr error) {
	o.cancel()
	o.wg.Wait()
	o.mon.finish(runErr, runErr != nil && ctx.Err() != nil)
	if o.server != nil {
		_ = o.server.Close()
	}
	if runErr != nil && ctx.Err() == nil {
		o.alerts.Failure(ctx, runErr)
	}
	o.alerts.Wait()
}

// setPhase records the pipeline's phase in the state dir and in its status.
func (r *runner) setPhase(p checkpoint.Phase) error {
	if err := r.store.SetPhase(p); err != nil {
		return err
	}
	r.mon.setPhase(p)
	return nil
}

func (r *runner) run(ctx context.Context) (*Summary, error) {
	start := time.Now()
	sum := &Summary{Pipeline: r.cfg.Name}
	// The state dir opens while both databases are dialled; a run that
	// cannot connect closes it again and leaves nothing behind.
	opening, err := r.openStateAhead(ctx)
	if err != nil {
		return nil, err
	}
	src, dst, closeBoth, err := postgres.ConnectBoth(ctx, r.cfg.SourceDSN, r.cfg.SinkDSN)
	if err != nil {
		opening.abandon()
		return nil, err
	}
	defer closeBoth()
	if err := opening.wait(); err != nil {
		return nil, err
	}
	// Fence off sink sessions a killed earlier run may have left behind:
	// they must finish (commit or not) before this run reads the sink's
	// progress, or a late commit would be applied twice.
	if err := postgres.FenceSink(ctx, dst, r.cfg.Name); err != nil {
		return nil, err
	}
	if err := r.checkIdentity(ctx, src, dst); err != nil {
		return nil, err
	}
	// The state dir is this pipeline's and this process holds it: from now
	// on the status file there is ours to write.
	r.mon.setOwnsState()
	tables, err := r.discover(ctx, src)
	if err != nil {
		if postgres.IsConnectionError(err) {
			return nil, err
		}
		return nil, permanent(err)
	}
	if len(tables) == 0 {
		return nil, permanent(errors.New("the selected objects contain no tables: check the objects list (schema and table names are case-sensitive)"))
	}
	phase, err := r.store.Phase()
	if err != nil {
		return nil, err
	}
	// Resuming the stream with DDL capture, where conditions are compiled
	// for the tables as the stream has them (the catalog may be ahead).
	r.mapping, err = r.resolveMapping(ctx, src, tables, r.streamOwnsSchema(ctx, src, phase))
	if err != nil {
		return nil, err
	}
	r.target = r.mapping.rules.Table
	if r.chain, err = newTransformChain(ctx, src, &r.cfg, tables, true); err != nil {
		return nil, err
	}
	defer r.chain.Close()
	sum.Tables = len(tables)
	r.log.Info("tables selected", "pipeline", r.cfg.Name, "tables", len(tables))

	r.mon.setPhase(phase)
	if phase == checkpoint.PhaseNew {
		if err := r.setPhase(checkpoint.PhaseSchema); err != nil {
			return nil, err
		}
	}
	// Once streaming has started the copy is never revisited: the stream
	// keeps the copied rows current. A copy-only pipeline checks its chunks
	// on every run (finished ones are skipped).
	copyPending := r.cfg.Full && !(r.cfg.Incremental && (phase == checkpoint.PhaseStream || phase == checkpoint.PhaseDone))
	if r.cfg.Schema && r.streamOwnsSchema(ctx, src, phase) {
		r.log.Info("schema: streaming has begun with DDL capture: tables missing at the sink are created by the stream, in the order of its DDL")
	} else if r.cfg.Schema {
		if err := r.requireTablespaces(ctx, src, dst, tables); err != nil {
			return nil, err
		}
		if err := r.preData(ctx, src, dst, tables, copyPending, sum); err != nil {
			return nil, err
		}
	} else if err := r.requireSinkTables(ctx, dst, tables); err != nil {
		return nil, permanent(err)
	}

	if !copyPending {
		// For status: the tables' progress as earlier runs left it.
		prog, err := r.storedProgress(tables)
		if err != nil {
			return nil, err
		}
		r.mon.setProgress(prog)
	}
	var snapshotID string
	var copyLSN record.LSN
	release := func() {}
	if r.cfg.Incremental {
		snapshotID, copyLSN, release, err = r.prepareStreaming(ctx, src, dst, tables, copyPending)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	var ahead *sourceDumpAhead // the post-data dump, taken as the last chunks copy
	if copyPending {
		if phase != checkpoint.PhaseCopy {
			if err := r.setPhase(checkpoint.PhaseCopy); err != nil {
				return nil, err
			}
		}
		ahead = r.newSourceDumpAhead(tables)
		defer ahead.stop()
		err := r.fullCopy(ctx, src, dst, tables, snapshotID, copyLSN, sum, func() { ahead.start(ctx, src, dst) })
		release() // every worker has imported the snapshot by now
		if err != nil {
			return nil, err
		}
		set, err := r.syncSequences(ctx, src, dst, tables)
		if err != nil {
			return nil, err
		}
		sum.SequencesSet = len(set)
	}
	if r.cfg.Schema && copyPending && !r.keysBuilt {
		if err := r.buildKeys(ctx, src, dst, tables); err != nil {
			return nil, err
		}
	}
	if r.cfg.Schema {
		if err := r.postData(ctx, src, dst, tables, sum, ahead); err != nil {
			return nil, err
		}
	}
	if r.cfg.Incremental {
		if err := r.stream(ctx, src, tables, sum); err != nil {
			return nil, err
		}
	}
	if !r.cfg.Incremental {
		if err := r.setPhase(checkpoint.PhaseDone); err != nil {
			return nil, err
		}
	}
	sum.Duration = time.Since(start)
	return sum, nil
}
