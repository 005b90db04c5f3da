package engine_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestConsistentSnapshotUnderWrites copies a table while transactions at
// the source move money between accounts and move rows from the first key
// range to the last. Each transaction keeps the row count and the total
// balance, so a copy that reads its chunks at one snapshot keeps them too;
// chunks read at different moments would not.
func TestConsistentSnapshotUnderWrites(t *testing.T) {
	e := newEnv(t)
	const accounts, balance = 200000, 100
	e.srcExec(`
CREATE TABLE public.acc (id bigint PRIMARY KEY, bal bigint NOT NULL);
INSERT INTO public.acc SELECT g, 100 FROM generate_series(1, 200000) g;
CREATE TABLE public.heap (n bigint NOT NULL, bal bigint NOT NULL);
INSERT INTO public.heap SELECT g, 100 FROM generate_series(1, 200000) g;
CREATE INDEX ON public.heap (n); -- not unique: the table stays keyless
ANALYZE;`)

	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var commits atomic.Int64
	errs := make(chan error, 2)
	writer := func(seed uint64) {
		defer wg.Done()
		conn, err := pgx.Connect(ctx, e.srcDSN)
		if err != nil {
			errs <- err
			return
		}
		defer conn.Close(context.Background())
		rnd := rand.New(rand.NewPCG(seed, 1))
		for ctx.Err() == nil {
			a, b := 1+rnd.Int64N(accounts), 1+rnd.Int64N(accounts)
			steps := []struct {
				sql  string
				args []any
			}{
				// money moves between two accounts, in both tables
				{`UPDATE public.acc SET bal = bal - 7 WHERE id = (SELECT min(id) FROM public.acc) + $1`, []any{a - 1}},
				{`UPDATE public.acc SET bal = bal + 7 WHERE id = (SELECT min(id) FROM public.acc) + $1`, []any{b - 1}},
				{`UPDATE public.heap SET bal = bal - 7 WHERE n = $1`, []any{a}},
				{`UPDATE public.heap SET bal = bal + 7 WHERE n = $1`, []any{b}},
				// the first account moves to the end of the key space
				{`WITH d AS (DELETE FROM public.acc WHERE id = (SELECT min(id) FROM public.acc) RETURNING bal)
					INSERT INTO public.acc SELECT (SELECT max(id) FROM public.acc) + 1, bal FROM d`, nil},
			}
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				for _, st := range steps {
					if _, err := tx.Exec(ctx, st.sql, st.args...); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				if ctx.Err() == nil {
					errs <- err
				}
				return
			}
			commits.Add(1)
		}
	}
	wg.Add(2)
	go writer(1)
	go writer(2)
	defer func() { stop(); wg.Wait() }()

	cfg := e.config(schemaSel("public")...)
	cfg.ChunkRows, cfg.Parallel = 20000, 4
	// Slow the copy down so the writers commit while chunks are read.
	cfg.Failpoints = failpoints(t, "copy.chunk.batch=sleep:30ms")
	before := commits.Load()
	sum := runOK(t, cfg)
	during := commits.Load() - before
	stop()
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("writer: %v", err)
	default:
	}
	t.Logf("%d source transactions committed during the copy (%s)", during, sum.Duration)
	if during == 0 {
		t.Error("no source transaction committed during the copy: the test proves nothing")
	}
	if sum.ChunksCopied < 15 {
		t.Errorf("summary: %d chunks, want both tables chunked", sum.ChunksCopied)
	}
	for _, tbl := range []string{"public.acc", "public.heap"} {
		if n := queryInt(t, e.dstDSN, "SELECT count(*) FROM "+tbl); n != accounts {
			t.Errorf("%s at the sink: %d rows, want %d", tbl, n, accounts)
		}
		if s := queryInt(t, e.dstDSN, "SELECT sum(bal)::bigint FROM "+tbl); s != accounts*balance {
			t.Errorf("%s at the sink: total balance %d, want %d: chunks were read at different moments", tbl, s, accounts*balance)
		}
	}
	assertNoDuplicates(t, e.dstDSN, "public.acc", "id")
	assertNoDuplicates(t, e.dstDSN, "public.heap", "n")
}
