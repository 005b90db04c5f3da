package engine_test

// The objects' where conditions and DDL replicated while streaming.

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/record"
)

// TestWhereFollowsAlter: where conditions over columns whose type changes
// while streaming keep deciding as PostgreSQL does: compiled again for the
// new type after the ALTER (a table, a partitioned table's partitions and
// a partition created after), and, for a table of a table item dropped and
// created again in one transaction with its rows and an ALTER, compiled
// for the table as its CREATE captured it, then as its ALTER did. Before
// the fix the conditions stayed compiled for integer: the first row after
// ALTER COLUMN TYPE numeric stopped the pipeline ("changed type"), and the
// table created again was compiled for the catalog as it was at the
// stream's time (numeric already) and stopped at its first integer row.
func TestWhereFollowsAlter(t *testing.T) {
	s := newStreamEnv(t, "where_alter")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.t (id integer PRIMARY KEY, n integer, note text);
INSERT INTO app.t SELECT g, g, 'row ' || g FROM generate_series(1, 10) g;
CREATE TABLE app.parts (id integer PRIMARY KEY, n integer) PARTITION BY RANGE (id);
CREATE TABLE app.parts_1 PARTITION OF app.parts FOR VALUES FROM (0) TO (100);
INSERT INTO app.parts SELECT g, g FROM generate_series(1, 10) g;
CREATE TABLE app."T 2" (id integer PRIMARY KEY, n integer);
INSERT INTO app."T 2" VALUES (1, 9), (2, 1);
CREATE TABLE app.marker (id integer PRIMARY KEY);`)
	s.cfg.Options = []engine.ObjectOptions{
		{Table: tn("app", "t"), Where: "n > 5", Origin: "pipeline.yaml:8 (objects[1])"},
		{Table: tn("app", "parts"), Where: "n > 5", Origin: "pipeline.yaml:10 (objects[2])"},
		{Table: tn("app", "T 2"), Where: "n > 5", Origin: "pipeline.yaml:12 (objects[3])"},
	}
	s.run(s.cfg)
	bg := s.streamInBackground(s.cfg)
	s.srcExec(`ALTER TABLE app.t ALTER COLUMN n TYPE numeric`)
	s.srcExec(`INSERT INTO app.t VALUES (100, 7.5, 'a'), (101, 5.5, 'b'), (102, 5.25, 'c');
UPDATE app.t SET n = 9.25 WHERE id = 1;
UPDATE app.t SET n = 0.5 WHERE id = 10;
UPDATE app.t SET n = 6.5 WHERE id = 102;`)
	s.srcExec(`ALTER TABLE app.parts ALTER COLUMN n TYPE numeric`)
	s.srcExec(`INSERT INTO app.parts VALUES (20, 6.5), (21, 1.5); UPDATE app.parts SET n = 5.5 WHERE id = 9`)
	s.srcExec(`CREATE TABLE app.parts_2 PARTITION OF app.parts FOR VALUES FROM (100) TO (200)`)
	s.srcExec(`INSERT INTO app.parts VALUES (150, 7.25), (151, 2.25)`)
	s.srcExec(`BEGIN;
DROP TABLE app."T 2";
CREATE TABLE app."T 2" (id integer PRIMARY KEY, n integer);
INSERT INTO app."T 2" VALUES (1, 7), (2, 3);
ALTER TABLE app."T 2" ALTER COLUMN n TYPE numeric;
INSERT INTO app."T 2" VALUES (3, 7.5), (4, 2.5);
COMMIT;`)
	s.stopAtMarker(bg)
	for _, p := range [][2]string{
		{`(SELECT * FROM app.t WHERE n > 5)`, `app.t`},
		{`(SELECT * FROM app.parts WHERE n > 5)`, `app.parts`},
		{`(SELECT * FROM app.parts_2 WHERE n > 5)`, `app.parts_2`},
		{`(SELECT * FROM app."T 2" WHERE n > 5)`, `app."T 2"`},
	} {
		assertSameData2(t, s.srcDSN, p[0], s.dstDSN, p[1])
	}
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.t WHERE id IN (1, 100, 102)`); n != 3 {
		t.Errorf("sink app.t has %d of the rows 1, 100, 102 (n 9.25, 7.5, 6.5), want 3", n)
	}
	if !strings.Contains(s.log.String(), "where condition compiled again") {
		t.Errorf("no log line saying a where condition was compiled again:\n%s", grepLines(s.log.String(), "where"))
	}
}

// TestWhereParksOnDDL: DDL that makes a where condition unfit parks the
// pipeline at the DDL, with an error naming the objects item (file:line),
// the table, the problem and the statement, everything before the DDL's
// transaction applied and nothing of it or after it: a column the
// condition reads renamed,
// then (after the condition is edited and the pipeline resumed) a column
// changed to a locale collation under which the engine cannot order text
// as PostgreSQL does. Before the fix the rename stopped only at the
// table's next row, naming neither item nor statement, and the collation
// change passed unnoticed: rows were decided in byte order, so 'Zed' <
// 'm' held in the stream while the source's own condition says otherwise.
// The DDL runs while the pipeline is down, so each run starts with the
// source's catalog ahead of the stream: the condition is compiled for
// the table as the stream has it, not refused at start.
func TestWhereParksOnDDL(t *testing.T) {
	s := newStreamEnv(t, "where_park")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.o (id integer PRIMARY KEY, amount integer, code text COLLATE "C");
INSERT INTO app.o SELECT g, g - 5, chr(64 + g) FROM generate_series(1, 20) g;`)
	item := func(cond string) []engine.ObjectOptions {
		return []engine.ObjectOptions{{Table: tn("app", "o"), Where: cond, Origin: "orders.yaml:9 (objects[1])"}}
	}
	s.cfg.Options = item("amount > 0 AND code < 'm'")
	s.run(s.cfg)

	// A column the condition reads is renamed.
	s.srcExec(`INSERT INTO app.o VALUES (101, 5, 'a')`)
	s.srcExec(`ALTER TABLE app.o RENAME COLUMN amount TO total; INSERT INTO app.o VALUES (102, 6, 'b')`)
	s.srcExec(`INSERT INTO app.o VALUES (103, 7, 'c')`)
	err := runErr(t, s.cfg)
	for _, want := range []string{"orders.yaml:9 (objects[1])", "where on table app.o", `"amount"`, "ALTER TABLE", "RENAME COLUMN amount TO total", "change the where condition"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("a column the where condition reads renamed: want %q in the error:\n%v", want, err)
		}
	}
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM information_schema.columns WHERE table_schema = 'app' AND table_name = 'o' AND column_name = 'amount'`); n != 1 {
		t.Error("the sink renamed the column although the pipeline stopped before the RENAME")
	}
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.o WHERE id > 101`); n != 0 {
		t.Errorf("the sink has %d rows of the RENAME's transaction or after it, want none", n)
	}
	// The transactions before the RENAME's are committed: the rerun
	// starts at it, so the edited condition (over total) meets no row
	// of the old columns.
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.o WHERE id = 101`); n != 1 {
		t.Error("row 101, inserted before the RENAME, is not at the sink: the pipeline did not stop right before the RENAME's transaction")
	}

	// Edited, the pipeline resumes at the RENAME and loses nothing.
	s.cfg.Options = item("total > 0 AND code < 'm'")
	s.run(s.cfg)
	assertSameData2(t, s.srcDSN, `(SELECT * FROM app.o WHERE total > 0 AND code < 'm')`, s.dstDSN, `app.o`)

	// A locale collation: ordering text is refused.
	s.srcExec(`ALTER TABLE app.o ALTER COLUMN code TYPE text COLLATE "und-x-icu"`)
	s.srcExec(`INSERT INTO app.o VALUES (104, 8, 'Zed')`)
	err = runErr(t, s.cfg)
	for _, want := range []string{"orders.yaml:9 (objects[1])", "where on table app.o", "und-x-icu", "ALTER COLUMN code TYPE text", "change the where condition"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("a column the where condition orders changed to a locale collation: want %q in the error:\n%v", want, err)
		}
	}
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.o WHERE id = 104`); n != 0 {
		t.Error("the row inserted after the collation change reached the sink: decided in byte order")
	}
}

// TestWhereParksOnDDLWithStages: as TestWhereParksOnDDL, with a transform
// stage on the table, so streamed changes are staged a window at a time,
// and the DDL run while the pipeline streams: the run stops right before
// the RENAME's transaction, the rows before it committed (and masked by
// the stage), nothing of it or after it applied.
func TestWhereParksOnDDLWithStages(t *testing.T) {
	s := newStreamEnv(t, "where_park_stages")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.o (id integer PRIMARY KEY, amount integer, note text);
INSERT INTO app.o SELECT g, g - 5, 'n' || g FROM generate_series(1, 20) g;
CREATE TABLE app.marker (id integer PRIMARY KEY);`)
	s.cfg.Options = []engine.ObjectOptions{{Table: tn("app", "o"), Where: "amount > 0", Origin: "orders.yaml:9 (objects[1])"}}
	s.cfg.Transforms = []engine.TransformStage{{Kind: "set", Set: map[string]string{"note": `"masked"`},
		Match: func(n record.TableName) bool { return n == tn("app", "o") }, Scope: "app.o", Origin: "orders.yaml:12 (transforms[0])"}}
	s.run(s.cfg)
	bg := s.streamInBackground(s.cfg)
	s.srcExec(`INSERT INTO app.o VALUES (101, 5, 'a'), (102, -5, 'b')`)
	s.waitMarker(bg, 1, "app.marker")
	s.srcExec(`BEGIN;
INSERT INTO app.o VALUES (103, 6, 'c');
COMMIT;
BEGIN;
INSERT INTO app.marker VALUES (2);
ALTER TABLE app.o RENAME COLUMN amount TO total;
INSERT INTO app.o VALUES (104, 7, 'd');
COMMIT;
INSERT INTO app.o VALUES (105, 8, 'e');`)
	deadline := time.Now().Add(time.Minute)
	for {
		if ended, err := bg.ended(); ended {
			if err == nil || !strings.Contains(err.Error(), "orders.yaml:9 (objects[1])") || !strings.Contains(err.Error(), "RENAME COLUMN amount TO total") {
				t.Fatalf("the run ended with %v, want the where condition's error naming the item and the RENAME", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run did not stop at the RENAME within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := queryText(t, s.dstDSN, `SELECT string_agg(id || ':' || note, ' ' ORDER BY id) FROM app.o WHERE id > 100`); got != "101:masked 103:masked" {
		t.Errorf("sink rows after 100: %s, want 101:masked 103:masked (committed before the RENAME's transaction, masked; nothing of it or after it)", got)
	}
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.marker WHERE id = 2`); n != 0 {
		t.Error("the RENAME's transaction was applied in part (its marker row is at the sink)")
	}
}
