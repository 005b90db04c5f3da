package engine_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/transforms/rename"
)

// TestCopyRawPath copies, through the raw path (the source's binary COPY
// stream passed to the sink unchanged), a table chunked by a composite
// key with a text part under a where filter, a table rename, a renamed and
// a dropped column, NULLs and empty values, and a
// keyless table chunked by block ranges with a dropped column and a
// table with a generated column; a table
// with a column of a user composite type (text format) takes the decoding
// path. Every table's rows match at the sink.
func TestCopyRawPath(t *testing.T) {
	s := newStreamEnv(t, "raw_copy")
	src := `app."Or ders"`
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE ` + src + ` (region text, id int, ts timestamptz, amount numeric, note text, "cust id" int, big bytea,
	PRIMARY KEY (region, id));
INSERT INTO ` + src + ` (region, id, ts, amount, note, "cust id", big)
	SELECT (ARRAY['eu','us','ap', 'Zé'])[1 + g % 4], g, '2024-01-01'::timestamptz + g * interval '1 minute', g % 50,
		CASE WHEN g % 7 = 0 THEN NULL ELSE 'n' || g END, g * 3,
		CASE WHEN g % 5 = 0 THEN ''::bytea WHEN g % 5 = 1 THEN NULL ELSE decode(md5(g::text), 'hex') END
	FROM generate_series(1, 8000) g;
CREATE TABLE app.nokey (a int, b text, c text);
INSERT INTO app.nokey SELECT g, repeat('x', g % 40), 'c' || g FROM generate_series(1, 8000) g;
CREATE TABLE app.gen (id bigint PRIMARY KEY, v text, twice bigint GENERATED ALWAYS AS (id * 2) STORED);
INSERT INTO app.gen (id, v) SELECT g, 'v' || g FROM generate_series(1, 300) g;
CREATE TYPE app.pair AS (x int, y text);
CREATE TABLE app.typed (id int PRIMARY KEY, p app.pair);
INSERT INTO app.typed SELECT g, ROW(g, 'y' || g)::app.pair FROM generate_series(1, 50) g;
ANALYZE;`)
	cfg := s.cfg
	cfg.Incremental = false
	cfg.ChunkRows = 1000
	srcName := record.TableName{Schema: "app", Name: "Or ders"}
	nokey := record.TableName{Schema: "app", Name: "nokey"}
	cond := `amount > 10 AND region <> 'us'`
	cfg.Options = []engine.ObjectOptions{{Table: srcName, Where: cond, Origin: "test:1 (objects[1])"}}
	cfg.Rename = rename.Config{
		Tables: []rename.TableRename{{From: srcName, To: record.TableName{Schema: "app", Name: "orders 2"}, Origin: "test:1"}},
		Columns: []rename.ColumnRename{
			{Table: srcName, From: "cust id", To: "customer", Origin: "test:1"},
			{Table: srcName, From: "note", Drop: true, Origin: "test:1"},
			{Table: nokey, From: "b", Drop: true, Origin: "test:2"},
		},
	}
	sum := s.run(cfg)
	sameRows(t, s.srcDSN, `(SELECT region, id, ts, amount, "cust id", big FROM `+src+` WHERE `+cond+`)`,
		s.dstDSN, `(SELECT region, id, ts, amount, customer, big FROM app."orders 2")`)
	sameRows(t, s.srcDSN, `(SELECT * FROM app.gen)`, s.dstDSN, `(SELECT * FROM app.gen)`)
	sameRows(t, s.srcDSN, `(SELECT a, c FROM app.nokey)`, s.dstDSN, `(SELECT a, c FROM app.nokey)`)
	sameRows(t, s.srcDSN, `(SELECT id, p::text FROM app.typed)`, s.dstDSN, `(SELECT id, p::text FROM app.typed)`)

	// The typed table is one chunk and needs text format; every other
	// chunk went through the raw path.
	if sum.ChunksCopied-sum.ChunksRaw != 1 || sum.ChunksRaw < 6 {
		t.Errorf("%d chunks copied, %d of them raw; want all but the typed table's one, and both big tables chunked", sum.ChunksCopied, sum.ChunksRaw)
	}
	log := s.log.String()
	for _, table := range []string{`table="app.\"Or ders\""`, `table=app.nokey`} {
		if !strings.Contains(log, "chunk copied raw") || !strings.Contains(log, table) {
			t.Errorf("no raw chunk of %s in the log", table)
		}
	}
	if strings.Contains(log, `msg="chunk copied raw" table=app.typed`) {
		t.Errorf("the typed table (text format) was copied raw")
	}
	if n := queryInt(t, s.dstDSN, `SELECT sum(rows) FROM sluice.copy_progress WHERE pipeline = 'raw_copy'`); n != sum.Rows {
		t.Errorf("copy_progress counts %d rows, the summary %d", n, sum.Rows)
	}
}
