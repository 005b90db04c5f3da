package engine_test

// Test helpers of the full-copy integration tests. The oracles here
// (checksums, per-column text renderings, catalog listings) are plain SQL
// run over our own connections: they share no code with the product.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// env is a fresh source database and a fresh sink database.
type env struct {
	t              *testing.T
	src, dst       *pgtest.Cluster
	srcDSN, dstDSN string
	srcDB, dstDB   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, src: pgtest.Source(t), dst: pgtest.Sink(t)}
	e.srcDSN = pgtest.NewDB(t, e.src)
	e.dstDSN = pgtest.NewDB(t, e.dst)
	e.srcDB, e.dstDB = dbOf(t, e.srcDSN), dbOf(t, e.dstDSN)
	return e
}

// newSink adds another fresh sink database and returns its DSN.
func (e *env) newSink() string {
	e.t.Helper()
	return pgtest.NewDB(e.t, e.dst)
}

func dbOf(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

func (e *env) srcExec(sql string) {
	e.t.Helper()
	if err := e.src.Exec(e.t.Context(), e.srcDB, sql); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) dstExec(sql string) {
	e.t.Helper()
	if err := e.dst.Exec(e.t.Context(), e.dstDB, sql); err != nil {
		e.t.Fatal(err)
	}
}

// config is the usual full-copy configuration for the env's databases.
func (e *env) config(sel ...postgres.Selection) engine.Config {
	return engine.Config{
		Name:      "t",
		SourceDSN: e.srcDSN,
		SinkDSN:   e.dstDSN,
		Schema:    true,
		Full:      true,
		Objects:   sel,
		StateDir:  e.t.TempDir(),
		Parallel:  4,
		ChunkRows: 100000,
	}
}

func schemaSel(s string) []postgres.Selection {
	return []postgres.Selection{{Schema: s, Where: "test"}}
}

// runOK runs the engine and fails the test on error.
func runOK(t *testing.T, cfg engine.Config) *engine.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	sum, err := engine.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("engine.Run: %v", err)
	}
	if sum == nil {
		t.Fatal("engine.Run returned no summary and no error")
	}
	t.Logf("summary: %+v", *sum)
	return sum
}

// runErr runs the engine and fails the test unless it returns an error.
func runErr(t *testing.T, cfg engine.Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	sum, err := engine.Run(ctx, cfg)
	if err == nil {
		t.Fatalf("engine.Run succeeded (summary %+v), want an error", sum)
	}
	return err
}

// qi quotes an identifier (the test's own, not the product's).
func qi(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func qn(schema, name string) string { return qi(schema) + "." + qi(name) }

// oracleConn connects with the settings that fix the text form of values.
// The caller closes the connection.
func oracleConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"DateStyle": "ISO, MDY", "IntervalStyle": "postgres", "TimeZone": "UTC",
		"extra_float_digits": "3", "bytea_output": "hex", "lc_monetary": "C",
	} {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// queryInt runs a query returning one integer.
func queryInt(t *testing.T, dsn, sql string, args ...any) int64 {
	t.Helper()
	conn := oracleConn(t, dsn)
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// queryText runs a query returning one text value.
func queryText(t *testing.T, dsn, sql string, args ...any) string {
	t.Helper()
	conn := oracleConn(t, dsn)
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// tablesOf lists the quoted names of the tables (plain, partitioned and
// partitions) of a schema, from the catalog.
func tablesOf(t *testing.T, dsn, schema string) []string {
	t.Helper()
	conn := oracleConn(t, dsn)
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname`, schema)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// assertSameData compares count and checksum of each table on both sides.
func assertSameData(t *testing.T, srcDSN, dstDSN string, tables []string) {
	t.Helper()
	if len(tables) == 0 {
		t.Fatal("no tables to compare")
	}
	for _, tbl := range tables {
		sc, ss, err := pgtest.ChecksumDSN(t.Context(), srcDSN, tbl)
		if err != nil {
			t.Fatalf("source: %v", err)
		}
		dc, ds, err := pgtest.ChecksumDSN(t.Context(), dstDSN, tbl)
		if err != nil {
			t.Errorf("sink: %v", err)
			continue
		}
		if sc != dc || ss != ds {
			t.Errorf("%s differs: source %d rows (checksum %s), sink %d rows (checksum %s)", tbl, sc, ss, dc, ds)
		}
	}
}

// assertNoDuplicates checks that the expression is distinct over the
// sink table's rows.
func assertNoDuplicates(t *testing.T, dsn, table, expr string) {
	t.Helper()
	n := queryInt(t, dsn, "SELECT count(*) FROM "+table)
	d := queryInt(t, dsn, "SELECT count(DISTINCT "+expr+") FROM "+table)
	if n != d {
		t.Errorf("%s at the sink: %d rows but %d distinct %s: duplicates", table, n, d, expr)
	}
}

// progressRows returns how many chunks the sink's progress table records
// for the pipeline (all tables when table is "").
func progressRows(t *testing.T, dsn, pipeline, table string) int64 {
	t.Helper()
	return queryInt(t, dsn, `SELECT count(*) FROM sluice.copy_progress WHERE pipeline = $1 AND ($2 = '' OR table_name = $2)`, pipeline, table)
}

// repoRoot walks up from the working directory to the directory holding
// go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}
