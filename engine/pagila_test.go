package engine_test

import (
	"os"
	"path/filepath"
	"testing"
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
	sum := runOK(t, cfg)
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
