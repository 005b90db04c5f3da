package main

// End-to-end tests of the transforms: stages (filter, set, plugin) and the
// bulk renames with a case policy, through the binary, in the full copy
// and in streaming, on hostile names. The oracle is the same result
// computed by SQL at the source and compared by checksum with the sink:
// it shares no code with sluice.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// queryChecksum is the row count and an order-independent checksum of a
// query's rows (their text form).
func queryChecksum(t testing.TB, ctx context.Context, dsn, query string) (int64, string) {
	t.Helper()
	conn := connect(t, ctx, dsn)
	var n int64
	var sum string
	if err := conn.QueryRow(ctx, `SELECT count(*), coalesce(md5(string_agg(h, ',' ORDER BY h)), '') FROM (SELECT md5(q::text) AS h FROM (`+query+`) AS q) AS s`).Scan(&n, &sum); err != nil {
		t.Fatalf("checksum of %s: %v", query, err)
	}
	return n, sum
}

// assertSameRows compares a query at the source with one at the sink.
func assertSameRows(t testing.TB, ctx context.Context, srcDSN, srcQuery, dstDSN, dstQuery string) {
	t.Helper()
	n1, s1 := queryChecksum(t, ctx, srcDSN, srcQuery)
	n2, s2 := queryChecksum(t, ctx, dstDSN, dstQuery)
	if n1 != n2 || s1 != s2 {
		t.Errorf("sink differs from the expected rows: expected %d rows (%s), sink %d rows (%s)\n  expected: %s\n  sink: %s", n1, s1, n2, s2, srcQuery, dstQuery)
	}
	if n1 == 0 {
		t.Errorf("no expected rows: the test proves nothing (%s)", srcQuery)
	}
}

const weirdTable = `"Sales ü"."Weird ""Name"""`

// TestTransformStagesCopyAndStream runs a filter over the new row and a
// set masking and deriving columns on a table with hostile names, in the
// full copy and then while streaming: inserts, updates moving rows out of
// and into the filter, updates of masked columns, deletes. The sink must
// equal the source's rows filtered and computed by SQL. A filter on op
// alone drops a table's deletes; a table without a stage is copied on the
// fast path, unchanged.
func TestTransformStagesCopyAndStream(t *testing.T) {
	ctx := streamCtx(t, 4*time.Minute)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE SCHEMA "Sales ü";
CREATE TABLE `+weirdTable+` (id int PRIMARY KEY, "e mail" text, amount numeric(10,2), region text, "Qty" int NOT NULL, note text);
INSERT INTO `+weirdTable+` SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'user' || g || '@example.com' END,
	g * 1.25, (ARRAY['eu','us','ap'])[1 + g % 3], g % 7, CASE WHEN g % 5 = 0 THEN NULL ELSE 'n ' || g END
FROM generate_series(1, 3000) g;
CREATE TABLE public.plain (id int PRIMARY KEY, v text);
INSERT INTO public.plain SELECT g, 'v' || g FROM generate_series(1, 500) g;
CREATE TABLE public."his tory" (id int PRIMARY KEY, v text);
INSERT INTO public."his tory" SELECT g, 'h' || g FROM generate_series(1, 100) g;`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := writePipeline(t, dir, "stages.yaml", `name: stages_e2e
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - schema: '"Sales ü"'
  - table: public.plain
  - table: public."his tory"
transforms:
  - filter: "op != 'delete'"
    tables: ['public."his tory"']
  - filter: "after.region != 'ap'"
    tables: ['"Sales ü"."Weird ""Name"""']
  - tables: ['"Sales ü".*']
    set:
      "e mail": "after['e mail'] == nil ? nil : 'x@' + split(after['e mail'], '@')[1]"
      note: "(after.note ?? '-') + '/' + string(after.Qty * 2) + '/' + op"
state_dir: state
`)
	env := dsnEnv(srcDSN, dstDSN)
	if r := sluice(t, dir, env, "check", p); checkLine(r.stdout, "filters_and_transforms") == nil || !strings.Contains(r.stdout, "3 transform stages (2 tables with a stage)") {
		t.Errorf("sluice check: want filters_and_transforms to count the stages:\n%s", r)
	}
	runCaughtUp(t, dir, env, p, 2*time.Minute)

	// What the sink must hold, computed by SQL at the source; op is
	// "insert" for copied and inserted rows, "update" for updated ones.
	want := func(updated string) string {
		return `SELECT id, CASE WHEN "e mail" IS NULL THEN NULL ELSE 'x@' || split_part("e mail", '@', 2) END,
			amount, region, "Qty", coalesce(note, '-') || '/' || ("Qty" * 2) || '/' || CASE WHEN ` + updated + ` THEN 'update' ELSE 'insert' END
			FROM ` + weirdTable + ` WHERE region <> 'ap'`
	}
	got := `SELECT id, "e mail", amount, region, "Qty", note FROM ` + weirdTable
	assertSameRows(t, ctx, srcDSN, want("false"), dstDSN, got)
	assertSameData(t, ctx, srcDSN, dstDSN, "public.plain")

	// Streaming: every kind of change, in a few transactions.
	if err := src.Exec(ctx, dbOf(t, srcDSN), `
INSERT INTO `+weirdTable+` SELECT g, 'new' || g || '@mail.example', g, (ARRAY['eu','us','ap'])[1 + g % 3], 3, NULL FROM generate_series(3001, 3300) g;
BEGIN;
UPDATE `+weirdTable+` SET region = 'ap' WHERE id BETWEEN 1 AND 300 AND region <> 'ap';   -- out of the filter
UPDATE `+weirdTable+` SET region = 'eu' WHERE id BETWEEN 301 AND 600 AND region = 'ap';  -- into it
UPDATE `+weirdTable+` SET "e mail" = 'changed' || id || '@other.example', "Qty" = "Qty" + 1 WHERE id BETWEEN 601 AND 900;
COMMIT;
DELETE FROM `+weirdTable+` WHERE id BETWEEN 901 AND 1000;
UPDATE public.plain SET v = 'w' || id WHERE id <= 100;
DELETE FROM public."his tory" WHERE id <= 30;
UPDATE public."his tory" SET v = 'u' || id WHERE id > 90;
INSERT INTO public."his tory" VALUES (101, 'new');`); err != nil {
		t.Fatal(err)
	}
	runCaughtUp(t, dir, env, p, 2*time.Minute)
	assertSameRows(t, ctx, srcDSN, want("(id BETWEEN 301 AND 600 AND id % 3 = 2) OR id BETWEEN 601 AND 900"), dstDSN, got)
	assertSameData(t, ctx, srcDSN, dstDSN, "public.plain")
	// A filter on op alone drops the deletes and keeps the rest: the sink
	// keeps the history of deleted rows.
	assertSameRows(t, ctx, srcDSN, `SELECT g AS id, 'h' || g AS v FROM generate_series(1, 30) g UNION ALL SELECT id, v FROM public."his tory"`,
		dstDSN, `SELECT id, v FROM public."his tory"`)
}

// TestTransformRuntimeErrorParks: an expression that fails on a streamed
// row (a division by zero) stops the pipeline with an error naming the
// stage, the table, the row's key and the position in the expression,
// with nothing after the last commit applied; fixed, the pipeline resumes
// and loses nothing. The same expression failing in the full copy stops
// the copy the same way.
func TestTransformRuntimeErrorParks(t *testing.T) {
	ctx := streamCtx(t, 4*time.Minute)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE TABLE public."T x" (id int PRIMARY KEY, qty int NOT NULL, res text);
INSERT INTO public."T x" SELECT g, 1 + g % 4, NULL FROM generate_series(1, 200) g;`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pipeline := func(expr string) string {
		return `name: stages_park
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - table: '"T x"'
transforms:
  - set: {res: "` + expr + `"}
state_dir: state
`
	}
	p := writePipeline(t, dir, "park.yaml", pipeline("string(int(100 / after.qty))"))
	env := dsnEnv(srcDSN, dstDSN)
	runCaughtUp(t, dir, env, p, 2*time.Minute)
	if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM public."T x" WHERE res = (100 / qty)::text`); n != 200 {
		t.Fatalf("copy: %d rows with res computed, want 200", n)
	}
	// Three transactions; the middle one holds the row the expression
	// fails on.
	for _, row := range []string{"(201, 5, NULL)", "(202, 0, NULL)", "(203, 2, NULL)"} {
		if err := src.Exec(ctx, dbOf(t, srcDSN), `INSERT INTO public."T x" VALUES `+row); err != nil {
			t.Fatal(err)
		}
	}
	r := startSluice(t, dir, env, "run", "--until-caught-up", p).wait(2 * time.Minute)
	for _, want := range []string{"park.yaml:8 (transforms[0])", `table public."T x"`, `key ("id")=(202)`, "set \"res\": position 16: division by zero"} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("streaming a row the expression fails on: want exit 1 and %q in stderr:\n%s", want, r)
		}
	}
	// The pipeline parks at the failing transaction: the one before it is
	// at the sink, nothing from it on.
	if got := queryInt(t, ctx, dstDSN, `SELECT coalesce(sum(id), 0) FROM public."T x" WHERE id > 200`); got != 201 {
		t.Errorf("after the failure the sink has new rows summing to %d, want only row 201 (the transaction before the failing one)", got)
	}
	// Fixed, the pipeline resumes where it stopped and loses nothing.
	writePipeline(t, dir, "park.yaml", pipeline("after.qty == 0 ? 'none' : string(int(100 / after.qty))"))
	runCaughtUp(t, dir, env, p, 2*time.Minute)
	assertSameRows(t, ctx, srcDSN, `SELECT id, qty, CASE WHEN qty = 0 THEN 'none' ELSE (100 / qty)::text END FROM public."T x"`,
		dstDSN, `SELECT id, qty, res FROM public."T x"`)
	// verify compares the columns no stage computes.
	r = sluice(t, dir, env, "verify", "--json", p)
	var out verifyOut
	if err := json.Unmarshal([]byte(r.stdout), &out); r.code != 0 || err != nil || !out.Equal {
		t.Errorf("sluice verify --json: want exit 0 and equal, the computed column skipped (%v):\n%s", err, r)
	}

	// In the full copy: a second pipeline on a fresh sink database stops
	// on the row with qty 0, committing nothing of its chunk.
	dst2 := pgtest.NewDB(t, snk)
	dir2 := t.TempDir()
	p2 := writePipeline(t, dir2, "copy.yaml", strings.Replace(strings.Replace(pipeline("string(int(100 / after.qty))"), "stages_park", "stages_park_copy", 1), "incremental: true", "incremental: false", 1))
	r = sluice(t, dir2, dsnEnv(srcDSN, dst2), "run", p2)
	for _, want := range []string{"copy.yaml:8 (transforms[0])", `insert of table public."T x", key ("id")=(202)`, "division by zero"} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("copying a row the expression fails on: want exit 1 and %q in stderr:\n%s", want, r)
		}
	}
	if n := queryInt(t, ctx, dst2, `SELECT count(*) FROM public."T x"`); n != 0 {
		t.Errorf("the failed copy left %d rows at the sink, want 0", n)
	}
}

// TestTransformTypeErrorsAtLoad: unknown columns, type clashes, a set of
// a key column and a scope matching no table are refused by check and run
// before any data moves, naming the stage, the table and the position.
func TestTransformTypeErrorsAtLoad(t *testing.T) {
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE TABLE public."Or ders" (id int PRIMARY KEY, qty int, "e mail" text);
INSERT INTO public."Or ders" VALUES (1, 1, 'a@b.c');`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := writePipeline(t, dir, "types.yaml", `name: stages_types
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
objects:
  - schema: public
transforms:
  - filter: "after.emial != nil"
  - filter: "after.qty + 'x' > 1"
  - set: {qty: "after['e mail']", id: "2"}
  - filter: "true"
    tables: [public.nosuch, "other.*"]
state_dir: state
`)
	env := dsnEnv(srcDSN, dstDSN)
	wants := []string{
		`types.yaml:7 (transforms[0]): filter on table public."Or ders": position 7: unknown field emial`,
		`types.yaml:8 (transforms[1]): filter on table public."Or ders": position 11: invalid operation: + (mismatched types int and string)`,
		`types.yaml:9 (transforms[2]): on table public."Or ders": set "id": "id" is a key column`,
		`set "qty": the expression gives string but column "qty" is integer`,
		`types.yaml:10 (transforms[3]): tables: public.nosuch, other.* matches none of the pipeline's tables`,
	}
	r := sluice(t, dir, env, "check", p)
	if f := checkLine(r.stdout, "filters_and_transforms"); r.code != 1 || f == nil || f[1] != "FAIL" {
		t.Errorf("sluice check: want exit 1 and filters_and_transforms FAIL:\n%s", r)
	}
	for _, w := range wants {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("sluice check: want %q:\n%s", w, r)
		}
	}
	r = sluice(t, dir, env, "run", p)
	for _, w := range wants {
		if r.code != 1 || !strings.Contains(r.stderr, w) {
			t.Errorf("sluice run: want exit 1 and %q:\n%s", w, r)
		}
	}
	if queryInt(t, ctx, dstDSN, `SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'Or ders'`) != 0 {
		t.Error("a pipeline with type errors created the table at the sink")
	}
}

// TestTransformPluginStage builds the example mask plugin and runs it as a
// `type: plugin` stage with its sha256 pin, in the full copy and while
// streaming; a wrong pin is refused before any data moves.
func TestTransformPluginStage(t *testing.T) {
	ctx := streamCtx(t, 5*time.Minute)
	dir := t.TempDir()
	bin := filepath.Join(dir, "mask")
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.CommandContext(ctx, gobin, "build", "-o", bin, "../../examples/plugins/mask")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build the mask plugin: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])

	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE SCHEMA "Cu stomers";
CREATE TABLE "Cu stomers"."Pe""ople" (id int PRIMARY KEY, email text, card text, name text);
INSERT INTO "Cu stomers"."Pe""ople" SELECT g, 'user' || g || '@example.com', '4111 1111 1111 1111', 'name ' || g FROM generate_series(1, 2000) g;`); err != nil {
		t.Fatal(err)
	}
	pipeline := func(pin string) string {
		return fmt.Sprintf(`name: stages_plugin
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - schema: '"Cu stomers"'
transforms:
  - type: plugin
    path: ./mask
    sha256: %s
    env: {MASK_COLUMNS: "email,card"}
state_dir: state
`, pin)
	}
	env := dsnEnv(srcDSN, dstDSN)
	bad := writePipeline(t, dir, "bad.yaml", pipeline(strings.Repeat("0", 64)))
	r := sluice(t, dir, env, "run", bad)
	if r.code != 1 || !strings.Contains(r.stderr, "bad.yaml:8 (transforms[0])") || !strings.Contains(r.stderr, "sha256 of the file is "+digest) {
		t.Errorf("a wrong sha256 pin: want exit 1 naming the stage and the digest:\n%s", r)
	}
	if queryInt(t, ctx, dstDSN, `SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'Cu stomers'`) != 0 {
		t.Error("a pipeline with a wrong pin created tables at the sink")
	}

	p := writePipeline(t, dir, "plugin.yaml", pipeline(digest))
	runCaughtUp(t, dir, env, p, 2*time.Minute)
	masked := `SELECT id, left(email, 1) || repeat('*', length(split_part(email, '@', 1)) - 1) || '@' || split_part(email, '@', 2),
		'**** **** **** ' || right(card, 4), name FROM "Cu stomers"."Pe""ople"`
	got := `SELECT id, email, card, name FROM "Cu stomers"."Pe""ople"`
	assertSameRows(t, ctx, srcDSN, masked, dstDSN, got)

	if err := src.Exec(ctx, dbOf(t, srcDSN), `INSERT INTO "Cu stomers"."Pe""ople" SELECT g, 'late' || g || '@mail.example', '5500 0000 0000 0004', 'late ' || g FROM generate_series(2001, 2300) g;
UPDATE "Cu stomers"."Pe""ople" SET email = 'moved' || id || '@new.example' WHERE id <= 100;
DELETE FROM "Cu stomers"."Pe""ople" WHERE id BETWEEN 101 AND 150;`); err != nil {
		t.Fatal(err)
	}
	runCaughtUp(t, dir, env, p, 2*time.Minute)
	assertSameRows(t, ctx, srcDSN, masked, dstDSN, got)
}

// TestBulkRenameAndCase runs bulk rename rules (prefix, suffix, pattern)
// and the lower case policy, in the copy and while streaming, on hostile
// names; two tables that the case policy maps onto one name are refused
// at load, naming both.
func TestBulkRenameAndCase(t *testing.T) {
	ctx := streamCtx(t, 4*time.Minute)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE SCHEMA "Sales ü";
CREATE TABLE "Sales ü"."Order Items" (id int PRIMARY KEY, "Qty" int);
CREATE TABLE "Sales ü"."tmp_Stock" (id int PRIMARY KEY, "Level" text);
CREATE SCHEMA "CRM";
CREATE TABLE "CRM"."People" (id int PRIMARY KEY, "Full Name" text);
INSERT INTO "Sales ü"."Order Items" SELECT g, g FROM generate_series(1, 300) g;
INSERT INTO "Sales ü"."tmp_Stock" SELECT g, 'l' || g FROM generate_series(1, 200) g;
INSERT INTO "CRM"."People" SELECT g, 'p' || g FROM generate_series(1, 100) g;`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := writePipeline(t, dir, "bulk.yaml", `name: bulk_rename
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - schema: '"Sales ü"'
  - schema: CRM
rename:
  case: lower
  tables:
    - schema: '"Sales ü"'
      pattern: 'tmp_(.*)'
      replacement: 'staging_$${1}'
    - schema: '"Sales ü"'
      prefix: 'src_'
    - schema: CRM
      suffix: '_V1'
state_dir: state
`)
	env := dsnEnv(srcDSN, dstDSN)
	runCaughtUp(t, dir, env, p, 2*time.Minute)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `INSERT INTO "Sales ü"."Order Items" VALUES (301, 301);
UPDATE "Sales ü"."tmp_Stock" SET "Level" = 'x' WHERE id <= 10;
DELETE FROM "CRM"."People" WHERE id > 90;`); err != nil {
		t.Fatal(err)
	}
	runCaughtUp(t, dir, env, p, 2*time.Minute)
	// Bulk rules give the table name as written; the case policy gives
	// the schema and column names no rule decides.
	assertSameRows(t, ctx, srcDSN, `SELECT id, "Qty" FROM "Sales ü"."Order Items"`, dstDSN, `SELECT id, qty FROM "sales ü"."src_Order Items"`)
	assertSameRows(t, ctx, srcDSN, `SELECT id, "Level" FROM "Sales ü"."tmp_Stock"`, dstDSN, `SELECT id, level FROM "sales ü"."staging_Stock"`)
	assertSameRows(t, ctx, srcDSN, `SELECT id, "Full Name" FROM "CRM"."People"`, dstDSN, `SELECT id, "full name" FROM crm."People_V1"`)
	// verify maps the names the same way.
	r := sluice(t, dir, env, "verify", "--json", p)
	var out verifyOut
	if err := json.Unmarshal([]byte(r.stdout), &out); r.code != 0 || err != nil || !out.Equal {
		t.Errorf("sluice verify --json: want exit 0 and equal (%v):\n%s", err, r)
	}

	// "Orders" and "orders" both become orders under the lower case
	// policy: refused before anything is created.
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE SCHEMA clash; CREATE TABLE clash."Orders" (id int PRIMARY KEY); CREATE TABLE clash.orders (id int PRIMARY KEY);`); err != nil {
		t.Fatal(err)
	}
	p2 := writePipeline(t, dir, "clash.yaml", `name: bulk_clash
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
objects:
  - schema: clash
rename: {case: lower}
state_dir: state2
`)
	for _, cmd := range []string{"check", "run"} {
		r = sluice(t, dir, env, cmd, p2)
		if r.code != 1 || !strings.Contains(r.stdout+r.stderr, `tables clash."Orders" and clash.orders both map to clash.orders at the sink`) || !strings.Contains(r.stdout+r.stderr, "clash.yaml:6 (rename.case)") {
			t.Errorf("sluice %s with colliding names: want exit 1 naming both tables and the rule:\n%s", cmd, r)
		}
	}
	// A pattern rule mapping items_old onto items, which keeps its name.
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE TABLE clash.items (id int PRIMARY KEY); CREATE TABLE clash.items_old (id int PRIMARY KEY);`); err != nil {
		t.Fatal(err)
	}
	p3 := writePipeline(t, dir, "clash2.yaml", `name: bulk_clash2
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
objects:
  - table: clash.items
  - table: clash.items_old
rename:
  tables:
    - {schema: clash, pattern: '(.*)_old', replacement: '$${1}'}
state_dir: state3
`)
	r = sluice(t, dir, env, "run", p3)
	if r.code != 1 || !strings.Contains(r.stderr, `tables clash.items and clash.items_old both map to clash.items at the sink (clash.items: no rule; clash.items_old: bulk rule at `) || !strings.Contains(r.stderr, "clash2.yaml:9 (rename.tables[0])") {
		t.Errorf("sluice run with a bulk rule making two tables one: want exit 1 naming both and the rule:\n%s", r)
	}
	if queryInt(t, ctx, dstDSN, `SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = 'clash'`) != 0 {
		t.Error("a pipeline with colliding names created objects at the sink")
	}
}

// TestCheckFilterIdentityWarnings: sluice check warns, for a streaming
// pipeline, about a where condition over columns outside the replica
// identity, a stage reading the old row (before), and a table without a
// key or REPLICA IDENTITY FULL that has a stage; with the identity FULL
// the item passes.
func TestCheckFilterIdentityWarnings(t *testing.T) {
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE TABLE public."Or ders" (id int PRIMARY KEY, amount int, region text);
CREATE TABLE public.bag (v int, w text);`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := writePipeline(t, dir, "ident.yaml", `name: stages_ident
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - table: '"Or ders"'
    where: "amount > 10"
  - table: bag
transforms:
  - filter: "before == nil || before.region != 'x'"
    tables: ['"Or ders"']
  - set: {w: "'masked'"}
    tables: [bag]
state_dir: state
`)
	env := dsnEnv(srcDSN, dstDSN)
	r := sluice(t, dir, env, "check", p)
	f := checkLine(r.stdout, "filter_replica_identity")
	if f == nil || f[1] != "WARN" {
		t.Fatalf("sluice check: want filter_replica_identity WARN:\n%s", r)
	}
	for _, want := range []string{
		`table public."Or ders": its where condition reads "amount", outside its replica identity ("id")`,
		`ident.yaml:10 (transforms[0]) on table public."Or ders" reads before (the old row), including "region", outside its replica identity ("id")`,
		`table public.bag has no key and no REPLICA IDENTITY FULL: sluice sets FULL before publishing it`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sluice check: want %q:\n%s", want, r)
		}
	}
	if err := src.Exec(ctx, dbOf(t, srcDSN), `ALTER TABLE public."Or ders" REPLICA IDENTITY FULL; ALTER TABLE public.bag REPLICA IDENTITY FULL;`); err != nil {
		t.Fatal(err)
	}
	r = sluice(t, dir, env, "check", p)
	if f := checkLine(r.stdout, "filter_replica_identity"); f == nil || f[1] != "PASS" {
		t.Errorf("sluice check with REPLICA IDENTITY FULL: want filter_replica_identity PASS:\n%s", r)
	}
}

// TestTransformPartitioned: a stage scoped to a partitioned table applies
// to the rows of all its partitions, copied and streamed.
func TestTransformPartitioned(t *testing.T) {
	ctx := streamCtx(t, 3*time.Minute)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE TABLE public."Me asures" (id int, day date, v numeric, label text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE public."Me asures 2024" PARTITION OF public."Me asures" FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public."Me asures 2025" PARTITION OF public."Me asures" FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO public."Me asures" SELECT g, DATE '2024-06-01' + (g % 400), g / 4.0, NULL FROM generate_series(1, 1000) g;`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := writePipeline(t, dir, "parts.yaml", `name: stages_parts
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - table: '"Me asures"'
transforms:
  - tables: ['"Me asures"']
    set: {label: "after.day + ':' + string(int(after.v * 4))"}
state_dir: state
`)
	env := dsnEnv(srcDSN, dstDSN)
	runCaughtUp(t, dir, env, p, 2*time.Minute)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `INSERT INTO public."Me asures" SELECT g, DATE '2024-06-01' + (g % 400), g / 4.0, NULL FROM generate_series(1001, 1100) g;
UPDATE public."Me asures" SET v = v + 1 WHERE id % 10 = 0;`); err != nil {
		t.Fatal(err)
	}
	runCaughtUp(t, dir, env, p, 2*time.Minute)
	assertSameRows(t, ctx, srcDSN, `SELECT id, day, v, day::text || ':' || (v * 4)::int FROM public."Me asures"`,
		dstDSN, `SELECT id, day, v, label FROM public."Me asures"`)
}

// TestTransformKeyless: a set on a table without a key, streamed: the
// sink finds rows by their whole old row, which sluice computes again, so
// updates and deletes of masked rows (duplicates included) land; a set
// that reads op on such a table is refused at load.
func TestTransformKeyless(t *testing.T) {
	ctx := streamCtx(t, 3*time.Minute)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE TABLE public."b ag" (v int, w text);
INSERT INTO public."b ag" SELECT g % 50, 'w' || (g % 50) FROM generate_series(1, 300) g;`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pipeline := func(expr string) string {
		return `name: stages_keyless
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {schema: true, full: true, incremental: true}
objects:
  - table: '"b ag"'
transforms:
  - set: {w: "` + expr + `"}
state_dir: state
`
	}
	env := dsnEnv(srcDSN, dstDSN)
	bad := writePipeline(t, dir, "bad.yaml", strings.Replace(pipeline("op + upper(after.w)"), "state_dir: state", "state_dir: state_bad", 1))
	r := sluice(t, dir, env, "run", bad)
	if r.code != 1 || !strings.Contains(r.stderr, `bad.yaml:8 (transforms[0]): set on table public."b ag" reads op, but the table has no key`) {
		t.Errorf("a set reading op on a keyless streamed table: want exit 1 and a refusal:\n%s", r)
	}
	p := writePipeline(t, dir, "keyless.yaml", pipeline("after.w == nil ? nil : upper(after.w)"))
	runCaughtUp(t, dir, env, p, 2*time.Minute)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `UPDATE public."b ag" SET v = v + 1000 WHERE v < 10;
DELETE FROM public."b ag" WHERE v BETWEEN 20 AND 29;
UPDATE public."b ag" SET w = 'changed' WHERE v = 30;
INSERT INTO public."b ag" VALUES (7, NULL), (7, 'seven');`); err != nil {
		t.Fatal(err)
	}
	runCaughtUp(t, dir, env, p, 2*time.Minute)
	assertSameRows(t, ctx, srcDSN, `SELECT v, upper(w) FROM public."b ag"`, dstDSN, `SELECT v, w FROM public."b ag"`)
}
