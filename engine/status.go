package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine/alert"
	"github.com/sluicehq/sluice/engine/metrics"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/engine/throttle"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// StatusFile is the name, in the state dir, of the status snapshot a run
// writes about every second and once more when it ends. The state dir's
// badger store is locked by the running process; this file is how other
// processes (`sluice status`) see a live run.
const StatusFile = "status.json"

// Status is a snapshot of a run: what `sluice status` shows and /status
// serves. It never holds a DSN or a password.
type Status struct {
	Pipeline string `json:"pipeline"`
	// PID is the process of the run; Running is false once it ended.
	PID       int        `json:"pid"`
	Running   bool       `json:"running"`
	StartedAt time.Time  `json:"started_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// Error is why the run stopped, when it failed; Stopped is true when
	// it was stopped instead (a signal).
	Error   string `json:"error,omitempty"`
	Stopped bool   `json:"stopped,omitempty"`
	// Phase is the pipeline's lifecycle phase (new, schema, copy, stream,
	// done).
	Phase    string          `json:"phase"`
	Tables   []TableStatus   `json:"tables,omitempty"`
	Stream   *StreamStatus   `json:"stream,omitempty"`
	Slot     *SlotStatus     `json:"slot,omitempty"`
	Throttle *ThrottleStatus `json:"throttle,omitempty"`
	// Retries counts the errors retried so far by this run.
	Retries int `json:"retries"`
}

// TableStatus is one table's full-copy progress.
type TableStatus struct {
	Table      string `json:"table"`
	Chunks     int    `json:"chunks"`
	ChunksDone int    `json:"chunks_done"`
	Rows       int64  `json:"rows"`
	Bytes      int64  `json:"bytes"`
	EstRows    int64  `json:"est_rows"`
}

// StreamStatus describes streaming.
type StreamStatus struct {
	AppliedLSN   string     `json:"applied_lsn"`
	LastCommitAt *time.Time `json:"last_commit_at,omitempty"`
	Transactions int64      `json:"transactions"`
	Rows         int64      `json:"rows"`
	SinkCommits  int64      `json:"sink_commits"`
	LagSeconds   float64    `json:"lag_seconds"`
	LagBytes     int64      `json:"lag_bytes"`
	// DDLApplied counts the DDL events applied at the sink, DDLWarnings
	// the DDL statements not (or not wholly) replicated.
	DDLApplied  int64 `json:"ddl_applied"`
	DDLWarnings int64 `json:"ddl_warnings"`
}

// SlotStatus is the replication slot as last read by the run.
type SlotStatus struct {
	Name          string    `json:"name"`
	ConfirmedLSN  string    `json:"confirmed_lsn"`
	RetainedBytes int64     `json:"retained_wal_bytes"`
	ActivePID     int       `json:"active_pid,omitempty"`
	CheckedAt     time.Time `json:"checked_at"`
}

// ThrottleStatus are the limits in force.
type ThrottleStatus struct {
	Full        LimitsStatus `json:"full"`
	Incremental LimitsStatus `json:"incremental"`
}

// LimitsStatus are one phase's limits; zero is no limit.
type LimitsStatus struct {
	RowsPerSec float64 `json:"rows_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	SourceQPS  float64 `json:"source_qps,omitempty"`
}

func limitsStatus(l throttle.Limits) LimitsStatus {
	return LimitsStatus{RowsPerSec: l.Rows, MBPerSec: l.Bytes / throttle.MiB, SourceQPS: l.Queries}
}

// ReadStatus reads the status snapshot of the state dir; found is false
// when there is none.
func ReadStatus(stateDir string) (st *Status, found bool, err error) {
	raw, err := os.ReadFile(filepath.Join(stateDir, StatusFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read status: %w", err)
	}
	st = &Status{}
	if err := json.Unmarshal(raw, st); err != nil {
		return nil, false, fmt.Errorf("read status %s: %w", filepath.Join(stateDir, StatusFile), err)
	}
	return st, true, nil
}

// writeStatusFile writes st atomically: a temporary file renamed over the
// old one, so a reader never sees half a file.
func writeStatusFile(dir string, st *Status) error {
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, StatusFile+".tmp")
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, StatusFile))
}

// monitor follows a run across its retries: it keeps the live status,
// feeds lag and slot figures to metrics and alerts, and writes the status
// file every second once the run holds the state dir.
type monitor struct {
	cfg     *Config
	log     *slog.Logger
	metrics *metrics.Metrics
	alerts  *alert.Alerter

	mu          sync.Mutex
	st          Status
	prog        *progress
	streaming   bool
	lastCommit  time.Time // source commit time of the last applied transaction
	behindSince time.Time // commit time of the first received transaction not yet applied
	ownsState   bool      // this process opened the state dir: its status file is ours
	// Streaming counters of the sessions before the current one (each
	// retry starts a session with its own counters), and the current's.
	before, session StreamStats
}

func newMonitor(cfg *Config, m *metrics.Metrics, a *alert.Alerter) *monitor {
	now := time.Now().UTC()
	return &monitor{cfg: cfg, log: cfg.Log, metrics: m, alerts: a,
		st: Status{Pipeline: cfg.Name, PID: os.Getpid(), Running: true, StartedAt: now, UpdatedAt: now, Phase: string(checkpoint.PhaseNew)}}
}

func (m *monitor) setOwnsState() {
	m.mu.Lock()
	m.ownsState = true
	m.mu.Unlock()
}

func (m *monitor) setPhase(p checkpoint.Phase) {
	m.mu.Lock()
	m.st.Phase = string(p)
	m.mu.Unlock()
	m.metrics.SetPhase(string(p))
}

func (m *monitor) setProgress(p *progress) {
	m.mu.Lock()
	m.prog = p
	m.mu.Unlock()
}

func (m *monitor) retried(class string) {
	m.mu.Lock()
	m.st.Retries++
	m.mu.Unlock()
	m.metrics.Retry(class)
}

// streamStarted marks the start of a streaming session, whose counters
// start at zero.
func (m *monitor) streamStarted() {
	m.mu.Lock()
	m.streaming = true
	m.before.Transactions += m.session.Transactions
	m.before.Rows += m.session.Rows
	m.before.SinkCommits += m.session.SinkCommits
	m.session = StreamStats{}
	if m.st.Stream == nil {
		m.st.Stream = &StreamStatus{}
	}
	m.mu.Unlock()
}

// received notes a transaction received but not yet applied, so that lag
// is known before the first group of a session is applied.
func (m *monitor) received(commitTime time.Time) {
	m.mu.Lock()
	if m.lastCommit.IsZero() && m.behindSince.IsZero() {
		m.behindSince = commitTime
	}
	m.mu.Unlock()
}

// applied records a sink commit of the stream.
func (m *monitor) applied(stats StreamStats, commitTime time.Time) {
	m.mu.Lock()
	m.lastCommit = commitTime
	m.behindSince = time.Time{}
	m.setStreamLocked(stats)
	m.mu.Unlock()
}

// streamStats records the stream's figures (lag in bytes included).
func (m *monitor) streamStats(stats StreamStats) {
	m.mu.Lock()
	m.setStreamLocked(stats)
	m.mu.Unlock()
}

func (m *monitor) setStreamLocked(stats StreamStats) {
	if m.st.Stream == nil {
		m.st.Stream = &StreamStatus{}
	}
	m.session = stats
	s := m.st.Stream
	s.AppliedLSN = lsnText(stats.LastCommit)
	s.Transactions = m.before.Transactions + stats.Transactions
	s.Rows = m.before.Rows + stats.Rows
	s.SinkCommits = m.before.SinkCommits + stats.SinkCommits
	s.LagBytes = stats.LagBytes
}

// lag is the replication lag in seconds: the age of the last applied
// source commit, or before the first one of this run, of the oldest
// transaction waiting.
func (m *monitor) lagLocked(now time.Time) float64 {
	switch {
	case !m.streaming:
		return 0
	case !m.lastCommit.IsZero():
		return max(now.Sub(m.lastCommit).Seconds(), 0)
	case !m.behindSince.IsZero():
		return max(now.Sub(m.behindSince).Seconds(), 0)
	}
	return 0
}

// lagSeconds returns the current lag.
func (m *monitor) lagSeconds() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lagLocked(time.Now())
}

func (m *monitor) setSlot(s postgres.SlotState) {
	m.mu.Lock()
	m.st.Slot = &SlotStatus{Name: postgres.SlotName(m.cfg.Name), ConfirmedLSN: s.ConfirmedFlush.String(),
		RetainedBytes: s.RetainedBytes, ActivePID: s.ActivePID, CheckedAt: time.Now().UTC()}
	m.mu.Unlock()
	m.metrics.SetSlotRetained(s.RetainedBytes)
}

// snapshot returns the current status.
func (m *monitor) snapshot() *Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snapshotLocked(time.Now())
}

func (m *monitor) snapshotLocked(now time.Time) *Status {
	st := m.st
	st.UpdatedAt = now.UTC()
	st.Tables = m.prog.tableStatus()
	if m.st.Stream != nil {
		s := *m.st.Stream
		s.LagSeconds = round1(m.lagLocked(now))
		if !m.lastCommit.IsZero() {
			t := m.lastCommit.UTC()
			s.LastCommitAt = &t
		}
		st.Stream = &s
	}
	if m.st.Slot != nil {
		s := *m.st.Slot
		st.Slot = &s
	}
	if t := m.cfg.Throttle; t != nil {
		st.Throttle = &ThrottleStatus{Full: limitsStatus(t.Full.Limits()), Incremental: limitsStatus(t.Incremental.Limits())}
	}
	return &st
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// tick updates lag metrics and alerts and writes the status file.
func (m *monitor) tick(ctx context.Context) {
	m.mu.Lock()
	now := time.Now()
	lag := m.lagLocked(now)
	streaming := m.streaming
	var lagBytes int64
	if m.st.Stream != nil {
		lagBytes = m.st.Stream.LagBytes
	}
	st := m.snapshotLocked(now)
	owns := m.ownsState
	m.mu.Unlock()
	if streaming {
		m.metrics.SetLag(lag, lagBytes)
		m.alerts.Lag(ctx, lag)
	}
	if owns {
		if err := writeStatusFile(m.cfg.StateDir, st); err != nil {
			m.log.Debug("cannot write the status file", "error", err)
		}
	}
}

// run ticks every second until ctx ends.
func (m *monitor) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.tick(ctx)
		}
	}
}

// watchSlot reads the slot's state at the source every interval, for the
// retained-WAL metric and status. Failures are logged at debug level: the
// stream reports real trouble.
func (m *monitor) watchSlot(ctx context.Context, interval time.Duration) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	for {
		wait := interval
		if conn == nil || conn.IsClosed() {
			c, err := postgres.Connect(ctx, m.cfg.SourceDSN, "source")
			if err != nil {
				m.log.Debug("slot monitor: cannot connect to the source", "error", err)
			} else {
				conn = c
			}
		}
		if conn != nil {
			st, err := postgres.ReadSlot(ctx, conn, postgres.SlotName(m.cfg.Name))
			switch {
			case err != nil && ctx.Err() == nil:
				m.log.Debug("slot monitor: read slot", "error", err)
				conn.Close(context.WithoutCancel(ctx))
				conn = nil
			case err == nil && st.Exists:
				m.setSlot(st)
			case err == nil:
				wait = time.Second // the run is about to create it
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// finish writes the final status: the run is over, with its error if it
// failed, or stopped when its context ended.
func (m *monitor) finish(runErr error, stopped bool) {
	m.mu.Lock()
	now := time.Now()
	m.st.Running = false
	end := now.UTC()
	m.st.EndedAt = &end
	switch {
	case stopped:
		m.st.Stopped = true
	case runErr != nil:
		m.st.Error = runErr.Error()
	}
	st := m.snapshotLocked(now)
	owns := m.ownsState
	m.mu.Unlock()
	if owns {
		if err := writeStatusFile(m.cfg.StateDir, st); err != nil {
			m.log.Warn("cannot write the status file", "error", err)
		}
	}
}

// Report is what `sluice status` shows: the run's last status snapshot
// (or, with none, what the state dir holds), and what the source and the
// sink say now.
type Report struct {
	Pipeline string `json:"pipeline"`
	StateDir string `json:"state_dir"`
	// Live is true while a run of the pipeline is going on.
	Live bool `json:"live"`
	// Note says where Run came from, or why it is missing or stale.
	Note   string        `json:"note,omitempty"`
	Run    *Status       `json:"run,omitempty"`
	Source *SourceReport `json:"source"`
	Sink   *SinkReport   `json:"sink"`
	// Backfills are the unfinished backfill requests (BackfillError says
	// why they could not be read).
	Backfills     []BackfillReport `json:"backfills,omitempty"`
	BackfillError string           `json:"backfill_error,omitempty"`
}

// SourceReport is the pipeline's replication slot as the source sees it.
type SourceReport struct {
	Error         string `json:"error,omitempty"`
	Slot          string `json:"slot"`
	SlotExists    bool   `json:"slot_exists"`
	ConfirmedLSN  string `json:"confirmed_lsn,omitempty"`
	RetainedBytes int64  `json:"retained_wal_bytes"`
	Active        bool   `json:"active"`
	ActivePID     int    `json:"active_pid,omitempty"`
}

// SinkReport is the pipeline's applied position as the sink records it.
type SinkReport struct {
	Error      string     `json:"error,omitempty"`
	AppliedLSN string     `json:"applied_lsn,omitempty"`
	EndLSN     string     `json:"end_lsn,omitempty"`
	AppliedAt  *time.Time `json:"applied_at,omitempty"`
	// CopiedChunks counts the chunks of the full copy committed at the sink.
	CopiedChunks int64 `json:"copied_chunks"`
}

// staleAfter is how old a running run's status may get before status
// calls it stale (it is rewritten every second).
const staleAfter = 30 * time.Second

// Inspect gathers the pipeline's status without disturbing a live run: the
// run's status file, then the slot at the source and the applied position
// at the sink. Unreachable databases are reported in the report, not as an
// error.
func Inspect(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rep := &Report{Pipeline: cfg.Name, StateDir: cfg.StateDir}
	st, found, err := ReadStatus(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	switch {
	case found:
		rep.Run = st
		alive := st.Running && processAlive(st.PID)
		switch {
		case alive && time.Since(st.UpdatedAt) > staleAfter:
			rep.Live = true
			rep.Note = fmt.Sprintf("the run (pid %d) has not updated its status for %s", st.PID, time.Since(st.UpdatedAt).Round(time.Second))
		case alive:
			rep.Live = true
		case st.Running:
			rep.Note = fmt.Sprintf("the run (pid %d) ended without recording it (killed?); figures are from %s", st.PID, st.UpdatedAt.Format(time.RFC3339))
		}
	default:
		rep.Run, rep.Live, rep.Note, err = inspectState(ctx, cfg)
		if err != nil {
			return nil, err
		}
	}
	rep.Source = inspectSource(ctx, cfg)
	rep.Sink = inspectSink(ctx, cfg)
	if rep.Source.Error == "" {
		rep.Backfills, rep.BackfillError = inspectBackfills(ctx, cfg)
	}
	return rep, nil
}

// inspectState reads the state dir's store when there is no status file
// (a state dir written before status files existed). A live run holds the
// store's lock; then there is nothing to read.
func inspectState(ctx context.Context, cfg Config) (*Status, bool, string, error) {
	if _, err := os.Stat(cfg.StateDir); errors.Is(err, os.ErrNotExist) {
		return nil, false, "no local state: the pipeline has not run yet", nil
	}
	store, err := checkpoint.Open(ctx, cfg.StateDir, cfg.Log)
	var inUse *checkpoint.InUseError
	if errors.As(err, &inUse) {
		return nil, true, "a run holds the state dir and has not written its status yet", nil
	}
	if err != nil {
		return nil, false, "", err
	}
	defer store.Close()
	phase, err := store.Phase()
	if err != nil {
		return nil, false, "", err
	}
	st := &Status{Pipeline: cfg.Name, Phase: string(phase)}
	plans, err := store.TablePlans()
	if err != nil {
		return nil, false, "", err
	}
	for _, p := range plans {
		done, err := store.DoneChunks(p.Table)
		if err != nil {
			return nil, false, "", err
		}
		ts := TableStatus{Table: p.Table, Chunks: len(p.Chunks), ChunksDone: len(done)}
		for _, c := range p.Chunks {
			ts.EstRows += c.EstRows
		}
		for _, d := range done {
			ts.Rows += d.Rows
			ts.Bytes += d.Bytes
		}
		st.Tables = append(st.Tables, ts)
	}
	sort.Slice(st.Tables, func(i, j int) bool { return st.Tables[i].Table < st.Tables[j].Table })
	return st, false, "from the state dir (no status file)", nil
}

func inspectSource(ctx context.Context, cfg Config) *SourceReport {
	rep := &SourceReport{Slot: postgres.SlotName(cfg.Name)}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := postgres.Connect(ctx, cfg.SourceDSN, "source")
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	defer conn.Close(context.WithoutCancel(ctx))
	s, err := postgres.ReadSlot(ctx, conn, rep.Slot)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	rep.SlotExists = s.Exists
	if s.Exists {
		rep.ConfirmedLSN = s.ConfirmedFlush.String()
		rep.RetainedBytes, rep.Active, rep.ActivePID = s.RetainedBytes, s.Active, s.ActivePID
	}
	return rep
}

func inspectSink(ctx context.Context, cfg Config) *SinkReport {
	rep := &SinkReport{}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := postgres.Connect(ctx, cfg.SinkDSN, "sink")
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var lsn, end *string
	var at *time.Time
	err = conn.QueryRow(ctx, `SELECT lsn::text, end_lsn::text, updated_at FROM sluice.apply_progress WHERE pipeline = $1`, cfg.Name).Scan(&lsn, &end, &at)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || isUndefinedTable(err):
	case err != nil:
		rep.Error = fmt.Sprintf("sink: read sluice.apply_progress: %v", err)
		return rep
	default:
		if lsn != nil {
			rep.AppliedLSN = *lsn
		}
		if end != nil {
			rep.EndLSN = *end
		}
		if at != nil {
			t := at.UTC()
			rep.AppliedAt = &t
		}
	}
	err = conn.QueryRow(ctx, `SELECT count(*) FROM sluice.copy_progress WHERE pipeline = $1`, cfg.Name).Scan(&rep.CopiedChunks)
	if err != nil && !isUndefinedTable(err) {
		rep.Error = fmt.Sprintf("sink: read sluice.copy_progress: %v", err)
	}
	return rep
}

func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000")
}

// processAlive reports whether a process with this id exists on this
// machine.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// lsnText renders an LSN, empty for none.
func lsnText(l record.LSN) string {
	if l == 0 {
		return ""
	}
	return l.String()
}
