package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// planSchema plans the pre-data schema. When the full copy is still to run,
// the primary keys of the plain tables it creates are left for after the
// data (keyBuilder, buildKeys).
func (r *runner) planSchema(ctx context.Context, src, dst *pgx.Conn, tables []*postgres.Table, copyPending bool) (*postgres.SchemaPlan, error) {
	if copyPending {
		return postgres.PlanMissingDeferKeys(ctx, src, dst, tables, r.target, r.mapping.rules.Column)
	}
	return postgres.PlanMissingMapped(ctx, src, dst, tables, r.target, r.mapping.rules.Column)
}

// buildKeys adds, after the full copy, the primary keys the sink tables
// still lack, several tables at once (copy.parallel connections), before
// post-data (whose foreign keys need them) and streaming (which finds rows
// by them). It builds only what is missing, so a run interrupted here
// builds the rest the next time.
func (r *runner) buildKeys(ctx context.Context, src, dst *pgx.Conn, tables []*postgres.Table) error {
	builds, err := postgres.MissingKeys(ctx, src, dst, tables, r.target, r.mapping.rules.Column)
	if err != nil || len(builds) == 0 {
		return err
	}
	start := time.Now()
	r.log.Info("building primary keys after the copy", "keys", len(builds), "workers", min(r.cfg.Parallel, len(builds)))
	err = postgres.BuildKeys(ctx, r.cfg.SinkDSN, r.cfg.Name, builds, r.cfg.Parallel, func(b postgres.KeyBuild) {
		r.log.Debug("primary key built", "table", b.Table.String(), "key", b.Name)
	})
	if err != nil {
		return r.keyError(err)
	}
	r.log.Info("primary keys built", "keys", len(builds), "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

func (r *runner) keyError(err error) error {
	if postgres.IsConnectionError(err) || errors.Is(err, context.Canceled) {
		return err
	}
	return permanent(err)
}

// keyBuilder builds a table's primary key as soon as the last of its
// chunks is copied, while the other tables are still copying, so the
// copy's tail (fewer chunks left than workers) keeps every core busy.
// Keys it does not get to are built by buildKeys after the copy.
type keyBuilder struct {
	r      *runner
	ctx    context.Context
	cancel context.CancelFunc // stops the builds when the copy fails
	mu     sync.Mutex
	left   map[uint32]int               // source table OID -> chunks still to copy in this run
	total  int                          // chunks still to copy in this run, all tables
	builds map[uint32]postgres.KeyBuild // keys missing at the sink, by source table OID
	small  map[uint32]bool              // tables whose key builds in moments (smallKeyTable)
	wg     sync.WaitGroup
	sem    chan struct{} // big builds at once: they compete with the copy for cores
	// smallSem bounds small builds apart: each holds a sink connection,
	// and a schema of many small tables must not open one per table.
	smallSem chan struct{}
	errs     []error
}

// newKeyBuilder lists the keys the sink lacks for the tables of jobs; nil
// when there are none.
func (r *runner) newKeyBuilder(ctx context.Context, src, dst *pgx.Conn, jobs []copyJob) (*keyBuilder, error) {
	left := map[uint32]int{}
	var tables []*postgres.Table
	for _, j := range jobs {
		if left[j.table.OID] == 0 {
			tables = append(tables, j.table)
		}
		left[j.table.OID]++
	}
	builds, err := postgres.MissingKeys(ctx, src, dst, tables, r.target, r.mapping.rules.Column)
	if err != nil || len(builds) == 0 {
		return nil, err
	}
	kb := &keyBuilder{r: r, left: left, total: len(jobs), builds: map[uint32]postgres.KeyBuild{},
		small: map[uint32]bool{}, sem: make(chan struct{}, max(1, r.cfg.Parallel/2)),
		smallSem: make(chan struct{}, max(1, r.cfg.Parallel))}
	kb.ctx, kb.cancel = context.WithCancel(ctx)
	byName := map[string]postgres.KeyBuild{}
	for _, b := range builds {
		byName[b.Table.String()] = b
	}
	for _, t := range tables {
		if b, ok := byName[r.target(t.Name).String()]; ok {
			kb.builds[t.OID] = b
			kb.small[t.OID] = t.Pages <= smallKeyTablePages
		}
	}
	return kb, nil
}

// smallKeyTablePages is the largest table (in 8 kB blocks of its main
// fork, at the source: 16 MiB) whose key build does not queue behind the
// big ones: it takes milliseconds, while a big table's can take minutes,
// and the copy would end with the small tables' keys still waiting. Small
// builds have a bound of their own (copy.parallel at once).
const smallKeyTablePages = 2048

// chunkDone counts one copied chunk of table oid and starts its key build
// when it was the last.
func (kb *keyBuilder) chunkDone(oid uint32) {
	if kb == nil {
		return
	}
	kb.mu.Lock()
	kb.left[oid]--
	kb.total--
	b, ok := kb.builds[oid]
	start := ok && kb.left[oid] == 0
	small := kb.small[oid]
	kb.mu.Unlock()
	if !start {
		return
	}
	kb.wg.Add(1)
	go func() {
		defer kb.wg.Done()
		sem := kb.sem
		if small {
			sem = kb.smallSem
		}
		select {
		case sem <- struct{}{}:
		case <-kb.ctx.Done():
			return
		}
		defer func() { <-sem }()
		// Decided as the build starts (it may have waited for another):
		// chunks of other tables still copying keep the sink's cores busy.
		kb.mu.Lock()
		b.Serial = kb.total > 0
		kb.mu.Unlock()
		t0 := time.Now()
		if err := postgres.BuildKeys(kb.ctx, kb.r.cfg.SinkDSN, kb.r.cfg.Name, []postgres.KeyBuild{b}, 1, nil); err != nil {
			kb.mu.Lock()
			kb.errs = append(kb.errs, err)
			kb.mu.Unlock()
			return
		}
		kb.r.log.Info("primary key built while the copy goes on", "table", b.Table.String(), "key", b.Name, "duration", time.Since(t0).Round(time.Millisecond))
	}()
}

// wait waits for the builds started and returns the first error. After
// a failed copy (copyErr set) the running builds are cancelled first: the
// run is about to fail, and a build of a big table could hold its error
// back for minutes; the next run builds what is missing.
func (kb *keyBuilder) wait(copyErr error) error {
	if kb == nil {
		return nil
	}
	if copyErr != nil {
		kb.cancel()
	}
	kb.wg.Wait()
	kb.cancel()
	if len(kb.errs) > 0 {
		return kb.r.keyError(kb.errs[0])
	}
	return nil
}
