package engine_test

import "testing"

// TestConflictingTablesIgnoreStreamedInserts: under on_conflicting_tables:
// ignore the README says streaming overwrites (an INSERT of a key the sink
// has replaces that row) and rows without a clash from both sides stay.
// Streamed here: a transaction of many inserts (enough for a run of
// inserts, which would fail on the sink's keys; the table's inserts go row
// by row instead), some of keys only the sink had, and inserts into a
// table without a key.
func TestConflictingTablesIgnoreStreamedInserts(t *testing.T) {
	s := newStreamEnv(t, "conflict_ins")
	s.srcExec(`CREATE SCHEMA app;
		CREATE TABLE app.t (id int PRIMARY KEY, v text);
		CREATE TABLE app.bag (v int);
		INSERT INTO app.t SELECT g, 'src' FROM generate_series(1, 100) g;
		INSERT INTO app.bag VALUES (1), (2);`)
	dstExec(t, s.dstDSN, `CREATE SCHEMA app;
		CREATE TABLE app.t (id int PRIMARY KEY, v text);
		CREATE TABLE app.bag (v int);
		INSERT INTO app.t VALUES (1, 'sink'), (500, 'sink-only'), (600, 'sink'), (605, 'sink'), (609, 'sink');
		INSERT INTO app.bag VALUES (2), (3);`)
	s.cfg.IgnoreConflictingTables = true
	s.run(s.cfg)

	s.srcExec(`BEGIN;
		INSERT INTO app.t SELECT g, 'streamed' FROM generate_series(600, 612) g;
		INSERT INTO app.bag VALUES (3), (4);
		COMMIT;
		INSERT INTO app.t VALUES (700, 'streamed');`)
	s.run(s.cfg)
	for _, c := range []struct{ sql, want string }{
		// Keys the sink had: replaced by the streamed rows.
		{"SELECT string_agg(v, ',' ORDER BY id) FROM app.t WHERE id IN (600, 605, 609)", "streamed,streamed,streamed"},
		{"SELECT count(*)::text FROM app.t WHERE id BETWEEN 600 AND 612 AND v = 'streamed'", "13"},
		{"SELECT v FROM app.t WHERE id = 700", "streamed"},
		// Rows without a clash stay: the sink's own, and the copy's key
		// clash (the sink's row stays; no change of it was streamed).
		{"SELECT v FROM app.t WHERE id = 500", "sink-only"},
		{"SELECT v FROM app.t WHERE id = 1", "sink"},
		{"SELECT count(*)::text FROM app.t", "115"},
		// A table without a key: nothing clashes; both sides' rows stay.
		{"SELECT string_agg(v::text, ',' ORDER BY v) FROM app.bag", "1,2,2,3,3,4"},
	} {
		if got := queryText(t, s.dstDSN, c.sql); got != c.want {
			t.Errorf("sink after streaming: %s = %q, want %q", c.sql, got, c.want)
		}
	}
}
