package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// shopSchema has a keyed table with an enum column, a table without a key
// (with duplicate rows, which a keyless table may hold) and a partitioned
// table: 5000 + 3000 + 4000 rows.
const shopSchema = `
CREATE SCHEMA shop;
CREATE TYPE shop.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE shop.customers (
	id     int PRIMARY KEY,
	name   text NOT NULL,
	mood   shop.mood NOT NULL,
	tags   text[],
	joined timestamptz
);
INSERT INTO shop.customers
SELECT g, 'customer ' || g, (ARRAY['sad', 'ok', 'happy']::shop.mood[])[1 + g % 3],
	CASE WHEN g % 7 = 0 THEN NULL ELSE ARRAY['t' || g % 5, 'x'] END,
	timestamptz '2023-01-01 00:00:00+00' + g * interval '37 minutes'
FROM generate_series(1, 5000) g;

CREATE TABLE shop.events (at timestamptz NOT NULL, kind text, payload jsonb);
INSERT INTO shop.events
SELECT timestamptz '2024-01-01 00:00:00+00' + (g / 2) * interval '1 second', 'kind ' || (g % 4),
	jsonb_build_object('n', g / 2, 'ok', g % 3 = 0)
FROM generate_series(1, 3000) g;

CREATE TABLE shop.orders (
	id          bigint NOT NULL,
	placed      date NOT NULL,
	customer_id int NOT NULL,
	amount      numeric(12, 2),
	PRIMARY KEY (id, placed)
) PARTITION BY RANGE (placed);
CREATE TABLE shop.orders_2023 PARTITION OF shop.orders FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE shop.orders_2024 PARTITION OF shop.orders FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO shop.orders
SELECT g, date '2023-01-01' + (g % 730), 1 + g % 5000, round((g * 3.17)::numeric % 1000, 2)
FROM generate_series(1, 4000) g;
`

var shopTables = []string{"shop.customers", "shop.events", "shop.orders", "shop.orders_2023", "shop.orders_2024"}

const shopRows = 5000 + 3000 + 4000

type checkJSON struct {
	Pipeline string `json:"pipeline"`
	Items    []struct {
		Name, Status, Detail, Fix string
	} `json:"items"`
}

func (c checkJSON) status(name string) string {
	for _, it := range c.Items {
		if it.Name == name {
			return it.Status
		}
	}
	return ""
}

func TestRunAndCheck(t *testing.T) {
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	if err := src.Exec(ctx, dbOf(t, srcDSN), shopSchema); err != nil {
		t.Fatal(err)
	}
	if err := src.Exec(ctx, dbOf(t, srcDSN), "VACUUM ANALYZE"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := writePipeline(t, dir, "shop.yaml", `name: shop_copy
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
objects:
  - schema: shop
copy: {parallel: 3, chunk_rows: 1000}
state_dir: state
`)
	env := dsnEnv(srcDSN, dstDSN)

	r := sluice(t, dir, env, "check", p)
	if r.code != 0 {
		t.Fatalf("sluice check: want exit 0:\n%s", r)
	}
	for _, want := range []string{"CHECK", "STATUS", "config", "source_connection", "sink_connection", "objects", "5 tables selected", "tables_without_key", "shop.events"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sluice check: stdout lacks %q:\n%s", want, r)
		}
	}
	for _, item := range []string{"config", "source_connection", "sink_connection", "objects"} {
		found := false
		for _, line := range strings.Split(r.stdout, "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == item {
				found = true
				if f[1] != "PASS" {
					t.Errorf("sluice check: %s is %s, want PASS:\n%s", item, f[1], r)
				}
			}
		}
		if !found {
			t.Errorf("sluice check: no %s line:\n%s", item, r)
		}
	}
	if hasSluiceSchema(t, ctx, dstDSN) {
		t.Error("sluice check changed the sink: it has a sluice schema")
	}

	r = sluice(t, dir, env, "check", "--json", p)
	var rep checkJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep); r.code != 0 || err != nil {
		t.Fatalf("sluice check --json: want exit 0 and JSON (%v):\n%s", err, r)
	}
	if rep.Pipeline != "shop_copy" || rep.status("objects") != "pass" || rep.status("tables_without_key") != "warn" {
		t.Errorf("sluice check --json: %+v", rep)
	}

	r = sluice(t, dir, env, "run", "--json", p)
	if r.code != 0 {
		t.Fatalf("sluice run --json: want exit 0:\n%s", r)
	}
	var sum runSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("sluice run --json: stdout is not the JSON summary (%v):\n%s", err, r)
	}
	if sum.Pipeline != "shop_copy" || sum.Rows != shopRows || sum.Tables != len(shopTables) || sum.TablesCreated != len(shopTables) ||
		sum.ChunksSkipped != 0 || sum.ChunksCopied < 4 || sum.Bytes <= 0 {
		t.Errorf("summary %+v: want %d rows in %d tables, all created, nothing skipped", sum, shopRows, len(shopTables))
	}
	assertSameData(t, ctx, srcDSN, dstDSN, shopTables...)

	// The sink has the enum type and a partitioned table, not lookalikes.
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM pg_attribute WHERE attrelid = 'shop.customers'::regclass
		AND attname = 'mood' AND atttypid = 'shop.mood'::regtype`); n != 1 {
		t.Error("sink: shop.customers.mood is not of the enum type shop.mood")
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM pg_class WHERE oid = 'shop.orders'::regclass AND relkind = 'p'`); n != 1 {
		t.Error("sink: shop.orders is not a partitioned table")
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'shop.orders'::regclass`); n != 2 {
		t.Errorf("sink: shop.orders has %d partitions, want 2", n)
	}

	// A second run finds everything done and copies nothing again.
	r = sluice(t, dir, env, "run", "--json", p)
	var again runSummary
	if err := json.Unmarshal([]byte(r.stdout), &again); r.code != 0 || err != nil {
		t.Fatalf("second sluice run --json: want exit 0 and JSON (%v):\n%s", err, r)
	}
	if again.ChunksCopied != 0 || again.ChunksSkipped != sum.ChunksCopied || again.Rows != 0 || again.TablesCreated != 0 {
		t.Errorf("second run %+v: want nothing copied or created, %d chunks skipped", again, sum.ChunksCopied)
	}
	assertSameData(t, ctx, srcDSN, dstDSN, shopTables...)

	// The human summary.
	r = sluice(t, dir, env, "run", "--no-progress", p)
	if r.code != 0 || !strings.Contains(r.stdout, "pipeline shop_copy done: 5 tables") {
		t.Errorf("sluice run: want exit 0 and a summary line:\n%s", r)
	}

	// A sink that can't be reached fails the check, as JSON too.
	bad := dsnEnv(srcDSN, "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=5")
	r = sluice(t, dir, bad, "check", "--json", p)
	rep = checkJSON{}
	if err := json.Unmarshal([]byte(r.stdout), &rep); r.code != 1 || err != nil {
		t.Fatalf("sluice check --json, sink down: want exit 1 and JSON (%v):\n%s", err, r)
	}
	if rep.status("sink_connection") != "fail" || rep.status("source_connection") != "pass" {
		t.Errorf("sluice check --json, sink down: want sink_connection fail, source_connection pass: %+v", rep)
	}
	for _, it := range rep.Items {
		if it.Name == "sink_connection" && (it.Fix == "" || !strings.Contains(it.Detail, "127.0.0.1")) {
			t.Errorf("sink_connection item lacks the where or the fix: %+v", it)
		}
	}
	if !strings.HasPrefix(r.stderr, "sluice: ") || !strings.Contains(r.stderr, "check failed") {
		t.Errorf("sluice check --json, sink down: stderr:\n%s", r)
	}
}
