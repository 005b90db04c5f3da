package engine_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

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
	s.waitMarker(bg, 1, "app.marker")
	if err := bg.stop(); err != nil {
		t.Fatalf("engine.Run: %v", err)
	}
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
