package engine

// Cutover: the last step of a move. The source may be locked against
// writes first; then the sink catches up with everything committed at the
// source (with a live `sluice run` streaming, by waiting for it; without
// one, by streaming here until caught up); then the sink's sequences take
// the source's values; then a report says what was done and what to do
// next. Every step is idempotent, so a cutover can be run again.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// CutoverOptions tune a cutover.
type CutoverOptions struct {
	// Timeout bounds the whole cutover (locking, waiting for writers,
	// catching up); zero means 10 minutes.
	Timeout time.Duration
	// LockSource revokes write privileges on the selected tables at the
	// source from every role but superusers before catching up.
	LockSource bool
	// NoCount skips counting every table's rows on both sides (exact
	// counts read whole tables).
	NoCount bool
}

// CutoverReport is what a cutover did.
type CutoverReport struct {
	Pipeline string `json:"pipeline"`
	// SourceLSN is the source's WAL position taken after the lock (if
	// any): everything committed before it is at the sink.
	SourceLSN string `json:"source_lsn"`
	// AppliedLSN is the sink's applied position at the end (>= SourceLSN);
	// LagBytesBefore how far behind the sink was when the cutover began.
	AppliedLSN     string `json:"applied_lsn"`
	LagBytesBefore int64  `json:"lag_bytes_before"`
	LagBytes       int64  `json:"lag_bytes"`
	// CaughtUpSeconds is how long catching up took.
	CaughtUpSeconds float64 `json:"caught_up_seconds"`
	// StreamedHere is true when no `sluice run` was live and the cutover
	// streamed the changes itself.
	StreamedHere bool `json:"streamed_here"`
	// Tables are the selected tables with their row counts on both sides.
	Tables []CutoverTable `json:"tables"`
	// Sequences are the sink sequences set to the source's values.
	Sequences []CutoverSequence `json:"sequences"`
	// SourceLocked is true when write privileges were revoked (now or by
	// an earlier cutover); Revoked lists every privilege revoked and not
	// given back yet, RevokedNow those this run revoked.
	SourceLocked bool               `json:"source_locked"`
	Revoked      []postgres.Revoked `json:"revoked,omitempty"`
	RevokedNow   int                `json:"revoked_now"`
	// Superusers can still write at the source (privileges do not apply
	// to them), and members of pg_write_all_data (named so).
	Superusers []string `json:"superusers,omitempty"`
	// Mismatched names tables whose row counts differ (and are expected
	// to be equal: no row filter or operation limit).
	Mismatched []string `json:"mismatched,omitempty"`
	// Next is what to do now, in order.
	Next []string `json:"next"`
}

// CutoverTable is one selected table's row counts (-1 when not counted).
type CutoverTable struct {
	Source     string `json:"source"`
	Sink       string `json:"sink"`
	SourceRows int64  `json:"source_rows"`
	SinkRows   int64  `json:"sink_rows"`
	// Filtered is true when a row filter or an operations limit makes the
	// counts differ by design.
	Filtered bool `json:"filtered,omitempty"`
}

// CutoverSequence is one sink sequence set at cutover.
type CutoverSequence struct {
	Source    string `json:"source"`
	Sink      string `json:"sink"`
	LastValue int64  `json:"last_value"`
	IsCalled  bool   `json:"is_called"`
	// Kept is true when the sink's sequence was already past the source's
	// and kept its value (LastValue is the sink's).
	Kept bool `json:"kept,omitempty"`
}

// Cutover runs a cutover of the pipeline (see the file comment). It needs
// a streaming pipeline (sync.incremental).
func Cutover(ctx context.Context, cfg Config, opts CutoverOptions) (*CutoverReport, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Minute
	}
	tctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	rep, err := cutover(tctx, cfg, opts)
	if err != nil && ctx.Err() == nil && tctx.Err() != nil && !strings.Contains(err.Error(), "--timeout") {
		locked := false
		if src, cerr := postgres.Connect(ctx, cfg.SourceDSN, "source"); cerr == nil {
			revoked, _ := postgres.RevokedPrivileges(ctx, src, cfg.Name)
			locked = len(revoked) > 0
			src.Close(context.WithoutCancel(ctx))
		}
		return nil, cutoverTimeout(fmt.Errorf("%w: %w", err, context.DeadlineExceeded), opts, locked)
	}
	return rep, err
}

func cutover(ctx context.Context, cfg Config, opts CutoverOptions) (*CutoverReport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if !cfg.Incremental {
		return nil, errors.New("cutover needs a streaming pipeline (sync.incremental: true): without streaming the sink is only as current as the last full copy")
	}
	rep := &CutoverReport{Pipeline: cfg.Name}
	src, dst, closeBoth, err := postgres.ConnectBoth(ctx, cfg.SourceDSN, cfg.SinkDSN)
	if err != nil {
		return nil, err
	}
	defer closeBoth()
	tables, err := postgres.Discover(ctx, src, cfg.Objects)
	if err != nil {
		return nil, err
	}
	if len(tables) == 0 {
		return nil, errors.New("the selected objects contain no tables: check the objects list")
	}
	m, err := resolveMapping(ctx, src, &cfg, tables)
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, log: cfg.Log, mapping: m, target: m.rules.Table}

	if opts.LockSource {
		oids := make([]uint32, len(tables))
		for i, t := range tables {
			oids[i] = t.OID
		}
		now, supers, err := postgres.LockSource(ctx, src, cfg.Name, oids)
		if err != nil {
			return nil, err
		}
		rep.RevokedNow, rep.Superusers = len(now), supers
		r.log.Info("cutover: write privileges revoked at the source", "revoked", len(now))
		if err := postgres.WaitWriters(ctx, src); err != nil {
			return nil, cutoverTimeout(err, opts, true)
		}
	}
	if rep.Revoked, err = postgres.RevokedPrivileges(ctx, src, cfg.Name); err != nil {
		return nil, err
	}
	rep.SourceLocked = len(rep.Revoked) > 0

	began := time.Now()
	if err := r.catchUp(ctx, src, dst, rep, opts); err != nil {
		return nil, cutoverTimeout(err, opts, rep.SourceLocked)
	}
	rep.CaughtUpSeconds = round1(time.Since(began).Seconds())

	set, err := r.syncSequences(ctx, src, dst, tables)
	if err != nil {
		return nil, err
	}
	for _, s := range set {
		rep.Sequences = append(rep.Sequences, CutoverSequence{Source: s.Source.String(), Sink: s.Sink.String(), LastValue: s.Value, IsCalled: s.IsCalled, Kept: s.Kept})
	}
	if opts.NoCount {
		for _, t := range tables {
			if !t.Partitioned {
				rep.Tables = append(rep.Tables, CutoverTable{Source: t.Name.String(), Sink: r.target(t.Name).String(), SourceRows: -1, SinkRows: -1})
			}
		}
	} else if err := r.countRows(ctx, src, dst, tables, rep); err != nil {
		return nil, err
	}
	rep.Next = cutoverNext(rep)
	return rep, nil
}

// catchUp makes the sink apply everything committed at the source up to
// now: it writes the heartbeat and waits for a live run to apply past it,
// or, when no run is live, streams until caught up itself.
func (r *runner) catchUp(ctx context.Context, src, dst *pgx.Conn, rep *CutoverReport, opts CutoverOptions) error {
	target, err := postgres.Heartbeat(ctx, src, r.cfg.Name)
	if err != nil {
		// No heartbeat table: the pipeline never streamed. Run it (copy
		// and all) until caught up, then measure.
		if !r.live() {
			if err := r.streamHere(ctx, rep); err != nil {
				return err
			}
			target, err = postgres.Heartbeat(ctx, src, r.cfg.Name)
		}
		if err != nil {
			return fmt.Errorf("%w (has the pipeline run? start it with `sluice run`)", err)
		}
	}
	rep.SourceLSN = target.String()
	applied, err := sinkApplied(ctx, dst, r.cfg.Name)
	if err != nil {
		return err
	}
	if target > applied {
		rep.LagBytesBefore = int64(target - applied)
	}
	for applied < target {
		if !r.live() {
			// The run ended or never ran: stream here. Its own target is
			// taken after ours, so it ends past ours.
			if err := r.streamHere(ctx, rep); err != nil {
				return err
			}
		} else {
			select {
			case <-ctx.Done():
				return fmt.Errorf("the sink has applied up to %s, the source is at %s (%d bytes behind): %w", applied, target, int64(target-applied), ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
		if applied, err = sinkApplied(ctx, dst, r.cfg.Name); err != nil {
			return err
		}
	}
	rep.AppliedLSN = applied.String()
	return nil
}

// streamHere runs the pipeline until caught up (as `run
// --until-caught-up`).
func (r *runner) streamHere(ctx context.Context, rep *CutoverReport) error {
	rep.StreamedHere = true
	cfg := r.cfg
	cfg.UntilCaughtUp = true
	r.log.Info("cutover: no `sluice run` is live; streaming until caught up")
	_, err := Run(ctx, cfg)
	var inUse *checkpoint.InUseError
	if errors.As(err, &inUse) {
		// A run started meanwhile (or has not written its status yet):
		// wait for it.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		return nil
	}
	return err
}

// live reports whether a `sluice run` of the pipeline is running now.
func (r *runner) live() bool {
	st, found, err := ReadStatus(r.cfg.StateDir)
	return err == nil && found && st.Running && processAlive(st.PID)
}

// sinkApplied reads the sink's applied position (0 when nothing was
// applied yet).
func sinkApplied(ctx context.Context, dst *pgx.Conn, pipeline string) (record.LSN, error) {
	var lsn *string
	err := dst.QueryRow(ctx, `SELECT lsn::text FROM sluice.apply_progress WHERE pipeline = $1`, pipeline).Scan(&lsn)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || isUndefinedTable(err):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("sink: read sluice.apply_progress: %w", err)
	case lsn == nil:
		return 0, nil
	}
	return record.ParseLSN(*lsn)
}

// countRows counts every selected table's rows on both sides (partitioned
// parents through their partitions).
func (r *runner) countRows(ctx context.Context, src, dst *pgx.Conn, tables []*postgres.Table, rep *CutoverReport) error {
	for _, t := range tables {
		if t.Partitioned {
			continue
		}
		sink := r.target(t.Name)
		ct := CutoverTable{Source: t.Name.String(), Sink: sink.String()}
		if o := r.mapping.opts[t.OID]; o != nil && (o.filter != nil || o.ops != opAll) {
			ct.Filtered = true
		}
		if err := src.QueryRow(ctx, "SELECT count(*) FROM ONLY "+t.Name.Quoted()).Scan(&ct.SourceRows); err != nil {
			return fmt.Errorf("source: count the rows of %s: %w", t.Name, err)
		}
		if err := dst.QueryRow(ctx, "SELECT count(*) FROM ONLY "+sink.Quoted()).Scan(&ct.SinkRows); err != nil {
			return fmt.Errorf("sink: count the rows of %s: %w", sink, err)
		}
		if !ct.Filtered && ct.SourceRows != ct.SinkRows {
			rep.Mismatched = append(rep.Mismatched, fmt.Sprintf("%s (source %d rows, sink %s %d)", t.Name, ct.SourceRows, sink, ct.SinkRows))
		}
		rep.Tables = append(rep.Tables, ct)
	}
	return nil
}

// cutoverTimeout turns a deadline into an error that says what to do.
func cutoverTimeout(err error, opts CutoverOptions, locked bool) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	msg := fmt.Sprintf("cutover did not finish within --timeout %s: %v; see `sluice status` for the stream's lag, then run cutover again (with a longer --timeout)", opts.Timeout, err)
	if locked {
		msg += "; the source stays locked (write privileges revoked): `sluice cutover --unlock-source` grants them back"
	}
	return errors.New(msg)
}

// cutoverNext says what to do after a cutover.
func cutoverNext(rep *CutoverReport) []string {
	var next []string
	if len(rep.Mismatched) > 0 {
		next = append(next, "row counts differ for some tables (see above): find out why (`sluice verify`) before switching")
	}
	if !rep.SourceLocked {
		next = append(next, "stop the application's writes to the source (or run cutover again with --lock-source), then run cutover again so nothing written meanwhile is left behind")
	}
	next = append(next,
		"point the application at the sink",
		"stop `sluice run` if it is running (the sink must not receive more changes once the application writes there)",
		"run `sluice drop` to remove the slot, publication and helper objects at the source (they hold WAL until dropped)")
	if rep.SourceLocked {
		next = append(next, "to give the source its write privileges back (for a rollback): `sluice cutover --unlock-source`, before `sluice drop`")
	}
	return next
}

// UnlockSource grants back the write privileges earlier cutovers of the
// pipeline revoked at the source, and returns them; gone lists those that
// could not be granted (the table or role no longer exists).
func UnlockSource(ctx context.Context, cfg Config) (granted []postgres.Revoked, gone []string, err error) {
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	src, err := postgres.Connect(ctx, cfg.SourceDSN, "source")
	if err != nil {
		return nil, nil, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	return postgres.UnlockSource(ctx, src, cfg.Name)
}
