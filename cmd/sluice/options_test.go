package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestRunWithObjectOptions runs a pipeline file with every per-object
// option on hostile names, then verifies it: verify compares what the
// options make of each table, so the copy is equal.
func TestRunWithObjectOptions(t *testing.T) {
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE SCHEMA "Sales ü";
CREATE TABLE "Sales ü"."ord.ers" (id int PRIMARY KEY, amount int, region text, "cust.id" int, notes text);
INSERT INTO "Sales ü"."ord.ers" SELECT g, g % 300, (ARRAY['eu','us','ap'])[1 + g % 3], g, 'n' FROM generate_series(1, 2000) g;
CREATE SCHEMA crm;
CREATE TABLE crm.people (id int PRIMARY KEY, name text);
INSERT INTO crm.people SELECT g, 'p' || g FROM generate_series(1, 50) g;`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := writePipeline(t, dir, "opts.yaml", `name: opts_run
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
objects:
  - table: '"Sales ü"."ord.ers"'
    where: "amount > 100 AND region IN ('eu','us')"
    rename: 'archive."Big Orders"'
    columns: {"cust.id": customer_id, notes: null}
    operations: [insert, update]
  - schema: crm
    rename: crm_copy
state_dir: state
`)
	env := dsnEnv(srcDSN, dstDSN)
	if r := sluice(t, dir, env, "run", p); r.code != 0 {
		t.Fatalf("sluice run: want exit 0:\n%s", r)
	}
	n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM archive."Big Orders" WHERE customer_id IS NOT NULL`)
	want := queryInt(t, ctx, srcDSN, `SELECT count(*) FROM "Sales ü"."ord.ers" WHERE amount > 100 AND region IN ('eu','us')`)
	if n != want || n == 0 {
		t.Errorf("sink has %d rows, want %d", n, want)
	}
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM crm_copy.people`); n != 50 {
		t.Errorf("crm_copy.people has %d rows, want 50", n)
	}
	r := sluice(t, dir, env, "verify", "--json", p)
	var out verifyOut
	if err := json.Unmarshal([]byte(r.stdout), &out); r.code != 0 || err != nil || !out.Equal {
		t.Fatalf("sluice verify --json: want exit 0 and equal (%v):\n%s", err, r)
	}

	// A colliding rename fails before anything is copied, naming the file.
	p2 := writePipeline(t, dir, "clash.yaml", `name: opts_clash
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
objects:
  - schema: crm
  - table: '"Sales ü"."ord.ers"'
    rename: crm.people
state_dir: state2
`)
	r = sluice(t, dir, env, "check", p2)
	if f := checkLine(r.stdout, "filters_and_transforms"); r.code != 1 || f == nil || f[1] != "FAIL" || !strings.Contains(r.stdout, "both map to crm.people") {
		t.Errorf("sluice check with colliding renames: want filters_and_transforms FAIL:\n%s", r)
	}
	if r := sluice(t, dir, env, "check", p); checkLine(r.stdout, "filters_and_transforms") == nil || !strings.Contains(r.stdout, "1 table filtered by a where condition, 2 tables renamed at the sink") {
		t.Errorf("sluice check with options: want the filters_and_transforms item to describe them:\n%s", r)
	}
	r = sluice(t, dir, env, "run", p2)
	if r.code == 0 || !strings.Contains(r.stderr, "both map to crm.people") || !strings.Contains(r.stderr, "clash.yaml:6 (objects[1].rename)") {
		t.Errorf("sluice run with colliding renames: want a failure naming both:\n%s", r)
	}
}
