package engine_test

import (
	"testing"

	"github.com/sluicehq/sluice/engine"
)

// scanCounts returns the source's sequential and index scans of a table
// (pg_stat_user_tables), once the statistics of ended sessions are in.
func scanCounts(t *testing.T, dsn, table string) (seq, idx int64) {
	t.Helper()
	return queryInt(t, dsn, `SELECT seq_scan FROM pg_catalog.pg_stat_user_tables WHERE relid = $1::regclass`, table),
		queryInt(t, dsn, `SELECT COALESCE(idx_scan, 0) FROM pg_catalog.pg_stat_user_tables WHERE relid = $1::regclass`, table)
}

// TestSharedScanReadsOnce copies a keyed table of ten chunks with four
// workers: the source reads it with one sequential scan (no key-range
// index scans), its rows reach the sink in about chunk-sized commits,
// and a where condition still selects them.
func TestSharedScanReadsOnce(t *testing.T) {
	e := newEnv(t)
	e.srcExec(itemsFixture)
	seq0, idx0 := scanCounts(t, e.srcDSN, "public.items")
	cfg := e.config(schemaSel("public")...)
	cfg.ChunkRows, cfg.Parallel = 10000, 4
	cfg.Options = []engine.ObjectOptions{{Table: tn("public", "items"), Where: "id % 10 <> 3", Origin: "test"}}
	sum := runOK(t, cfg)

	if sum.ChunksCopied != 10 || sum.ChunksRaw != 10 {
		t.Errorf("%d shares copied (%d raw), want 10 and 10", sum.ChunksCopied, sum.ChunksRaw)
	}
	if want := int64(90000); sum.Rows != want {
		t.Errorf("copied %d rows, want %d (the where condition leaves out every tenth)", sum.Rows, want)
	}
	if n := queryInt(t, e.dstDSN, "SELECT count(*) FROM public.items WHERE id % 10 = 3"); n != 0 {
		t.Errorf("the sink has %d rows the where condition leaves out", n)
	}
	if n := assertChunkAtomic(t, e.dstDSN, "public.items", itemsKey); n != 10 {
		t.Errorf("%d shares committed, want 10", n)
	}
	// The shares take about a chunk each (batches are capped at a
	// share's rows), so no sink transaction holds the whole table.
	if big := queryInt(t, e.dstDSN, `SELECT max(rows) FROM sluice.copy_progress WHERE pipeline = 't' AND table_name = $1`, itemsKey); big > 40000 {
		t.Errorf("a share committed %d rows in one transaction; want about 9000 each", big)
	}
	if n := queryInt(t, e.dstDSN, `SELECT count(*) FROM sluice.copy_progress WHERE pipeline = 't' AND table_name = $1 AND rows > 0`, itemsKey); n < 5 {
		t.Errorf("only %d shares hold rows; want the rows spread over most of the 10", n)
	}
	// Statistics of the copy's sessions reach pg_stat once they end.
	var seq, idx int64
	for range 50 {
		if seq, idx = scanCounts(t, e.srcDSN, "public.items"); seq > seq0 {
			break
		}
		queryInt(t, e.srcDSN, "SELECT 0 FROM pg_catalog.pg_stat_clear_snapshot()")
	}
	if seq-seq0 != 1 || idx != idx0 {
		t.Errorf("the copy read the table with %d sequential and %d index scans, want 1 and 0", seq-seq0, idx-idx0)
	}
}

// TestSharedScanOff: copy.shared_scan_max_mb 0 (SharedScanMaxBytes < 0)
// reads every chunk with a query of its own, by key range.
func TestSharedScanOff(t *testing.T) {
	e := newEnv(t)
	e.srcExec(itemsFixture)
	_, idx0 := scanCounts(t, e.srcDSN, "public.items")
	cfg := e.config(schemaSel("public")...)
	cfg.ChunkRows, cfg.Parallel = 10000, 4
	cfg.SharedScanMaxBytes = -1
	runOK(t, cfg)
	var idx int64
	for range 50 {
		if _, idx = scanCounts(t, e.srcDSN, "public.items"); idx >= idx0+9 {
			break
		}
		queryInt(t, e.srcDSN, "SELECT 0 FROM pg_catalog.pg_stat_clear_snapshot()")
	}
	if idx-idx0 < 9 {
		t.Errorf("the copy made %d index scans, want one per key-range chunk (about 10)", idx-idx0)
	}
	assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.items"})
}
