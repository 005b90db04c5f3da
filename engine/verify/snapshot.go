package verify

import (
	"context"
	"fmt"
	"regexp"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// A comparison reads each database at one consistent point: one
// transaction per side exports its snapshot, and every worker's connection
// to that side imports it. The same is done at the source and at the sink.

var snapshotIDPattern = regexp.MustCompile(`^[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+$`)

// exportSnapshot starts a repeatable-read, read-only transaction on conn
// and exports its snapshot. The snapshot lives while the transaction does.
func exportSnapshot(ctx context.Context, conn *pgx.Conn, role string) (string, error) {
	if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return "", fmt.Errorf("%s: begin snapshot transaction: %w", role, err)
	}
	var id string
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.pg_export_snapshot()").Scan(&id); err != nil {
		return "", fmt.Errorf("%s: export snapshot: %w", role, err)
	}
	return id, nil
}

// importSnapshot ends conn's transaction, if any, and starts a
// repeatable-read, read-only one that sees the exported snapshot id.
func importSnapshot(ctx context.Context, conn *pgx.Conn, role, id string) error {
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		return fmt.Errorf("%s: end transaction: %w", role, err)
	}
	if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return fmt.Errorf("%s: begin transaction: %w", role, err)
	}
	// SET TRANSACTION SNAPSHOT takes no parameters; the id is checked
	// against the shape PostgreSQL gives it before it is quoted in.
	if !snapshotIDPattern.MatchString(id) {
		return fmt.Errorf("%s: malformed snapshot id %q", role, id)
	}
	if _, err := conn.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+id+"'"); err != nil {
		return fmt.Errorf("%s: import snapshot %s: %w", role, id, err)
	}
	return nil
}

// endTransaction rolls back conn's open transaction (a snapshot's
// exporter, once every worker has imported it).
func endTransaction(ctx context.Context, conn *pgx.Conn) {
	_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
}

// worker holds one connection to each side, both inside the current
// round's snapshots.
type worker struct {
	src, dst *pgx.Conn
}

// pool is the workers and the two connections that export the snapshots.
type pool struct {
	srcExp, dstExp *pgx.Conn
	workers        []*worker
}

func openPool(ctx context.Context, cfg *Config, srcExp, dstExp *pgx.Conn) (*pool, error) {
	p := &pool{srcExp: srcExp, dstExp: dstExp}
	for range cfg.Parallel {
		w := &worker{}
		p.workers = append(p.workers, w)
		var err error
		if w.src, err = postgres.Connect(ctx, cfg.SourceDSN, "source"); err != nil {
			p.close(ctx)
			return nil, err
		}
		if w.dst, err = postgres.Connect(ctx, cfg.SinkDSN, "sink"); err != nil {
			p.close(ctx)
			return nil, err
		}
	}
	return p, nil
}

func (p *pool) close(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	for _, w := range p.workers {
		for _, c := range []*pgx.Conn{w.src, w.dst} {
			if c != nil {
				_, _ = c.Exec(ctx, "ROLLBACK")
				c.Close(ctx)
			}
		}
	}
}

// snapshot moves every worker to a new consistent point: a fresh snapshot
// of the source, then of the sink (which, behind a streaming pipeline,
// lags the source).
func (p *pool) snapshot(ctx context.Context) error {
	srcID, err := exportSnapshot(ctx, p.srcExp, "source")
	if err != nil {
		return err
	}
	defer endTransaction(ctx, p.srcExp)
	dstID, err := exportSnapshot(ctx, p.dstExp, "sink")
	if err != nil {
		return err
	}
	defer endTransaction(ctx, p.dstExp)
	for _, w := range p.workers {
		if err := importSnapshot(ctx, w.src, "source", srcID); err != nil {
			return err
		}
		if err := importSnapshot(ctx, w.dst, "sink", dstID); err != nil {
			return err
		}
	}
	return nil
}

// run runs the jobs on the workers, at most one job per worker at a time,
// and returns the first error (which cancels the jobs not yet started and
// the context of the running ones).
func (p *pool) run(ctx context.Context, jobs []func(context.Context, *worker) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan func(context.Context, *worker) error)
	var wg sync.WaitGroup
	for _, w := range p.workers {
		wg.Go(func() {
			for job := range next {
				if ctx.Err() != nil {
					continue
				}
				if err := job(ctx, w); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for _, j := range jobs {
		select {
		case next <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// both runs f for the source and the sink at the same time.
func both(f func(src bool) error) error {
	errc := make(chan error, 1)
	go func() { errc <- f(true) }()
	err := f(false)
	if serr := <-errc; serr != nil {
		return serr
	}
	return err
}
