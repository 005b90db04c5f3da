package engine_test

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

const (
	bigRows   = 1_000_000
	nokeyRows = 300_000
)

const largeFixture = `
CREATE TABLE public.big (id bigint NOT NULL, t text, n numeric, ts timestamptz, j jsonb);
INSERT INTO public.big
SELECT g, md5(g::text) || repeat('x', (g % 50)::int), g * 1.0001 - 500000, '2020-01-01 00:00:00+00'::timestamptz + g * interval '1.5 seconds',
	jsonb_build_object('g', g, 'even', g % 2 = 0, 'tags', jsonb_build_array('a', g % 7))
FROM generate_series(1, 1000000) g;
ALTER TABLE public.big ADD PRIMARY KEY (id);
CREATE TABLE public.nokey (n bigint, t text, ts timestamptz);
INSERT INTO public.nokey SELECT g, repeat(chr(65 + (g % 26)::int), (g % 40)::int), now() - g * interval '1 minute'
FROM generate_series(1, 300000) g;
`

// TestLargeTableParallelChunks copies a million-row keyed table and a
// keyless table in parallel chunks, and compares the rate with a plain
// psql COPY pipe of the same tables.
func TestLargeTableParallelChunks(t *testing.T) {
	if testing.Short() {
		t.Skip("large copy: skipped with -short")
	}
	e := newEnv(t)
	start := time.Now()
	e.srcExec(largeFixture)
	settle(t, e.srcDSN, "public.big", "public.nokey")
	t.Logf("fixture loaded in %s", time.Since(start).Round(time.Millisecond))

	cfg := e.config(schemaSel("public")...)
	cfg.ChunkRows = 100000
	cfg.Parallel = 4
	start = time.Now()
	sum := runOK(t, cfg)
	elapsed := time.Since(start)
	if sum.Rows != bigRows+nokeyRows {
		t.Errorf("summary: %d rows, want %d", sum.Rows, bigRows+nokeyRows)
	}
	if sum.ChunksCopied < 10 {
		t.Errorf("summary: %d chunks copied, want >= 10", sum.ChunksCopied)
	}
	if n := progressRows(t, e.dstDSN, "t", `"public"."big"`); n < 10 {
		t.Errorf("sink progress: public.big copied in %d chunks, want >= 10", n)
	}
	if n := progressRows(t, e.dstDSN, "t", `"public"."nokey"`); n < 2 {
		t.Errorf("sink progress: public.nokey copied in %d chunks, want >= 2 (block ranges)", n)
	}
	sluiceRate := float64(sum.Rows) / elapsed.Seconds()
	t.Logf("sluice: %d rows (%d MiB) in %s (engine %s): %.0f rows/s, %d chunks, %d workers",
		sum.Rows, sum.Bytes>>20, elapsed.Round(time.Millisecond), sum.Duration.Round(time.Millisecond), sluiceRate, sum.ChunksCopied, cfg.Parallel)

	assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.big", "public.nokey"})
	assertNoDuplicates(t, e.dstDSN, "public.big", "id")
	assertNoDuplicates(t, e.dstDSN, "public.nokey", "n")

	// Vacuum what was written, so that autovacuum does not compete with
	// the next timed copy on a small machine.
	settle(t, e.dstDSN, "public.big", "public.nokey")

	// public.big alone, for a per-table figure comparable to its psql pipe.
	bigOnly := e.config(postgres.Selection{Table: record.TableName{Schema: "public", Name: "big"}, Where: "test"})
	bigOnly.SinkDSN = e.newSink()
	bigOnly.ChunkRows, bigOnly.Parallel = 100000, 4
	start = time.Now()
	sumBig := runOK(t, bigOnly)
	bigElapsed := time.Since(start)
	if sumBig.Rows != bigRows {
		t.Errorf("public.big alone: %d rows copied, want %d", sumBig.Rows, bigRows)
	}
	if n := queryInt(t, bigOnly.SinkDSN, "SELECT count(DISTINCT id) FROM public.big"); n != bigRows {
		t.Errorf("public.big alone: %d distinct ids at the sink, want %d", n, bigRows)
	}
	settle(t, bigOnly.SinkDSN, "public.big")

	// The same rows through `psql COPY TO STDOUT | psql COPY FROM STDIN`
	// into empty tables of the same shape at the sink.
	e.dstExec(`CREATE TABLE public.big_psql (LIKE public.big INCLUDING ALL);
		CREATE TABLE public.nokey_psql (LIKE public.nokey INCLUDING ALL);`)
	psql := e.src.Tool("psql")
	psqlBig := psqlPipe(t, psql, e.srcDSN, e.dstDSN, "public.big", "public.big_psql")
	psqlTime := psqlBig + psqlPipe(t, psql, e.srcDSN, e.dstDSN, "public.nokey", "public.nokey_psql")
	if n := queryInt(t, e.dstDSN, "SELECT count(*) FROM public.big_psql"); n != bigRows {
		t.Errorf("psql pipe copied %d rows of public.big, want %d", n, bigRows)
	}
	psqlRate := float64(bigRows+nokeyRows) / psqlTime.Seconds()
	t.Logf("public.big, 1M rows: sluice %.0f rows/s (%s, %d workers, %d chunks, binary COPY) vs psql pipe %.0f rows/s (%s, one stream, text COPY): ratio %.2f",
		bigRows/bigElapsed.Seconds(), bigElapsed.Round(time.Millisecond), bigOnly.Parallel, sumBig.ChunksCopied,
		bigRows/psqlBig.Seconds(), psqlBig.Round(time.Millisecond), psqlBig.Seconds()/bigElapsed.Seconds())
	t.Logf("both tables, 1.3M rows: sluice %.0f rows/s (%s, %d workers, binary COPY) vs psql pipe %.0f rows/s (%s, one stream, text COPY): ratio %.2f",
		sluiceRate, elapsed.Round(time.Millisecond), cfg.Parallel, psqlRate, psqlTime.Round(time.Millisecond), sluiceRate/psqlRate)
}

// psqlPipe times `psql -c "COPY from TO STDOUT" | psql -c "COPY to FROM
// STDIN"`.
func psqlPipe(t *testing.T, psql, srcDSN, dstDSN, from, to string) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	script := `set -o pipefail
"$1" -X -q -v ON_ERROR_STOP=1 -d "$2" -c "COPY $4 TO STDOUT" | "$1" -X -q -v ON_ERROR_STOP=1 -d "$3" -c "COPY $5 FROM STDIN"`
	cmd := exec.CommandContext(ctx, "bash", "-c", script, "pipe", psql, srcDSN, dstDSN, from, to)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		t.Fatalf("psql pipe %s -> %s: %v\n%s", from, to, err, out)
	}
	return d
}

// settle vacuums tables.
func settle(t *testing.T, dsn string, tables ...string) {
	t.Helper()
	conn := oracleConn(t, dsn)
	defer conn.Close(context.Background())
	for _, tbl := range tables {
		if _, err := conn.Exec(t.Context(), "VACUUM (ANALYZE) "+tbl); err != nil {
			t.Fatal(err)
		}
	}
}
