package engine

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// lacking is the set of source relations the sink may lack rows of while
// a backfill of them is unfinished: a streamed UPDATE of such a keyed
// table without its unchanged TOASTed values that finds no row at the sink
// is let pass with a warning (the backfill's chunks copy the row), where
// elsewhere it parks the pipeline (plugins/postgres/diverged.go). That is
// also how a pipeline parked that way is repaired: `sluice backfill` runs
// it again with the request pending.
//
// Filled from the source's pending requests when a stream session starts,
// before its first change is applied, and by the backfill worker when it
// starts a request (a request made while the session streams); loaded
// again when a request ends, which takes its tables out.
type lacking struct {
	mu   sync.Mutex
	oids map[uint32]bool
}

// load replaces the set with the relations of the pipeline's pending
// backfill requests.
func (l *lacking) load(ctx context.Context, src *pgx.Conn, pipeline string) error {
	oids, err := postgres.BackfillingRelations(ctx, src, pipeline)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.oids = map[uint32]bool{}
	for _, o := range oids {
		l.oids[o] = true
	}
	return nil
}

// addParts adds the relations a request's parts read.
func (l *lacking) addParts(parts []backfillPart) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.oids == nil {
		l.oids = map[uint32]bool{}
	}
	for _, p := range parts {
		l.oids[p.table.OID] = true
	}
}

// has reports whether the sink may lack rows of relation oid.
func (l *lacking) has(oid uint32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.oids[oid]
}
