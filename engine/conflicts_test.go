package engine_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine"
)

// TestConflictingTablesError: a selected table that exists at the sink
// holding rows stops the run before any data moves, naming each such
// table; an empty existing table is copied into.
func TestConflictingTablesError(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE TABLE public.a (id int PRIMARY KEY, v text);
		CREATE TABLE public.b (id int PRIMARY KEY, v text);
		CREATE TABLE public.c (id int PRIMARY KEY, v text);
		INSERT INTO public.a SELECT g, 'src' FROM generate_series(1, 50) g;
		INSERT INTO public.b SELECT g, 'src' FROM generate_series(1, 50) g;
		INSERT INTO public.c SELECT g, 'src' FROM generate_series(1, 50) g;`)
	e.dstExec(`CREATE TABLE public.a (id int PRIMARY KEY, v text);
		CREATE TABLE public.b (id int PRIMARY KEY, v text);
		CREATE TABLE public.c (id int PRIMARY KEY, v text);
		INSERT INTO public.a VALUES (1, 'theirs');
		INSERT INTO public.b VALUES (1000, 'theirs');`)
	cfg := e.config(schemaSel("public")...)
	err := runErr(t, cfg)
	for _, want := range []string{"public.a", "public.b", "on_conflicting_tables: ignore"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "public.c") {
		t.Errorf("the empty table public.c is named as conflicting: %v", err)
	}
	if n := queryInt(t, e.dstDSN, "SELECT count(*) FROM public.c"); n != 0 {
		t.Errorf("sink: public.c got %d rows although the run stopped before copying", n)
	}
	// The precheck says the same, and with ignore it warns instead.
	rep := runCheck(t, cfg, engine.CheckOptions{})
	expect(t, rep, engine.CheckConflictingTables, engine.Fail, "public.a", "public.b", "on_conflicting_tables: ignore")
	cfg.IgnoreConflictingTables = true
	rep = runCheck(t, cfg, engine.CheckOptions{})
	expect(t, rep, engine.CheckConflictingTables, engine.Warn, "public.a", "public.b", "keeps the sink's row")
}

// TestConflictingTablesIgnore: with on_conflicting_tables: ignore the full
// copy keeps the sink's row where a key clashes and adds the rest;
// streaming then overwrites the sink's rows with the source's changes,
// inserts of keys the sink already had included.
func TestConflictingTablesIgnore(t *testing.T) {
	s := newStreamEnv(t, "conflict_ignore")
	s.srcExec(`CREATE SCHEMA app;
		CREATE TABLE app.a (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, code text UNIQUE, v text);
		CREATE TABLE app.bag (v int);
		INSERT INTO app.a (code, v) OVERRIDING SYSTEM VALUE SELECT 'c' || g, 'src' FROM generate_series(1, 3000) g;
		INSERT INTO app.bag VALUES (1), (2);`)
	dstExec(t, s.dstDSN, `CREATE SCHEMA app;
		CREATE TABLE app.a (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, code text UNIQUE, v text);
		CREATE TABLE app.bag (v int);
		INSERT INTO app.a (id, code, v) OVERRIDING SYSTEM VALUE VALUES (5, 'c5', 'sink'), (7, 'other', 'sink-unique-clash'), (5000, 'c5000', 'sink-only'), (6000, 'c6000', 'sink-before-insert');
		INSERT INTO app.bag VALUES (2), (3);`)
	s.cfg.IgnoreConflictingTables = true
	s.cfg.ChunkRows = 1000
	s.run(s.cfg)
	for _, c := range []struct {
		sql, want string
	}{
		{"SELECT v FROM app.a WHERE id = 5", "sink"}, // key clash: the sink's row stays
		{"SELECT v || ' ' || code FROM app.a WHERE id = 7", "sink-unique-clash other"},
		{"SELECT v FROM app.a WHERE id = 5000", "sink-only"},
		{"SELECT v FROM app.a WHERE id = 8", "src"},
		{"SELECT count(*)::text FROM app.a", "3002"},
		{"SELECT string_agg(v::text, ',' ORDER BY v) FROM app.bag", "1,2,2,3"},
	} {
		if got := queryText(t, s.dstDSN, c.sql); got != c.want {
			t.Errorf("sink after the copy: %s = %q, want %q", c.sql, got, c.want)
		}
	}
	// Streaming overwrites: an update of a clashing key, an insert of a
	// key only the sink had.
	s.srcExec(`UPDATE app.a SET v = 'src-updated' WHERE id = 5;
		INSERT INTO app.a (id, code, v) OVERRIDING SYSTEM VALUE VALUES (6000, 'c6000', 'src-inserted');`)
	s.run(s.cfg)
	for _, c := range []struct{ sql, want string }{
		{"SELECT v FROM app.a WHERE id = 5", "src-updated"},
		{"SELECT v FROM app.a WHERE id = 6000", "src-inserted"},
		{"SELECT count(*)::text FROM app.a", "3002"},
	} {
		if got := queryText(t, s.dstDSN, c.sql); got != c.want {
			t.Errorf("sink after streaming: %s = %q, want %q", c.sql, got, c.want)
		}
	}
}

// dstExec runs SQL at a sink database.
func dstExec(t *testing.T, dsn, sql string) {
	t.Helper()
	conn := oracleConn(t, dsn)
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatal(err)
	}
}

// TestConflictingTablesIgnoreNoReset: a table without a key, holding a
// row at the sink before the copy, whose copy (on_conflicting_tables:
// ignore) is interrupted, must start over — but emptying it would delete
// the sink's own row: the rerun refuses, naming the table, and the row
// stays.
func TestConflictingTablesIgnoreNoReset(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE TABLE public.bag (v int, pad text);
		INSERT INTO public.bag SELECT g, repeat('x', 200) FROM generate_series(1, 30000) g;
		ANALYZE public.bag;`)
	e.dstExec(`CREATE TABLE public.bag (v int, pad text); INSERT INTO public.bag VALUES (-1, 'theirs');`)
	cfg := e.config(schemaSel("public")...)
	cfg.IgnoreConflictingTables = true
	cfg.ChunkRows, cfg.Parallel = 5000, 1
	cfg.Failpoints = failpoints(t, "copy.chunk.after_checkpoint=error@2")
	runErr(t, cfg)
	cfg.Failpoints = nil
	err := runErr(t, cfg)
	if !strings.Contains(err.Error(), "public.bag") || !strings.Contains(err.Error(), "must start over") {
		t.Errorf("rerun: want an error naming public.bag and why, got %v", err)
	}
	if n := queryInt(t, e.dstDSN, "SELECT count(*) FROM public.bag WHERE v = -1"); n != 1 {
		t.Errorf("sink: the row the table held before the copy is gone (%d left)", n)
	}
}
