package engine_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine"
)

// joinScript creates tables while the pipeline streams (schema app is
// selected; app.w1 and app.w2 have table items with a where condition)
// and renames them right after, so that a run reading the stream behind
// the source finds them in the source's catalog under their later names:
// app.w1 is created under its item's name and renamed away from it, app.e2
// is created under another name and renamed to w2 (its item's name),
// app.m is created in the selection and moved out of it, other.c is
// created outside the selection and moved into it; app.f, copied by the
// full copy with its item's where, is renamed away from its item's name.
var joinScript = []string{
	`CREATE TABLE app.w1 (id integer PRIMARY KEY, v text)`,
	`INSERT INTO app.w1 SELECT g, 'w1 ' || g FROM generate_series(1, 20) g`,
	`ALTER TABLE app.w1 RENAME TO w1b`,
	`INSERT INTO app.w1b SELECT g, 'w1b ' || g FROM generate_series(21, 25) g`,
	`CREATE TABLE app.e2 (id integer PRIMARY KEY, v text)`,
	`INSERT INTO app.e2 SELECT g, 'e2 ' || g FROM generate_series(1, 20) g`,
	`ALTER TABLE app.e2 RENAME TO w2`,
	`INSERT INTO app.w2 SELECT g, 'w2 ' || g FROM generate_series(21, 25) g`,
	`CREATE TABLE app.m (id integer PRIMARY KEY)`,
	`INSERT INTO app.m SELECT generate_series(1, 5)`,
	`ALTER TABLE app.m SET SCHEMA other`,
	`INSERT INTO other.m SELECT generate_series(6, 8)`,
	`CREATE TABLE other.c (id integer PRIMARY KEY)`,
	`INSERT INTO other.c SELECT generate_series(1, 5)`,
	`ALTER TABLE other.c SET SCHEMA app`,
	`INSERT INTO app.c SELECT generate_series(6, 8)`,
	`ALTER TABLE app.f RENAME TO f2`,
	`INSERT INTO app.f2 SELECT g, 'f2 ' || g FROM generate_series(-5, 0) g`,
	`INSERT INTO app.f2 SELECT g, 'f2 ' || g FROM generate_series(21, 25) g`,
}

// TestDDLJoinByStreamName: whether a table created while streaming joins
// the pipeline, and which objects item's options it takes, are decided by
// the name the table has at that point of the stream, not by its name in
// the source's catalog when sluice reads the event. The options stay with
// the table across its later renames, as they do for the tables the
// pipeline started with. Run live (the script runs while the pipeline
// streams), resumed (the script ran with the pipeline stopped: the
// catalog is then ahead of the stream) and stepped (resumed by runs that
// stop after each sink commit: a run starts after app.w1 joined and
// before its rename, discovering it as w1b, and takes its options by the
// name it joined under, recorded in the state); all end with the same
// sink. Before the record, a run that started after a rename looked the
// options up by the new name: app.f, discovered as f2, lost its where.
// Before the fix the resumed run took app.w1 (created as w1, where id >
// 10) under its later name w1b (no where: rows 1-10 copied), took app.e2
// under its later name w2 (rows 1-10 filtered out), and did not take
// app.m (moved out of the selection since), then stopped at its first row
// ("which the pipeline does not copy"). A table that leaves the selection
// (moved out of its selected schema: it leaves the publication, so none
// of its later changes arrive) leaves the pipeline with a warning, its
// sink table kept; before, the sink was told to move it into a schema it
// did not have (SQLSTATE 3F000), and a retry, which discovers the tables
// anew, skipped that.
func TestDDLJoinByStreamName(t *testing.T) {
	for _, name := range []string{"live", "resumed", "stepped"} {
		live := name == "live"
		t.Run(name, func(t *testing.T) {
			s := newStreamEnv(t, "ddl_join_"+name)
			s.srcExec(`CREATE SCHEMA app; CREATE SCHEMA other;
CREATE TABLE app.f (id integer PRIMARY KEY, v text);
INSERT INTO app.f SELECT g, 'f ' || g FROM generate_series(1, 20) g;
CREATE TABLE app.marker (id integer PRIMARY KEY);`)
			s.cfg.Options = []engine.ObjectOptions{
				{Table: tn("app", "w1"), Where: "id > 10", Origin: "join.yaml:7 (objects[1])"},
				{Table: tn("app", "w2"), Where: "id > 10", Origin: "join.yaml:9 (objects[2])"},
				{Table: tn("app", "f"), Where: "id > 10", Origin: "join.yaml:11 (objects[3])"},
			}
			s.run(s.cfg)
			// Stepped: runs that stop after each of their first sink
			// commits (one source transaction each), so that later runs
			// start between a CREATE and the renames after it, with the
			// tables renamed since in the catalog.
			steps := 0
			if name == "stepped" {
				steps = 8
			}
			s.applyScript(live, steps, joinScript)
			// app.w1 joined as w1: its item's where holds, after the rename too.
			assertSameData2(t, s.srcDSN, `(SELECT * FROM app.w1b WHERE id > 10)`, s.dstDSN, `app.w1b`)
			// app.f keeps its item's where after its rename, in a run that
			// discovers it as f2 too.
			assertSameData2(t, s.srcDSN, `(SELECT * FROM app.f2 WHERE id > 10)`, s.dstDSN, `app.f2`)
			// app.e2 joined as e2: no where.
			assertSameData2(t, s.srcDSN, `app.w2`, s.dstDSN, `app.w2`)
			// other.c entered the selection by SET SCHEMA: its rows from then on.
			assertSameData2(t, s.srcDSN, `(SELECT * FROM app.c WHERE id > 5)`, s.dstDSN, `app.c`)
			// app.m left the selection: its sink table keeps the rows it
			// had then, under the name it had.
			assertSameData2(t, s.srcDSN, `(SELECT * FROM other.m WHERE id <= 5)`, s.dstDSN, `app.m`)
			if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM pg_namespace WHERE nspname = 'other'`); n != 0 {
				t.Error("the sink has schema other, which the pipeline does not select")
			}
			if !strings.Contains(s.log.String(), "table app.m left the selection") {
				t.Errorf("no warning that app.m left the selection:\n%s", grepLines(s.log.String(), "WARN"))
			}
			if strings.Contains(s.log.String(), "does not copy") {
				t.Errorf("a change of a joined table was refused:\n%s", grepLines(s.log.String(), "does not copy"))
			}
		})
	}
}
