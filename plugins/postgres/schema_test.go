package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// schemaSales is the awkward schema name of the fixture: mixed case,
// spaces, quotes and non-ASCII letters.
const schemaSales = `Sales Ünï "q"`

// schemaFixture creates, at the source, every kind of object the pre-data
// schema sync handles.
const schemaFixture = `
CREATE SCHEMA "Sales Ünï ""q""";
SET search_path = "Sales Ünï ""q""", public;

CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'it''s', 'back\slash');
ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok';
-- next transaction: a new enum value is usable only once committed
SET search_path = "Sales Ünï ""q""", public;
CREATE DOMAIN good_mood AS mood NOT NULL CONSTRAINT "not sad" CHECK (VALUE <> 'sad');
CREATE DOMAIN public.year AS integer CONSTRAINT year_check CHECK (VALUE >= 1901 AND VALUE <= 2155);
ALTER DOMAIN public.year ADD CONSTRAINT year_not_2000 CHECK (VALUE <> 2000) NOT VALID;
CREATE DOMAIN "bıgınt" AS bigint DEFAULT 7 CONSTRAINT positive CHECK (VALUE > 0);
CREATE DOMAIN code_c AS text COLLATE "C" CHECK (length(VALUE) < 10);
CREATE TYPE "Addr Ü" AS (street text COLLATE "C", m mood, n numeric(10,2), codes code_c[]);
CREATE TYPE numr AS RANGE (SUBTYPE = numeric, SUBTYPE_DIFF = pg_catalog.numrange_subdiff, MULTIRANGE_TYPE_NAME = "Numr Multi");
CREATE SEQUENCE public.shared_seq AS integer START WITH 1000 INCREMENT BY 10 CACHE 5;

CREATE TABLE "Orders ""X""" (
	region text NOT NULL,
	id serial,
	ident bigint GENERATED ALWAYS AS IDENTITY (START WITH 100 INCREMENT BY 5),
	m mood NOT NULL DEFAULT 'ok',
	gm good_mood,
	y public.year,
	b "bıgınt",
	moods mood[] DEFAULT '{happy,meh}',
	addrs "Addr Ü"[],
	years public.year[],
	bigs "bıgınt"[],
	r numr,
	rs "Numr Multi",
	price numeric(12,2) NOT NULL DEFAULT 0,
	qty integer NOT NULL DEFAULT 1,
	total numeric GENERATED ALWAYS AS (price * qty) STORED,
	name text COLLATE "C",
	ticket integer DEFAULT nextval('public.shared_seq'),
	created timestamptz NOT NULL DEFAULT now(),
	"Weird ""col"" ü" varchar(20) DEFAULT 'x''y',
	CONSTRAINT "Orders PK" PRIMARY KEY (region, id)
);

CREATE TABLE public.events (
	id bigserial,
	day date NOT NULL,
	payload text DEFAULT 'x',
	PRIMARY KEY (id, day)
) PARTITION BY RANGE (day);
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.events_2025 PARTITION OF public.events (payload WITH OPTIONS DEFAULT 'y' NOT NULL)
	FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE public.events_other PARTITION OF public.events DEFAULT;

CREATE TABLE by_region (region text NOT NULL, code integer NOT NULL, amount integer) PARTITION BY LIST (region);
CREATE TABLE "by_region eu" PARTITION OF by_region FOR VALUES IN ('eu', 'uk') PARTITION BY RANGE (code);
CREATE TABLE "by_region eu low" PARTITION OF "by_region eu" FOR VALUES FROM (MINVALUE) TO (100);
CREATE TABLE "by_region eu high" PARTITION OF "by_region eu" FOR VALUES FROM (100) TO (MAXVALUE);
CREATE TABLE by_region_us PARTITION OF by_region FOR VALUES IN ('us');

CREATE UNLOGGED TABLE public."Scratch" (k integer PRIMARY KEY, v jsonb, s serial);
CREATE TABLE public.deferred (id integer CONSTRAINT deferred_pk PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, note text);
`

// dbOf returns the database name of a DSN.
func dbOf(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

func connect(t *testing.T, dsn, role string) *pgx.Conn {
	t.Helper()
	conn, err := Connect(t.Context(), dsn, role)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// schemaEnv is a source database holding the fixture and an empty sink
// database, with sluice connections to both.
type schemaEnv struct {
	srcC, dstC       *pgtest.Cluster
	srcDB, dstDB     string
	srcDSN, dstDSN   string
	src, dst         *pgx.Conn
	tables           []*Table
	srcExec, dstExec func(sql string)
}

func newSchemaEnv(t *testing.T) *schemaEnv {
	t.Helper()
	e := &schemaEnv{srcC: pgtest.Source(t), dstC: pgtest.Sink(t)}
	e.srcDSN, e.dstDSN = pgtest.NewDB(t, e.srcC), pgtest.NewDB(t, e.dstC)
	e.srcDB, e.dstDB = dbOf(t, e.srcDSN), dbOf(t, e.dstDSN)
	e.srcExec = func(sql string) {
		t.Helper()
		if err := e.srcC.Exec(t.Context(), e.srcDB, sql); err != nil {
			t.Fatal(err)
		}
	}
	e.dstExec = func(sql string) {
		t.Helper()
		if err := e.dstC.Exec(t.Context(), e.dstDB, sql); err != nil {
			t.Fatal(err)
		}
	}
	for _, part := range strings.Split(schemaFixture, "-- next transaction") {
		e.srcExec(part)
	}
	e.src, e.dst = connect(t, e.srcDSN, "source"), connect(t, e.dstDSN, "sink")
	var err error
	e.tables, err = Discover(t.Context(), e.src, []Selection{{Schema: schemaSales, Where: "test"}, {Schema: "public", Where: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *schemaEnv) plan(t *testing.T) *SchemaPlan {
	t.Helper()
	plan, err := PlanMissing(t.Context(), e.src, e.dst, e.tables, nil)
	if err != nil {
		t.Fatalf("PlanMissing: %v", err)
	}
	return plan
}

// describeTable renders what the pre-data sync must reproduce of a table,
// from the catalog of the database conn is connected to.
func describeTable(t *testing.T, conn *pgx.Conn, name record.TableName) string {
	t.Helper()
	var head, cols string
	err := conn.QueryRow(t.Context(), `SELECT format('kind=%s persistence=%s partkey=%s bound=%s parent=%s pk=%s',
			c.relkind, c.relpersistence, pg_get_partkeydef(c.oid), pg_get_expr(c.relpartbound, c.oid),
			(SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid),
			(SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = c.oid AND contype = 'p')),
		(SELECT string_agg(format('%s %s notnull=%s default=%s generated=%s identity=%s collation=%s identity_seq=%s',
				quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), a.attnotnull,
				pg_get_expr(d.adbin, d.adrelid), a.attgenerated, a.attidentity,
				CASE WHEN a.attcollation <> 0 THEN a.attcollation::regcollation::text END,
				(SELECT format('%s %s %s %s %s %s %s', s.seqtypid::regtype, s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache, s.seqcycle)
					FROM pg_sequence s WHERE s.seqrelid = pg_get_serial_sequence(c.oid::regclass::text, a.attname)::regclass)),
				E'\n' ORDER BY a.attnum)
			FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
			WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
		FROM pg_class c WHERE c.oid = $1::regclass`, name.Quoted()).Scan(&head, &cols)
	if err != nil {
		t.Fatalf("describe %s: %v", name, err)
	}
	return head + "\n" + cols
}

// listObjects lists the relations and types of the fixture's schemas.
func listObjects(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT format('rel %s.%s %s', quote_ident(n.nspname), quote_ident(c.relname), c.relkind)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY($1)
		UNION ALL
		SELECT format('type %s.%s %s', quote_ident(n.nspname), quote_ident(t.typname), t.typtype)
		FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = ANY($1)
		ORDER BY 1`, []string{schemaSales, "public"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// firstDiff shows where two texts start to differ, line by line.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  source: %s\n  sink:   %s", i+1, x, y)
		}
	}
	return ""
}

func TestSchemaPlanApply(t *testing.T) {
	e := newSchemaEnv(t)
	ctx := t.Context()
	if len(e.tables) != 12 {
		names := make([]string, len(e.tables))
		for i, tb := range e.tables {
			names[i] = tb.Name.String()
		}
		t.Fatalf("Discover found %d tables, want 12: %v", len(e.tables), names)
	}

	plan := e.plan(t)
	t.Logf("plan:\n%s", plan)
	if err := plan.Apply(ctx, e.dst); err != nil {
		t.Fatalf("Apply: %v", err)
	}

	// Every table is there with the same columns, keys and partitioning.
	for _, tb := range e.tables {
		want, got := describeTable(t, e.src, tb.Name), describeTable(t, e.dst, tb.Name)
		if want != got {
			t.Errorf("table %s differs at the sink:\n%s", tb.Name, firstDiff(want, got))
		}
	}
	if want, got := strings.Join(listObjects(t, e.src), "\n"), strings.Join(listObjects(t, e.dst), "\n"); want != got {
		t.Errorf("objects differ:\n%s", firstDiff(want, got))
	}

	// An independent oracle: pg_dump --schema-only of both databases is the
	// same (the fixture has nothing the pre-data phase leaves out).
	srcDump, err := e.srcC.DumpSchema(ctx, e.srcDB)
	if err != nil {
		t.Fatal(err)
	}
	dstDump, err := e.dstC.DumpSchema(ctx, e.dstDB)
	if err != nil {
		t.Fatal(err)
	}
	if srcDump != dstDump {
		t.Errorf("pg_dump --schema-only differs:\n%s", firstDiff(srcDump, dstDump))
	}

	// Identity, serial, generated columns and defaults work at the sink.
	orders := `"Sales Ünï ""q"""."Orders ""X"""`
	var id int32
	var ident int64
	var total, moods string
	if err := e.dst.QueryRow(ctx, `INSERT INTO `+orders+` (region, gm, y, price, qty) VALUES ('eu', 'happy', 1999, 2.50, 3)
		RETURNING id, ident, total::text, moods::text`).Scan(&id, &ident, &total, &moods); err != nil {
		t.Fatalf("insert at the sink: %v", err)
	}
	if id != 1 || ident != 100 || total != "7.50" || moods != "{happy,meh}" {
		t.Errorf("sink insert gave id=%d ident=%d total=%s moods=%s, want 1, 100, 7.50, {happy,meh}", id, ident, total, moods)
	}
	// The domains' constraints hold at the sink.
	for _, bad := range []struct{ col, val, code string }{
		{"gm", "'sad'", "23514"},    // CHECK "not sad" of a domain over an enum
		{"y", "1900", "23514"},      // pagila-style year domain
		{"b", "-1", "23514"},        // bıgınt
		{"y", "2000", "23514"},      // a NOT VALID domain constraint still checks new values
		{"gm", "NULL", "23502"},     // domain NOT NULL
		{"name", "NULL", "success"}, // sanity: a nullable column
	} {
		sql := `INSERT INTO ` + orders + ` (region, gm, ` + bad.col + `) VALUES ('eu', 'ok', ` + bad.val + `)`
		if bad.col == "gm" {
			sql = `INSERT INTO ` + orders + ` (region, gm) VALUES ('eu', ` + bad.val + `)`
		}
		_, err := e.dst.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		switch {
		case bad.code == "success":
			if err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		case !errors.As(err, &pgErr) || pgErr.Code != bad.code:
			t.Errorf("%s: got %v, want SQLSTATE %s", sql, err, bad.code)
		}
	}
	// The partitions route rows at the sink as at the source.
	if _, err := e.dst.Exec(ctx, `INSERT INTO public.events (day) VALUES ('2024-05-01'), ('2025-05-01'), ('2030-01-01')`); err != nil {
		t.Fatal(err)
	}
	rows, err := e.dst.Query(ctx, `SELECT tableoid::regclass::text || ' ' || payload FROM public.events ORDER BY day`)
	if err != nil {
		t.Fatal(err)
	}
	routed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(routed, ", "), "public.events_2024 x, public.events_2025 y, public.events_other x"; got != want {
		t.Errorf("routing at the sink: %s, want %s", got, want)
	}

	// Idempotent: planning again finds nothing to do.
	if again := e.plan(t); !again.Empty() {
		t.Errorf("second plan is not empty:\n%s", again)
	}
}

func TestSchemaSyncSequences(t *testing.T) {
	e := newSchemaEnv(t)
	ctx := t.Context()
	if err := e.plan(t).Apply(ctx, e.dst); err != nil {
		t.Fatal(err)
	}
	e.srcExec(`
		INSERT INTO "Sales Ünï ""q"""."Orders ""X""" (region, gm) SELECT 'eu', 'ok' FROM generate_series(1, 7);
		INSERT INTO public.events (day) SELECT '2024-01-01'::date + i FROM generate_series(1, 42) i;
		SELECT nextval('public."Scratch_s_seq"'), setval('public.events_id_seq', 42, false);`)
	n, err := SyncSequences(ctx, e.src, e.dst, e.tables, nil)
	if err != nil {
		t.Fatalf("SyncSequences: %v", err)
	}
	// Orders: id (serial), ident (identity), ticket (shared_seq); events
	// and its partitions: one sequence; Scratch: s.
	if n != 5 {
		t.Errorf("SyncSequences set %d sequences, want 5", n)
	}
	var id int32
	var ident int64
	var ticket int32
	if err := e.dst.QueryRow(ctx, `INSERT INTO "Sales Ünï ""q"""."Orders ""X""" (region, gm) VALUES ('eu', 'ok') RETURNING id, ident, ticket`).Scan(&id, &ident, &ticket); err != nil {
		t.Fatal(err)
	}
	// 7 rows at the source: id 1..7, ident 100..130 by 5, ticket 1000..1060 by 10.
	if id != 8 || ident != 135 || ticket != 1070 {
		t.Errorf("after sync the sink gave id=%d ident=%d ticket=%d, want 8, 135, 1070", id, ident, ticket)
	}
	for seq, want := range map[string]int64{`public.events_id_seq`: 42, `public."Scratch_s_seq"`: 2} {
		var got int64
		if err := e.dst.QueryRow(ctx, `SELECT nextval($1::regclass)`, seq).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("nextval(%s) at the sink = %d, want %d", seq, got, want)
		}
	}
}

func TestSchemaExistingTypeReused(t *testing.T) {
	e := newSchemaEnv(t)
	ctx := t.Context()
	// The sink already has the enum (with its labels in the same order),
	// and one of the tables.
	e.dstExec(`CREATE SCHEMA "Sales Ünï ""q""";
		CREATE TYPE "Sales Ünï ""q""".mood AS ENUM ('sad', 'meh', 'ok', 'happy', 'it''s', 'back\slash');
		CREATE TABLE public.deferred (id integer PRIMARY KEY, note text, extra int)`)
	plan := e.plan(t)
	for _, s := range plan.Statements {
		if s.Object == `type "Sales Ünï ""q""".mood` || strings.Contains(s.SQL, "CREATE SCHEMA") || s.Object == "table public.deferred" {
			t.Errorf("plan recreates an existing object: %s: %s", s.Object, s.SQL)
		}
	}
	var sawDomain bool
	for _, s := range plan.Statements {
		sawDomain = sawDomain || s.Object == `type "Sales Ünï ""q""".good_mood`
	}
	if !sawDomain {
		t.Errorf("plan lacks the domain over the existing enum:\n%s", plan)
	}
	if err := plan.Apply(ctx, e.dst); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := e.dst.QueryRow(ctx, `SELECT count(*) FROM pg_type WHERE typname = 'mood'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d types named mood at the sink, want 1", n)
	}
	if _, err := e.dst.Exec(ctx, `INSERT INTO "Sales Ünï ""q"""."Orders ""X""" (region, gm, moods) VALUES ('eu', 'ok', '{meh}')`); err != nil {
		t.Errorf("insert using the reused enum: %v", err)
	}
	if again := e.plan(t); !again.Empty() {
		t.Errorf("second plan is not empty:\n%s", again)
	}
}

func TestSchemaApplyFailureRollsBack(t *testing.T) {
	e := newSchemaEnv(t)
	ctx := t.Context()
	plan := e.plan(t)
	// Something creates a conflicting object between plan and apply.
	e.dstExec(`CREATE TABLE public.events_2025 (x int)`)
	err := plan.Apply(ctx, e.dst)
	var se *StatementError
	if !errors.As(err, &se) {
		t.Fatalf("Apply: got %v, want a *StatementError", err)
	}
	msg := err.Error()
	for _, want := range []string{"table public.events_2025", `CREATE TABLE "public"."events_2025" PARTITION OF`, "already exists", "42P07", "rolled back"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P07" {
		t.Errorf("error does not wrap the PostgreSQL error: %v", err)
	}
	// Nothing half-created: only the conflicting table is at the sink.
	if got := listObjects(t, e.dst); strings.Join(got, "\n") != strings.Join([]string{
		"rel public.events_2025 r", "type public._events_2025 b", "type public.events_2025 c",
	}, "\n") {
		t.Errorf("the sink holds more than the conflicting table:\n%s", strings.Join(got, "\n"))
	}
	var n int
	if err := e.dst.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schemaSales).Scan(&n); err != nil || n != 0 {
		t.Errorf("schema %q exists at the sink after a failed apply (n=%d err=%v)", schemaSales, n, err)
	}

	// A non-table with a table's name is reported at plan time.
	e.dstExec(`DROP TABLE public.events_2025; CREATE VIEW public.deferred AS SELECT 1 AS x`)
	_, err = PlanMissing(ctx, e.src, e.dst, e.tables, nil)
	if err == nil || !strings.Contains(err.Error(), "public.deferred") || !strings.Contains(err.Error(), "view") {
		t.Errorf("PlanMissing with a view in the way: got %v, want an error naming public.deferred and the view", err)
	}
}

func TestSchemaRenamedTargetAndParentBroughtAlong(t *testing.T) {
	e := newSchemaEnv(t)
	ctx := t.Context()
	// Only one partition is selected; its parent is missing at the sink and
	// comes along. The tables go to another schema.
	tables, err := Discover(ctx, e.src, []Selection{{Table: record.TableName{Schema: "public", Name: "events_2025"}, Where: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	target := func(n record.TableName) record.TableName { return record.TableName{Schema: "Copy Ü", Name: n.Name} }
	plan, err := PlanMissing(ctx, e.src, e.dst, tables, target)
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Apply(ctx, e.dst); err != nil {
		t.Fatalf("Apply: %v\nplan:\n%s", err, plan)
	}
	var parent, bound string
	if err := e.dst.QueryRow(ctx, `SELECT i.inhparent::regclass::text, pg_get_expr(c.relpartbound, c.oid) FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid
		WHERE c.oid = '"Copy Ü".events_2025'::regclass`).Scan(&parent, &bound); err != nil {
		t.Fatal(err)
	}
	if parent != `"Copy Ü".events` || bound != `FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')` {
		t.Errorf("partition at the sink: parent %s bound %s", parent, bound)
	}
	if _, err := e.dst.Exec(ctx, `INSERT INTO "Copy Ü".events (day) VALUES ('2025-03-03')`); err != nil {
		t.Fatal(err)
	}
	if again, err := PlanMissing(ctx, e.src, e.dst, tables, target); err != nil || !again.Empty() {
		t.Errorf("second plan: %v\n%s", err, again)
	}
	e.srcExec(`SELECT setval('public.events_id_seq', 500)`)
	if n, err := SyncSequences(ctx, e.src, e.dst, tables, target); err != nil || n != 1 {
		t.Errorf("SyncSequences: n=%d err=%v, want 1", n, err)
	}
	var next int64
	if err := e.dst.QueryRow(ctx, `SELECT nextval('public.events_id_seq')`).Scan(&next); err != nil || next != 501 {
		t.Errorf("nextval after sync: %d %v, want 501", next, err)
	}
}
