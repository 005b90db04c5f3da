package postgres

import (
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
)

// TestApplyPrepareFails: the sink's table has a column type the applier's
// statements cannot take (a key of type json, which has no equality
// operator, so no statement can find a row by it). The failure to prepare
// the statement, for an update run and for a single update, names the
// table, what the statement was for (the batch, or the change, with its
// key and position), what to do, and PostgreSQL's error; nothing of the
// group commits. (A run's failed prepare used to say only "sink: prepare
// WITH sluice_u AS …".)
func TestApplyPrepareFails(t *testing.T) {
	e := newApplyEnv(t, `CREATE SCHEMA app;
CREATE TABLE app.j (id json NOT NULL, v text);
INSERT INTO app.j SELECT g::text::json, 'a' FROM generate_series(1, 10) g;`, []string{"id", "v"}, map[string][]string{"j": {"id"}})

	// Five full-row updates: an update run.
	for id := 1; id <= 5; id++ {
		e.change("j", record.Update, nil, vals(strconv.Itoa(id), "b"), 100)
	}
	err := e.commit(100)
	if err == nil {
		t.Fatal("an update run on a json key: no error")
	}
	for _, want := range []string{"apply a batch of 5 updates on app.j (first key id=1) from the source transactions committed at " + record.LSN(100).String(),
		"the sink's table does not take the statement that applies it", "make the sink table's columns match the source's", "run the same command again",
		"sink: prepare WITH sluice_u AS", "operator does not exist: json = json", "SQLSTATE 42883"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("update run: the error lacks %q: %v", want, err)
		}
	}

	// A single update without its TOASTed value (no run).
	err = e.tryChange("j", record.Update, nil, []record.Value{{Data: []byte("7")}, {Unchanged: true}}, 200)
	if err == nil {
		err = e.commit(200)
	} else {
		e.a.Rollback(t.Context())
	}
	if err == nil {
		t.Fatal("an update on a json key: no error")
	}
	for _, want := range []string{"apply update on app.j (key id=7) from the source transaction committed at " + record.LSN(200).String(),
		"the sink's table does not take the statement that applies it", "operator does not exist: json ="} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("single update: the error lacks %q: %v", want, err)
		}
	}
	if got := e.rows(`SELECT count(*)::text FROM app.j WHERE v <> 'a'`); len(got) != 1 || got[0] != "0" {
		t.Errorf("changes of the failed groups were committed: %v rows changed", got)
	}
}

// TestApplyParamColumnOfUpdate: a value the sink's column refuses, in an
// UPDATE that keeps its key and lacks an unchanged TOASTed value, is named
// by its column. The statement leaves the unchanged key out of SET, so
// its first parameter is the second column; the error used to name the
// key column.
func TestApplyParamColumnOfUpdate(t *testing.T) {
	e := newApplyEnv(t, `CREATE SCHEMA app;
CREATE TABLE app.k (id integer PRIMARY KEY, n integer, doc text);
INSERT INTO app.k VALUES (1, 1, 'big');`, []string{"id", "n", "doc"}, map[string][]string{"k": {"id"}})
	err := e.tryChange("k", record.Update, nil, []record.Value{{Data: []byte("1")}, {Data: []byte("x1")}, {Unchanged: true}}, 100)
	if err == nil {
		err = e.commit(100)
	} else {
		e.a.Rollback(t.Context())
	}
	if err == nil || !strings.Contains(err.Error(), `column "n": invalid input syntax for type integer: "x1"`) {
		t.Errorf("want an error naming column \"n\" and its value, got %v", err)
	}
}
