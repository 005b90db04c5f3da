package engine_test

// Integration tests of DDL replication while streaming. The oracles are a
// normalized pg_dump --schema-only of both sides and SQL checksums of the
// data, run over the tests' own connections.

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
	"github.com/sluicehq/sluice/transforms/rename"
)

// ddlFixture is the schema the DDL tests start from: a keyed table, a
// table without a key, a partitioned table with one partition, and a
// marker table the tests use to wait for the stream.
const ddlFixture = `
CREATE SCHEMA app;
CREATE TABLE app.t (id integer PRIMARY KEY, a integer, b text);
INSERT INTO app.t SELECT g, g, 'row ' || g FROM generate_series(1, 50) g;
CREATE TABLE app.nokey (x integer, y text);
INSERT INTO app.nokey VALUES (1, 'one'), (1, 'one'), (2, 'two');
CREATE TABLE app.parts (id integer, v text) PARTITION BY RANGE (id);
CREATE TABLE app.parts_p1 PARTITION OF app.parts FOR VALUES FROM (0) TO (100);
INSERT INTO app.parts SELECT g, 'p' || g FROM generate_series(1, 20) g;
CREATE TABLE app.marker (id integer PRIMARY KEY);
CREATE TABLE app.old (id integer PRIMARY KEY);
CREATE VIEW app.old_v AS SELECT id FROM app.old;
CREATE TYPE app.mood AS ENUM ('sad', 'happy');
CREATE TABLE app.moods (id integer PRIMARY KEY, m app.mood);
INSERT INTO app.moods VALUES (1, 'sad'), (2, 'happy');
`

// ddlScript is every replicated statement, each in its own transaction
// (one transaction mixes DDL and DML), interleaved with DML that depends
// on it.
var ddlScript = []string{
	`INSERT INTO app.t VALUES (100, 1, 'x')`,
	`CREATE TABLE app.n (id integer PRIMARY KEY, v text)`,
	`INSERT INTO app.n VALUES (1, 'one'), (2, 'two')`,
	`ALTER TABLE app.t ADD COLUMN c integer`,
	`UPDATE app.t SET c = id * 2 WHERE id <= 10`,
	`ALTER TABLE app.t ADD COLUMN d text NOT NULL DEFAULT 'dflt'`,
	`INSERT INTO app.t (id, a, b) VALUES (101, 2, 'y')`,
	`ALTER TABLE app.t ALTER COLUMN a TYPE bigint`,
	`INSERT INTO app.t (id, a, b, c) VALUES (102, 5000000000, 'big', 1)`,
	`ALTER TABLE app.t DROP COLUMN b`,
	`UPDATE app.t SET a = a + 1 WHERE id = 100`,
	`ALTER TABLE app.t ADD CONSTRAINT t_a_positive CHECK (a > 0)`,
	`ALTER TABLE app.n ADD CONSTRAINT n_v_unique UNIQUE (v)`,
	`ALTER TABLE app.n ADD COLUMN t_id integer`,
	`ALTER TABLE app.n ADD CONSTRAINT n_t_fk FOREIGN KEY (t_id) REFERENCES app.t (id)`,
	`UPDATE app.n SET t_id = 100 WHERE id = 1`,
	`ALTER TABLE app.t ALTER COLUMN d DROP DEFAULT`,
	`INSERT INTO app.t (id, a, d) VALUES (103, 3, 'explicit')`,
	`CREATE INDEX t_c_idx ON app.t (c)`,
	`ALTER TABLE app.n RENAME TO n2`,
	`INSERT INTO app.n2 (id, v) VALUES (3, 'three')`,
	`ALTER TABLE app.n2 RENAME COLUMN v TO v2`,
	`UPDATE app.n2 SET v2 = 'TWO' WHERE id = 2`,
	`CREATE TABLE app.parts_p2 PARTITION OF app.parts FOR VALUES FROM (100) TO (200)`,
	`INSERT INTO app.parts VALUES (150, 'in p2'), (5, 'in p1')`,
	`UPDATE app.parts SET id = 160 WHERE id = 1`,
	`CREATE TABLE app.mixed (id integer PRIMARY KEY);
	 INSERT INTO app.mixed VALUES (1);
	 ALTER TABLE app.mixed ADD COLUMN z integer DEFAULT 7;
	 INSERT INTO app.mixed VALUES (2, 8)`,
	`CREATE TABLE IF NOT EXISTS app.ine (id integer)`,
	`INSERT INTO app.ine VALUES (1), (1), (3)`,
	`UPDATE app.ine SET id = 2 WHERE ctid = (SELECT ctid FROM app.ine WHERE id = 1 LIMIT 1)`,
	`CREATE TABLE app.ctas AS SELECT id, a FROM app.t WHERE id <= 5`,
	`DELETE FROM app.ctas WHERE id = 1`,
	`SET search_path = app; CREATE TABLE noschema (id integer PRIMARY KEY); INSERT INTO noschema VALUES (1); RESET search_path`,
	`CREATE TABLE app.dropme (id integer PRIMARY KEY)`,
	`INSERT INTO app.dropme VALUES (1)`,
	`DROP TABLE app.dropme`,
	`CREATE TABLE app.standalone (id integer, v text)`,
	`INSERT INTO app.standalone VALUES (220, 'attached later')`,
	`ALTER TABLE app.parts ATTACH PARTITION app.standalone FOR VALUES FROM (200) TO (300)`,
	`INSERT INTO app.parts VALUES (250, 'via parent')`,
	`CREATE INDEX parts_v_idx ON app.parts (v)`,
	`CREATE TABLE app.tr (id integer PRIMARY KEY); INSERT INTO app.tr VALUES (1), (2); TRUNCATE app.tr`,
	`INSERT INTO app.tr VALUES (3)`,
	`CREATE INDEX t_a_idx ON app.t (a)`,
	`DROP INDEX app.t_a_idx`,
	`DROP TABLE app.old CASCADE`,
	`ALTER TYPE app.mood ADD VALUE 'ok' BEFORE 'happy'`,
	`INSERT INTO app.moods VALUES (3, 'ok')`,
	`ALTER TYPE app.mood RENAME VALUE 'sad' TO 'blue'`,
	`ALTER TYPE app.mood ADD VALUE 'great'`,
	`INSERT INTO app.moods VALUES (4, 'blue'), (5, 'great')`,
}

// streamInBackground runs the pipeline until stop, which returns the
// run's error (a stop by cancellation is not one). It returns once the
// run streams: the sink's applied position moved.
func (s *streamEnv) streamInBackground(cfg engine.Config) *background {
	s.t.Helper()
	cfg.UntilCaughtUp = false
	before := streamQuery[time.Time](s.t, s.dstDSN, `SELECT COALESCE(max(updated_at), '-infinity') FROM sluice.apply_progress`)
	ctx, cancel := context.WithCancel(s.t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := engine.Run(ctx, cfg)
		done <- err
	}()
	bg := &background{cancel: cancel, done: done}
	s.t.Cleanup(func() { _ = bg.stop() })
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case err := <-done:
			bg.stopped, bg.err = true, err
			s.t.Fatalf("the pipeline stopped before streaming: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		now := streamQuery[time.Time](s.t, s.dstDSN, `SELECT COALESCE(max(updated_at), '-infinity') FROM sluice.apply_progress`)
		if now.After(before) {
			return bg
		}
		if time.Now().After(deadline) {
			s.t.Fatal("the pipeline did not start streaming within 2 minutes")
		}
	}
}

// background is a pipeline run in a goroutine.
type background struct {
	cancel  context.CancelFunc
	done    chan error
	stopped bool
	err     error
}

// stop ends the run and returns its error (a stop by cancellation is not
// one).
func (b *background) stop() error {
	if !b.stopped {
		b.stopped = true
		b.cancel()
		b.err = <-b.done
	}
	if errors.Is(b.err, context.Canceled) {
		return nil
	}
	return b.err
}

// ended returns the run's error if it has ended by itself.
func (b *background) ended() (bool, error) {
	if b.stopped {
		return true, b.err
	}
	select {
	case err := <-b.done:
		b.stopped, b.err = true, err
		return true, err
	default:
		return false, nil
	}
}

// applyScript runs script at the source and brings the sink up to its end
// (marker 1 in app.marker): live, while the pipeline streams; else with the
// pipeline stopped, then through steps runs that each stop after their
// first sink commit (one source transaction), then one whole run.
func (s *streamEnv) applyScript(live bool, steps int, script []string) {
	s.t.Helper()
	if live {
		bg := s.streamInBackground(s.cfg)
		for _, sql := range script {
			s.srcExec(sql)
		}
		s.stopAtMarker(bg)
		return
	}
	for _, sql := range script {
		s.srcExec(sql)
	}
	s.srcExec(`INSERT INTO app.marker VALUES (1)`)
	for i := range steps {
		cfg := s.cfg
		cfg.MaxGroupTxns = 1
		cfg.Failpoints = streamFailpoints(s.t, "stream.after_commit=error@1")
		if err := s.runFail(cfg); !strings.Contains(err.Error(), "stream.after_commit") {
			s.t.Fatalf("run %d: %v, want the failpoint", i, err)
		}
	}
	s.run(s.cfg)
}

// stopAtMarker waits until marker 1 reaches the sink's app.marker (see
// waitMarker), then stops the background run, which must end cleanly.
func (s *streamEnv) stopAtMarker(bg *background) {
	s.t.Helper()
	s.waitMarker(bg, 1, "app.marker")
	if err := bg.stop(); err != nil {
		s.t.Fatalf("engine.Run: %v", err)
	}
}

// waitMarker inserts a marker row at the source and waits until the sink
// has it: everything committed before is then applied.
func (s *streamEnv) waitMarker(bg *background, id int, sinkTable string) {
	s.t.Helper()
	s.srcExec("INSERT INTO app.marker VALUES (" + strconv.Itoa(id) + ")")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n, err := tryQuery[int64](s.t.Context(), s.dstDSN, "SELECT count(*) FROM "+sinkTable+" WHERE id = $1", id)
		if err == nil && n == 1 {
			return
		}
		if ended, err := bg.ended(); ended {
			s.t.Fatalf("the pipeline stopped while streaming: %v", err)
		}
		if time.Now().After(deadline) {
			for _, dsn := range []string{s.srcDSN, s.dstDSN} {
				act, _ := tryQuery[string](s.t.Context(), dsn, `SELECT string_agg(coalesce(application_name,'') || ' | ' || coalesce(state,'') || ' | ' || coalesce(wait_event_type,'') || ':' || coalesce(wait_event,'') || ' | ' || left(coalesce(query,''), 200), E'\n') FROM pg_stat_activity WHERE datname = current_database()`)
				s.t.Logf("activity:\n%s", act)
			}
			s.t.Fatalf("marker %d did not reach the sink within 2 minutes (last error: %v)", id, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertSameSchemaDump compares pg_dump --schema-only of schema app at
// both sides, normalized: what only the source has because it is a
// source (REPLICA IDENTITY, publications, event triggers) is left out.
func assertSameSchemaDump(t *testing.T, src, dst *pgtest.Cluster, srcDB, dstDB string, schema string) {
	t.Helper()
	a, err := src.DumpSchema(t.Context(), srcDB, "--schema="+schema)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dst.DumpSchema(t.Context(), dstDB, "--schema="+schema)
	if err != nil {
		t.Fatal(err)
	}
	norm := func(dump string) []string {
		var out []string
		for _, l := range normalizeDumpLines(dump) {
			if strings.Contains(l, "REPLICA IDENTITY") || strings.Contains(l, "PUBLICATION") || strings.Contains(l, "EVENT TRIGGER") {
				continue
			}
			out = append(out, l)
		}
		return out
	}
	assertSameLines(t, norm(a), norm(b), 8)
}

// TestDDLReplicatedWhileStreaming runs every replicated statement at the
// source while the pipeline streams, each in its own transaction and
// interleaved with DML: afterwards the schema dumps and the data of both
// sides are equal, new tables (CREATE TABLE, CREATE TABLE AS, one created
// in a transaction with its rows, one without a schema in its name, one
// with IF NOT EXISTS) and new partitions (created and attached) arrived
// with their rows, and the renamed and dropped tables are renamed and
// dropped at the sink.
func TestDDLReplicatedWhileStreaming(t *testing.T) {
	s := newStreamEnv(t, "ddl_all")
	s.srcExec(ddlFixture)
	s.run(s.cfg)
	// The view DROP TABLE ... CASCADE takes along at the source is at the
	// sink (post-data), and must go too.
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM pg_views WHERE schemaname = 'app' AND viewname = 'old_v'`); n != 1 {
		t.Fatalf("sink: view app.old_v missing after the copy (%d)", n)
	}
	stop := s.streamInBackground(s.cfg)
	for _, sql := range ddlScript {
		s.srcExec(sql)
	}
	s.waitMarker(stop, 1, "app.marker")
	if err := stop.stop(); err != nil {
		t.Fatalf("engine.Run: %v", err)
	}
	t.Logf("DDL applied:\n%s", grepLines(s.log.String(), "DDL applied"))
	t.Logf("joined:\n%s", grepLines(s.log.String(), "joined the pipeline"))
	assertSameSchemaDump(t, s.src, s.dst, s.srcDB, s.dstDB, "app")
	s.assertSame()
	for _, q := range []struct {
		sql  string
		want int64
	}{
		{`SELECT count(*) FROM app.n2 WHERE v2 = 'TWO' AND t_id IS NULL`, 1},
		{`SELECT count(*) FROM app.t WHERE a = 5000000000`, 1},
		{`SELECT count(*) FROM app.parts_p2`, 2},
		{`SELECT count(*) FROM app.standalone`, 2},
		{`SELECT count(*) FROM app.ctas`, 4},
		{`SELECT count(*) FROM app.mixed WHERE z IN (7, 8)`, 2},
		{`SELECT count(*) FROM pg_tables WHERE schemaname = 'app' AND tablename IN ('dropme', 'n')`, 0},
	} {
		if got := queryInt(t, s.dstDSN, q.sql); got != q.want {
			t.Errorf("sink: %s = %d, want %d", q.sql, got, q.want)
		}
	}
	if strings.Contains(s.log.String(), "DDL not replicated") {
		t.Errorf("a replicated statement logged a warning:\n%s", grepLines(s.log.String(), "DDL not replicated"))
	}
}

// TestDDLRenameMapping replicates DDL under a schema rename and a column
// rename: the sink's tables get the mapped names, and each table's data
// equals the source's, column for column.
func TestDDLRenameMapping(t *testing.T) {
	s := newStreamEnv(t, "ddl_map")
	s.srcExec(ddlFixture)
	s.cfg.Rename = rename.Config{
		Schemas: []rename.SchemaRename{{From: "app", To: "copy", Origin: "test"}},
		Columns: []rename.ColumnRename{{Table: tn("app", "t"), From: "b", To: "b_sink", Origin: "test"}},
	}
	// A row filter on the partitioned table: a partition created while
	// streaming follows it too.
	s.cfg.Options = []engine.ObjectOptions{{Table: tn("app", "parts"), Where: "v <> 'secret'", Origin: "test"}}
	s.run(s.cfg)
	stop := s.streamInBackground(s.cfg)
	for _, sql := range []string{
		`ALTER TABLE app.t ADD COLUMN c integer DEFAULT 1`,
		`UPDATE app.t SET b = b || '!', c = 2 WHERE id <= 10`,
		`ALTER TABLE app.t ALTER COLUMN a TYPE bigint`,
		`INSERT INTO app.t VALUES (102, 5000000000, 'big', 3)`,
		`ALTER TABLE app.t ADD CONSTRAINT t_a_positive CHECK (a > 0)`,
		`CREATE INDEX t_c_idx ON app.t (c)`,
		`ALTER TABLE app.t ALTER COLUMN c DROP DEFAULT`,
		`CREATE TABLE app.n (id integer PRIMARY KEY, v text)`,
		`INSERT INTO app.n VALUES (1, 'one')`,
		`ALTER TABLE app.n RENAME TO n2`,
		`ALTER TABLE app.n2 ADD CONSTRAINT n2_fk FOREIGN KEY (id) REFERENCES app.t (id)`,
		`CREATE TABLE app.parts_p2 PARTITION OF app.parts FOR VALUES FROM (100) TO (200)`,
		`INSERT INTO app.parts VALUES (150, 'in p2'), (160, 'secret')`,
		`ALTER TABLE app.nokey DROP COLUMN y`,
		`INSERT INTO app.nokey VALUES (9)`,
	} {
		s.srcExec(sql)
	}
	s.waitMarker(stop, 1, "copy.marker")
	if err := stop.stop(); err != nil {
		t.Fatalf("engine.Run: %v", err)
	}
	for _, p := range [][2]string{
		{`app.t`, `copy.t`},
		{`app.n2`, `copy.n2`},
		{`(SELECT * FROM app.parts WHERE v <> 'secret')`, `copy.parts`},
		{`(SELECT * FROM app.parts_p2 WHERE v <> 'secret')`, `copy.parts_p2`},
		{`app.nokey`, `copy.nokey`},
	} {
		assertSameData2(t, s.srcDSN, p[0], s.dstDSN, p[1])
	}
	cols := streamQuery[string](t, s.dstDSN, `SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
		FROM pg_attribute WHERE attrelid = 'copy.t'::regclass AND attnum > 0 AND NOT attisdropped`)
	if want := "id integer, a bigint, b_sink text, c integer"; cols != want {
		t.Errorf("sink copy.t columns = %q, want %q", cols, want)
	}
	for _, q := range []string{
		`SELECT count(*) FROM pg_constraint WHERE conname = 't_a_positive' AND conrelid = 'copy.t'::regclass`,
		`SELECT count(*) FROM pg_indexes WHERE schemaname = 'copy' AND indexname = 't_c_idx'`,
		`SELECT count(*) FROM pg_constraint WHERE conname = 'n2_fk' AND confrelid = 'copy.t'::regclass`,
	} {
		if got := queryInt(t, s.dstDSN, q); got != 1 {
			t.Errorf("sink: %s = %d, want 1", q, got)
		}
	}
	// (Types keep their source schema at the sink: app.mood is there.)
	if got := queryInt(t, s.dstDSN, `SELECT count(*) FROM pg_tables WHERE schemaname = 'app'`); got != 0 {
		t.Errorf("sink has %d tables in schema app: DDL was applied under the source's names", got)
	}
}

// TestDDLUnsupportedWarns runs statements sluice does not replicate (a
// view, a comment) in a selected schema: each logs a warning naming the
// statement and counts in the status, and streaming goes on. DDL by an
// application role that is not a superuser (and has no privileges on
// sluice's objects) works at the source and is replicated.
func TestDDLUnsupportedWarns(t *testing.T) {
	role := newRole(t, pgtest.Source(t), "")
	s := newStreamEnv(t, "ddl_warn")
	s.srcExec(ddlFixture + `GRANT USAGE, CREATE ON SCHEMA app TO ` + role + `;`)
	s.run(s.cfg)
	stop := s.streamInBackground(s.cfg)
	s.srcExec(`CREATE VIEW app.v AS SELECT id FROM app.t`)
	s.srcExec(`COMMENT ON TABLE app.t IS 'commented'`)
	s.srcExec(`ALTER TABLE app.t SET (fillfactor = 90)`)
	s.srcExec(`INSERT INTO app.t VALUES (200, 2, 'after')`)
	s.srcExec(`SET ROLE ` + role + `; CREATE TABLE app.by_app (id integer PRIMARY KEY, v text); INSERT INTO app.by_app VALUES (1, 'x'); ALTER TABLE app.by_app ADD COLUMN w integer; RESET ROLE`)
	s.waitMarker(stop, 1, "app.marker")
	if err := stop.stop(); err != nil {
		t.Fatalf("engine.Run: %v", err)
	}
	logs := s.log.String()
	for _, want := range []string{"CREATE VIEW app.v AS SELECT id FROM app.t", "COMMENT ON TABLE app.t IS 'commented'", "ALTER TABLE app.t SET (fillfactor = 90)"} {
		found := false
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, "DDL not replicated") && strings.Contains(l, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning naming %q; warnings:\n%s", want, grepLines(logs, "DDL not replicated"))
		}
	}
	raw, err := os.ReadFile(filepath.Join(s.cfg.StateDir, "status.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Stream struct {
			DDLWarnings int64 `json:"ddl_warnings"`
		} `json:"stream"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if st.Stream.DDLWarnings < 3 {
		t.Errorf("status ddl_warnings = %d, want at least 3", st.Stream.DDLWarnings)
	}
	assertSameData(t, s.srcDSN, s.dstDSN, []string{"app.t", "app.by_app"})
}

// TestDDLFailDuringApplyConverges stops the pipeline with DDL about to
// run inside an open sink transaction (failpoint ddl.apply), at several
// points of the script, which ran at the source while the pipeline was
// stopped (so the source's catalog is ahead of the sink's position); each
// rerun resumes from the sink's position and the end state equals the
// source.
func TestDDLFailDuringApplyConverges(t *testing.T) {
	s := newStreamEnv(t, "ddl_fail")
	s.srcExec(ddlFixture)
	s.run(s.cfg)
	for _, sql := range ddlScript {
		s.srcExec(sql)
	}
	s.srcExec(`INSERT INTO app.marker VALUES (1)`)
	// One source transaction per sink transaction: each run commits the
	// statements before the failing one, so the next run starts between
	// two DDL statements (a table created but its rename not yet applied).
	for _, n := range []int{1, 3, 6, 10} {
		cfg := s.cfg
		cfg.MaxGroupTxns = 1
		cfg.Failpoints = streamFailpoints(t, "ddl.apply=error@"+strconv.Itoa(n))
		err := s.runFail(cfg)
		if !strings.Contains(err.Error(), "ddl.apply") {
			t.Fatalf("run %d: %v, want the ddl.apply failpoint", n, err)
		}
	}
	s.run(s.cfg)
	assertSameSchemaDump(t, s.src, s.dst, s.srcDB, s.dstDB, "app")
	s.assertSame()
}

func tn(schema, name string) record.TableName { return record.TableName{Schema: schema, Name: name} }

// assertSameData2 compares a source table with a differently named sink
// table by checksum.
func assertSameData2(t *testing.T, srcDSN, srcTable, dstDSN, dstTable string) {
	t.Helper()
	sc, ss, err := pgtest.ChecksumDSN(t.Context(), srcDSN, srcTable)
	if err != nil {
		t.Fatal(err)
	}
	dc, ds, err := pgtest.ChecksumDSN(t.Context(), dstDSN, dstTable)
	if err != nil {
		t.Fatal(err)
	}
	if sc != dc || ss != ds {
		t.Errorf("%s → %s differs: source %d rows (%s), sink %d rows (%s)", srcTable, dstTable, sc, ss, dc, ds)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDDLCaptureNeedsSuperuser runs a pipeline whose source role is not a
// superuser: it streams, with a warning that DDL replication is off, and
// installs no event trigger.
func TestDDLCaptureNeedsSuperuser(t *testing.T) {
	role := newRole(t, pgtest.Source(t), "REPLICATION")
	s := newStreamEnv(t, "ddl_nosuper")
	s.srcExec(`CREATE SCHEMA app AUTHORIZATION ` + role + `;
GRANT CREATE ON DATABASE ` + s.srcDB + ` TO ` + role + `;
SET ROLE ` + role + `;
CREATE TABLE app.t (id integer PRIMARY KEY, v text);
INSERT INTO app.t VALUES (1, 'a');`)
	cfg := s.cfg
	cfg.SourceDSN = s.src.DSNAs(s.srcDB, role, "")
	s.run(cfg)
	s.srcExec(`INSERT INTO app.t VALUES (2, 'b')`)
	s.run(cfg)
	s.assertSame()
	if !strings.Contains(s.log.String(), "DDL replication is off") || !strings.Contains(s.log.String(), "needs a superuser") {
		t.Errorf("no warning that DDL replication is off:\n%s", s.log.String())
	}
	if n := queryInt(t, s.srcDSN, `SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'sluice%'`); n != 0 {
		t.Errorf("%d sluice event triggers at the source, want none", n)
	}
}

// TestDDLPartitionFollowsSinkLayout creates a partition at the source
// while streaming whose range the sink's own partitions already cover:
// its changes (insert, update, a row moved to another partition, delete)
// go through the sink's partitioned table, which routes them by its own
// layout, and the partitioned tables of both sides hold the same rows.
func TestDDLPartitionFollowsSinkLayout(t *testing.T) {
	s := newStreamEnv(t, "ddl_layout")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.parts (id integer PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE app.parts_p1 PARTITION OF app.parts FOR VALUES FROM (0) TO (100);
INSERT INTO app.parts SELECT g, 'p' || g FROM generate_series(1, 20) g;
CREATE TABLE app.marker (id integer PRIMARY KEY);`)
	s.run(s.cfg)
	if err := s.dst.Exec(t.Context(), s.dstDB, `CREATE TABLE app.parts_rest PARTITION OF app.parts FOR VALUES FROM (100) TO (MAXVALUE)`); err != nil {
		t.Fatal(err)
	}
	stop := s.streamInBackground(s.cfg)
	for _, sql := range []string{
		`CREATE TABLE app.parts_p2 PARTITION OF app.parts FOR VALUES FROM (100) TO (200)`,
		`INSERT INTO app.parts VALUES (150, 'a'), (160, 'b'), (170, 'c')`,
		`UPDATE app.parts SET v = 'B' WHERE id = 160`,
		`UPDATE app.parts SET id = 50 WHERE id = 150`,
		`UPDATE app.parts SET id = 180 WHERE id = 2`,
		`DELETE FROM app.parts WHERE id = 170`,
	} {
		s.srcExec(sql)
	}
	s.waitMarker(stop, 1, "app.marker")
	if err := stop.stop(); err != nil {
		t.Fatalf("engine.Run: %v", err)
	}
	assertSameData(t, s.srcDSN, s.dstDSN, []string{"app.parts"})
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.parts_rest`); n != 2 {
		t.Errorf("sink: app.parts_rest holds %d rows, want 2 (160 and 180)", n)
	}
	if !strings.Contains(s.log.String(), "does not fit the sink's partitions") {
		t.Errorf("no warning that the partition was routed:\n%s", grepLines(s.log.String(), "WARN"))
	}
}

// TestDDLNewTableStagedWithItsOptions: with transform stages, a received
// slice is staged before its changes are applied. A table created in the
// same source transaction as its rows joins mid-slice; the rest of the
// slice is staged again with the table's options (here the schema item's
// operations, which leave deletes out), not without them.
func TestDDLNewTableStagedWithItsOptions(t *testing.T) {
	s := newStreamEnv(t, "ddl_stage")
	s.srcExec(ddlFixture)
	s.cfg.Options = []engine.ObjectOptions{{Schema: "app", Operations: []string{"insert", "update", "truncate"}, Origin: "test (objects[0])"}}
	s.cfg.Transforms = []engine.TransformStage{{Kind: "set", Set: map[string]string{"b": "'masked'"},
		Match: func(n record.TableName) bool { return n == tn("app", "t") }, Scope: "app.t", Origin: "test (transforms[0])"}}
	s.run(s.cfg)
	stop := s.streamInBackground(s.cfg)
	s.srcExec(`BEGIN;
CREATE TABLE app.fresh (id integer PRIMARY KEY, v text);
INSERT INTO app.fresh SELECT g, 'v' || g FROM generate_series(1, 10) g;
DELETE FROM app.fresh WHERE id <= 5;
UPDATE app.t SET b = 'changed' WHERE id = 1;
COMMIT;`)
	s.waitMarker(stop, 1, "app.marker")
	if err := stop.stop(); err != nil {
		t.Fatalf("engine.Run: %v", err)
	}
	if n := streamQuery[int64](t, s.dstDSN, `SELECT count(*) FROM app.fresh`); n != 10 {
		t.Errorf("sink app.fresh holds %d rows, want 10 (the schema item's operations leave the deletes out)", n)
	}
	if v := streamQuery[string](t, s.dstDSN, `SELECT b FROM app.t WHERE id = 1`); v != "masked" {
		t.Errorf("sink app.t row 1 b = %q, want the set stage's \"masked\"", v)
	}
}
