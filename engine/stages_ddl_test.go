package engine_test

// Transform stages and tables that join or change while streaming.

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/record"
)

// waitCtlMarker inserts id into ctl.marker at the source and waits until
// the sink has it.
func (s *streamEnv) waitCtlMarker(bg *background, id int) {
	s.t.Helper()
	s.srcExec("INSERT INTO ctl.marker VALUES (" + strconv.Itoa(id) + ")")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n, err := tryQuery[int64](s.t.Context(), s.dstDSN, "SELECT count(*) FROM ctl.marker WHERE id = $1", id)
		if err == nil && n == 1 {
			return
		}
		if ended, err := bg.ended(); ended {
			s.t.Fatalf("the pipeline stopped while streaming: %v", err)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("marker %d did not reach the sink within 2 minutes (last error: %v)", id, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStagesCoverTablesJoiningWhileStreaming: a masking set stage scoped
// to app.* applies to the tables created in app while the pipeline
// streams: a table created with its rows in one transaction, a new
// partition, and a CREATE TABLE AS (whose rows come before its DDL
// event). Before the fix the stages were compiled for the tables known at
// start, and the new tables' rows reached the sink unmasked.
func TestStagesCoverTablesJoiningWhileStreaming(t *testing.T) {
	s := newStreamEnv(t, "stages_join")
	s.srcExec(`CREATE SCHEMA app; CREATE SCHEMA ctl;
CREATE TABLE app.users (id integer PRIMARY KEY, email text, name text);
INSERT INTO app.users SELECT g, 'u' || g || '@example.com', 'user ' || g FROM generate_series(1, 20) g;
CREATE TABLE app.events (id integer, email text, kind text, PRIMARY KEY (id)) PARTITION BY RANGE (id);
CREATE TABLE app.events_p1 PARTITION OF app.events FOR VALUES FROM (0) TO (100);
INSERT INTO app.events SELECT g, 'e' || g || '@example.com', 'click' FROM generate_series(1, 10) g;
CREATE TABLE ctl.marker (id integer PRIMARY KEY);`)
	s.cfg.Objects = append(schemaSel("app"), schemaSel("ctl")...)
	s.cfg.Transforms = []engine.TransformStage{{Kind: "set", Set: map[string]string{"email": `"masked"`},
		Match: func(n record.TableName) bool { return n.Schema == "app" }, Scope: "app.*", Origin: "pipeline.yaml:9 (transforms[0])"}}
	s.run(s.cfg)
	bg := s.streamInBackground(s.cfg)
	s.srcExec(`BEGIN;
CREATE TABLE app.signups (id integer PRIMARY KEY, email text, source text);
INSERT INTO app.signups SELECT g, 's' || g || '@example.com', 'web' FROM generate_series(1, 10) g;
COMMIT;`)
	s.srcExec(`INSERT INTO app.signups SELECT g, 's' || g || '@example.com', 'app' FROM generate_series(11, 15) g;
UPDATE app.signups SET email = 'changed@example.com', source = 'edit' WHERE id = 1;`)
	s.srcExec(`CREATE TABLE app.events_p2 PARTITION OF app.events FOR VALUES FROM (100) TO (200);
INSERT INTO app.events VALUES (150, 'late@example.com', 'view'), (55, 'early@example.com', 'view');`)
	s.srcExec(`CREATE TABLE app.copied AS SELECT id, email, name FROM app.users WHERE id <= 5`)
	s.srcExec(`INSERT INTO app.users VALUES (21, 'new@example.com', 'user 21')`)
	s.waitCtlMarker(bg, 1)
	if err := bg.stop(); err != nil {
		t.Fatalf("engine.Run: %v", err)
	}
	for _, c := range []struct {
		table string
		rows  int64
	}{{"app.users", 21}, {"app.signups", 15}, {"app.events", 12}, {"app.events_p2", 1}, {"app.copied", 5}} {
		n := streamQuery[int64](t, s.dstDSN, `SELECT count(*) FROM `+c.table)
		masked := streamQuery[int64](t, s.dstDSN, `SELECT count(*) FROM `+c.table+` WHERE email = 'masked'`)
		if n != c.rows || masked != n {
			t.Errorf("sink %s: %d rows, %d of them masked; want %d rows, all masked", c.table, n, masked, c.rows)
		}
	}
	if v := streamQuery[string](t, s.dstDSN, `SELECT source FROM app.signups WHERE id = 1`); v != "edit" {
		t.Errorf("sink app.signups row 1: source %q, want the update's \"edit\"", v)
	}
	if !strings.Contains(s.log.String(), "table joined transform stages") {
		t.Errorf("no log line saying the new tables joined the stages:\n%s", grepLines(s.log.String(), "joined"))
	}
}

// TestStagesRecompiledAfterAlter: filter stages over a table whose
// columns change while streaming keep deciding by the table's current
// shape: a column added is seen by a filter reading the whole row, and a
// column whose type changes from integer to numeric is read as a number
// of its new type. Before the fix the added column read as nil (the row
// with 'test' in it passed) and 7.5 failed to decode as an integer.
func TestStagesRecompiledAfterAlter(t *testing.T) {
	s := newStreamEnv(t, "stages_alter")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.t (id integer PRIMARY KEY, n integer NOT NULL, note text);
INSERT INTO app.t SELECT g, g, 'row ' || g FROM generate_series(1, 10) g;
CREATE TABLE app.parts (id integer PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE app.parts_1 PARTITION OF app.parts FOR VALUES FROM (0) TO (1000);
INSERT INTO app.parts VALUES (1, 'one');
CREATE TABLE app.marker (id integer PRIMARY KEY);`)
	only := func(n record.TableName) bool { return n == tn("app", "t") }
	parts := func(n record.TableName) bool { return n == tn("app", "parts") }
	s.cfg.Transforms = []engine.TransformStage{
		{Kind: "filter", Filter: "after.n > 5", Match: only, Scope: "app.t", Origin: "pipeline.yaml:9 (transforms[0])"},
		{Kind: "filter", Filter: `none(values(after), # == "test")`, Match: only, Scope: "app.t", Origin: "pipeline.yaml:11 (transforms[1])"},
		// Scoped by the partitioned table: DDL on it changes its partitions.
		{Kind: "filter", Filter: `none(values(after), # == "test")`, Match: parts, Scope: "app.parts", Origin: "pipeline.yaml:13 (transforms[2])"},
	}
	s.run(s.cfg)
	bg := s.streamInBackground(s.cfg)
	// The DDL and the rows that use it in one transaction, and in
	// transactions of their own.
	s.srcExec(`BEGIN;
ALTER TABLE app.t ADD COLUMN tag text;
INSERT INTO app.t VALUES (100, 7, 'a', 'test'), (101, 8, 'b', 'keep'), (102, 2, 'c', 'keep');
COMMIT;`)
	s.srcExec(`INSERT INTO app.t VALUES (103, 9, 'd', 'test'), (104, 9, 'e', NULL)`)
	s.srcExec(`ALTER TABLE app.parts ADD COLUMN tag text;
INSERT INTO app.parts VALUES (2, 'two', 'test'), (3, 'three', 'keep');`)
	s.srcExec(`ALTER TABLE app.t ALTER COLUMN n TYPE numeric`)
	s.srcExec(`INSERT INTO app.t VALUES (105, 7.5, 'f', 'x'), (106, 5.5, 'g', 'test'), (107, 2.5, 'h', 'x');
UPDATE app.t SET n = 9.25 WHERE id = 1;
UPDATE app.t SET n = 0.5 WHERE id = 10;`)
	s.stopAtMarker(bg)
	want := `SELECT string_agg(id || ':' || n || ':' || coalesce(tag, '-'), ' ' ORDER BY id) FROM app.t WHERE n > 5 AND tag IS DISTINCT FROM 'test'`
	got := `SELECT string_agg(id || ':' || n || ':' || coalesce(tag, '-'), ' ' ORDER BY id) FROM app.t`
	if w, g := streamQuery[string](t, s.srcDSN, want), streamQuery[string](t, s.dstDSN, got); w != g {
		t.Errorf("sink app.t rows:\n got %s\nwant %s (the filtered source)", g, w)
	}
	if g := streamQuery[string](t, s.dstDSN, `SELECT string_agg(id || ':' || coalesce(tag, '-'), ' ' ORDER BY id) FROM app.parts`); g != "1:- 3:keep" {
		t.Errorf("sink app.parts rows: %s, want 1:- 3:keep (the row with 'test' in the added column filtered out)", g)
	}
	if typ := streamQuery[string](t, s.dstDSN, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'app.t'::regclass AND attname = 'n'`); typ != "numeric" {
		t.Errorf("sink app.t.n is %s, want numeric", typ)
	}
}
