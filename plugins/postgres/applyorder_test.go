package postgres

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// applyEnv is a sink database with sluice's progress tables and an
// Applier over the tables a test declares.
type applyEnv struct {
	t      testing.TB
	dsn    string
	log    *syncBuffer
	tables map[uint32]*ApplyTable
	rels   map[string]*record.Relation
	a      *Applier
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer = pgtest.LogBuffer

// newApplyEnv runs ddl in a new sink database and makes an applier for
// the given tables of schema app: name -> key columns (nil: no key);
// every table has the columns cols.
func newApplyEnv(t testing.TB, ddl string, cols []string, keys map[string][]string) *applyEnv {
	t.Helper()
	e := &applyEnv{t: t, dsn: pgtest.NewDB(t, pgtest.Sink(t)), log: &syncBuffer{},
		tables: map[uint32]*ApplyTable{}, rels: map[string]*record.Relation{}}
	e.exec(ddl)
	conn, err := Connect(t.Context(), e.dsn, "sink")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := EnsureSinkState(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range keys {
			if !yield(n) {
				return
			}
		}
	})
	for i, name := range names {
		rel := &record.Relation{ID: uint32(100 + i), Table: record.TableName{Schema: "app", Name: name}}
		for _, c := range cols {
			rel.Columns = append(rel.Columns, record.Column{Name: c, Key: keys[name] == nil || slices.Contains(keys[name], c)})
		}
		e.rels[name] = rel
		e.tables[rel.ID] = &ApplyTable{Target: rel.Table, Key: keys[name]}
	}
	log := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if e.a, err = OpenApplier(t.Context(), e.dsn, "p", e.tables, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.a.Close(context.Background()) })
	return e
}

func (e *applyEnv) exec(sql string) {
	e.t.Helper()
	conn, err := pgx.Connect(e.t.Context(), e.dsn)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(e.t.Context(), sql); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// rows returns a query's rows, each as its columns' text joined by "|".
func (e *applyEnv) rows(sql string) []string {
	e.t.Helper()
	conn, err := pgx.Connect(e.t.Context(), e.dsn)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(e.t.Context(), sql)
	if err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		vals, err := r.Values()
		parts := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				parts[i] = "NULL"
				continue
			}
			switch v := v.(type) {
			case string:
				parts[i] = v
			case int32:
				parts[i] = strconv.Itoa(int(v))
			default:
				parts[i] = "?"
			}
		}
		return strings.Join(parts, "|"), err
	})
	if err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// vals makes record values from text, "NULL" meaning NULL.
func vals(vals ...string) []record.Value {
	out := make([]record.Value, len(vals))
	for i, v := range vals {
		if v == "NULL" {
			out[i] = record.Value{Null: true}
		} else {
			out[i] = record.Value{Data: []byte(v)}
		}
	}
	return out
}

// change applies one change to table name in the source transaction
// committed at lsn, failing the test on error.
func (e *applyEnv) change(name string, op record.Op, old, new []record.Value, lsn record.LSN) {
	e.t.Helper()
	if err := e.tryChange(name, op, old, new, lsn); err != nil {
		e.t.Fatalf("apply %s on %s at %s: %v", op, name, lsn, err)
	}
}

func (e *applyEnv) tryChange(name string, op record.Op, old, new []record.Value, lsn record.LSN) error {
	rec := &record.Record{Op: op, Rel: e.rels[name], Old: old, New: new, Position: lsn}
	return e.a.Apply(e.t.Context(), rec, lsn)
}

// commit commits the group, rolling it back on error.
func (e *applyEnv) commit(lsn record.LSN) error {
	err := e.a.Commit(e.t.Context(), lsn, lsn+1)
	if err != nil {
		e.a.Rollback(e.t.Context())
	}
	return err
}

// TestApplyUpdateFallbackInOrder: updates of keyed rows the sink lacks
// insert the new row where the update stands among the pipelined
// statements, for single updates and for update runs, so that later
// changes of the same key in the same flush apply after it: a later
// DELETE removes the row again, a later UPDATE changes it. (The fallback
// used to be queued after the flushed pipeline: the DELETE was undone,
// and two updates of a missing row became two inserts of one key.)
func TestApplyUpdateFallbackInOrder(t *testing.T) {
	e := newApplyEnv(t, `CREATE SCHEMA app;
CREATE TABLE app.k (id integer PRIMARY KEY, v integer);
INSERT INTO app.k SELECT g, 0 FROM generate_series(1, 40) g;
DELETE FROM app.k WHERE id IN (5, 7) OR id BETWEEN 10 AND 15;`, []string{"id", "v"}, map[string][]string{"k": {"id"}})
	upd := func(id, v int, lsn record.LSN) {
		e.change("k", record.Update, nil, vals(strconv.Itoa(id), strconv.Itoa(v)), lsn)
	}
	del := func(id int, lsn record.LSN) {
		e.change("k", record.Delete, vals(strconv.Itoa(id), "NULL"), nil, lsn)
	}
	row := func(id int) []string {
		return e.rows(`SELECT id::text, v::text FROM app.k WHERE id = ` + strconv.Itoa(id))
	}

	// First, the statements' shapes get prepared (preparing one sends
	// what is queued first, which would hide the order of a flush).
	upd(1, 1, 50)
	del(2, 50)
	if err := e.commit(50); err != nil {
		t.Fatal(err)
	}

	// A single update of a missing row, then its delete.
	upd(5, 1, 100)
	del(5, 200)
	if err := e.commit(200); err != nil {
		t.Errorf("update then delete of a row the sink lacks: %v", err)
	} else if r := row(5); len(r) != 0 {
		t.Errorf("update then delete of a row the sink lacks: the sink has %v, want no row", r)
	}

	// Two updates of a missing row, apart (a statement of the table in
	// between keeps them out of one run).
	upd(7, 1, 300)
	del(8, 300)
	upd(7, 2, 400)
	if err := e.commit(400); err != nil {
		t.Errorf("two updates of a row the sink lacks: %v", err)
	} else if r := row(7); !slices.Equal(r, []string{"7|2"}) {
		t.Errorf("two updates of a row the sink lacks: the sink has %v, want [7|2]", r)
	}

	// An update run (≥ minRunRows rows) over rows partly missing, then
	// deletes of some of them.
	for id := 9; id <= 16; id++ {
		upd(id, 1, 500)
	}
	for id := 10; id <= 12; id++ {
		del(id, 600)
	}
	if err := e.commit(600); err != nil {
		t.Errorf("update run then deletes: %v", err)
	} else if r := e.rows(`SELECT id::text, v::text FROM app.k AS k WHERE id BETWEEN 9 AND 16 ORDER BY k.id`); !slices.Equal(r, []string{"9|1", "13|1", "14|1", "15|1", "16|1"}) {
		t.Errorf("update run then deletes: the sink has %v, want 9, 13–16 with v = 1", r)
	}
	if !strings.Contains(e.log.String(), "streamed updates found no row to change") || !strings.Contains(e.log.String(), "action=\"inserted the new row\"") {
		t.Errorf("no warnings about the updates that found no row:\n%s", e.log.String())
	}
	if got := e.rows(`SELECT lsn::text FROM sluice.apply_progress WHERE pipeline = 'p'`); !slices.Equal(got, []string{record.LSN(600).String()}) {
		t.Errorf("applied position %v, want %s", got, record.LSN(600))
	}
}

// TestApplyKeylessNoRowParks: on a table without a key, an UPDATE or
// DELETE that finds no row equal to its old row means the sink diverged:
// the group fails with a DivergedError naming the table, the old row and
// the position, and nothing of the group is committed (not the changes
// before it, not the position). (It used to insert the new row, or skip
// the delete, with a warning, and commit.) Changes that find their row go
// through, one row among duplicates.
func TestApplyKeylessNoRowParks(t *testing.T) {
	e := newApplyEnv(t, `CREATE SCHEMA app;
CREATE TABLE app.nk (x integer, y text);
CREATE TABLE app.k (x integer PRIMARY KEY, y text);
INSERT INTO app.nk VALUES (1, 'a'), (1, 'a'), (2, 'b');`, []string{"x", "y"}, map[string][]string{"nk": nil, "k": {"x"}})

	for i, tc := range []struct {
		name     string
		op       record.Op
		old, new []record.Value
	}{
		{"update", record.Update, vals("3", "it's"), vals("3", "z")},
		{"delete", record.Delete, vals("9", "NULL"), nil},
	} {
		e.change("k", record.Insert, nil, vals(strconv.Itoa(10*i+1), "before"), 100)
		err := e.tryChange("nk", tc.op, tc.old, tc.new, 200)
		if err == nil {
			e.change("k", record.Insert, nil, vals(strconv.Itoa(10*i+2), "after"), 300)
			err = e.commit(300)
		} else {
			e.a.Rollback(t.Context())
		}
		var d *DivergedError
		if !errors.As(err, &d) {
			t.Errorf("%s of a row the sink lacks: error %v, want a DivergedError", tc.name, err)
			continue
		}
		msg := err.Error()
		for _, want := range []string{`app.nk`, tc.op.String(), record.LSN(200).String(), rowText(&record.Record{Rel: e.rels["nk"], Old: tc.old}), "diverged", "sluice verify"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: the error lacks %q: %s", tc.name, want, msg)
			}
		}
		if got := e.rows(`SELECT x::text FROM app.k`); len(got) != 0 {
			t.Errorf("%s: the failed group committed rows of app.k: %v", tc.name, got)
		}
		if got := e.rows(`SELECT lsn::text FROM sluice.apply_progress`); len(got) != 0 {
			t.Errorf("%s: the failed group committed the position %v", tc.name, got)
		}
	}
	if !strings.Contains(rowText(&record.Record{Rel: e.rels["nk"], Old: vals("3", "it's")}), `"x" = '3', "y" = 'it''s'`) {
		t.Errorf("rowText = %s", rowText(&record.Record{Rel: e.rels["nk"], Old: vals("3", "it's")}))
	}

	// Changes that find their row: one of two duplicates changes.
	e.change("nk", record.Update, vals("1", "a"), vals("1", "c"), 400)
	e.change("nk", record.Delete, vals("2", "b"), nil, 400)
	if err := e.commit(400); err != nil {
		t.Fatal(err)
	}
	if got := e.rows(`SELECT x::text, y FROM app.nk ORDER BY x, y`); !slices.Equal(got, []string{"1|a", "1|c"}) {
		t.Errorf("app.nk = %v, want [1|a 1|c]", got)
	}
}

// TestApplyRunsUniqueCheck: whether a table's changes may go in runs is
// decided by the sink's unique indexes themselves, not by their number.
// The old check (unique and exclusion indexes plus triggers, minus one)
// was wrong both ways: a sink table whose only unique index is not the
// key's (the key has none) or that has no unique index but a trigger, got
// runs; a table with its key indexed twice, or with a wider unique index
// that includes the key, did not. The first way is a failure: a swap of
// unique values that the row-at-a-time order applies fails as a run.
func TestApplyRunsUniqueCheck(t *testing.T) {
	e := newApplyEnv(t, `CREATE SCHEMA app;
CREATE TABLE app.other_only (id integer NOT NULL, email text NOT NULL UNIQUE, n integer);
CREATE TABLE app.trig_only (id integer NOT NULL, email text, n integer);
CREATE FUNCTION app.noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER t BEFORE UPDATE ON app.trig_only FOR EACH ROW EXECUTE FUNCTION app.noop();
ALTER TABLE app.trig_only ENABLE ALWAYS TRIGGER t;
CREATE TABLE app.twice (id integer PRIMARY KEY, email text, n integer);
CREATE UNIQUE INDEX twice_id ON app.twice (id);
CREATE TABLE app.wider (id integer PRIMARY KEY, email text, n integer, UNIQUE (id, email));
CREATE TABLE app.include (id integer PRIMARY KEY, email text, n integer);
CREATE UNIQUE INDEX include_email ON app.include (email) INCLUDE (id);
CREATE TABLE app.plain (id integer PRIMARY KEY, email text, n integer);
CREATE TABLE app.second (id integer PRIMARY KEY, email text UNIQUE, n integer);
CREATE TABLE app.ident (id integer PRIMARY KEY, email text NOT NULL, n integer);
CREATE UNIQUE INDEX ident_email ON app.ident (email);
CREATE TABLE app.partial (id integer PRIMARY KEY, email text, n integer);
CREATE UNIQUE INDEX partial_email ON app.partial (id, email) WHERE n > 0;
INSERT INTO app.other_only SELECT g, 'e' || g, 0 FROM generate_series(1, 10) g;`,
		[]string{"id", "email", "n"}, map[string][]string{
			"other_only": {"id"}, "trig_only": {"id"}, "twice": {"id"}, "wider": {"id"}, "include": {"id"},
			"plain": {"id"}, "second": {"id"}, "ident": {"email"}, "partial": {"id"},
		})
	want := map[string]bool{
		"other_only": false, "trig_only": false, "include": false, "second": false, "partial": false,
		// app.ident: the key is the replica identity index on email, and
		// the table also has a primary key on id, which runs could violate.
		"ident": false,
		"twice": true, "wider": true, "plain": true,
	}
	for name, ok := range want {
		rel := e.rels[name]
		info, err := e.a.tableBatchInfo(t.Context(), e.tables[rel.ID], rel)
		if err != nil {
			t.Fatal(err)
		}
		if info.ok != ok {
			t.Errorf("app.%s: runs allowed %v, want %v", name, info.ok, ok)
		}
	}

	// DDL at the sink (replicated, so followed by dropPrepared) that adds
	// a unique index beside the key: runs stop on that table, though the
	// source sent no new relation description.
	e.exec(`CREATE UNIQUE INDEX plain_n ON app.plain (n)`)
	if err := e.a.dropPrepared(t.Context()); err != nil {
		t.Fatal(err)
	}
	if info, err := e.a.tableBatchInfo(t.Context(), e.tables[e.rels["plain"].ID], e.rels["plain"]); err != nil {
		t.Fatal(err)
	} else if info.ok {
		t.Error("app.plain: runs still allowed after a unique index beside its key was created at the sink")
	}

	// What runs would break on app.other_only: a swap of two e-mails,
	// then an update of every row, in one group. As a run, the unique
	// index on email sees the swapped rows one at a time and fails.
	upd := func(id int, email string, n int, lsn record.LSN) {
		e.change("other_only", record.Update, nil, vals(strconv.Itoa(id), email, strconv.Itoa(n)), lsn)
	}
	upd(1, "tmp", 0, 100)
	upd(2, "e1", 0, 100)
	upd(1, "e2", 0, 100)
	for id := 1; id <= 10; id++ {
		email := "e" + strconv.Itoa(id)
		switch id {
		case 1:
			email = "e2"
		case 2:
			email = "e1"
		}
		upd(id, email, 1, 100)
	}
	if err := e.commit(100); err != nil {
		t.Fatalf("swap of unique values: %v", err)
	}
	if got := e.rows(`SELECT id::text, email FROM app.other_only AS o WHERE id <= 2 ORDER BY o.id`); !slices.Equal(got, []string{"1|e2", "2|e1"}) {
		t.Errorf("app.other_only = %v, want [1|e2 2|e1]", got)
	}
}

// TestApplyRunsRefuseValuesTooLong: a run (≥ minRunRows rows) of inserts or
// full-row updates into sink columns narrower than the values (a sink
// altered by hand) fails with PostgreSQL's "value too long", as a single
// row does, and commits nothing: the run's casts must not cut or pad the
// values to fit. (They cast to the column's type with its length, which
// truncates silently.) Values that fit keep their length and padding.
func TestApplyRunsRefuseValuesTooLong(t *testing.T) {
	e := newApplyEnv(t, `CREATE SCHEMA app;
CREATE TABLE app.n (id integer PRIMARY KEY, c char(3), v varchar(3), b bit(4));
INSERT INTO app.n SELECT g, 'x', 'x', B'0000' FROM generate_series(1, 10) g;`, []string{"id", "c", "v", "b"}, map[string][]string{"n": {"id"}})
	// Values that fit, as runs of inserts and updates.
	for id := 11; id <= 16; id++ {
		e.change("n", record.Insert, nil, vals(strconv.Itoa(id), "ab", "abc", "1010"), 100)
	}
	for id := 1; id <= 6; id++ {
		e.change("n", record.Update, nil, vals(strconv.Itoa(id), "a", "ab", "0110"), 100)
	}
	if err := e.commit(100); err != nil {
		t.Fatalf("runs of values that fit: %v", err)
	}
	if got := e.rows(`SELECT c || '/' || octet_length(c)::text || '|' || v || '|' || b::text FROM app.n WHERE id IN (1, 11) ORDER BY id`); !slices.Equal(got, []string{"a/3|ab|0110", "ab/3|abc|1010"}) {
		t.Errorf("runs of values that fit: the sink has %v", got)
	}
	for _, tc := range []struct {
		name string
		op   record.Op
		from int
	}{{"insert run", record.Insert, 21}, {"update run", record.Update, 1}} {
		for id := tc.from; id < tc.from+6; id++ {
			e.change("n", tc.op, nil, vals(strconv.Itoa(id), "a", "abcdef", "1010"), 200)
		}
		err := e.commit(200)
		if err == nil || !strings.Contains(err.Error(), "value too long") {
			t.Errorf("%s of values too long for varchar(3): error %v, want PostgreSQL's value too long", tc.name, err)
		}
		if got := e.rows(`SELECT count(*)::text FROM app.n WHERE v = 'abc' AND id NOT BETWEEN 11 AND 16`); !slices.Equal(got, []string{"0"}) {
			t.Errorf("%s: %v rows hold the value cut to 3 characters", tc.name, got)
		}
	}
}
