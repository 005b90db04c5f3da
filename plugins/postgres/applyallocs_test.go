package postgres

import (
	"strconv"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
)

// TestApplyAllocs measures the heap allocations of queueing one change,
// per kind of statement, with the statements prepared (testing.AllocsPerRun
// over fewer changes than a flush holds, so no round trip is counted; the
// pipeline's own buffer growth is). It fails when one goes over its
// bound: the applier's work per change must not grow with what it could
// compute once per relation. (Measured before the plans of applyplan.go:
// 17, 17, 10, 13, 6 and 1 allocations for the cases below; after: 1, 1,
// 2, 1, 1 and 0 — the one left is the change's parameter list, which the
// statement pipeline keeps until it is sent.)
func TestApplyAllocs(t *testing.T) {
	e := newApplyEnv(t, `CREATE SCHEMA app;
CREATE TABLE app.k (id integer PRIMARY KEY, v text, doc text);
CREATE TABLE app.o (id integer PRIMARY KEY, v text, doc text);
CREATE TABLE app.r (id integer PRIMARY KEY, v text, doc text);
CREATE TABLE app.nk (id integer, v text, doc text);`, []string{"id", "v", "doc"},
		map[string][]string{"k": {"id"}, "o": {"id"}, "r": {"id"}, "nk": nil})
	// app.o: overwrite (on_conflicting_tables: ignore) keeps changes out of
	// runs, so full-row updates take the single-row upsert.
	for _, tb := range e.tables {
		if tb.Target.Name == "o" {
			tb.Overwrite = true
		}
	}
	ctx := t.Context()
	toast := []record.Value{{Data: []byte("1")}, {Data: []byte("v")}, {Unchanged: true}}
	full := vals("1", "v", "doc")
	keyless := vals("1", "v", "doc")
	cases := []struct {
		name  string
		rec   record.Record
		bound float64
	}{
		{"update without a TOASTed value", record.Record{Op: record.Update, Rel: e.rels["k"], New: toast}, 3},
		{"full-row update (upsert)", record.Record{Op: record.Update, Rel: e.rels["o"], New: full}, 3},
		{"insert replacing a row (overwrite)", record.Record{Op: record.Insert, Rel: e.rels["o"], New: full}, 4},
		{"update of a table without a key", record.Record{Op: record.Update, Rel: e.rels["nk"], Old: keyless, New: keyless}, 3},
		{"delete", record.Record{Op: record.Delete, Rel: e.rels["k"], Old: vals("1", "NULL", "NULL")}, 3},
	}
	lsn := record.LSN(100)
	for _, c := range cases {
		// Prepare the statement and fill the pipeline's buffers once.
		if err := e.a.Apply(ctx, &c.rec, lsn); err != nil {
			t.Fatal(err)
		}
		e.a.Rollback(ctx)
		n := testing.AllocsPerRun(500, func() {
			if err := e.a.Apply(ctx, &c.rec, lsn); err != nil {
				t.Fatal(err)
			}
		})
		e.a.Rollback(ctx)
		t.Logf("%s: %.1f allocations per change", c.name, n)
		if n > c.bound {
			t.Errorf("%s: %.1f allocations per change, want at most %.0f", c.name, n, c.bound)
		}
	}
	// Inserts joining a run of their table: each change is appended to the
	// run (the statement is built once per run).
	recs := make([]record.Record, 1000)
	for i := range recs {
		recs[i] = record.Record{Op: record.Insert, Rel: e.rels["r"], New: vals(strconv.Itoa(i), "v", "doc")}
	}
	if err := e.a.Apply(ctx, &recs[0], lsn); err != nil { // reads the sink's catalog once
		t.Fatal(err)
	}
	e.a.Rollback(ctx)
	i := 0
	n := testing.AllocsPerRun(500, func() {
		if err := e.a.Apply(ctx, &recs[i%len(recs)], lsn); err != nil {
			t.Fatal(err)
		}
		i++
	})
	e.a.Rollback(ctx)
	t.Logf("insert joining a run: %.1f allocations per change", n)
	if n > 1 {
		t.Errorf("insert joining a run: %.1f allocations per change, want at most 1", n)
	}
}

// BenchmarkApplyQueue measures queueing changes with their statements
// prepared (no round trips: the group is rolled back before a flush).
func BenchmarkApplyQueue(b *testing.B) {
	e := newApplyEnv(b, `CREATE SCHEMA app;
CREATE TABLE app.k (id integer PRIMARY KEY, v text, doc text);
CREATE TABLE app.o (id integer PRIMARY KEY, v text, doc text);`, []string{"id", "v", "doc"},
		map[string][]string{"k": {"id"}, "o": {"id"}})
	for _, tb := range e.tables {
		if tb.Target.Name == "o" {
			tb.Overwrite = true
		}
	}
	ctx := b.Context()
	for _, c := range []struct {
		name string
		rec  record.Record
	}{
		{"update_toast", record.Record{Op: record.Update, Rel: e.rels["k"], New: []record.Value{{Data: []byte("1")}, {Data: []byte("v")}, {Unchanged: true}}}},
		{"upsert", record.Record{Op: record.Update, Rel: e.rels["o"], New: vals("1", "v", "doc")}},
	} {
		b.Run(c.name, func(b *testing.B) {
			if err := e.a.Apply(ctx, &c.rec, 100); err != nil {
				b.Fatal(err)
			}
			e.a.Rollback(ctx)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if err := e.a.Apply(ctx, &c.rec, 100); err != nil {
					b.Fatal(err)
				}
				if n++; n == 1000 {
					e.a.Rollback(ctx)
					n = 0
				}
			}
			e.a.Rollback(ctx)
		})
	}
}
