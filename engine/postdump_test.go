package engine_test

// Post-data and tables created at the source while the first run copies.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// runAsync runs the pipeline in a goroutine (for at most 3 minutes, and
// not past the test); done gets its error.
func runAsync(t *testing.T, cfg engine.Config) (ctx context.Context, done chan error) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	done = make(chan error, 1)
	go func() {
		_, err := engine.Run(ctx, cfg)
		done <- err
	}()
	return ctx, done
}

// createDuringCopy runs pipeline name over lateFixture until it has
// caught up, with the failpoints fps (holding the copy up), creating a
// table in app (with a key, an index, a sequence default, a foreign key
// and rows) at the source once the copy's snapshot is taken.
func createDuringCopy(t *testing.T, name, fps string) *streamEnv {
	t.Helper()
	s := newStreamEnv(t, name)
	s.srcExec(lateFixture)
	cfg := s.cfg
	cfg.ChunkRows, cfg.Parallel = 2000, 2
	cfg.Failpoints = failpoints(t, fps)
	ctx, done := runAsync(t, cfg)
	// The slot (and its exported snapshot) is made as the copy begins.
	for {
		n, err := tryQuery[int64](ctx, s.srcDSN, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, "sluice_"+cfg.Name)
		if err == nil && n == 1 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the run ended before its copy began: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.srcExec(`CREATE TABLE app."Late X" (id serial PRIMARY KEY, t_id integer REFERENCES app.t (id), v text);
CREATE INDEX late_v ON app."Late X" (v);
INSERT INTO app."Late X" (t_id, v) SELECT g, 'late ' || g FROM generate_series(1, 30) g;`)
	if err := <-done; err != nil {
		t.Fatalf("engine.Run: %v", err)
	}
	return s
}

// assertLateTable checks that the table created during the copy reached
// the sink through the stream with its rows, key, index and foreign key.
func assertLateTable(t *testing.T, s *streamEnv) {
	t.Helper()
	assertSameData2(t, s.srcDSN, `app."Late X"`, s.dstDSN, `app."Late X"`)
	assertSameData2(t, s.srcDSN, `app.t`, s.dstDSN, `app.t`)
	for _, q := range []string{
		`SELECT count(*) FROM pg_indexes WHERE schemaname = 'app' AND tablename = 'Late X' AND indexname IN ('Late X_pkey', 'late_v')`,
		`SELECT count(*) FROM pg_constraint WHERE conrelid = 'app."Late X"'::regclass AND contype IN ('p', 'f')`,
	} {
		if n := queryInt(t, s.dstDSN, q); n != 2 {
			t.Errorf("sink: %s = %d, want 2", q, n)
		}
	}
}

const lateFixture = `CREATE SCHEMA app;
CREATE TABLE app.t (id integer PRIMARY KEY, v text);
INSERT INTO app.t SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
CREATE INDEX t_v ON app.t (v);
ANALYZE;`

// TestTableCreatedDuringCopy: a table created at the source after the
// copy's snapshot, while the first run copies, is not the copy's (it is
// not in the snapshot) but the stream's. Post-data dumps the source after
// the copy, when the new table is there: it must leave it out and not
// build its key, index or foreign key at the sink, where it does not exist
// yet; the stream creates it with its rows. Before the fix post-data
// failed with relation "app.Late X" does not exist, and the run with it.
func TestTableCreatedDuringCopy(t *testing.T) {
	s := createDuringCopy(t, "late_live", "copy.chunk.batch=sleep:100ms")
	assertLateTable(t, s)
}

// TestTableCreatedBeforeSnapshot: a table created in a selected schema
// after the first run listed its tables and before it made its slot (the
// copy's snapshot) is in the snapshot but was not in the copy, and its
// rows so far are not in the stream, which starts after. The run lists
// its tables again and copies it. Before the fix its first rows never
// reached the sink, silently: only those changed later arrived.
func TestTableCreatedBeforeSnapshot(t *testing.T) {
	s := newStreamEnv(t, "before_snap")
	s.srcExec(lateFixture)
	cfg := s.cfg
	cfg.Failpoints = failpoints(t, "stream.before_slot=sleep:1s")
	_, done := runAsync(t, cfg)
	for !strings.Contains(s.log.String(), "tables selected") {
		select {
		case err := <-done:
			t.Fatalf("the run ended before listing its tables: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	s.srcExec(`CREATE TABLE app.early (id integer PRIMARY KEY, v text);
INSERT INTO app.early SELECT g, 'early ' || g FROM generate_series(1, 10) g;`)
	if n := queryInt(t, s.srcDSN, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'sluice_before_snap'`); n != 0 {
		t.Fatal("the slot was made before the table: the test proves nothing")
	}
	if err := <-done; err != nil {
		t.Fatalf("engine.Run: %v", err)
	}
	s.srcExec(`UPDATE app.early SET v = 'changed' WHERE id = 3; INSERT INTO app.early VALUES (11, 'late')`)
	s.run(s.cfg)
	assertSameData2(t, s.srcDSN, `app.early`, s.dstDSN, `app.early`)
	assertSameData2(t, s.srcDSN, `app.t`, s.dstDSN, `app.t`)
	if !strings.Contains(s.log.String(), "starting again to copy them too") {
		t.Error("no log line saying the run started again for the new table")
	}
}
