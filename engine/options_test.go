package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
	"github.com/sluicehq/sluice/transforms/rename"
)

// sameRows compares, by checksum, the rows of two queries (each a
// parenthesised SELECT): the source's filtered and projected rows and the
// sink's mapped table.
func sameRows(t *testing.T, srcDSN, srcQuery, dstDSN, dstQuery string) {
	t.Helper()
	ctx := context.Background()
	n1, s1, err := pgtest.ChecksumDSN(ctx, srcDSN, srcQuery)
	if err != nil {
		t.Fatal(err)
	}
	n2, s2, err := pgtest.ChecksumDSN(ctx, dstDSN, dstQuery)
	if err != nil {
		t.Fatal(err)
	}
	if n1 != n2 || s1 != s2 {
		t.Errorf("source %s: %d rows (%s); sink %s: %d rows (%s)", srcQuery, n1, s1, dstQuery, n2, s2)
	}
}

// TestOptionsWhereRenameColumns copies and streams a table with a hostile
// name under a WHERE filter, a table rename and column renames and drops,
// with UPDATEs crossing the filter in both directions, under the default
// replica identity (the filter's columns are not in it: upserts) and
// under REPLICA IDENTITY FULL (exact decisions).
func TestOptionsWhereRenameColumns(t *testing.T) {
	s := newStreamEnv(t, "opts_where")
	src := `"app"."Ord ""ers"" ü"`
	full := `"app"."full id"`
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE ` + src + ` (id int PRIMARY KEY, amount numeric, region text, "cust id" int, "no tes" text);
CREATE TABLE ` + full + ` (id int PRIMARY KEY, amount int, region text, junk text);
ALTER TABLE ` + full + ` REPLICA IDENTITY FULL;
INSERT INTO ` + src + ` SELECT g, g % 300, (ARRAY['eu','us','ap'])[1 + g % 3], g * 7, 'n' || g FROM generate_series(1, 3000) g;
INSERT INTO ` + full + ` SELECT g, g % 300, (ARRAY['eu','us','ap'])[1 + g % 3], 'j' FROM generate_series(1, 1000) g;`)
	cond := `amount > 100 AND region IN ('eu','us')`
	cfg := s.cfg
	cfg.ChunkRows = 1000
	srcName := record.TableName{Schema: "app", Name: `Ord "ers" ü`}
	fullName := record.TableName{Schema: "app", Name: "full id"}
	cfg.Options = []engine.ObjectOptions{
		{Table: srcName, Where: cond, Origin: "test:1 (objects[1])"},
		{Table: fullName, Where: cond, Origin: "test:2 (objects[2])"},
	}
	cfg.Rename = rename.Config{
		Tables: []rename.TableRename{{From: srcName, To: record.TableName{Schema: "arch ive", Name: `Big "Örders"`}, Origin: "test:1"}},
		Columns: []rename.ColumnRename{
			{Table: srcName, From: "cust id", To: "customer id", Origin: "test:1"},
			{Table: srcName, From: "no tes", Drop: true, Origin: "test:1"},
			{Table: fullName, From: "junk", Drop: true, Origin: "test:2"},
		},
	}
	dst := `"arch ive"."Big ""Örders"""`
	check := func() {
		t.Helper()
		sameRows(t, s.srcDSN, `(SELECT id, amount, region, "cust id" FROM `+src+` WHERE `+cond+`)`,
			s.dstDSN, `(SELECT id, amount, region, "customer id" FROM `+dst+`)`)
		sameRows(t, s.srcDSN, `(SELECT id, amount, region FROM `+full+` WHERE `+cond+`)`,
			s.dstDSN, `(SELECT id, amount, region FROM `+full+`)`)
	}
	s.run(cfg)
	check()
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM information_schema.columns WHERE table_schema = 'arch ive' AND column_name = 'no tes'`); n != 0 {
		t.Errorf("the dropped column exists at the sink")
	}

	for _, tbl := range []string{src, full} {
		s.srcExec(`INSERT INTO ` + tbl + ` (id, amount, region) VALUES (100001, 500, 'eu'), (100002, 5, 'eu'), (100003, 500, 'ap');
UPDATE ` + tbl + ` SET amount = 50 WHERE id BETWEEN 101 AND 200;   -- some leave
UPDATE ` + tbl + ` SET amount = 250 WHERE id BETWEEN 1 AND 100;    -- some enter
UPDATE ` + tbl + ` SET region = 'us' WHERE id BETWEEN 201 AND 260; -- ap rows enter
UPDATE ` + tbl + ` SET region = 'ap' WHERE id BETWEEN 261 AND 290;  -- eu/us rows leave
UPDATE ` + tbl + ` SET amount = amount + 1 WHERE id BETWEEN 400 AND 500; -- stay in or out
UPDATE ` + tbl + ` SET id = id + 200000 WHERE id BETWEEN 600 AND 620; -- key changes
DELETE FROM ` + tbl + ` WHERE id BETWEEN 700 AND 760;`)
	}
	s.run(cfg)
	check()
}

// TestOptionsSchemaRenameOperations renames a whole schema and lets only
// inserts and updates of one table through: deletes and truncates of it
// do not reach the sink; the other table gets everything.
func TestOptionsSchemaRenameOperations(t *testing.T) {
	s := newStreamEnv(t, "opts_ops")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app."Keep ✓" (id int PRIMARY KEY, v text);
CREATE TABLE app.plain (id int PRIMARY KEY, v text);
INSERT INTO app."Keep ✓" SELECT g, 'v' || g FROM generate_series(1, 100) g;
INSERT INTO app.plain SELECT g, 'v' || g FROM generate_series(1, 100) g;`)
	cfg := s.cfg
	keep := record.TableName{Schema: "app", Name: "Keep ✓"}
	cfg.Options = []engine.ObjectOptions{{Table: keep, Operations: []string{"insert", "update"}, Origin: "test:1"}}
	cfg.Rename = rename.Config{Schemas: []rename.SchemaRename{{From: "app", To: "app copy", Origin: "test:1"}}}
	s.run(cfg)
	sameRows(t, s.srcDSN, `app."Keep ✓"`, s.dstDSN, `"app copy"."Keep ✓"`)
	sameRows(t, s.srcDSN, `app.plain`, s.dstDSN, `"app copy".plain`)

	s.srcExec(`INSERT INTO app."Keep ✓" VALUES (1000, 'new'); UPDATE app."Keep ✓" SET v = 'upd' WHERE id <= 10;
DELETE FROM app."Keep ✓" WHERE id BETWEEN 50 AND 59;
INSERT INTO app.plain VALUES (1000, 'new'); DELETE FROM app.plain WHERE id BETWEEN 50 AND 59;`)
	s.run(cfg)
	// The sink keeps the deleted rows: the source plus them.
	sameRows(t, s.srcDSN, `(SELECT * FROM app."Keep ✓" UNION ALL SELECT g, 'v' || g FROM generate_series(50, 59) g)`, s.dstDSN, `"app copy"."Keep ✓"`)
	sameRows(t, s.srcDSN, `app.plain`, s.dstDSN, `"app copy".plain`)

	s.srcExec(`TRUNCATE app."Keep ✓"; TRUNCATE app.plain`)
	s.run(cfg)
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM "app copy"."Keep ✓"`); n != 101 {
		t.Errorf("sink: the truncate reached the table that does not take it: %d rows, want 101", n)
	}
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM "app copy".plain`); n != 0 {
		t.Errorf("sink: plain has %d rows after TRUNCATE, want 0", n)
	}
}

// TestOptionsRefused: colliding renames, unknown columns and WHERE
// conditions the engine cannot evaluate fail before any data is touched.
func TestOptionsRefused(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.a (id int PRIMARY KEY, v text, t timestamptz);
CREATE TABLE app.b (id int PRIMARY KEY, v text);
CREATE TABLE app.p (id int, v text) PARTITION BY RANGE (id);
CREATE TABLE app.p1 PARTITION OF app.p FOR VALUES FROM (0) TO (100);`)
	p := record.TableName{Schema: "app", Name: "p"}
	a := record.TableName{Schema: "app", Name: "a"}
	b := record.TableName{Schema: "app", Name: "b"}
	for _, tc := range []struct {
		name string
		opts []engine.ObjectOptions
		ren  rename.Config
		want []string
	}{
		{"colliding tables", nil, rename.Config{Tables: []rename.TableRename{{From: a, To: b, Origin: "p.yaml:7 (objects[1].rename)"}}},
			[]string{"tables app.a and app.b both map to app.b", "p.yaml:7"}},
		{"colliding columns", nil, rename.Config{Columns: []rename.ColumnRename{{Table: a, From: "v", To: "id", Origin: "p.yaml:8 (objects[1].columns)"}}},
			[]string{"columns id and v of app.a both map to id"}},
		{"unknown column rule", nil, rename.Config{Columns: []rename.ColumnRename{{Table: a, From: "nope", Drop: true, Origin: "p.yaml:9 (objects[1].columns)"}}},
			[]string{"p.yaml:9", "has no column nope"}},
		{"dropped key", nil, rename.Config{Columns: []rename.ColumnRename{{Table: a, From: "id", Drop: true, Origin: "p.yaml:9"}}},
			[]string{"key column", "cannot be dropped"}},
		{"column rename on a partitioned table", nil, rename.Config{Columns: []rename.ColumnRename{{Table: p, From: "v", To: "w", Origin: "p.yaml:9"}}},
			[]string{"columns: table app.p is partitioned or a partition: renaming or dropping its columns is not supported yet"}},
		{"unknown column in where", []engine.ObjectOptions{{Table: a, Where: "nope > 1", Origin: "p.yaml:10 (objects[1])"}}, rename.Config{},
			[]string{"p.yaml:10 (objects[1]): where on table app.a: where: position 1:"}},
		{"volatile where", []engine.ObjectOptions{{Table: a, Where: "t < now()", Origin: "p.yaml:11 (objects[1])"}}, rename.Config{},
			[]string{"p.yaml:11 (objects[1]): where on table app.a: where: position"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.config(schemaSel("app")...)
			cfg.Options, cfg.Rename = tc.opts, tc.ren
			err := runErr(t, cfg)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if n := queryInt(t, e.dstDSN, `SELECT count(*) FROM pg_namespace WHERE nspname = 'app'`); n != 0 {
				t.Errorf("the sink was touched: schema app exists")
			}
		})
	}
}

// TestOptionsWherePartitioned filters a partitioned table: its partitions
// follow its item, in the copy and in the stream, rows moving between
// partitions included.
func TestOptionsWherePartitioned(t *testing.T) {
	s := newStreamEnv(t, "opts_part")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.p (id int, region text, amount int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE app.p_eu PARTITION OF app.p FOR VALUES IN ('eu');
CREATE TABLE app.p_us PARTITION OF app.p FOR VALUES IN ('us');
INSERT INTO app.p SELECT g, (ARRAY['eu','us'])[1 + g % 2], g % 50 FROM generate_series(1, 1000) g;`)
	cfg := s.cfg
	p := record.TableName{Schema: "app", Name: "p"}
	cfg.Objects = []postgres.Selection{{Table: p, Where: "test:1"}}
	cond := "amount > 10"
	cfg.Options = []engine.ObjectOptions{{Table: p, Where: cond, Origin: "test:1 (objects[0])"}}
	s.run(cfg)
	sameRows(t, s.srcDSN, `(SELECT * FROM app.p WHERE `+cond+`)`, s.dstDSN, `app.p`)
	s.srcExec(`UPDATE app.p SET amount = 5 WHERE id BETWEEN 1 AND 100;
UPDATE app.p SET amount = 40 WHERE id BETWEEN 101 AND 200;
INSERT INTO app.p VALUES (5000, 'eu', 3), (5001, 'us', 30);
DELETE FROM app.p WHERE id BETWEEN 300 AND 320;`)
	s.run(cfg)
	sameRows(t, s.srcDSN, `(SELECT * FROM app.p WHERE `+cond+`)`, s.dstDSN, `app.p`)
}
