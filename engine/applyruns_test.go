package engine_test

import (
	"strings"
	"testing"
)

// TestStreamRuns streams changes that the applier sends as runs (many
// inserts or full-row updates of one table in one statement): awkward
// values (quotes, backslashes, braces, NULLs, arrays, JSON), a row updated
// many times in one sink transaction, key changes between updates, an
// insert-update-delete-insert of one key in one transaction, updates of
// rows the sink lacks (inserted, with a warning), a run larger than one
// statement may hold (sent in parts), and a swap of unique
// values in a table with a second unique index, which must go row by row.
// It also checks that the primary keys, left out of the tables created
// before the copy, are built after it under their source names.
func TestStreamRuns(t *testing.T) {
	s := newStreamEnv(t, "runs")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.r (id integer PRIMARY KEY, n integer NOT NULL, t text, a integer[], j jsonb, num numeric(10,2), c char(5), b bit(4));
CREATE TABLE app.ck (k char(5) PRIMARY KEY, n integer);
CREATE TABLE app.u (id integer PRIMARY KEY, email text NOT NULL UNIQUE, n integer);
INSERT INTO app.r SELECT g, 0, 'x' || g, ARRAY[g, g + 1], jsonb_build_object('g', g), g / 3.0 FROM generate_series(1, 100) g;
INSERT INTO app.u SELECT g, 'e' || g, 0 FROM generate_series(1, 10) g;
INSERT INTO app.ck SELECT lpad(g::text, 5, 'k'), 0 FROM generate_series(1, 20) g;`)
	s.run(s.cfg)
	if l := s.log.String(); !strings.Contains(l, "primary key built while the copy goes on") && !strings.Contains(l, "building primary keys after the copy") {
		t.Error("the log does not say the primary keys were built after the copy")
	}
	for _, c := range []string{"r_pkey", "u_pkey"} {
		if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND conname = $1 AND connamespace = 'app'::regnamespace`, c); n != 1 {
			t.Errorf("sink: primary key %s: %d, want 1", c, n)
		}
	}
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM pg_constraint WHERE contype = 'u' AND conrelid = 'app.u'::regclass`); n != 1 {
		t.Errorf("sink: unique constraint of app.u: %d, want 1 (post-data)", n)
	}

	s.srcExec(`INSERT INTO app.r SELECT g, g,
	CASE g % 5 WHEN 0 THEN NULL WHEN 1 THEN 'quote " and \ backslash' WHEN 2 THEN '{brace,comma}' WHEN 3 THEN '' ELSE E'tab\there\nnewline ü NULL' END,
	CASE WHEN g % 2 = 0 THEN NULL ELSE ARRAY[g, NULL] END, '{"k": "v \" w \\ x"}', CASE WHEN g % 3 = 0 THEN NULL ELSE g * 1.25 END
FROM generate_series(101, 200) g`)
	// Types whose modifier matters (char(5), bit(4)), also as a key: runs
	// cast to the sink column's full type, never to char(1) or bit(1).
	s.srcExec(`UPDATE app.r SET c = 'abcde', b = B'1010' WHERE id <= 40;
UPDATE app.ck SET n = n + 1;
INSERT INTO app.ck SELECT lpad(g::text, 5, 'z'), g FROM generate_series(1, 20) g;`)
	s.srcExec(`UPDATE app.r SET n = n + 1 WHERE id <= 50;
UPDATE app.r SET n = n + 1, t = t || ' "!"' WHERE id <= 60;
UPDATE app.r SET id = id + 1000 WHERE id BETWEEN 61 AND 65;
UPDATE app.r SET n = n + 1 WHERE id <= 70 OR id > 1000;`)
	s.srcExec(`BEGIN;
INSERT INTO app.r (id, n, t) VALUES (500, 1, 'a');
UPDATE app.r SET n = 2 WHERE id = 500;
DELETE FROM app.r WHERE id = 500;
INSERT INTO app.r (id, n, t) VALUES (500, 3, 'b');
UPDATE app.r SET n = 4 WHERE id = 500;
COMMIT;`)
	s.srcExec(`BEGIN;
UPDATE app.u SET email = 'tmp' WHERE id = 1;
UPDATE app.u SET email = 'e1' WHERE id = 2;
UPDATE app.u SET email = 'e2' WHERE id = 1;
UPDATE app.u SET n = n + 1;
COMMIT;`)
	// 2 MB values: the run is sent in parts (a run holds at most 16 MB).
	s.srcExec(`INSERT INTO app.r (id, n, t) SELECT g, 0, repeat(md5(g::text), 65536) FROM generate_series(2001, 2012) g`)
	s.run(s.cfg)
	s.assertSame()
	if v := streamQuery[string](t, s.dstDSN, `SELECT t FROM app.r WHERE id = 101`); v != `quote " and \ backslash` {
		t.Errorf("sink: app.r 101 t = %q", v)
	}

	// The sink lost rows: the update run finds fewer rows than it updates
	// and inserts the missing ones.
	if err := s.dst.Exec(t.Context(), s.dstDB, `DELETE FROM app.r WHERE id BETWEEN 1 AND 10`); err != nil {
		t.Fatal(err)
	}
	s.srcExec(`UPDATE app.r SET n = n + 1 WHERE id <= 30`)
	s.run(s.cfg)
	s.assertSame()
	if !strings.Contains(s.log.String(), "streamed updates found no row to change") {
		t.Error("the log has no warning about the update run's missing rows")
	}
}
