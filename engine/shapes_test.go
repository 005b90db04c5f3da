package engine_test

import (
	"testing"
)

// TestTableShapes copies tables whose physical shape differs from the
// obvious: dropped columns, generated and identity columns, an empty
// table, multi-level partitions with a default partition and a partition
// whose columns are in another order.
func TestTableShapes(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`
CREATE SCHEMA s;
CREATE TABLE s.dropped (a integer PRIMARY KEY, gone text, b text, gone2 integer, c numeric);
INSERT INTO s.dropped SELECT g, 'x', g::text, g, g FROM generate_series(1, 1000) g;
ALTER TABLE s.dropped DROP COLUMN gone, DROP COLUMN gone2;
CREATE TABLE s.gen (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	price numeric NOT NULL,
	qty integer NOT NULL DEFAULT 1,
	total numeric GENERATED ALWAYS AS (price * qty) STORED,
	note text DEFAULT 'none'
);
INSERT INTO s.gen (price, qty, note) SELECT g * 0.5, g % 7, CASE WHEN g % 2 = 0 THEN NULL ELSE 'n' || g END FROM generate_series(1, 1000) g;
CREATE TABLE s.empty (id integer PRIMARY KEY, v text);
CREATE TABLE s.huge (id integer PRIMARY KEY, t text, b bytea);
INSERT INTO s.huge SELECT g, repeat(md5(g::text), 400000), decode(repeat(md5((g + 1)::text), 300000), 'hex') FROM generate_series(1, 4) g;
CREATE TABLE s.ev (k text NOT NULL, at date NOT NULL, v integer, PRIMARY KEY (k, at)) PARTITION BY LIST (k);
CREATE TABLE s.ev_a PARTITION OF s.ev FOR VALUES IN ('a') PARTITION BY RANGE (at);
CREATE TABLE s.ev_a_2020 PARTITION OF s.ev_a FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE s.ev_a_rest PARTITION OF s.ev_a DEFAULT;
CREATE TABLE s.ev_b (k text NOT NULL, at date NOT NULL, v integer, PRIMARY KEY (k, at));
ALTER TABLE s.ev ATTACH PARTITION s.ev_b FOR VALUES IN ('b');
CREATE TABLE s.ev_other PARTITION OF s.ev DEFAULT;
INSERT INTO s.ev SELECT (ARRAY['a', 'b', 'c'])[1 + g % 3], date '2019-06-01' + g, g FROM generate_series(1, 3000) g;
ANALYZE;`)
	tables := tablesOf(t, e.srcDSN, "s")
	cfg := e.config(schemaSel("s")...)
	cfg.ChunkRows = 300
	sum := runOK(t, cfg)
	if sum.Tables != len(tables) {
		t.Errorf("summary: %d tables, want %d (%q)", sum.Tables, len(tables), tables)
	}
	if sum.Rows != 1000+1000+3000+4 {
		t.Errorf("summary: %d rows, want %d", sum.Rows, 5004)
	}
	assertSameData(t, e.srcDSN, e.dstDSN, tables)
	for _, tbl := range tables {
		if tbl == "s.ev" || tbl == "s.ev_a" {
			continue // partitioned: no rows of their own
		}
		if n := queryInt(t, e.dstDSN, "SELECT count(*) FROM ONLY "+tbl); n != queryInt(t, e.srcDSN, "SELECT count(*) FROM ONLY "+tbl) {
			t.Errorf("%s: %d rows at the sink, not as many as at the source", tbl, n)
		}
	}
	// New rows at the sink get fresh identities and computed totals.
	e.dstExec(`INSERT INTO s.gen (price, qty) VALUES (2, 3)`)
	if got := queryInt(t, e.dstDSN, "SELECT total::bigint FROM s.gen WHERE id = (SELECT max(id) FROM s.gen)"); got != 6 {
		t.Errorf("sink: generated total %d, want 6", got)
	}
	if id := queryInt(t, e.dstDSN, "SELECT max(id) FROM s.gen"); id <= 1000 {
		t.Errorf("sink: new identity %d collides with copied ids", id)
	}
}

// TestZeroColumnTable copies a table without columns (PostgreSQL allows
// it, and its rows still count).
func TestZeroColumnTable(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE TABLE public.nocols (); INSERT INTO public.nocols SELECT FROM generate_series(1, 5);
CREATE TABLE public.other (id integer PRIMARY KEY); INSERT INTO public.other VALUES (1);`)
	sum := runOK(t, e.config(schemaSel("public")...))
	if sum.Rows != 6 {
		t.Errorf("summary: %d rows, want 6", sum.Rows)
	}
	assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.nocols", "public.other"})
}

// TestPartitionColumnOrder copies a partition whose columns are in another
// order than its parent's (it was created on its own, then attached): the
// sink's partition must keep its own column order, as pg_dump keeps it.
func TestPartitionColumnOrder(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`
CREATE TABLE public.ev (k text NOT NULL, at date NOT NULL, v integer, PRIMARY KEY (k, at)) PARTITION BY LIST (k);
CREATE TABLE public.ev_a PARTITION OF public.ev FOR VALUES IN ('a');
CREATE TABLE public.ev_b (v integer, at date NOT NULL, k text NOT NULL, PRIMARY KEY (k, at));
ALTER TABLE public.ev ATTACH PARTITION public.ev_b FOR VALUES IN ('b');
INSERT INTO public.ev SELECT (ARRAY['a', 'b'])[1 + g % 2], date '2019-06-01' + g, g FROM generate_series(1, 1000) g;`)
	runOK(t, e.config(schemaSel("public")...))
	for _, tbl := range []string{"public.ev", "public.ev_a", "public.ev_b"} {
		assertSameColumnTypes(t, e.srcDSN, e.dstDSN, tbl)
	}
	assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.ev", "public.ev_a", "public.ev_b"})
}
