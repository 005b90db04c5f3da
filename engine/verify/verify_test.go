package verify_test

// Integration tests of verify against real throwaway PostgreSQL clusters
// (pgtest). The equal copies are made with plain SQL run at both sides, or
// with engine.Run; the differences are made with SQL at the sink.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/engine/verify"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m))
}

// env is a fresh source database and a fresh sink database.
type env struct {
	t              *testing.T
	src, dst       *pgtest.Cluster
	srcDSN, dstDSN string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, src: pgtest.Source(t), dst: pgtest.Sink(t)}
	e.srcDSN = pgtest.NewDB(t, e.src)
	e.dstDSN = pgtest.NewDB(t, e.dst)
	return e
}

func dbOf(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

func (e *env) srcExec(sql string) {
	e.t.Helper()
	if err := e.src.Exec(e.t.Context(), dbOf(e.t, e.srcDSN), sql); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) dstExec(sql string) {
	e.t.Helper()
	if err := e.dst.Exec(e.t.Context(), dbOf(e.t, e.dstDSN), sql); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) config(sel ...postgres.Selection) verify.Config {
	return verify.Config{
		Name:      "t",
		SourceDSN: e.srcDSN,
		SinkDSN:   e.dstDSN,
		Objects:   sel,
		Parallel:  3,
		ChunkRows: 2000,
		Recheck:   -1,
	}
}

func schemaSel(names ...string) []postgres.Selection {
	var out []postgres.Selection
	for _, n := range names {
		out = append(out, postgres.Selection{Schema: n, Where: "test"})
	}
	return out
}

func run(t *testing.T, cfg verify.Config) *verify.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	rep, err := verify.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("verify.Run: %v", err)
	}
	return rep
}

func table(t *testing.T, rep *verify.Report, name string) *verify.TableReport {
	t.Helper()
	for _, tr := range rep.Tables {
		if tr.Table == name {
			return tr
		}
	}
	var names []string
	for _, tr := range rep.Tables {
		names = append(names, tr.Table)
	}
	t.Fatalf("no table %s in the report (tables: %q)", name, names)
	return nil
}

func describe(rep *verify.Report) string {
	var b strings.Builder
	for _, tr := range rep.Tables {
		fmt.Fprintf(&b, "  %s: method %s, rows %d/%d, chunks %d, mismatched %d, rechecked %d, missing %d, extra %d, different %d, error %q\n",
			tr.Table, tr.Method, tr.SourceRows, tr.SinkRows, tr.Chunks, tr.Mismatched, tr.Rechecked, tr.Missing, tr.Extra, tr.Different, tr.Error)
		for _, d := range tr.Diffs {
			fmt.Fprintf(&b, "    %s\n", d.Format(tr.Key))
		}
	}
	return b.String()
}

// fixtureTypes and fixtureData are run at both sides; the tables are
// created by fixtureSource at the source and fixtureSink at the sink, whose
// column order differs.
const fixtureTypes = `
CREATE SCHEMA "Odd ""Schema"".x";
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
`

const fixtureSource = `
CREATE TABLE public.items (id int PRIMARY KEY, t text, n numeric(12,3), f float8, ts timestamptz, j jsonb,
	b bytea, m public.mood, arr int[], g int GENERATED ALWAYS AS (id * 2) STORED);
CREATE TABLE public.pairs (a int, b text, v text, PRIMARY KEY (a, b));
CREATE TABLE public.bag (n int, s text);
CREATE TABLE public.moods (m public.mood, k int, v text, PRIMARY KEY (m, k));
CREATE TABLE public.parted (id int, d date, v text, PRIMARY KEY (id, d)) PARTITION BY RANGE (d);
CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE public.parted_2 PARTITION OF public.parted FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
CREATE TABLE "Odd ""Schema"".x"."Tab le;DROP" ("Ke y" text PRIMARY KEY, "col ""q""" int, "Select" text, "ROW" int);
CREATE TABLE public.empty (id int PRIMARY KEY, v text);
`

const fixtureSink = `
CREATE TABLE public.items (g int GENERATED ALWAYS AS (id * 2) STORED, arr int[], m public.mood, b bytea, j jsonb,
	ts timestamptz, f float8, n numeric(12,3), t text, id int PRIMARY KEY);
CREATE TABLE public.pairs (v text, b text, a int, PRIMARY KEY (a, b));
CREATE TABLE public.bag (s text, n int);
CREATE TABLE public.moods (v text, k int, m public.mood, PRIMARY KEY (m, k));
CREATE TABLE public.parted (v text, d date, id int, PRIMARY KEY (id, d)) PARTITION BY RANGE (d);
CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE public.parted_2 PARTITION OF public.parted FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
CREATE TABLE "Odd ""Schema"".x"."Tab le;DROP" ("ROW" int, "Select" text, "col ""q""" int, "Ke y" text PRIMARY KEY);
CREATE TABLE public.empty (v text, id int PRIMARY KEY);
`

// itemsRows inserts the rows lo..hi of public.items.
func itemsRows(lo, hi int) string {
	return fmt.Sprintf(`INSERT INTO public.items (id, t, n, f, ts, j, b, m, arr)
SELECT g, CASE WHEN g %% 11 = 0 THEN NULL ELSE 'item ' || g END, g * 1.125, g / 7.0::float8,
	timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', jsonb_build_object('g', g, 'odd', g %% 2 = 1),
	decode(md5(g::text), 'hex'), (ARRAY['sad', 'ok', 'happy']::public.mood[])[1 + g %% 3], ARRAY[g, g + 1]
FROM generate_series(%d, %d) g;
`, lo, hi)
}

var fixtureData = itemsRows(1, 20000) + `
INSERT INTO public.pairs (a, b, v) SELECT g % 50, 'k,' || (g / 50) || ' é"', md5(g::text) FROM generate_series(1, 6000) g;
INSERT INTO public.bag (n, s) SELECT g % 1000, CASE WHEN g % 3 = 0 THEN NULL ELSE 'v' || (g % 1000) END FROM generate_series(1, 3000) g;
INSERT INTO public.moods (m, k, v) SELECT (ARRAY['sad', 'ok', 'happy']::public.mood[])[1 + g % 3], g, 'x' || g FROM generate_series(1, 6000) g;
INSERT INTO public.parted (id, d, v) SELECT g, date '2020-01-01' + (g % 700), 'p' || g FROM generate_series(1, 4000) g;
INSERT INTO "Odd ""Schema"".x"."Tab le;DROP" ("Ke y", "col ""q""", "Select", "ROW")
SELECT 'key ' || g || CASE WHEN g % 5 = 0 THEN ' ''quoted''' ELSE '' END, g, CASE WHEN g % 4 = 0 THEN '' END, g % 3 FROM generate_series(1, 500) g;
`

// equalCopy builds the fixture at both sides, the same rows in tables of
// another column order at the sink.
func equalCopy(t *testing.T) *env {
	e := newEnv(t)
	e.srcExec(fixtureTypes + fixtureSource + fixtureData + "ANALYZE;")
	e.dstExec(fixtureTypes + fixtureSink + fixtureData + "ANALYZE;")
	return e
}

var fixtureSel = schemaSel("public", `Odd "Schema".x`)

func TestEqual(t *testing.T) {
	e := equalCopy(t)
	cfg := e.config(fixtureSel...)
	var screen strings.Builder
	cfg.Progress, cfg.Terminal = &screen, true
	rep := run(t, cfg)
	if drawn := screen.String(); !strings.Contains(drawn, "verify t: 8/8 tables, ") || !strings.Contains(drawn, " chunks, 39.5k/~39.5k rows, ") {
		t.Errorf("terminal progress: want the final counts drawn, got %q", screen.String())
	}
	if !rep.Equal() {
		t.Fatalf("an equal copy is reported different:\n%s", describe(rep))
	}
	t.Logf("report:\n%s", describe(rep))
	want := []string{`"Odd ""Schema"".x"."Tab le;DROP"`, "public.bag", "public.empty", "public.items", "public.moods", "public.pairs", "public.parted_1", "public.parted_2"}
	var got []string
	for _, tr := range rep.Tables {
		got = append(got, tr.Table)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("tables compared: %q, want %q (a partitioned parent is compared through its partitions)", got, want)
	}
	items := table(t, rep, "public.items")
	if items.Method != postgres.MethodKey || items.Chunks < 5 {
		t.Errorf("public.items: method %s in %d chunks, want key ranges in several", items.Method, items.Chunks)
	}
	if items.SourceRows != 20000 || items.SinkRows != 20000 {
		t.Errorf("public.items: %d/%d rows, want 20000", items.SourceRows, items.SinkRows)
	}
	if pairs := table(t, rep, "public.pairs"); pairs.Method != postgres.MethodKey || pairs.Chunks < 2 {
		t.Errorf("public.pairs (composite key): method %s in %d chunks, want key ranges", pairs.Method, pairs.Chunks)
	}
	if bag := table(t, rep, "public.bag"); bag.Method != "hash" || len(bag.Key) != 0 || bag.SourceRows != 3000 {
		t.Errorf("public.bag (no key): method %s, key %q, %d rows; want hash buckets, no key, 3000 rows", bag.Method, bag.Key, bag.SourceRows)
	}
	if rep.SourceRows != rep.SinkRows || rep.SourceRows != 20000+6000+3000+6000+4000+500 {
		t.Errorf("totals: %d/%d rows", rep.SourceRows, rep.SinkRows)
	}
}

func TestDifferences(t *testing.T) {
	e := equalCopy(t)
	// In three chunks of public.items: a row deleted, a row added, a
	// value changed. In the keyless table, one of two copies removed.
	e.dstExec(`DELETE FROM public.items WHERE id = 1500;
		INSERT INTO public.items (id, t) VALUES (20001, 'new');
		UPDATE public.items SET t = 'changed' WHERE id = 10000;
		DELETE FROM public.bag WHERE ctid = (SELECT ctid FROM public.bag WHERE n = 7 AND s IS NOT NULL LIMIT 1);
		UPDATE public.pairs SET v = NULL WHERE a = 3 AND b = 'k,10 é"';
		UPDATE "Odd ""Schema"".x"."Tab le;DROP" SET "col ""q""" = -1 WHERE "Ke y" = 'key 10 ''quoted''';`)
	cfg := e.config(fixtureSel...)
	cfg.Recheck, cfg.RecheckDelay = 1, 10*time.Millisecond
	rep := run(t, cfg)
	t.Logf("report:\n%s", describe(rep))
	if rep.Equal() {
		t.Fatal("differences not found")
	}
	if rep.Rechecks != 1 {
		t.Errorf("%d re-check rounds, want 1", rep.Rechecks)
	}

	items := table(t, rep, "public.items")
	var got []string
	for _, d := range items.Diffs {
		got = append(got, d.Format(items.Key))
	}
	want := []string{"missing at sink: id=1500", "different: id=10000 (columns: t)", "extra at sink: id=20001"}
	if !slices.Equal(got, want) {
		t.Errorf("public.items differences:\n got %q\nwant %q", got, want)
	}
	if items.Missing != 1 || items.Extra != 1 || items.Different != 1 || items.Mismatched != 3 {
		t.Errorf("public.items: missing %d, extra %d, different %d in %d mismatched chunks; want 1, 1, 1 in 3",
			items.Missing, items.Extra, items.Different, items.Mismatched)
	}
	if items.SourceRows != 20000 || items.SinkRows != 20000 {
		t.Errorf("public.items: %d/%d rows, want 20000/20000", items.SourceRows, items.SinkRows)
	}

	bag := table(t, rep, "public.bag")
	if len(bag.Diffs) != 1 || bag.Missing != 1 || bag.Extra != 0 || bag.Diffs[0].Kind != verify.Missing ||
		bag.Diffs[0].Row != `(7,v7)` || bag.Diffs[0].Copies != 1 || bag.SinkRows != 2999 {
		t.Errorf("public.bag: want one copy of (7,v7) missing at the sink, got missing %d, extra %d, sink rows %d, diffs %+v", bag.Missing, bag.Extra, bag.SinkRows, bag.Diffs)
	}

	pairs := table(t, rep, "public.pairs")
	if len(pairs.Diffs) != 1 || pairs.Diffs[0].Format(pairs.Key) != `different: a=3, b="k,10 é\"" (columns: v)` {
		t.Errorf("public.pairs: want one difference at a=3, b=k,10 é\", got %+v", pairs.Diffs)
	}
	odd := table(t, rep, `"Odd ""Schema"".x"."Tab le;DROP"`)
	if len(odd.Diffs) != 1 || odd.Diffs[0].Format(odd.Key) != `different: "Ke y"="key 10 'quoted'" (columns: "col ""q""")` {
		t.Errorf("hostile names: want one difference, got %+v", odd.Diffs)
	}
	for _, name := range []string{"public.moods", "public.parted_1", "public.parted_2", "public.empty"} {
		if tr := table(t, rep, name); !tr.Equal() {
			t.Errorf("%s is reported different", name)
		}
	}
	if n := len(rep.Differing()); n != 4 {
		t.Errorf("%d tables differ, want 4", n)
	}

	// The list is capped; the counts are not.
	e.dstExec(`DELETE FROM public.items WHERE id BETWEEN 3000 AND 3999`)
	cfg.MaxDiffRows = 10
	cfg.Only = []record.TableName{{Schema: "public", Name: "items"}}
	rep = run(t, cfg)
	items = table(t, rep, "public.items")
	if len(rep.Tables) != 1 || len(items.Diffs) != 10 || !items.Truncated || items.Missing != 1001 || items.SinkRows != 19000 {
		t.Errorf("capped list: %d tables, %d listed (truncated %v), %d missing, %d sink rows; want 1 table, 10 listed, 1001 missing, 19000",
			len(rep.Tables), len(items.Diffs), items.Truncated, items.Missing, items.SinkRows)
	}
}

// TestMissingAtSink: a table or column the sink lacks is a difference
// with its reason, not an error of the run.
func TestMissingAtSink(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE TABLE public.a (id int PRIMARY KEY, v text); CREATE TABLE public.b (id int PRIMARY KEY, v text);
		INSERT INTO public.a SELECT g, 'x' FROM generate_series(1, 10) g;`)
	e.dstExec(`CREATE TABLE public.a (id int PRIMARY KEY)`)
	rep := run(t, e.config(schemaSel("public")...))
	if rep.Equal() {
		t.Fatal("reported equal")
	}
	if a := table(t, rep, "public.a"); !strings.Contains(a.Error, "lacks column(s) v") {
		t.Errorf("public.a: error %q, want the missing column named", a.Error)
	}
	if b := table(t, rep, "public.b"); !strings.Contains(b.Error, "does not exist at the sink") {
		t.Errorf("public.b: error %q, want the missing table named", b.Error)
	}
	cfg := e.config(schemaSel("public")...)
	cfg.Only = []record.TableName{{Schema: "public", Name: "nope"}}
	if _, err := verify.Run(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "public.nope: not among the pipeline's tables") {
		t.Errorf("unknown --table: error %v", err)
	}
}

// TestRules: a row filter and renamed or skipped columns.
func TestRules(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE TABLE public.r (id int PRIMARY KEY, v text, secret text);
		INSERT INTO public.r SELECT g, 'v' || g, md5(g::text) FROM generate_series(1, 5000) g; ANALYZE public.r;`)
	e.dstExec(`CREATE TABLE public.r (id int PRIMARY KEY, value text, secret text);
		INSERT INTO public.r SELECT g, 'v' || g, 'masked' FROM generate_series(1, 5000) g WHERE g % 2 = 0;`)
	cfg := e.config(schemaSel("public")...)
	cfg.Rules = func(n record.TableName) verify.Rule {
		return verify.Rule{Where: "id % 2 = 0", Columns: map[string]string{"v": "value"}, Skip: []string{"secret"}}
	}
	if rep := run(t, cfg); !rep.Equal() {
		t.Fatalf("filtered, renamed, skipped: reported different:\n%s", describe(rep))
	}
	e.dstExec(`INSERT INTO public.r VALUES (1, 'v1', 'masked')`)
	rep := run(t, cfg)
	r := table(t, rep, "public.r")
	if len(r.Diffs) != 1 || r.Diffs[0].Format(r.Key) != "extra at sink: id=1" {
		t.Errorf("a row outside the filter at the sink: want it extra, got %+v", r.Diffs)
	}
}

// TestCollationDiffers: when the sink orders a text key differently, key
// ranges would hold different rows at each side; the table is compared by
// hash buckets of the key instead.
func TestCollationDiffers(t *testing.T) {
	e := newEnv(t)
	var coll string
	conn, err := pgx.Connect(t.Context(), e.srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	err = conn.QueryRow(t.Context(), `SELECT quote_ident(collname) FROM pg_collation WHERE collname IN ('und-x-icu', 'en-x-icu', 'en_US.utf8', 'en_US') ORDER BY collname LIMIT 1`).Scan(&coll)
	conn.Close(context.Background())
	if err == pgx.ErrNoRows {
		t.Skip("no collation other than C and POSIX at the source cluster")
	} else if err != nil {
		t.Fatal(err)
	}
	data := `INSERT INTO public.c SELECT CASE WHEN g % 2 = 0 THEN upper(md5(g::text)) ELSE md5(g::text) END, g FROM generate_series(1, 8000) g; ANALYZE public.c;`
	e.srcExec(`CREATE TABLE public.c (k text COLLATE ` + coll + ` PRIMARY KEY, v int);` + data)
	e.dstExec(`CREATE TABLE public.c (k text COLLATE "C" PRIMARY KEY, v int);` + data + `UPDATE public.c SET v = -1 WHERE v = 4000`)
	rep := run(t, e.config(schemaSel("public")...))
	c := table(t, rep, "public.c")
	if c.Method != "hash" {
		t.Errorf("method %s, want hash", c.Method)
	}
	if len(c.Diffs) != 1 || c.Diffs[0].Kind != verify.Different || c.Different != 1 || c.Missing+c.Extra != 0 {
		t.Errorf("want exactly one row different, got:\n%s", describe(rep))
	}
}

// TestRecheck: a mismatch that a streaming pipeline would fix shortly is
// equal on a re-check.
func TestRecheck(t *testing.T) {
	e := equalCopy(t)
	e.dstExec(`DELETE FROM public.items WHERE id = 777; DELETE FROM public.bag WHERE n = 5`)
	fixed := make(chan error, 1)
	db := dbOf(t, e.dstDSN)
	go func() {
		time.Sleep(time.Second)
		fixed <- e.dst.Exec(context.Background(), db, itemsRows(777, 777)+`
			INSERT INTO public.bag (n, s) SELECT g % 1000, CASE WHEN g % 3 = 0 THEN NULL ELSE 'v' || (g % 1000) END
			FROM generate_series(1, 3000) g WHERE g % 1000 = 5`)
	}()
	cfg := e.config(fixtureSel...)
	cfg.Recheck = 3
	start := time.Now()
	rep := run(t, cfg)
	if err := <-fixed; err != nil {
		t.Fatal(err)
	}
	t.Logf("verify with re-checks took %s, %d rounds", time.Since(start).Round(time.Millisecond), rep.Rechecks)
	if !rep.Equal() {
		t.Fatalf("fixed within the re-checks, but reported different:\n%s", describe(rep))
	}
	if rep.Rechecks < 1 || table(t, rep, "public.items").Rechecked != 1 || table(t, rep, "public.bag").Rechecked != 1 {
		t.Errorf("want the two mismatched chunks equal on a re-check:\n%s", describe(rep))
	}
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer = pgtest.LogBuffer

// TestWhileStreaming verifies while a pipeline streams changes that keep
// coming at the source: chunks that differ because the sink lags are
// re-checked until the stream has caught up.
func TestWhileStreaming(t *testing.T) {
	if testing.Short() {
		t.Skip("streaming: skipped with -short")
	}
	e := newEnv(t)
	e.srcExec(`CREATE TABLE public.s (id int PRIMARY KEY, v int, t text);
		INSERT INTO public.s SELECT g, g, md5(g::text) FROM generate_series(1, 20000) g;
		CREATE TABLE public.nk (n int, t text);
		INSERT INTO public.nk SELECT g % 100, 'x' FROM generate_series(1, 2000) g;
		ANALYZE;`)
	ecfg := engine.Config{Name: "vs", SourceDSN: e.srcDSN, SinkDSN: e.dstDSN, Schema: true, Full: true, Incremental: true,
		Objects: schemaSel("public"), StateDir: t.TempDir(), Parallel: 2, ChunkRows: 5000,
		Heartbeat: 200 * time.Millisecond, StatusInterval: time.Second}
	// Runs before the databases are dropped: a database with a slot
	// cannot be.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := engine.Drop(ctx, ecfg, true); err != nil {
			t.Errorf("drop the pipeline: %v", err)
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { _, err := engine.Run(ctx, ecfg); errc <- err }()
	defer func() {
		cancel()
		<-errc
	}()

	sink, err := pgx.Connect(t.Context(), e.dstDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(context.Background())
	for deadline := time.Now().Add(time.Minute); ; {
		var n int64
		if err := sink.QueryRow(t.Context(), "SELECT count(*) FROM sluice.apply_progress").Scan(&n); err == nil && n > 0 {
			break
		}
		select {
		case err := <-errc:
			t.Fatalf("engine.Run ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the pipeline did not start streaming within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Changes for 2s at the source, while verify runs.
	writes := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(context.Background(), e.srcDSN)
		if err != nil {
			writes <- err
			return
		}
		defer conn.Close(context.Background())
		n := 0
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); n++ {
			id := 1 + (n*7919)%20000
			for _, sql := range []string{
				"UPDATE public.s SET v = v + 1 WHERE id = $1",
				"INSERT INTO public.nk VALUES ($1 % 100, 'y')",
				"DELETE FROM public.s WHERE id = $1 + 1 AND $1 % 10 = 0",
			} {
				if _, err := conn.Exec(context.Background(), sql, id); err != nil {
					writes <- err
					return
				}
			}
		}
		t.Logf("%d rounds of changes at the source", n)
		writes <- nil
	}()
	cfg := e.config(schemaSel("public")...)
	cfg.ChunkRows = 5000
	cfg.Recheck, cfg.RecheckDelay = 10, time.Second
	rep := run(t, cfg)
	if err := <-writes; err != nil {
		t.Fatal(err)
	}
	var rechecked int
	for _, tr := range rep.Tables {
		rechecked += tr.Rechecked
	}
	t.Logf("verified while streaming: %d re-check rounds, %d chunks equal on a re-check", rep.Rechecks, rechecked)
	if !rep.Equal() {
		t.Fatalf("reported different while the pipeline streams:\n%s", describe(rep))
	}
	if rep.Rechecks == 0 {
		t.Log("no chunk differed on the first pass: the stream kept up")
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func copyWithEngine(t *testing.T, e *env, sel []postgres.Selection, chunkRows int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	sum, err := engine.Run(ctx, engine.Config{Name: "t", SourceDSN: e.srcDSN, SinkDSN: e.dstDSN, Schema: true, Full: true,
		Objects: sel, StateDir: t.TempDir(), Parallel: 2, ChunkRows: chunkRows})
	if err != nil {
		t.Fatalf("engine.Run: %v", err)
	}
	t.Logf("copied %d rows in %s", sum.Rows, time.Since(start).Round(time.Millisecond))
}

// TestPagila verifies an engine copy of pagila.
func TestPagila(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "..", "shared", "testdata", "pagila")
	schemaFile, dataFile := filepath.Join(dir, "pagila-schema.sql"), filepath.Join(dir, "pagila-data.sql")
	for _, f := range []string{schemaFile, dataFile} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("pagila test data not available (%v): put pagila-schema.sql and pagila-data.sql in %s", err, dir)
		}
	}
	e := newEnv(t)
	for _, f := range []string{schemaFile, dataFile} {
		if err := e.src.LoadSQLFile(t.Context(), dbOf(t, e.srcDSN), f); err != nil {
			t.Fatal(err)
		}
	}
	e.srcExec("ANALYZE")
	copyWithEngine(t, e, schemaSel("public"), 4000)

	cfg := e.config(schemaSel("public")...)
	cfg.ChunkRows = 4000
	start := time.Now()
	rep := run(t, cfg)
	t.Logf("verified pagila (%d tables, %d rows, %d chunks) in %s", len(rep.Tables), rep.SourceRows, rep.Chunks, time.Since(start).Round(time.Millisecond))
	if !rep.Equal() {
		t.Fatalf("pagila copy reported different:\n%s", describe(rep))
	}
	if rep.SourceRows < 40000 || rep.Chunks <= len(rep.Tables) {
		t.Errorf("pagila: %d rows in %d chunks over %d tables: expected chunked big tables", rep.SourceRows, rep.Chunks, len(rep.Tables))
	}

	// One changed row among them is found.
	e.dstExec(`UPDATE public.rental SET staff_id = 3 - staff_id WHERE rental_id = 4242`)
	cfg.Only = []record.TableName{{Schema: "public", Name: "rental"}}
	rep = run(t, cfg)
	r := table(t, rep, "public.rental")
	if len(r.Diffs) != 1 || !strings.HasPrefix(r.Diffs[0].Format(r.Key), "different: rental_id=4242 (columns: ") || !slices.Contains(r.Diffs[0].Columns, "staff_id") {
		t.Errorf("pagila rental: want one difference at rental_id=4242:\n%s", describe(rep))
	}
}

// TestMillionRows verifies an engine copy of a million-row table.
func TestMillionRows(t *testing.T) {
	if testing.Short() {
		t.Skip("1M rows: skipped with -short")
	}
	e := newEnv(t)
	start := time.Now()
	e.srcExec(`CREATE TABLE public.big (id bigint NOT NULL, t text, n numeric, ts timestamptz);
		INSERT INTO public.big SELECT g, md5(g::text), g * 1.0001 - 500000, timestamptz '2020-01-01 00:00:00+00' + g * interval '1.5 seconds'
		FROM generate_series(1, 1000000) g;
		ALTER TABLE public.big ADD PRIMARY KEY (id);`)
	e.srcExec("VACUUM ANALYZE public.big")
	t.Logf("fixture loaded in %s", time.Since(start).Round(time.Millisecond))
	copyWithEngine(t, e, schemaSel("public"), 100000)
	e.dstExec("VACUUM ANALYZE public.big")

	cfg := e.config(schemaSel("public")...)
	cfg.ChunkRows, cfg.Parallel = 100000, 4
	var logs syncBuffer
	cfg.Log, cfg.ProgressInterval = slog.New(slog.NewTextHandler(&logs, nil)), 200*time.Millisecond
	start = time.Now()
	rep := run(t, cfg)
	elapsed := time.Since(start)
	if !strings.Contains(logs.String(), "msg=\"verify progress\" phase=compare") {
		t.Errorf("no progress logged:\n%s", logs.String())
	}
	big := table(t, rep, "public.big")
	t.Logf("verify of 1M rows: %s (%.0f rows/s), %d chunks", elapsed.Round(time.Millisecond), float64(big.SourceRows)/elapsed.Seconds(), big.Chunks)
	if !rep.Equal() || big.SourceRows != 1_000_000 || big.Chunks < 5 {
		t.Fatalf("1M rows: want equal in several chunks:\n%s", describe(rep))
	}

	e.dstExec(`DELETE FROM public.big WHERE id = 123456; UPDATE public.big SET n = 0 WHERE id = 654321`)
	start = time.Now()
	rep = run(t, cfg)
	t.Logf("verify of 1M rows with 2 differences: %s", time.Since(start).Round(time.Millisecond))
	big = table(t, rep, "public.big")
	var got []string
	for _, d := range big.Diffs {
		got = append(got, d.Format(big.Key))
	}
	if want := []string{"missing at sink: id=123456", "different: id=654321 (columns: n)"}; !slices.Equal(got, want) {
		t.Errorf("1M rows: differences %q, want %q", got, want)
	}
}
