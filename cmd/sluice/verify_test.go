package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// verifyOut is the part of `sluice verify --json` the tests look at.
type verifyOut struct {
	Pipeline        string `json:"pipeline"`
	Equal           bool   `json:"equal"`
	DifferingTables int    `json:"differing_tables"`
	SourceRows      int64  `json:"source_rows"`
	SinkRows        int64  `json:"sink_rows"`
	Tables          []struct {
		Table      string   `json:"table"`
		Key        []string `json:"key"`
		SourceRows int64    `json:"source_rows"`
		SinkRows   int64    `json:"sink_rows"`
		Missing    int64    `json:"missing"`
		Extra      int64    `json:"extra"`
		Different  int64    `json:"different"`
		Diffs      []struct {
			Kind    string   `json:"kind"`
			Key     []string `json:"key"`
			Columns []string `json:"columns"`
			Row     string   `json:"row"`
			Text    string   `json:"text"`
		} `json:"diffs"`
	} `json:"tables"`
}

func TestVerify(t *testing.T) {
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
	p := writePipeline(t, dir, "shop.yaml", `name: shop_verify
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
objects:
  - schema: shop
copy: {parallel: 2, chunk_rows: 1000}
state_dir: state
`)
	env := dsnEnv(srcDSN, dstDSN)
	if r := sluice(t, dir, env, "run", p); r.code != 0 {
		t.Fatalf("sluice run: want exit 0:\n%s", r)
	}

	// Equal.
	r := sluice(t, dir, env, "verify", p)
	if r.code != 0 {
		t.Fatalf("sluice verify of an equal copy: want exit 0:\n%s", r)
	}
	for _, want := range []string{"TABLE", "SOURCE ROWS", "shop.customers", "shop.orders_2023", "verify shop_verify: equal: 4 tables, 12000 rows at the source, 12000 at the sink"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sluice verify: stdout lacks %q:\n%s", want, r)
		}
	}
	r = sluice(t, dir, env, "verify", "--json", p)
	var out verifyOut
	if err := json.Unmarshal([]byte(r.stdout), &out); r.code != 0 || err != nil {
		t.Fatalf("sluice verify --json: want exit 0 and JSON (%v):\n%s", err, r)
	}
	if !out.Equal || out.Pipeline != "shop_verify" || len(out.Tables) != 4 || out.SourceRows != shopRows || out.SinkRows != shopRows {
		t.Errorf("sluice verify --json: %+v", out)
	}

	// A row deleted, a row added, a value changed; a keyless row removed.
	if err := snk.Exec(ctx, dbOf(t, dstDSN), `DELETE FROM shop.customers WHERE id = 42;
		INSERT INTO shop.customers (id, name, mood) VALUES (9001, 'intruder', 'ok');
		UPDATE shop.orders SET amount = amount + 1 WHERE id = 1234;
		DELETE FROM shop.events WHERE ctid = (SELECT ctid FROM shop.events WHERE kind = 'kind 1' ORDER BY at LIMIT 1);`); err != nil {
		t.Fatal(err)
	}
	r = sluice(t, dir, env, "verify", p)
	if r.code != 1 || !strings.Contains(r.stderr, "sluice: verify found differences in 3 tables") {
		t.Fatalf("sluice verify with differences: want exit 1 and the count of differing tables:\n%s", r)
	}
	for _, want := range []string{
		"missing at sink: id=42",
		"extra at sink: id=9001",
		"different: id=1234, placed=2024-05-19 (columns: amount)",
		`missing at sink: ("2024-01-01 00:00:00+00","kind 1","{""n"": 0, ""ok"": false}")`,
		"verify shop_verify: 3 of 4 tables differ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sluice verify: stdout lacks %q:\n%s", want, r)
		}
	}

	r = sluice(t, dir, env, "verify", "--json", "--table", "shop.customers", p)
	out = verifyOut{}
	if err := json.Unmarshal([]byte(r.stdout), &out); r.code != 1 || err != nil {
		t.Fatalf("sluice verify --json --table: want exit 1 and JSON (%v):\n%s", err, r)
	}
	if !strings.Contains(r.stderr, "verify found differences in 1 table") {
		t.Errorf("sluice verify --table: stderr:\n%s", r)
	}
	if out.Equal || len(out.Tables) != 1 || out.Tables[0].Missing != 1 || out.Tables[0].Extra != 1 || len(out.Tables[0].Diffs) != 2 {
		t.Fatalf("sluice verify --json --table shop.customers: %+v", out)
	}
	if d := out.Tables[0].Diffs[0]; d.Kind != "missing" || len(d.Key) != 1 || d.Key[0] != "42" || d.Text != "missing at sink: id=42" {
		t.Errorf("first difference: %+v", d)
	}

	r = sluice(t, dir, env, "verify", "--table", "shop.nope", p)
	if r.code != 1 || !strings.Contains(r.stderr, "shop.nope: not among the pipeline's tables") {
		t.Errorf("sluice verify --table shop.nope: want exit 1 naming the table:\n%s", r)
	}
	r = sluice(t, dir, env, "verify", "--table", `"unclosed`, p)
	if r.code != 2 {
		t.Errorf("sluice verify --table with a bad name: want exit 2:\n%s", r)
	}
}
