package engine_test

import (
	"strings"
	"testing"
)

// sinkIndexSpaces lists the sink's indexes of schema app with their
// tablespaces ("-": the default).
const sinkIndexSpaces = `SELECT string_agg(i.relname || ' ' || COALESCE(ts.spcname, '-'), ', ' ORDER BY i.relname)
	FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
	LEFT JOIN pg_tablespace ts ON ts.oid = i.reltablespace WHERE n.nspname = 'app'`

// TestDDLTablespaces: indexes created by DDL replicated while streaming
// are built in their source tablespace, as the full copy builds them: a
// CREATE INDEX (with a predicate too), an ADD CONSTRAINT ... UNIQUE ...
// USING INDEX TABLESPACE, and the primary key of a table created while
// streaming. Before the fix a streamed CREATE INDEX was built in the
// sink's default tablespace (pg_get_indexdef leaves the tablespace out),
// while a streamed key went to its tablespace. ALTER INDEX ... SET
// TABLESPACE moves the sink's index too (before: nothing happened, with
// no warning). Then an index in a
// tablespace the sink lacks: the run stops before its transaction with an
// error naming the tablespace, the table and what to do (before: the raw
// "tablespace does not exist" of the sink, retried for the whole retry
// window), and once the tablespace is created at the sink a rerun
// converges; the same for a table created while streaming whose primary
// key is in a tablespace the sink lacks.
func TestDDLTablespaces(t *testing.T) {
	s := newPrivateStreamEnv(t, "ddl_ts")
	makeTablespace(t, s.src, "fast")
	makeTablespace(t, s.dst, "fast")
	makeTablespace(t, s.src, "cold")
	makeTablespace(t, s.src, "slow")
	makeTablespace(t, s.dst, "slow")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.t (id integer PRIMARY KEY, v text, w text);
INSERT INTO app.t SELECT g, 'v' || g, 'w' || g FROM generate_series(1, 20) g;
CREATE TABLE app.marker (id integer PRIMARY KEY);`)
	s.run(s.cfg)
	for _, sql := range []string{
		`CREATE INDEX t_v ON app.t (v) TABLESPACE fast`,
		`CREATE INDEX t_vw ON app.t (v, w) TABLESPACE fast WHERE id > 5 AND w <> 'x'`,
		`ALTER TABLE app.t ADD CONSTRAINT t_w UNIQUE (w) USING INDEX TABLESPACE fast`,
		`CREATE TABLE app.n (id integer, CONSTRAINT n_pk PRIMARY KEY (id) USING INDEX TABLESPACE fast)`,
		`INSERT INTO app.n SELECT generate_series(1, 5)`,
		`INSERT INTO app.t VALUES (21, 'v21', 'w21')`,
	} {
		s.srcExec(sql)
	}
	s.run(s.cfg)
	if got, want := queryText(t, s.dstDSN, sinkIndexSpaces), "marker_pkey -, n_pk fast, t_pkey -, t_v fast, t_vw fast, t_w fast"; got != want {
		t.Errorf("sink indexes and their tablespaces:\n got %s\nwant %s", got, want)
	}
	if got := queryText(t, s.dstDSN, `SELECT pg_get_indexdef('app.t_vw'::regclass)`); !strings.HasSuffix(got, "WHERE ((id > 5) AND (w <> 'x'::text))") {
		t.Errorf("sink index t_vw lost its predicate: %s", got)
	}
	// Indexes moved at the source (one backing a constraint) move at the
	// sink.
	s.srcExec(`ALTER INDEX app.t_v SET TABLESPACE slow`)
	s.srcExec(`ALTER INDEX app.t_w SET TABLESPACE slow`)
	s.srcExec(`ALTER INDEX app.t_pkey SET TABLESPACE slow`)
	s.run(s.cfg)
	if got, want := queryText(t, s.dstDSN, sinkIndexSpaces), "marker_pkey -, n_pk fast, t_pkey slow, t_v slow, t_vw fast, t_w slow"; got != want {
		t.Errorf("after ALTER INDEX ... SET TABLESPACE, sink indexes and their tablespaces:\n got %s\nwant %s", got, want)
	}

	// An index in a tablespace the sink lacks.
	s.srcExec(`INSERT INTO app.t VALUES (30, 'before', 'before')`)
	s.srcExec(`BEGIN; INSERT INTO app.t VALUES (31, 'same txn', 'same txn'); CREATE INDEX t_cold ON app.t (w, v) TABLESPACE cold; COMMIT`)
	s.srcExec(`INSERT INTO app.t VALUES (32, 'after', 'after')`)
	err := s.runFail(s.cfg)
	for _, want := range []string{`tablespace cold does not exist at the sink`, `table app.t`, `CREATE INDEX t_cold`, `CREATE TABLESPACE cold LOCATION`, `then run again`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in the error:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "gave up after retrying") {
		t.Errorf("the error was retried for the retry window, want a stop at once: %v", err)
	}
	if got := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.t WHERE id >= 31`); got != 0 {
		t.Errorf("sink has %d of the rows 31 and 32 (of the CREATE INDEX's transaction and after it), want none", got)
	}
	makeTablespace(t, s.dst, "cold")
	s.run(s.cfg)
	if got := queryText(t, s.dstDSN, `SELECT COALESCE(ts.spcname, '-') FROM pg_class i LEFT JOIN pg_tablespace ts ON ts.oid = i.reltablespace WHERE i.oid = 'app.t_cold'::regclass`); got != "cold" {
		t.Errorf("sink index t_cold is in tablespace %s, want cold", got)
	}

	// A table created while streaming whose primary key is in a
	// tablespace the sink lacks.
	makeTablespace(t, s.src, "icy")
	s.srcExec(`CREATE TABLE app.c2 (id integer, CONSTRAINT c2_pk PRIMARY KEY (id) USING INDEX TABLESPACE icy); INSERT INTO app.c2 VALUES (1)`)
	err = s.runFail(s.cfg)
	for _, want := range []string{`tablespace icy does not exist at the sink`, `table app.c2`, `CREATE TABLESPACE icy LOCATION`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in the error:\n%v", want, err)
		}
	}
	makeTablespace(t, s.dst, "icy")
	s.run(s.cfg)
	if got := queryText(t, s.dstDSN, `SELECT COALESCE(ts.spcname, '-') FROM pg_class i LEFT JOIN pg_tablespace ts ON ts.oid = i.reltablespace WHERE i.oid = 'app.c2_pk'::regclass`); got != "icy" {
		t.Errorf("sink index c2_pk is in tablespace %s, want icy", got)
	}
	assertSameData(t, s.srcDSN, s.dstDSN, []string{"app.t", "app.n", "app.c2"})
}
