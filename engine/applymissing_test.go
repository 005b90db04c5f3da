package engine_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// TestStreamSinkLacksRow streams changes of rows the sink has lost (deleted
// at the sink behind the pipeline's back).
//
// A table with a key: an UPDATE of a lost row inserts it, in order with the
// changes after it, so an UPDATE then DELETE of that row (single rows, and
// an update run) leaves no row at the sink, as at the source. (The insert
// used to run after the whole flushed pipeline and bring the deleted rows
// back.)
//
// A table without a key: an UPDATE of a lost row parks the pipeline with
// an error naming the table, the old row and the position, retried never,
// and nothing of its source transaction or later ones reaches the sink.
// Once the row is put back at the sink, the same pipeline continues and the
// sink equals the source. (It used to insert the new row with a warning.)
func TestStreamSinkLacksRow(t *testing.T) {
	s := newStreamEnv(t, "lacks")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.k (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE app.nk (x integer, y text);
INSERT INTO app.k SELECT g, 0 FROM generate_series(1, 40) g;
INSERT INTO app.nk SELECT g % 5, 'y' || (g % 5) FROM generate_series(1, 20) g;`)
	s.run(s.cfg)
	sinkExec := func(sql string) {
		t.Helper()
		if err := s.dst.Exec(t.Context(), s.dstDB, sql); err != nil {
			t.Fatal(err)
		}
	}

	sinkExec(`DELETE FROM app.k WHERE id = 5 OR id BETWEEN 10 AND 15`)
	// The first transaction prepares the statements' shapes, so the later
	// ones go out in one pipeline without a prepare in between.
	s.srcExec(`UPDATE app.k SET v = v + 1 WHERE id = 1; DELETE FROM app.k WHERE id = 2;`)
	s.srcExec(`BEGIN; UPDATE app.k SET v = v + 1 WHERE id = 5; DELETE FROM app.k WHERE id = 5; COMMIT;`)
	s.srcExec(`BEGIN; UPDATE app.k SET v = v + 1 WHERE id BETWEEN 9 AND 20; DELETE FROM app.k WHERE id BETWEEN 10 AND 12; COMMIT;`)
	s.run(s.cfg)
	s.assertSame()
	if !strings.Contains(s.log.String(), "found no row to change") {
		t.Error("the log has no warning about the updates of lost rows")
	}

	sinkExec(`DELETE FROM app.nk WHERE x = 3`)
	s.srcExec(`BEGIN; INSERT INTO app.k VALUES (100, 1); UPDATE app.nk SET y = 'changed' WHERE x = 3; COMMIT;`)
	s.srcExec(`INSERT INTO app.k VALUES (101, 1)`)
	err := s.runFail(s.cfg)
	if !postgres.IsDiverged(err) {
		t.Fatalf("want a DivergedError, got %v", err)
	}
	for _, want := range []string{"parked", "app.nk", `"x" = '3', "y" = 'y3'`, "update on app.nk", "sluice verify"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "gave up") || strings.Contains(s.log.String(), "retrying") {
		t.Errorf("the divergence was retried: %v", err)
	}
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.k WHERE id >= 100`); n != 0 {
		t.Errorf("sink: %d rows of the failed transaction or later ones, want none", n)
	}

	sinkExec(`INSERT INTO app.nk SELECT 3, 'y3' FROM generate_series(1, 4)`)
	s.run(s.cfg)
	s.assertSame()
}
