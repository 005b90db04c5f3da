package engine_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
	"github.com/sluicehq/sluice/transforms/rename"
)

// makeTablespace creates tablespace name in cluster c, in a new directory
// inside the cluster's own (owned by the server's OS user, as PostgreSQL
// requires). The cluster must be the test's own (pgtest.NewCluster): its
// removal takes the tablespace along.
func makeTablespace(t *testing.T, c *pgtest.Cluster, name string) {
	t.Helper()
	dir := filepath.Join(c.Dir(), "ts_"+name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if err := os.Chown(dir, int(sys.Uid), int(sys.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Exec(t.Context(), "postgres", `CREATE TABLESPACE "`+name+`" LOCATION '`+dir+`'`); err != nil {
		t.Fatal(err)
	}
}

// TestDDLRenamedKeyKeepsParts adds a primary key and a unique constraint
// while streaming, on columns the pipeline renames, with INCLUDE columns,
// storage parameters, an index tablespace and deferrability: the sink's
// constraints are the source's with the renamed columns
// (pg_get_constraintdef), their indexes have the same storage parameters
// and tablespace, and no warning says a constraint was not replicated.
func TestDDLRenamedKeyKeepsParts(t *testing.T) {
	s := newPrivateStreamEnv(t, "ddl_keyparts")
	makeTablespace(t, s.src, "fast")
	makeTablespace(t, s.dst, "fast")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.marker (id integer PRIMARY KEY);
CREATE TABLE app.k (a integer NOT NULL, b text NOT NULL, c text, d integer);
INSERT INTO app.k SELECT g, 'b' || g, 'c' || g, g FROM generate_series(1, 200) g;`)
	s.cfg.Rename = rename.Config{Columns: []rename.ColumnRename{
		{Table: tn("app", "k"), From: "a", To: "a 2", Origin: "test"},
		{Table: tn("app", "k"), From: "c", To: "C", Origin: "test"},
	}}
	s.run(s.cfg)
	bg := s.streamInBackground(s.cfg)
	s.srcExec(`ALTER TABLE app.k ADD CONSTRAINT k_pk PRIMARY KEY (a, b) INCLUDE (c) WITH (fillfactor = 70) USING INDEX TABLESPACE fast`)
	s.srcExec(`ALTER TABLE app.k ADD CONSTRAINT k_u UNIQUE (c, a) INCLUDE (d) WITH (fillfactor = 80, deduplicate_items = off) DEFERRABLE INITIALLY DEFERRED`)
	s.srcExec(`INSERT INTO app.k VALUES (201, 'b201', 'c201', 201); UPDATE app.k SET d = -d WHERE a <= 5`)
	s.stopAtMarker(bg)
	if w := grepLines(s.log.String(), "DDL not replicated"); w != "" {
		t.Errorf("warnings:\n%s", w)
	}
	const parts = `SELECT pg_get_constraintdef(con.oid) || ' | ' || COALESCE(array_to_string(ic.reloptions, ','), '') || ' | ' || COALESCE(ts.spcname, '')
		FROM pg_constraint con JOIN pg_class ic ON ic.oid = con.conindid LEFT JOIN pg_tablespace ts ON ts.oid = ic.reltablespace
		WHERE con.conrelid = 'app.k'::regclass AND con.conname = $1`
	for _, c := range []struct{ name, src, sink string }{
		{"k_pk", `PRIMARY KEY (a, b) INCLUDE (c) | fillfactor=70 | fast`, `PRIMARY KEY ("a 2", b) INCLUDE ("C") | fillfactor=70 | fast`},
		{"k_u", `UNIQUE (c, a) INCLUDE (d) DEFERRABLE INITIALLY DEFERRED | fillfactor=80,deduplicate_items=off | `,
			`UNIQUE ("C", "a 2") INCLUDE (d) DEFERRABLE INITIALLY DEFERRED | fillfactor=80,deduplicate_items=off | `},
	} {
		got, err := tryQuery[string](t.Context(), s.srcDSN, parts, c.name)
		if err != nil || got != c.src {
			t.Fatalf("source %s: %q (%v), want %q", c.name, got, err, c.src)
		}
		// The source's definition with the pipeline's column names.
		want := strings.NewReplacer("(a, b)", `("a 2", b)`, "(c)", `("C")`, "(c, a)", `("C", "a 2")`).Replace(got)
		if want != c.sink {
			t.Fatalf("test: %q renamed is %q, not %q", got, want, c.sink)
		}
		if got, err := tryQuery[string](t.Context(), s.dstDSN, parts, c.name); err != nil || got != want {
			t.Errorf("sink %s: %q (%v), want %q", c.name, got, err, want)
		}
	}
	assertSameData2(t, s.srcDSN, `(SELECT a, b, c, d FROM app.k)`, s.dstDSN, `(SELECT "a 2", b, "C", d FROM app.k)`)
}

// TestTablespacesMissingAtSink: indexes of the selected tables sit in
// tablespaces the sink lacks. `sluice check` fails the tablespaces item,
// naming each tablespace with its indexes and the CREATE TABLESPACE to
// run; a run refuses with the same text before creating or copying
// anything. Once the sink has them, the check passes and the run builds
// each index in its tablespace.
func TestTablespacesMissingAtSink(t *testing.T) {
	src, dst := pgtest.NewCluster(t, nil), pgtest.NewCluster(t, nil)
	makeTablespace(t, src, "fast")
	makeTablespace(t, src, "Slow ts")
	srcDSN, err := src.CreateDatabase(t.Context(), "ts_source")
	if err != nil {
		t.Fatal(err)
	}
	dstDSN, err := dst.CreateDatabase(t.Context(), "ts_sink")
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Exec(t.Context(), "ts_source", `CREATE SCHEMA app;
CREATE TABLE app.t (id integer, v text, CONSTRAINT t_pk PRIMARY KEY (id) USING INDEX TABLESPACE fast);
CREATE INDEX t_v ON app.t (v) TABLESPACE "Slow ts";
CREATE TABLE app.u (id integer PRIMARY KEY, w text, CONSTRAINT u_w UNIQUE (w) USING INDEX TABLESPACE fast);
CREATE TABLE app.plain (id integer PRIMARY KEY) TABLESPACE fast;
INSERT INTO app.t SELECT g, 'v' || g FROM generate_series(1, 100) g;
INSERT INTO app.u SELECT g, 'w' || g FROM generate_series(1, 100) g;
INSERT INTO app.plain SELECT generate_series(1, 10);`); err != nil {
		t.Fatal(err)
	}
	cfg := engine.Config{Name: "ts", SourceDSN: srcDSN, SinkDSN: dstDSN, Schema: true, Full: true,
		Objects: schemaSel("app"), StateDir: t.TempDir(), Parallel: 2, ChunkRows: 100000}
	want := []string{
		`the sink lacks tablespaces that indexes of the selected tables use at the source`,
		`"Slow ts" (1 index: app.t_v on app.t)`,
		`"fast" (2 indexes: app.t_pk on app.t, app.u_w on app.u)`,
		`CREATE TABLESPACE "fast" LOCATION '<an empty directory owned by the sink server's OS user>';`,
		`CREATE TABLESPACE "Slow ts" LOCATION`,
	}
	expect(t, runCheck(t, cfg, engine.CheckOptions{}), engine.CheckTablespaces, engine.Fail, want...)
	err = runErr(t, cfg)
	for _, w := range append(want, "nothing was created or copied") {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("run error does not say %q: %v", w, err)
		}
	}
	if n := queryInt(t, dstDSN, `SELECT count(*) FROM pg_namespace WHERE nspname = 'app'`); n != 0 {
		t.Errorf("the refused run created schema app at the sink")
	}
	// An index the sink has already (its name in the sink table's schema)
	// is not listed: then no index needs "Slow ts".
	if err := dst.Exec(t.Context(), "ts_sink", `CREATE SCHEMA app; CREATE TABLE app.t (id integer, v text); CREATE INDEX t_v ON app.t (v);`); err != nil {
		t.Fatal(err)
	}
	if it := expect(t, runCheck(t, cfg, engine.CheckOptions{}), engine.CheckTablespaces, engine.Fail, want[2], want[3]); strings.Contains(it.Detail+it.Fix, "Slow ts") {
		t.Errorf("the check lists \"Slow ts\", whose one index the sink has: %s [fix: %s]", it.Detail, it.Fix)
	}
	if err := dst.Exec(t.Context(), "ts_sink", `DROP SCHEMA app CASCADE`); err != nil {
		t.Fatal(err)
	}

	makeTablespace(t, dst, "fast")
	makeTablespace(t, dst, "Slow ts")
	expect(t, runCheck(t, cfg, engine.CheckOptions{}), engine.CheckTablespaces, engine.Pass)
	runOK(t, cfg)
	const where = `SELECT string_agg(i.relname || ' ' || COALESCE(ts.spcname, '-'), ', ' ORDER BY i.relname)
		FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
		LEFT JOIN pg_tablespace ts ON ts.oid = i.reltablespace WHERE n.nspname = 'app'`
	if got := queryText(t, dstDSN, where); got != "plain_pkey -, t_pk fast, t_v Slow ts, u_pkey -, u_w fast" {
		t.Errorf("sink indexes and their tablespaces: %s", got)
	}
	assertSameData(t, srcDSN, dstDSN, []string{"app.t", "app.u", "app.plain"})
}
