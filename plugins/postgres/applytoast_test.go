package postgres

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
)

// TestApplyToastUpdateNoRowParks: an UPDATE of a keyed table that lacks
// an unchanged TOASTed value and finds no row at the sink fails its group
// with a DivergedError naming the table, the key, the position and the
// remedies, and nothing of the group commits. Where the sink may lack the
// table's rows (SetMayLack: a backfill is unfinished) it is logged and the
// group commits. (It used to be logged and committed always: the row was
// lost at the sink.)
func TestApplyToastUpdateNoRowParks(t *testing.T) {
	e := newApplyEnv(t, `CREATE SCHEMA app;
CREATE TABLE app.k (id integer PRIMARY KEY, v text, doc text);
INSERT INTO app.k VALUES (1, 'a', 'big1');`, []string{"id", "v", "doc"}, map[string][]string{"k": {"id"}})
	toast := func(id, v string) []record.Value {
		return []record.Value{{Data: []byte(id)}, {Data: []byte(v)}, {Unchanged: true}}
	}

	e.change("k", record.Insert, nil, vals("2", "before", "x"), 100)
	e.change("k", record.Update, nil, toast("1", "b"), 200) // finds its row
	err := e.tryChange("k", record.Update, nil, toast("9", "c"), 300)
	if err == nil {
		err = e.commit(300)
	} else {
		e.a.Rollback(t.Context())
	}
	var d *DivergedError
	if !errors.As(err, &d) {
		t.Fatalf("an update without its TOASTed value of a row the sink lacks: error %v, want a DivergedError", err)
	}
	for _, want := range []string{"update on app.k (key id=9)", record.LSN(300).String(), "found no row with that key",
		"unchanged TOASTed values", "sluice backfill PIPELINE --table app.k", "sluice verify"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q: %v", want, err)
		}
	}
	if got := e.rows(`SELECT id::text || v FROM app.k ORDER BY id`); !slices.Equal(got, []string{"1a"}) {
		t.Errorf("the failed group committed changes: app.k = %v, want [1a]", got)
	}

	// A backfill of the table is unfinished: logged, committed.
	e.a.SetMayLack(func(id uint32) bool { return id == e.rels["k"].ID })
	e.change("k", record.Update, nil, toast("1", "b"), 400)
	e.change("k", record.Update, nil, toast("9", "c"), 400)
	if err := e.commit(400); err != nil {
		t.Fatalf("with a backfill unfinished: %v", err)
	}
	if got := e.rows(`SELECT id::text || v || doc FROM app.k ORDER BY id`); !slices.Equal(got, []string{"1bbig1"}) {
		t.Errorf("app.k = %v, want [1bbig1]", got)
	}
	if !strings.Contains(e.log.String(), "found no row to change") || !strings.Contains(e.log.String(), `key="id=9"`) {
		t.Errorf("no warning about the update that found no row:\n%s", e.log.String())
	}
}
