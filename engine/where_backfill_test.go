package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// TestWhereBackfillAfterAlter: a backfill requested after a column its
// objects item's where condition reads changed type while streaming
// reads the source with the condition rendered for the new type. The
// condition n = 0.1 over double precision is `"n" = '0.1'::double
// precision` in SQL; after ALTER COLUMN n TYPE numeric it must be the
// exact numeric comparison the stream now applies. Rows set to
// 0.10000000000000000001 leave the condition in the stream (numeric
// compares exactly), but equal 0.1 once cast to double precision: read
// with the SQL rendered for the old type, the backfill would copy them
// back into the sink. The same holds for a partitioned table's partitions
// (the ALTER on the partitioned table, the backfill leaf by leaf).
//
// The condition was already rendered again (whereAltered replaces the
// table's options, which the backfill reads per chunk): the test fails
// when the backfill is given the SQL of before the ALTER.
func TestWhereBackfillAfterAlter(t *testing.T) {
	s := newStreamEnv(t, "where_bf_alter")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.t (id integer PRIMARY KEY, n double precision);
INSERT INTO app.t SELECT g, CASE WHEN g % 2 = 0 THEN 0.1 ELSE 0.2 END FROM generate_series(1, 40) g;
CREATE TABLE app.p (id integer PRIMARY KEY, n double precision) PARTITION BY RANGE (id);
CREATE TABLE app.p_1 PARTITION OF app.p FOR VALUES FROM (0) TO (20);
CREATE TABLE app.p_2 PARTITION OF app.p FOR VALUES FROM (20) TO (100);
INSERT INTO app.p SELECT * FROM app.t;
CREATE TABLE app.marker (id integer PRIMARY KEY);`)
	s.cfg.Options = []engine.ObjectOptions{
		{Table: tn("app", "t"), Where: "n = 0.1", Origin: "pipeline.yaml:8 (objects[1])"},
		{Table: tn("app", "p"), Where: "n = 0.1", Origin: "pipeline.yaml:10 (objects[2])"},
	}
	s.run(s.cfg)
	for _, tbl := range []string{"app.t", "app.p"} {
		if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM `+tbl); n != 20 {
			t.Fatalf("after the full copy the sink has %d rows of %s, want 20", n, tbl)
		}
	}
	bg := s.streamInBackground(s.cfg)
	s.srcExec(`ALTER TABLE app.t ALTER COLUMN n TYPE numeric`)
	s.srcExec(`ALTER TABLE app.p ALTER COLUMN n TYPE numeric`)
	s.srcExec(`UPDATE app.t SET n = 0.10000000000000000001 WHERE id <= 10 AND id % 2 = 0;
UPDATE app.p SET n = 0.10000000000000000001 WHERE id % 4 = 0`)
	s.waitMarker(bg, 1, "app.marker")
	sink := oracleConn(t, s.dstDSN)
	defer sink.Close(context.Background())
	for i, c := range []struct {
		tbl  string
		rows int64
	}{{"app.t", 15}, {"app.p", 10}} {
		if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM `+c.tbl); n != c.rows {
			t.Fatalf("after the update the sink has %d rows of %s, want %d (the stream deletes the rows that left the condition)", n, c.tbl, c.rows)
		}
		// The sink loses its rows; the backfill brings back those the
		// condition selects, and only those.
		if _, err := sink.Exec(t.Context(), `DELETE FROM `+c.tbl); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		res, err := engine.Backfill(ctx, s.cfg, engine.BackfillOptions{Table: tn("app", c.tbl[4:]), ChunkRows: 7, Poll: 50 * time.Millisecond})
		cancel()
		if err != nil {
			t.Fatalf("engine.Backfill of %s: %v", c.tbl, err)
		}
		t.Logf("backfill of %s: %+v", c.tbl, *res)
		if res.Rows != c.rows {
			t.Errorf("the backfill of %s copied %d rows, want the %d the condition selects", c.tbl, res.Rows, c.rows)
		}
		s.waitMarker(bg, 2+i, "app.marker")
	}
	if err := bg.stop(); err != nil {
		t.Fatalf("engine.Run: %v", err)
	}
	assertSameData2(t, s.srcDSN, `(SELECT * FROM app.t WHERE n = 0.1)`, s.dstDSN, `app.t`)
	assertSameData2(t, s.srcDSN, `(SELECT * FROM app.p WHERE n = 0.1)`, s.dstDSN, `app.p`)
}
