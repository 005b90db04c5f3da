package engine_test

import (
	"strings"
	"testing"
)

// renameFixture: two keyed tables whose names the tests swap, a keyless
// one, a partitioned table, and the marker.
const renameFixture = `CREATE SCHEMA app;
CREATE TABLE app.x (id integer PRIMARY KEY, v text);
CREATE TABLE app.y (id integer PRIMARY KEY, w text);
CREATE TABLE app.nk (a integer, b text);
CREATE TABLE app.parts (id integer PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE app.parts_p1 PARTITION OF app.parts FOR VALUES FROM (0) TO (100);
INSERT INTO app.x SELECT g, 'x' || g FROM generate_series(1, 20) g;
INSERT INTO app.y SELECT g, 'y' || g FROM generate_series(1, 20) g;
INSERT INTO app.nk SELECT g, 'nk' || g FROM generate_series(1, 5) g;
INSERT INTO app.parts SELECT g, 'p' || g FROM generate_series(1, 20) g;
CREATE TABLE app.marker (id integer PRIMARY KEY);`

// renameScript renames tables while the stream carries changes made to
// them under both names, in the same transactions as the renames and in
// later ones: a rename between changes of one transaction, a swap of two
// tables' names in one transaction, a keyless table renamed twice, a
// partitioned table renamed twice while the sink routes one of its
// partitions through it, a table created with its rows (CREATE TABLE AS: the rows
// come before the DDL event) and renamed.
var renameScript = []string{
	`BEGIN;
	 INSERT INTO app.x VALUES (100, 'before');
	 ALTER TABLE app.x RENAME TO x1;
	 INSERT INTO app.x1 VALUES (101, 'after');
	 UPDATE app.x1 SET v = 'updated' WHERE id IN (1, 100);
	 DELETE FROM app.x1 WHERE id = 2;
	 COMMIT`,
	`UPDATE app.x1 SET v = 'later' WHERE id = 3`,
	`BEGIN;
	 ALTER TABLE app.x1 RENAME TO tmp;
	 ALTER TABLE app.y RENAME TO x1;
	 ALTER TABLE app.tmp RENAME TO y;
	 INSERT INTO app.x1 VALUES (200, 'was y');
	 INSERT INTO app.y VALUES (200, 'was x');
	 DELETE FROM app.x1 WHERE id = 4;
	 DELETE FROM app.y WHERE id = 5;
	 COMMIT`,
	`BEGIN;
	 UPDATE app.nk SET b = 'one' WHERE a = 1;
	 ALTER TABLE app.nk RENAME TO nk2;
	 UPDATE app.nk2 SET b = 'two' WHERE a = 2;
	 ALTER TABLE app.nk2 RENAME TO nk3;
	 DELETE FROM app.nk3 WHERE a = 3;
	 COMMIT`,
	`CREATE TABLE app.parts_p2 PARTITION OF app.parts FOR VALUES FROM (100) TO (200)`,
	`INSERT INTO app.parts VALUES (150, 'a'), (160, 'b')`,
	`BEGIN;
	 ALTER TABLE app.parts RENAME TO parts_r;
	 INSERT INTO app.parts_r VALUES (170, 'c'), (30, 'd');
	 COMMIT`,
	`UPDATE app.parts_r SET v = 'B' WHERE id = 160`,
	`CREATE TABLE app.ctas AS SELECT id, w FROM app.x1`,
	`ALTER TABLE app.ctas RENAME TO ctas2`,
	`INSERT INTO app.ctas2 VALUES (300, 'after rename')`,
	`DELETE FROM app.parts_r WHERE id = 150`,
	`ALTER TABLE app.parts_r RENAME TO parts_s`,
	`INSERT INTO app.parts_s VALUES (180, 'e')`,
}

// renameChecks are the sink's expected tables afterwards.
var renameChecks = []string{"app.x1", "app.y", "app.nk3", "app.parts_s", "app.parts_p1", "app.ctas2"}

// TestDDLRenamesNeverUndefinedTable: renames replicated in the stream
// never make the sink miss a table (SQLSTATE 42P01, which parks the
// pipeline after one try, engine/reject.go): each change reaches its
// table under the name the sink has at that point of the stream. Run
// twice: streaming while the script runs, and resuming after the script
// ran with the pipeline stopped (the source's catalog is then ahead of the
// stream: the run starts with the tables' current names, and the stream
// carries the old ones). In the second, the run also stops after each of
// the first sink commits (one source transaction each), so that later
// runs resume between a rename and the changes after it. Afterwards each
// table equals the source's.
func TestDDLRenamesNeverUndefinedTable(t *testing.T) {
	for _, live := range []bool{true, false} {
		name := "resumed"
		if live {
			name = "live"
		}
		t.Run(name, func(t *testing.T) {
			s := newStreamEnv(t, "ddl_renames_"+name)
			s.srcExec(renameFixture)
			s.run(s.cfg)
			// The sink's partitioned table covers what the source's second
			// partition will: its changes are routed through the sink's
			// partitioned table, by its name.
			if err := s.dst.Exec(t.Context(), s.dstDB, `CREATE TABLE app.parts_rest PARTITION OF app.parts FOR VALUES FROM (100) TO (MAXVALUE)`); err != nil {
				t.Fatal(err)
			}
			s.applyScript(live, 4, renameScript)
			if strings.Contains(s.log.String(), "42P01") {
				t.Errorf("a change missed its table at the sink:\n%s", grepLines(s.log.String(), "42P01"))
			}
			for _, tb := range renameChecks {
				assertSameData2(t, s.srcDSN, tb, s.dstDSN, tb)
			}
			if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.parts_rest`); n != 3 {
				t.Errorf("sink: app.parts_rest holds %d rows, want 3 (160, 170 and 180, routed)", n)
			}
		})
	}
}
