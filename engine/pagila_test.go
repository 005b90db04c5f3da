package engine_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestPagila copies the pagila sample database (enum, domains, arrays,
// bytea, tsvector, a partitioned table) and compares every table,
// partitions included.
func TestPagila(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "..", "shared", "testdata", "pagila")
	schemaFile, dataFile := filepath.Join(dir, "pagila-schema.sql"), filepath.Join(dir, "pagila-data.sql")
	for _, f := range []string{schemaFile, dataFile} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("pagila test data not available (%v): put pagila-schema.sql and pagila-data.sql in %s", err, dir)
		}
	}
	e := newEnv(t)
	for _, f := range []string{schemaFile, dataFile} {
		if err := e.src.LoadSQLFile(t.Context(), e.srcDB, f); err != nil {
			t.Fatal(err)
		}
	}
	e.srcExec("ANALYZE")

	tables := tablesOf(t, e.srcDSN, "public")
	partitions := queryInt(t, e.srcDSN, `SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'public.payment'::regclass AND c.relispartition`)
	if partitions < 2 {
		t.Fatalf("fixture: payment has %d partitions, want several", partitions)
	}
	rentals := queryInt(t, e.srcDSN, "SELECT count(*) FROM public.rental")

	cfg := e.config(schemaSel("public")...)
	cfg.ChunkRows = 4000 // rental and payment_p2022_* are big enough to chunk
	began := time.Now()
	sum := runOK(t, cfg)
	t.Logf("pagila: schema + copy + post-data in %v", time.Since(began).Round(time.Millisecond))
	if sum.Tables != len(tables) {
		t.Errorf("summary: %d tables, want %d (%q)", sum.Tables, len(tables), tables)
	}
	if sum.TablesCreated != len(tables) {
		t.Errorf("summary: %d tables created, want %d", sum.TablesCreated, len(tables))
	}
	if sum.SequencesSet == 0 {
		t.Error("summary: no sequences set")
	}
	if sum.ChunksCopied <= len(tables)-1 {
		t.Errorf("summary: %d chunks for %d tables: nothing was chunked (rental has %d rows, ChunkRows %d)", sum.ChunksCopied, len(tables), rentals, cfg.ChunkRows)
	}
	if got := tablesOf(t, e.dstDSN, "public"); len(got) != len(tables) {
		t.Errorf("sink tables %q, want %q", got, tables)
	}
	assertSameData(t, e.srcDSN, e.dstDSN, tables)
	assertNoDuplicates(t, e.dstDSN, "public.rental", "rental_id")
	assertNoDuplicates(t, e.dstDSN, "public.payment", "payment_id")

	// Sequences: new ids at the sink must not collide with copied rows.
	for _, c := range []struct{ table, col string }{{"customer", "customer_id"}, {"rental", "rental_id"}, {"payment", "payment_id"}} {
		maxID := queryInt(t, e.srcDSN, "SELECT max("+c.col+") FROM public."+c.table)
		// pagila's sequences are not OWNED BY their columns: evaluate the
		// sink column's default itself.
		def := queryText(t, e.dstDSN, `SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d
			JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
			WHERE d.adrelid = $1::regclass AND a.attname = $2`, "public."+c.table, c.col)
		next := queryInt(t, e.dstDSN, "SELECT "+def)
		if next <= maxID {
			t.Errorf("sink: next %s.%s is %d, not above the source's max %d", c.table, c.col, next, maxID)
		}
	}
}

// TestPagilaPostData syncs pagila's whole schema (pre-data, data, then
// post-data: indexes, constraints, foreign keys, triggers, views, the
// materialized view, functions, aggregates, rules, comments) and compares a
// normalized pg_dump --schema-only of both databases, the data, and the
// materialized view's rows. A second run with the same state creates
// nothing, and neither does a run with a fresh state dir (the sink already
// has everything).
func TestPagilaPostData(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "..", "shared", "testdata", "pagila")
	schemaFile, dataFile := filepath.Join(dir, "pagila-schema.sql"), filepath.Join(dir, "pagila-data.sql")
	for _, f := range []string{schemaFile, dataFile} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("pagila test data not available (%v): put pagila-schema.sql and pagila-data.sql in %s", err, dir)
		}
	}
	e := newEnv(t)
	for _, f := range []string{schemaFile, dataFile} {
		if err := e.src.LoadSQLFile(t.Context(), e.srcDB, f); err != nil {
			t.Fatal(err)
		}
	}
	// The fixture must hold what post-data builds.
	for _, c := range []struct{ what, sql string }{
		{"materialized views", "SELECT count(*) FROM pg_matviews WHERE schemaname = 'public'"},
		{"views", "SELECT count(*) FROM pg_views WHERE schemaname = 'public'"},
		{"foreign keys", "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace"},
		{"triggers", "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal"},
		{"functions", "SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace"},
	} {
		if n := queryInt(t, e.srcDSN, c.sql); n == 0 {
			t.Fatalf("fixture: no %s in pagila", c.what)
		}
	}
	// pagila creates it WITH NO DATA; a live database has it populated.
	e.srcExec("REFRESH MATERIALIZED VIEW public.rental_by_category")
	// Check constraints (pg_dump has them inside CREATE TABLE), one on the
	// partitioned table, which its partitions inherit.
	e.srcExec(`ALTER TABLE public.film ADD CONSTRAINT film_length_positive CHECK (length > 0);
		ALTER TABLE public.payment ADD CONSTRAINT payment_amount_nonneg CHECK (amount >= 0)`)
	e.srcExec("ANALYZE")
	tables := tablesOf(t, e.srcDSN, "public")

	cfg := e.config(schemaSel("public")...)
	cfg.ChunkRows = 4000
	began := time.Now()
	sum := runOK(t, cfg)
	t.Logf("pagila with post-data: %v (post-data: %d objects created, %d materialized views refreshed)",
		time.Since(began).Round(time.Millisecond), sum.PostDataCreated, sum.PostDataRefreshed)
	if sum.PostDataCreated == 0 || sum.PostDataRefreshed == 0 {
		t.Errorf("summary: post-data created %d objects and refreshed %d materialized views; want some of each", sum.PostDataCreated, sum.PostDataRefreshed)
	}

	assertSameData(t, e.srcDSN, e.dstDSN, tables)
	assertSameDump(t, e)
	for _, mv := range []string{"public.rental_by_category"} {
		if queryInt(t, e.dstDSN, "SELECT count(*) FROM pg_matviews WHERE schemaname||'.'||matviewname = $1 AND ispopulated", mv) != 1 {
			t.Errorf("sink: materialized view %s is not populated", mv)
		}
		assertSameData(t, e.srcDSN, e.dstDSN, []string{mv})
	}
	// The foreign keys are validated (no NOT VALID left behind).
	if n := queryInt(t, e.dstDSN, "SELECT count(*) FROM pg_constraint WHERE NOT convalidated AND connamespace = 'public'::regnamespace"); n != 0 {
		t.Errorf("sink: %d constraints are NOT VALID", n)
	}

	// A restart after post-data does nothing twice.
	again := runOK(t, cfg)
	if again.PostDataCreated != 0 || again.PostDataRefreshed != 0 || again.TablesCreated != 0 {
		t.Errorf("second run: created %d tables, %d post-data objects, refreshed %d; want nothing", again.TablesCreated, again.PostDataCreated, again.PostDataRefreshed)
	}
	// A new state dir over the synced sink: post-data finds everything there.
	fresh := cfg
	fresh.StateDir = t.TempDir()
	third := runOK(t, fresh)
	if third.PostDataCreated != 0 || third.PostDataRefreshed != 0 {
		t.Errorf("run with a fresh state dir: created %d post-data objects, refreshed %d; want nothing", third.PostDataCreated, third.PostDataRefreshed)
	}
	assertSameDump(t, e)
	assertSameData(t, e.srcDSN, e.dstDSN, tables)
}

// assertSameDump compares pg_dump --schema-only of the source and sink
// databases (sluice's own schema left out), normalized: comment, SET and
// psql meta-command lines and blank lines dropped.
func assertSameDump(t *testing.T, e *env) {
	t.Helper()
	assertSameDumpOf(t, e.src, e.srcDB, e.dst, e.dstDB)
}

// assertSameDumpOf is assertSameDump for any two databases. Publications
// are left out too: a streaming pipeline's own publication exists only at
// the source.
func assertSameDumpOf(t *testing.T, srcCluster *pgtest.Cluster, srcDB string, dstCluster *pgtest.Cluster, dstDB string) {
	t.Helper()
	src, err := srcCluster.DumpSchema(t.Context(), srcDB, "--exclude-schema=sluice", "--no-publications")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := dstCluster.DumpSchema(t.Context(), dstDB, "--exclude-schema=sluice", "--no-publications")
	if err != nil {
		t.Fatal(err)
	}
	assertSameLines(t, normalizeDumpLines(src), normalizeDumpLines(dst), 5)
}

// assertSameLines fails at the first line where two normalized dumps
// differ, showing context lines around it.
func assertSameLines(t *testing.T, a, b []string, context int) {
	t.Helper()
	if strings.Join(a, "\n") == strings.Join(b, "\n") {
		return
	}
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			lo := max(0, i-context)
			t.Fatalf("pg_dump --schema-only differs at line %d:\nsource: %q\nsink:   %q\nsource context:\n%s\nsink context:\n%s",
				i+1, x, y, strings.Join(a[lo:min(len(a), i+context)], "\n"), strings.Join(b[lo:min(len(b), i+context)], "\n"))
		}
	}
}

func normalizeDumpLines(dump string) []string {
	var out []string
	inSluiceTrigger := false // sluice's own DDL-capture event triggers exist at the source only
	for _, line := range strings.Split(dump, "\n") {
		if strings.HasPrefix(line, "CREATE EVENT TRIGGER sluice_") {
			inSluiceTrigger = true
		}
		if inSluiceTrigger {
			inSluiceTrigger = !strings.HasSuffix(line, ";")
			continue
		}
		switch {
		case strings.HasPrefix(line, "ALTER EVENT TRIGGER sluice_"):
			continue
		case strings.TrimSpace(line) == "",
			strings.HasPrefix(line, "--"),
			strings.HasPrefix(line, "SET "),
			strings.HasPrefix(line, "SELECT pg_catalog.set_config("),
			strings.HasPrefix(line, `\restrict`), strings.HasPrefix(line, `\unrestrict`):
			continue
		}
		out = append(out, line)
	}
	return out
}
