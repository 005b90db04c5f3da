package engine_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// otherSource makes another source database holding the same table.
func otherSource(t *testing.T, e *env) string {
	t.Helper()
	dsn := pgtest.NewDB(t, e.src)
	if err := e.src.Exec(t.Context(), dbOf(t, dsn), `CREATE TABLE public.a (id integer PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	return dsn
}

func TestSchemaFalseRequiresTables(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`
CREATE TABLE public.present (id integer PRIMARY KEY, v text);
CREATE TABLE public."Missing Table" (id integer PRIMARY KEY, v text);
INSERT INTO public.present SELECT g, g::text FROM generate_series(1, 100) g;
INSERT INTO public."Missing Table" SELECT g, g::text FROM generate_series(1, 100) g;`)
	e.dstExec(`CREATE TABLE public.present (id integer PRIMARY KEY, v text);`)

	cfg := e.config(schemaSel("public")...)
	cfg.Schema = false
	err := runErr(t, cfg)
	msg := err.Error()
	if !strings.Contains(msg, "Missing Table") || !strings.Contains(msg, "sync.schema: true") {
		t.Errorf("error %q should name the missing table and say to set sync.schema: true", msg)
	}
	if strings.Contains(msg, "present") {
		t.Errorf("error %q names a table that exists at the sink", msg)
	}
	// Nothing was touched at the sink.
	if n := queryInt(t, e.dstDSN, "SELECT count(*) FROM public.present"); n != 0 {
		t.Errorf("the failed run copied %d rows into public.present; want none before the check passes", n)
	}
	if queryInt(t, e.dstDSN, `SELECT count(*) FROM pg_class WHERE relname = 'Missing Table'`) != 0 {
		t.Error("the failed run created the missing table with sync.schema false")
	}

	// Once the table exists the same configuration copies.
	e.dstExec(`CREATE TABLE public."Missing Table" (id integer PRIMARY KEY, v text);`)
	sum := runOK(t, cfg)
	if sum.TablesCreated != 0 || sum.Rows != 200 {
		t.Errorf("summary: %d tables created, %d rows; want 0 and 200", sum.TablesCreated, sum.Rows)
	}
	assertSameData(t, e.srcDSN, e.dstDSN, tablesOf(t, e.srcDSN, "public"))
}

func TestStateDirIdentity(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE TABLE public.a (id integer PRIMARY KEY); INSERT INTO public.a SELECT generate_series(1, 10);`)
	cfg := e.config(schemaSel("public")...)
	runOK(t, cfg)

	refused := func(name string, change func(c *engine.Config)) {
		t.Helper()
		c := cfg
		change(&c)
		err := runErr(t, c)
		if !strings.Contains(err.Error(), cfg.StateDir) || !strings.Contains(err.Error(), "state dir") {
			t.Errorf("%s: error %q does not mention the state dir %s", name, err, cfg.StateDir)
		}
	}
	refused("another pipeline", func(c *engine.Config) { c.Name = "other" })
	refused("another sink database", func(c *engine.Config) { c.SinkDSN = e.newSink() })
	otherSrc := otherSource(t, e)
	refused("another source database", func(c *engine.Config) { c.SourceDSN = otherSrc })

	// The pipeline it belongs to still runs with it.
	sum := runOK(t, cfg)
	if sum.ChunksCopied != 0 || sum.ChunksSkipped != 1 {
		t.Errorf("rerun: %d chunks copied, %d skipped; want 0 and 1", sum.ChunksCopied, sum.ChunksSkipped)
	}
}

func TestRerunIsNoop(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`
CREATE TABLE public.keyed (id bigint PRIMARY KEY, v text);
INSERT INTO public.keyed SELECT g, md5(g::text) FROM generate_series(1, 50000) g;
CREATE TABLE public.nokey (n bigint, v text);
INSERT INTO public.nokey SELECT g, md5(g::text) FROM generate_series(1, 30000) g;
CREATE TABLE public.serial (id serial PRIMARY KEY, v text);
INSERT INTO public.serial (v) SELECT md5(g::text) FROM generate_series(1, 100) g;
ANALYZE;`)
	cfg := e.config(schemaSel("public")...)
	cfg.ChunkRows = 10000
	first := runOK(t, cfg)
	if first.ChunksCopied < 6 {
		t.Errorf("first run: %d chunks copied, want the big tables chunked", first.ChunksCopied)
	}
	second := runOK(t, cfg)
	if second.ChunksCopied != 0 || second.ChunksSkipped != first.ChunksCopied {
		t.Errorf("second run: %d chunks copied, %d skipped; want 0 and %d", second.ChunksCopied, second.ChunksSkipped, first.ChunksCopied)
	}
	if second.Rows != 0 || second.TablesCreated != 0 || second.TablesReset != 0 {
		t.Errorf("second run: %d rows, %d tables created, %d reset; want all 0", second.Rows, second.TablesCreated, second.TablesReset)
	}
	tables := tablesOf(t, e.srcDSN, "public")
	assertSameData(t, e.srcDSN, e.dstDSN, tables)
	assertNoDuplicates(t, e.dstDSN, "public.keyed", "id")
	assertNoDuplicates(t, e.dstDSN, "public.nokey", "n")
	if next, max := queryInt(t, e.dstDSN, "SELECT nextval('public.serial_id_seq')"), queryInt(t, e.srcDSN, "SELECT max(id) FROM public.serial"); next <= max {
		t.Errorf("sink sequence at %d, not above the source's max id %d", next, max)
	}
}
