package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestPostDataLeavesNewTablesToStream: post-data planned from a source
// dump taken now (the fallback when the dump at the copy's snapshot was
// late) while a selected schema holds a table created after the
// pipeline's tables were discovered. That table is not at the sink (the
// stream creates it, from its CREATE TABLE event): its key, index,
// foreign key, column default and owned sequence are left out, and the
// pipeline's own tables get theirs. Before the fix applying the plan
// failed with relation "app.Late X" does not exist.
func TestPostDataLeavesNewTablesToStream(t *testing.T) {
	ctx := t.Context()
	src, dst := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, dst)
	open := func(dsn string) *pgx.Conn {
		t.Helper()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	srcConn, dstConn := open(srcDSN), open(dstDSN)
	exec := func(c *pgx.Conn, sql string) {
		t.Helper()
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(srcConn, `CREATE SCHEMA app;
CREATE TABLE app.t (id integer PRIMARY KEY, v text);
CREATE INDEX t_v ON app.t (v);
CREATE TABLE app.parts (id integer PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE app.parts_1 PARTITION OF app.parts FOR VALUES FROM (0) TO (10);`)
	exec(dstConn, `CREATE SCHEMA app;
CREATE TABLE app.t (id integer NOT NULL, v text);
CREATE TABLE app.parts (id integer NOT NULL) PARTITION BY RANGE (id);
CREATE TABLE app.parts_1 PARTITION OF app.parts FOR VALUES FROM (0) TO (10);`)
	sel := []Selection{{Schema: "app", Where: "test"}}
	tables, err := Discover(ctx, srcConn, sel)
	if err != nil {
		t.Fatal(err)
	}
	exec(srcConn, `CREATE TABLE app."Late X" (id serial PRIMARY KEY, t_id integer REFERENCES app.t (id), v text, n bigint GENERATED ALWAYS AS IDENTITY);
CREATE INDEX late_v ON app."Late X" (v);
CREATE TABLE app.parts_2 PARTITION OF app.parts FOR VALUES FROM (10) TO (20);`)
	plan, err := PlanPostData(ctx, srcConn, dstConn, srcDSN, dstDSN, sel, tables, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range plan.Statements {
		t.Logf("post-data: %s", st.Object)
	}
	if err := plan.Apply(ctx, dstConn); err != nil {
		t.Fatalf("apply post-data: %v", err)
	}
	for _, c := range []struct {
		q    string
		want int64
	}{
		{`SELECT count(*) FROM pg_indexes WHERE schemaname = 'app' AND indexname IN ('t_pkey', 't_v', 'parts_pkey', 'parts_1_pkey')`, 4},
		{`SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'app' AND c.relname IN ('Late X', 'Late X_id_seq', 'Late X_n_seq', 'late_v', 'parts_2')`, 0},
	} {
		var got int64
		if err := dstConn.QueryRow(ctx, c.q).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("sink: %s = %d, want %d", c.q, got, c.want)
		}
	}
}
