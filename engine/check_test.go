package engine_test

// Precheck tests: each item is made to fail (or warn) on a real cluster and
// then to pass. Most run on the shared source and sink clusters with their
// own databases and roles; what needs the server reconfigured (password
// authentication, wal_level, slot and WAL sender limits) runs on one
// private cluster.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

func runCheck(t *testing.T, cfg engine.Config, opts engine.CheckOptions) *engine.CheckReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rep := engine.Check(ctx, cfg, opts)
	if rep == nil {
		t.Fatal("Check returned no report")
	}
	return rep
}

func dumpReport(rep *engine.CheckReport) string {
	var b strings.Builder
	for _, it := range rep.Items {
		fmt.Fprintf(&b, "  %-26s %-4s %s", it.Name, it.Status, it.Detail)
		if it.Fix != "" {
			fmt.Fprintf(&b, " [fix: %s]", it.Fix)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// expect checks one item's status and that its detail (or fix) holds each
// of the given strings. A warning or failure must say what to do.
func expect(t *testing.T, rep *engine.CheckReport, name, status string, contains ...string) engine.CheckItem {
	t.Helper()
	it := rep.Item(name)
	if it == nil {
		t.Errorf("no %s item in the report:\n%s", name, dumpReport(rep))
		return engine.CheckItem{}
	}
	if it.Status != status {
		t.Errorf("%s is %s, want %s:\n%s", name, it.Status, status, dumpReport(rep))
	}
	for _, s := range contains {
		if !strings.Contains(it.Detail+"\n"+it.Fix, s) {
			t.Errorf("%s does not mention %q: %s [fix: %s]", name, s, it.Detail, it.Fix)
		}
	}
	if it.Status != engine.Pass && it.Fix == "" {
		t.Errorf("%s is %s without a fix: %s", name, it.Status, it.Detail)
	}
	if it.Status == engine.Pass && it.Fix != "" {
		t.Errorf("%s passes but has a fix: %s", name, it.Fix)
	}
	return *it
}

// expectAbsent checks that an item was left out (it could not be checked).
func expectAbsent(t *testing.T, rep *engine.CheckReport, names ...string) {
	t.Helper()
	for _, n := range names {
		if rep.Item(n) != nil {
			t.Errorf("item %s is in the report, want it left out:\n%s", n, dumpReport(rep))
		}
	}
}

// newRole creates a login role on c with a unique name and the given extra
// attributes, dropped at the end of the test. Create roles before the
// test's databases: cleanups run in reverse, so the databases (holding
// the role's objects and grants) are dropped first.
func newRole(t *testing.T, c *pgtest.Cluster, attrs string) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	name := "chk_" + hex.EncodeToString(b[:])
	if err := c.Exec(t.Context(), "postgres", "CREATE ROLE "+name+" LOGIN "+attrs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Exec(ctx, "postgres", "DROP ROLE IF EXISTS "+name); err != nil {
			t.Errorf("drop role %s: %v", name, err)
		}
	})
	return name
}

func tableSel(schema, name string) postgres.Selection {
	return postgres.Selection{Table: record.TableName{Schema: schema, Name: name}, Where: "test"}
}

// A healthy copy-only pipeline: everything passes but a keyless table,
// streaming items are not needed, and nothing is created on either side.
func TestCheckCopyOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srcExec(`
CREATE TABLE public.items (id serial PRIMARY KEY, name text);
INSERT INTO public.items (name) SELECT 'item ' || g FROM generate_series(1, 2000) g;
CREATE TABLE public.events (at timestamptz, what text);
INSERT INTO public.events SELECT now(), 'x' FROM generate_series(1, 100);
CREATE TABLE public.m (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.m_2023 PARTITION OF public.m FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE public.m_2024 PARTITION OF public.m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');`)
	cfg := e.config(schemaSel("public")...)
	rep := runCheck(t, cfg, engine.CheckOptions{})
	if rep.Failed() {
		t.Fatalf("a healthy copy-only pipeline fails the check:\n%s", dumpReport(rep))
	}
	if rep.Pipeline != "t" {
		t.Errorf("report pipeline %q", rep.Pipeline)
	}
	expect(t, rep, engine.CheckConfig, engine.Pass)
	expect(t, rep, engine.CheckIgnoreChecks, engine.Pass, "no warnings acknowledged")
	expect(t, rep, engine.CheckSourceConnection, engine.Pass, "as user postgres (superuser)", "PostgreSQL 1")
	expect(t, rep, engine.CheckSinkConnection, engine.Pass, e.dstDB)
	expect(t, rep, engine.CheckDistinctDatabases, engine.Pass)
	expect(t, rep, engine.CheckObjects, engine.Pass, "5 tables selected", "2 of them partitions")
	expect(t, rep, engine.CheckFiltersTransforms, engine.Pass, "no filters or transforms configured")
	expect(t, rep, engine.CheckSourcePrivileges, engine.Pass)
	expect(t, rep, engine.CheckSinkPrivileges, engine.Pass)
	expect(t, rep, engine.CheckSinkSchema, engine.Pass, "table public.items", "sequence public.items_id_seq")
	expect(t, rep, engine.CheckConflictingTables, engine.Pass, "none of the selected tables exists at the sink")
	expect(t, rep, engine.CheckSinkDiskSpace, engine.Pass, "the selected tables take", "free")
	expect(t, rep, engine.CheckToastCompression, engine.Pass, "with lz4")
	expect(t, rep, engine.CheckPartitions, engine.Pass, "1 partitioned table selected with all their partitions")
	expect(t, rep, engine.CheckInheritance, engine.Pass)
	expect(t, rep, engine.CheckExprUniqueIndexes, engine.Pass)
	expect(t, rep, engine.CheckExtensionObjects, engine.Pass)
	expect(t, rep, engine.CheckTablesWithoutKey, engine.Warn, "public.events", "block ranges")
	for _, n := range []string{engine.CheckWalLevel, engine.CheckSourceReplication, engine.CheckReplicationSlots,
		engine.CheckWalSenders, engine.CheckReplicaIdentity, engine.CheckLongRunningTransacts} {
		expect(t, rep, n, engine.Pass, "not needed: incremental is off")
	}
	// Every item is named and in CheckNames' order.
	names := engine.CheckNames()
	if len(rep.Items) != len(names) {
		t.Errorf("%d items, want %d (every check):\n%s", len(rep.Items), len(names), dumpReport(rep))
	}
	for i := range min(len(rep.Items), len(names)) {
		if rep.Items[i].Name != names[i] {
			t.Errorf("item %d is %s, want %s", i, rep.Items[i].Name, names[i])
		}
	}
	if p, w, f := rep.Counts(); p != len(names)-1 || w != 1 || f != 0 {
		t.Errorf("counts %d/%d/%d", p, w, f)
	}

	// The check changed nothing.
	if n := queryInt(t, e.dstDSN, `SELECT count(*) FROM pg_namespace WHERE nspname = 'sluice'`); n != 0 {
		t.Error("check created the sluice schema at the sink")
	}
	if n := queryInt(t, e.dstDSN, `SELECT count(*) FROM pg_class WHERE relname = 'items'`); n != 0 {
		t.Error("check created a table at the sink")
	}
	if n := queryInt(t, e.srcDSN, `SELECT count(*) FROM pg_publication`); n != 0 {
		t.Error("check created a publication at the source")
	}
}

// Password authentication, wal_level, replication slots and WAL senders,
// on a private cluster reconfigured between checks.
func TestCheckServerSettings(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := pgtest.NewClusterOpts(t, pgtest.Options{Auth: pgtest.AuthSCRAM, Settings: map[string]string{
		"wal_level":             "replica",
		"max_replication_slots": "2",
		"max_wal_senders":       "2",
	}})
	if err := c.Exec(ctx, "postgres", `CREATE ROLE app LOGIN REPLICATION PASSWORD 'right-secret'`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDatabase(ctx, "appdb"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "appdb", `CREATE TABLE public.orders (id int PRIMARY KEY, total numeric);
INSERT INTO public.orders SELECT g, g FROM generate_series(1, 100) g;
ALTER TABLE public.orders OWNER TO app;`); err != nil {
		t.Fatal(err)
	}
	snk := pgtest.Sink(t)
	cfg := engine.Config{
		Name:        "srv",
		SourceDSN:   c.DSNAs("appdb", "app", "wrong-secret"),
		SinkDSN:     pgtest.NewDB(t, snk),
		Schema:      true,
		Full:        true,
		Incremental: true,
		Objects:     schemaSel("public"),
	}

	t.Run("wrong password", func(t *testing.T) {
		rep := runCheck(t, cfg, engine.CheckOptions{})
		it := expect(t, rep, engine.CheckSourceConnection, engine.Fail, "authentication failed", "user=app", "password")
		if strings.Contains(it.Detail+it.Fix, "wrong-secret") {
			t.Errorf("the report shows the password: %+v", it)
		}
		expect(t, rep, engine.CheckSinkConnection, engine.Pass)
		expectAbsent(t, rep, engine.CheckObjects, engine.CheckWalLevel, engine.CheckDistinctDatabases)
		if !rep.Failed() {
			t.Error("report does not fail")
		}
	})
	cfg.SourceDSN = c.DSNAs("appdb", "app", "right-secret")

	t.Run("wal_level replica", func(t *testing.T) {
		rep := runCheck(t, cfg, engine.CheckOptions{})
		expect(t, rep, engine.CheckSourceConnection, engine.Pass, "as user app", "appdb")
		expect(t, rep, engine.CheckWalLevel, engine.Fail, "wal_level = replica", "ALTER SYSTEM SET wal_level = logical", "restart")
		expect(t, rep, engine.CheckSourcePrivileges, engine.Fail, "no CREATE on database")
		// Not streaming: wal_level does not matter.
		copyOnly := cfg
		copyOnly.Incremental = false
		rep = runCheck(t, copyOnly, engine.CheckOptions{})
		expect(t, rep, engine.CheckWalLevel, engine.Pass, "not needed")
		if rep.Failed() {
			t.Errorf("copy-only pipeline fails:\n%s", dumpReport(rep))
		}
	})
	for _, sql := range []string{`ALTER SYSTEM SET wal_level = logical`, `GRANT CREATE ON DATABASE appdb TO app`} {
		if err := c.Exec(ctx, "postgres", sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Restart(ctx, ""); err != nil {
		t.Fatal(err)
	}

	t.Run("wal_level logical", func(t *testing.T) {
		rep := runCheck(t, cfg, engine.CheckOptions{})
		expect(t, rep, engine.CheckWalLevel, engine.Pass, "wal_level = logical")
		expect(t, rep, engine.CheckSourceReplication, engine.Pass, "REPLICATION attribute", "a replication connection works")
		expect(t, rep, engine.CheckReplicationSlots, engine.Pass, "2 of 2 replication slots free", "sluice_srv")
		expect(t, rep, engine.CheckWalSenders, engine.Pass, "2 of 2 WAL senders free")
		expect(t, rep, engine.CheckSourcePrivileges, engine.Pass, "owns them")
		if rep.Failed() {
			t.Errorf("report fails:\n%s", dumpReport(rep))
		}
	})

	t.Run("no slots left", func(t *testing.T) {
		if err := c.Exec(ctx, "appdb", `SELECT pg_create_logical_replication_slot('other_a', 'pgoutput');
SELECT pg_create_logical_replication_slot('other_b', 'pgoutput');`); err != nil {
			t.Fatal(err)
		}
		rep := runCheck(t, cfg, engine.CheckOptions{})
		expect(t, rep, engine.CheckReplicationSlots, engine.Fail, "all 2 replication slots", "max_replication_slots")
		// The pipeline's own slot, left by an earlier run, is available.
		if err := c.Exec(ctx, "appdb", `SELECT pg_drop_replication_slot('other_b');
SELECT pg_create_logical_replication_slot('sluice_srv', 'pgoutput');`); err != nil {
			t.Fatal(err)
		}
		rep = runCheck(t, cfg, engine.CheckOptions{})
		expect(t, rep, engine.CheckReplicationSlots, engine.Pass, "sluice_srv exists", "reused", "2 of 2 slots in use")
		// A slot of that name that is not the pipeline's is not.
		if err := c.Exec(ctx, "appdb", `SELECT pg_drop_replication_slot('sluice_srv');
SELECT pg_create_physical_replication_slot('sluice_srv');`); err != nil {
			t.Fatal(err)
		}
		rep = runCheck(t, cfg, engine.CheckOptions{})
		expect(t, rep, engine.CheckReplicationSlots, engine.Fail, "not this pipeline's", "physical")
		if err := c.Exec(ctx, "appdb", `SELECT pg_drop_replication_slot('sluice_srv'); SELECT pg_drop_replication_slot('other_a');`); err != nil {
			t.Fatal(err)
		}
		rep = runCheck(t, cfg, engine.CheckOptions{})
		expect(t, rep, engine.CheckReplicationSlots, engine.Pass, "2 of 2 replication slots free")
	})

	t.Run("no WAL senders left", func(t *testing.T) {
		var held []*pgconn.PgConn
		defer func() {
			for _, h := range held {
				h.Close(context.Background())
			}
		}()
		for range 2 {
			pc, err := pgconn.Connect(ctx, c.DSN("appdb")+"&replication=database")
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, pc)
		}
		rep := runCheck(t, cfg, engine.CheckOptions{})
		expect(t, rep, engine.CheckWalSenders, engine.Fail, "all 2 WAL senders", "max_wal_senders")
		expect(t, rep, engine.CheckSourceReplication, engine.Pass, "not tried")
		held[1].Close(ctx)
		held = held[:1]
		waitWalSenders(t, c, 1)
		rep = runCheck(t, cfg, engine.CheckOptions{})
		expect(t, rep, engine.CheckWalSenders, engine.Pass, "1 of 2 WAL senders free")
		expect(t, rep, engine.CheckSourceReplication, engine.Pass, "a replication connection works")
	})
}

// waitWalSenders waits until c has n WAL senders: one whose client has
// gone takes a moment to exit.
func waitWalSenders(t *testing.T, c *pgtest.Cluster, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := queryInt(t, c.DSN("postgres"), `SELECT count(*) FROM pg_stat_get_wal_senders()`)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d WAL senders, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Source role: REPLICATION, SELECT (tables and sequences), and for
// streaming ownership and CREATE; sink role: CREATE and table privileges;
// both on the shared clusters.
func TestCheckPrivileges(t *testing.T) {
	t.Parallel()
	srcRole := newRole(t, pgtest.Source(t), "")
	dstRole := newRole(t, pgtest.Sink(t), "")
	e := newEnv(t)
	e.srcExec(`
CREATE TABLE public.t1 (id serial PRIMARY KEY, v text);
CREATE TABLE public.t2 (id int PRIMARY KEY, v text);
INSERT INTO public.t1 (v) VALUES ('a'), ('b');
GRANT SELECT ON public.t1 TO ` + srcRole)
	e.dstExec(`CREATE TABLE public.t2 (id int PRIMARY KEY, v text)`)
	cfg := e.config(schemaSel("public")...)
	cfg.SourceDSN = e.src.DSNAs(e.srcDB, srcRole, "")
	cfg.SinkDSN = e.dst.DSNAs(e.dstDB, dstRole, "")
	cfg.Incremental = true
	copyOnly := cfg
	copyOnly.Incremental = false

	t.Run("missing", func(t *testing.T) {
		rep := runCheck(t, cfg, engine.CheckOptions{})
		expect(t, rep, engine.CheckSourceConnection, engine.Pass, "as user "+srcRole)
		expect(t, rep, engine.CheckSourceReplication, engine.Fail, "neither the REPLICATION attribute nor superuser", "ALTER ROLE "+`"`+srcRole+`" REPLICATION`)
		expect(t, rep, engine.CheckSourcePrivileges, engine.Fail,
			`no SELECT on "public"."t2"`, `no SELECT on sequence "public"."t1_id_seq"`, "GRANT SELECT ON \"public\".\"t2\"",
			"does not own", "no CREATE on database")
		if d := rep.Item(engine.CheckSourcePrivileges).Detail; strings.Contains(d, `SELECT on "public"."t1",`) || strings.Contains(d, `SELECT on "public"."t1";`) {
			t.Errorf("source_privileges lists t1, which is granted: %s", d)
		}
		expect(t, rep, engine.CheckSinkPrivileges, engine.Fail, "no CREATE on database", "no CREATE on schema \"public\"",
			`no INSERT, SELECT, UPDATE, DELETE on "public"."t2"`, "GRANT CREATE ON DATABASE")
		expect(t, rep, engine.CheckSinkDiskSpace, engine.Warn, "cannot tell", "pg_read_all_settings")
		expect(t, rep, engine.CheckLongRunningTransacts, engine.Pass, "only transactions of user "+srcRole+" are visible")
		expect(t, rep, engine.CheckDDLCapture, engine.Warn, "is not a superuser", "will not be replicated", "ignore_checks: [ddl_capture]")
		// Copy only: no REPLICATION, ownership or CREATE needed at the
		// source, only SELECT; at the sink only INSERT on existing tables.
		rep = runCheck(t, copyOnly, engine.CheckOptions{})
		expect(t, rep, engine.CheckSourceReplication, engine.Pass, "not needed")
		it := expect(t, rep, engine.CheckSourcePrivileges, engine.Fail, `no SELECT on "public"."t2"`)
		if strings.Contains(it.Detail, "own") || strings.Contains(it.Detail, "CREATE") {
			t.Errorf("copy-only source_privileges asks for streaming privileges: %s", it.Detail)
		}
		it = expect(t, rep, engine.CheckSinkPrivileges, engine.Fail, `no INSERT on "public"."t2"`)
		if strings.Contains(it.Detail, "UPDATE") {
			t.Errorf("copy-only sink_privileges asks for UPDATE: %s", it.Detail)
		}
	})

	t.Run("granted", func(t *testing.T) {
		e.srcExec(`GRANT SELECT ON public.t2, public.t1_id_seq TO ` + srcRole)
		e.dstExec(fmt.Sprintf(`GRANT CREATE ON DATABASE %s TO %s; GRANT CREATE ON SCHEMA public TO %[2]s; GRANT INSERT ON public.t2 TO %[2]s`, qi(e.dstDB), dstRole))
		rep := runCheck(t, copyOnly, engine.CheckOptions{})
		expect(t, rep, engine.CheckSourcePrivileges, engine.Pass, "can read the 2 selected tables")
		expect(t, rep, engine.CheckSinkPrivileges, engine.Pass, "can create in database")
		if rep.Failed() {
			t.Errorf("copy-only report fails:\n%s", dumpReport(rep))
		}
		// Streaming needs more.
		rep = runCheck(t, cfg, engine.CheckOptions{})
		expect(t, rep, engine.CheckSinkPrivileges, engine.Fail, `no SELECT, UPDATE, DELETE on "public"."t2"`)
		e.srcExec(fmt.Sprintf(`ALTER ROLE %[1]s REPLICATION; ALTER TABLE public.t1 OWNER TO %[1]s; ALTER TABLE public.t2 OWNER TO %[1]s;
GRANT CREATE ON DATABASE %[2]s TO %[1]s; GRANT pg_read_all_stats TO %[1]s`, srcRole, qi(e.srcDB)))
		e.dstExec(`GRANT SELECT, UPDATE, DELETE ON public.t2 TO ` + dstRole + `; GRANT pg_read_all_settings TO ` + dstRole)
		rep = runCheck(t, cfg, engine.CheckOptions{})
		expect(t, rep, engine.CheckSourceReplication, engine.Pass, "REPLICATION attribute", "a replication connection works")
		expect(t, rep, engine.CheckSourcePrivileges, engine.Pass, "owns them")
		expect(t, rep, engine.CheckSinkPrivileges, engine.Pass)
		expect(t, rep, engine.CheckSinkDiskSpace, engine.Pass, "free")
		it := expect(t, rep, engine.CheckLongRunningTransacts, engine.Pass)
		if strings.Contains(it.Detail, "visible") {
			t.Errorf("with pg_read_all_stats, long_running_transactions still says not all is visible: %s", it.Detail)
		}
		if rep.Failed() {
			t.Errorf("report fails:\n%s", dumpReport(rep))
		}
	})
}

// Keys and replica identities.
func TestCheckKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srcExec(`
CREATE TABLE public.keyed (id int PRIMARY KEY);
CREATE TABLE public.uniq (id int NOT NULL UNIQUE);
CREATE TABLE public.bag (v int);`)
	cfg := e.config(schemaSel("public")...)
	cfg.Incremental = true

	rep := runCheck(t, cfg, engine.CheckOptions{})
	it := expect(t, rep, engine.CheckTablesWithoutKey, engine.Warn, "public.bag", "sets REPLICA IDENTITY FULL on them before publishing")
	if strings.Contains(it.Detail, "public.keyed") || strings.Contains(it.Detail, "public.uniq") {
		t.Errorf("tables_without_key names tables with a key: %s", it.Detail)
	}
	expect(t, rep, engine.CheckReplicaIdentity, engine.Pass, "1 by primary key", "sets REPLICA IDENTITY FULL before publishing them on: public.bag, public.uniq")

	e.srcExec(`ALTER TABLE public.bag REPLICA IDENTITY FULL`)
	rep = runCheck(t, cfg, engine.CheckOptions{})
	expect(t, rep, engine.CheckTablesWithoutKey, engine.Pass, "with REPLICA IDENTITY FULL", "public.bag")
	expect(t, rep, engine.CheckReplicaIdentity, engine.Pass, "1 by REPLICA IDENTITY FULL")

	// A keyless table with REPLICA IDENTITY NOTHING is given FULL too.
	e.srcExec(`ALTER TABLE public.bag REPLICA IDENTITY NOTHING`)
	rep = runCheck(t, cfg, engine.CheckOptions{})
	expect(t, rep, engine.CheckReplicaIdentity, engine.Pass, "before publishing them on: public.bag, public.uniq")
	expect(t, rep, engine.CheckTablesWithoutKey, engine.Warn, "public.bag")

	e.srcExec(`ALTER TABLE public.bag REPLICA IDENTITY DEFAULT; ALTER TABLE public.bag ADD PRIMARY KEY (v)`)
	rep = runCheck(t, cfg, engine.CheckOptions{})
	it = expect(t, rep, engine.CheckTablesWithoutKey, engine.Pass, "every table has a primary key")
	if strings.Contains(it.Detail, "bag") {
		t.Errorf("tables_without_key still names bag: %s", it.Detail)
	}

	e.srcExec(`ALTER TABLE public.keyed REPLICA IDENTITY NOTHING`)
	rep = runCheck(t, cfg, engine.CheckOptions{})
	expect(t, rep, engine.CheckReplicaIdentity, engine.Fail, "REPLICA IDENTITY NOTHING on tables with a primary key: public.keyed", "UPDATE and DELETE", "REPLICA IDENTITY DEFAULT")
	e.srcExec(`ALTER TABLE public.keyed REPLICA IDENTITY DEFAULT`)
	rep = runCheck(t, cfg, engine.CheckOptions{})
	expect(t, rep, engine.CheckReplicaIdentity, engine.Pass, "2 by primary key")
}

// A selected table that exists at the sink with rows fails, unless an
// earlier run of this pipeline copied them; empty ones pass.
func TestCheckConflictingTables(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srcExec(`
CREATE TABLE public.a (id int PRIMARY KEY, v text);
CREATE TABLE public.b (id int PRIMARY KEY, v text);
INSERT INTO public.a SELECT g, 'a' FROM generate_series(1, 50) g;
INSERT INTO public.b SELECT g, 'b' FROM generate_series(1, 50) g;`)
	e.dstExec(`
CREATE TABLE public.a (id int PRIMARY KEY, v text);
CREATE TABLE public.b (id int PRIMARY KEY, v text);
INSERT INTO public.a VALUES (1000, 'theirs');`)
	cfg := e.config(schemaSel("public")...)

	rep := runCheck(t, cfg, engine.CheckOptions{})
	it := expect(t, rep, engine.CheckConflictingTables, engine.Fail, "public.a", "hold rows", "TRUNCATE", "drop it", "map it", "on_conflicting_tables: ignore")
	if strings.Contains(it.Detail, "rows that sluice did not copy for this pipeline: public.a, public.b") {
		t.Errorf("the empty table is named as conflicting: %s", it.Detail)
	}
	// Not copying: rows at the sink are expected.
	noFull := cfg
	noFull.Full, noFull.Incremental = false, true
	rep = runCheck(t, noFull, engine.CheckOptions{})
	expect(t, rep, engine.CheckConflictingTables, engine.Pass, "sync.full is off")

	e.dstExec(`TRUNCATE public.a`)
	rep = runCheck(t, cfg, engine.CheckOptions{})
	expect(t, rep, engine.CheckConflictingTables, engine.Pass, "empty, sluice copies into them: public.a, public.b")
	expect(t, rep, engine.CheckSinkSchema, engine.Pass, "nothing to create")

	// After a run, the rows are this pipeline's own: a rerun resumes.
	runOK(t, cfg)
	rep = runCheck(t, cfg, engine.CheckOptions{})
	expect(t, rep, engine.CheckConflictingTables, engine.Pass, "earlier run of this pipeline", "public.a, public.b")
	// Another pipeline into the same tables conflicts.
	other := cfg
	other.Name = "other"
	rep = runCheck(t, other, engine.CheckOptions{})
	expect(t, rep, engine.CheckConflictingTables, engine.Fail, "public.a, public.b")
}

// Partitions selected without their parent, and parents whose partitions
// are not listed.
func TestCheckPartitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srcExec(`
CREATE SCHEMA arch;
CREATE TABLE public.m (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.m_2023 PARTITION OF public.m FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE public.m_2024 PARTITION OF public.m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE arch.m_2022 PARTITION OF public.m FOR VALUES FROM ('2022-01-01') TO ('2023-01-01');
INSERT INTO public.m VALUES (1, '2022-05-05'), (2, '2023-05-05'), (3, '2024-05-05');`)

	// A partition without its parent.
	rep := runCheck(t, e.config(tableSel("public", "m_2023")), engine.CheckOptions{})
	expect(t, rep, engine.CheckPartitions, engine.Warn, "public.m_2023 (partition of public.m)", "select the partitioned table instead")
	rep = runCheck(t, e.config(tableSel("arch", "m_2022"), tableSel("public", "m_2024")), engine.CheckOptions{})
	expect(t, rep, engine.CheckPartitions, engine.Warn, "arch.m_2022 (partition of public.m)", "public.m_2024 (partition of public.m)")

	// The parent by table selection: its partitions come along, also the
	// one in another schema.
	rep = runCheck(t, e.config(tableSel("public", "m")), engine.CheckOptions{})
	expect(t, rep, engine.CheckPartitions, engine.Pass, "1 partitioned table selected with all their partitions", "come along", "arch.m_2022", "public.m_2023", "public.m_2024")
	expect(t, rep, engine.CheckObjects, engine.Pass, "4 tables selected")
	// The parent and one of its partitions listed: the others come along.
	rep = runCheck(t, e.config(tableSel("public", "m"), tableSel("public", "m_2023")), engine.CheckOptions{})
	it := expect(t, rep, engine.CheckPartitions, engine.Pass, "arch.m_2022", "public.m_2024")
	if strings.Contains(it.Detail, "m_2023") {
		t.Errorf("a listed partition is said to come along: %s", it.Detail)
	}
	// A whole schema: all listed but the one elsewhere.
	rep = runCheck(t, e.config(schemaSel("public")...), engine.CheckOptions{})
	expect(t, rep, engine.CheckPartitions, engine.Pass, "come along with their parent: arch.m_2022")
	if rep.Failed() {
		t.Errorf("report fails:\n%s", dumpReport(rep))
	}
}

// Objects sluice cannot carry faithfully: unique indexes on expressions,
// (cross-schema) inheritance, tables owned by extensions.
func TestCheckUnsupportedObjects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srcExec(`
CREATE SCHEMA other;
CREATE TABLE public.users (id int PRIMARY KEY, email text);
CREATE UNIQUE INDEX users_email_lower ON public.users (lower(email));
CREATE TABLE public.plain (id int PRIMARY KEY);
CREATE TABLE public.parent (id int PRIMARY KEY, v text);
CREATE TABLE other.child (extra int) INHERITS (public.parent);
INSERT INTO other.child VALUES (1, 'in the child', 7);
CREATE SCHEMA extschema;
ALTER EXTENSION plpgsql ADD SCHEMA extschema;
CREATE TABLE extschema.settings (k text PRIMARY KEY, v text);
CREATE TABLE public.ext_member (id int PRIMARY KEY);
ALTER EXTENSION plpgsql ADD TABLE public.ext_member;`)

	t.Run("expression unique index", func(t *testing.T) {
		rep := runCheck(t, e.config(tableSel("public", "users")), engine.CheckOptions{})
		expect(t, rep, engine.CheckExprUniqueIndexes, engine.Warn, "users_email_lower", "lower(email)", "never uses them to identify rows")
		rep = runCheck(t, e.config(tableSel("public", "plain")), engine.CheckOptions{})
		expect(t, rep, engine.CheckExprUniqueIndexes, engine.Pass)
	})

	t.Run("cross-schema inheritance", func(t *testing.T) {
		rep := runCheck(t, e.config(tableSel("public", "parent")), engine.CheckOptions{})
		expect(t, rep, engine.CheckInheritance, engine.Fail, "other.child (child of public.parent)", "FROM ONLY", "select the children too")
		rep = runCheck(t, e.config(tableSel("public", "parent"), tableSel("other", "child")), engine.CheckOptions{})
		expect(t, rep, engine.CheckInheritance, engine.Warn, "other.child inherits from public.parent (cross-schema)", "standalone table")
		rep = runCheck(t, e.config(tableSel("other", "child")), engine.CheckOptions{})
		expect(t, rep, engine.CheckInheritance, engine.Warn, "cross-schema")
		rep = runCheck(t, e.config(tableSel("public", "plain")), engine.CheckOptions{})
		expect(t, rep, engine.CheckInheritance, engine.Pass, "no table inheritance")
	})

	t.Run("extension-owned schema and table", func(t *testing.T) {
		rep := runCheck(t, e.config(schemaSel("extschema")...), engine.CheckOptions{})
		expect(t, rep, engine.CheckExtensionObjects, engine.Warn, "extschema.settings (in schema \"extschema\", which belongs to extension plpgsql)", "install \"plpgsql\" at the sink")
		rep = runCheck(t, e.config(tableSel("public", "ext_member")), engine.CheckOptions{})
		expect(t, rep, engine.CheckExtensionObjects, engine.Warn, "public.ext_member (belongs to extension plpgsql)")
		rep = runCheck(t, e.config(tableSel("public", "plain")), engine.CheckOptions{})
		expect(t, rep, engine.CheckExtensionObjects, engine.Pass)
	})
}

// The sink's free disk space against the selected tables' size.
func TestCheckSinkDiskSpace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srcExec(`CREATE TABLE public.big (id int PRIMARY KEY, pad text);
INSERT INTO public.big SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g;`)
	need := queryInt(t, e.srcDSN, `SELECT pg_total_relation_size('public.big')`)
	dataDir := queryText(t, e.dstDSN, `SELECT current_setting('data_directory')`)
	cfg := e.config(schemaSel("public")...)
	free := func(n int64) engine.CheckOptions {
		return engine.CheckOptions{FreeSpace: func(path string) (uint64, error) {
			if path != dataDir {
				t.Errorf("FreeSpace(%q), want the sink's data directory %q", path, dataDir)
			}
			return uint64(n), nil
		}}
	}
	rep := runCheck(t, cfg, free(need/2))
	expect(t, rep, engine.CheckSinkDiskSpace, engine.Fail, "the selected tables take", dataDir, "free at least")
	rep = runCheck(t, cfg, free(need+need/10))
	expect(t, rep, engine.CheckSinkDiskSpace, engine.Warn, "less than 20% to spare")
	rep = runCheck(t, cfg, free(need*10))
	expect(t, rep, engine.CheckSinkDiskSpace, engine.Pass)
	rep = runCheck(t, cfg, engine.CheckOptions{FreeSpace: func(string) (uint64, error) { return 0, fmt.Errorf("no such file") }})
	expect(t, rep, engine.CheckSinkDiskSpace, engine.Warn, "cannot tell", "no such file")
	// The real file system.
	rep = runCheck(t, cfg, engine.CheckOptions{})
	expect(t, rep, engine.CheckSinkDiskSpace, engine.Pass, dataDir)
}

// ignore_checks: a named warning passes, acknowledged; a named failure
// stays a failure; an unknown name warns.
func TestCheckIgnoreChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srcExec(`CREATE TABLE public.bag (v int); INSERT INTO public.bag VALUES (1);`)
	e.dstExec(`CREATE TABLE public.bag (v int); INSERT INTO public.bag VALUES (2);`)
	cfg := e.config(schemaSel("public")...)

	rep := runCheck(t, cfg, engine.CheckOptions{IgnoreChecks: []string{engine.CheckTablesWithoutKey, engine.CheckConflictingTables, "no_such_check"}})
	it := expect(t, rep, engine.CheckTablesWithoutKey, engine.Pass, "public.bag", "(acknowledged in ignore_checks)")
	if !it.Acknowledged {
		t.Errorf("tables_without_key is not marked acknowledged: %+v", it)
	}
	it = expect(t, rep, engine.CheckConflictingTables, engine.Fail, "public.bag", "failures cannot be ignored")
	if it.Acknowledged {
		t.Errorf("a failure is marked acknowledged: %+v", it)
	}
	expect(t, rep, engine.CheckIgnoreChecks, engine.Warn, `"no_such_check"`, "tables_without_key")
	if !rep.Failed() {
		t.Error("a failure named in ignore_checks made the report pass")
	}

	e.dstExec(`TRUNCATE public.bag`)
	rep = runCheck(t, cfg, engine.CheckOptions{IgnoreChecks: []string{engine.CheckTablesWithoutKey}})
	expect(t, rep, engine.CheckIgnoreChecks, engine.Pass, "acknowledges: tables_without_key")
	expect(t, rep, engine.CheckTablesWithoutKey, engine.Pass, "(acknowledged in ignore_checks)")
	if _, w, f := rep.Counts(); w != 0 || f != 0 {
		t.Errorf("want every item to pass:\n%s", dumpReport(rep))
	}
	// Without it, the same warning stays.
	rep = runCheck(t, cfg, engine.CheckOptions{})
	it = expect(t, rep, engine.CheckTablesWithoutKey, engine.Warn)
	if strings.Contains(it.Detail, "acknowledged") || it.Acknowledged {
		t.Errorf("not listed, but acknowledged: %+v", it)
	}
}

// A transaction held open at the source warns (creating the slot would
// wait for it); once it ends, the item passes. Not parallel: the item
// looks at every session of the shared source cluster.
func TestCheckLongRunningTransaction(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE TABLE public.t (id int PRIMARY KEY)`)
	cfg := e.config(schemaSel("public")...)
	cfg.Incremental = true
	opts := engine.CheckOptions{LongTransaction: 300 * time.Millisecond}

	conn, err := pgx.Connect(t.Context(), e.srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var pid int32
	if err := conn.QueryRow(t.Context(), `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `INSERT INTO public.t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	rep := runCheck(t, cfg, opts)
	expect(t, rep, engine.CheckLongRunningTransacts, engine.Warn, fmt.Sprintf("pid %d", pid), e.srcDB, "idle in transaction", "creating the replication slot waits", "pg_terminate_backend")
	rep = runCheck(t, cfg, engine.CheckOptions{LongTransaction: opts.LongTransaction, IgnoreChecks: []string{engine.CheckLongRunningTransacts}})
	expect(t, rep, engine.CheckLongRunningTransacts, engine.Pass, fmt.Sprintf("pid %d", pid), "(acknowledged in ignore_checks)")
	// The default threshold is minutes: a young transaction is fine.
	rep = runCheck(t, cfg, engine.CheckOptions{})
	expect(t, rep, engine.CheckLongRunningTransacts, engine.Pass, "longer than 5m0s")

	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	rep = runCheck(t, cfg, opts)
	expect(t, rep, engine.CheckLongRunningTransacts, engine.Pass, "no transaction with writes has been open longer than 300ms")

	// A read-only transaction does not hold back slot creation.
	for _, sql := range []string{`BEGIN`, `SELECT count(*) FROM public.t`} {
		if _, err := conn.Exec(t.Context(), sql); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	rep = runCheck(t, cfg, opts)
	expect(t, rep, engine.CheckLongRunningTransacts, engine.Pass)
	if _, err := conn.Exec(t.Context(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
}

// Objects that do not resolve fail the objects item; the table items are
// then left out.
func TestCheckObjectsMissing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rep := runCheck(t, e.config(tableSel("public", "nope")), engine.CheckOptions{})
	expect(t, rep, engine.CheckObjects, engine.Fail, "does not exist at the source")
	expectAbsent(t, rep, engine.CheckTablesWithoutKey, engine.CheckConflictingTables, engine.CheckWalLevel)
	// The same database on both sides.
	cfg := e.config(schemaSel("public")...)
	cfg.SinkDSN = cfg.SourceDSN
	rep = runCheck(t, cfg, engine.CheckOptions{})
	expect(t, rep, engine.CheckDistinctDatabases, engine.Fail, "same database")
}
