package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
	"github.com/sluicehq/sluice/transforms"
	"github.com/sluicehq/sluice/transforms/rowexpr"
)

// stageTestRels are two tables: 1 has stages, 2 has none.
var stageTestRels = map[uint32]*record.Relation{
	1: {ID: 1, Table: record.TableName{Schema: "s", Name: "staged"}, Columns: []record.Column{{Name: "id", TypeOID: 23, Key: true}, {Name: "v", TypeOID: 25}}},
	2: {ID: 2, Table: record.TableName{Schema: "s", Name: "plain"}, Columns: []record.Column{{Name: "id", TypeOID: 23, Key: true}, {Name: "v", TypeOID: 25}}},
}

func change(rel uint32, op record.Op, lsn record.LSN, id, v string) postgres.Event {
	rec := record.Record{Op: op, Rel: stageTestRels[rel], Format: record.Text, Position: lsn,
		New: []record.Value{{Data: []byte(id)}, {Data: []byte(v)}}}
	if op == record.Delete {
		rec.Old, rec.New = rec.New, nil
	}
	return postgres.Event{Kind: postgres.EventChange, CommitLSN: lsn, Record: rec}
}

func txn(lsn record.LSN, changes ...postgres.Event) []postgres.Event {
	out := []postgres.Event{{Kind: postgres.EventBegin, CommitLSN: lsn}}
	out = append(out, changes...)
	return append(out, postgres.Event{Kind: postgres.EventCommit, CommitLSN: lsn, EndLSN: lsn + 1})
}

// describeEvents renders events as "B10 I1:a C10 ..." for comparison.
func describeEvents(evs []postgres.Event, hows []how) string {
	var parts []string
	for i, ev := range evs {
		switch ev.Kind {
		case postgres.EventBegin:
			parts = append(parts, fmt.Sprintf("B%d", ev.CommitLSN))
		case postgres.EventCommit:
			parts = append(parts, fmt.Sprintf("C%d", ev.CommitLSN))
		case postgres.EventTruncate:
			parts = append(parts, "T")
		case postgres.EventChange:
			vals := ev.Record.New
			if vals == nil {
				vals = ev.Record.Old
			}
			h := map[how]string{howApply: "", howUpsert: "+", howDeleteIfPresent: "?"}[hows[i]]
			parts = append(parts, fmt.Sprintf("%s%s%d:%s=%s", h, strings.ToUpper(ev.Record.Op.String()[:1]), ev.Record.Rel.ID, vals[0].Data, vals[1].Data))
		}
	}
	return strings.Join(parts, " ")
}

// TestStageEventsPluginOncePerSlice: a plugin stage gets the changes of a
// whole slice of events, several transactions, in one call; what it
// returns (one record dropped, values changed) is put back into each
// record's own transaction, in order; a TRUNCATE cuts the batch so it
// stays between the changes around it; transactions already applied pass
// untouched; a filter over the new row turns updates into upserts or
// deletes-if-present.
func TestStageEventsPluginOncePerSlice(t *testing.T) {
	calls, sizes := 0, []int{}
	upper := transforms.Func(func(_ context.Context, b *record.Batch) (*record.Batch, error) {
		calls++
		sizes = append(sizes, len(b.Records))
		out := &record.Batch{End: b.End}
		for _, r := range b.Records {
			if r.New != nil && string(r.New[1].Data) == "drop" {
				continue
			}
			if r.New != nil {
				r.New = append([]record.Value(nil), r.New...)
				r.New[1] = record.Value{Data: []byte(strings.ToUpper(string(r.New[1].Data)))}
			}
			out.Records = append(out.Records, r)
		}
		return out, nil
	})
	stage := &chainStage{cfg: &TransformStage{Kind: "plugin", Origin: "test (transforms[0])"}, covers: map[uint32]bool{1: true}, plugin: upper}
	r := &runner{
		mapping: &mapping{opts: map[uint32]*tableOptions{}},
		chain:   &transformChain{stages: []*chainStage{stage}, tables: map[uint32]*chainTable{1: {name: stageTestRels[1].Table}}},
	}
	var evs []postgres.Event
	evs = append(evs, txn(5, change(1, record.Insert, 5, "0", "old"))...) // already applied
	evs = append(evs, txn(10, change(1, record.Insert, 10, "1", "a"), change(1, record.Insert, 10, "2", "drop"))...)
	evs = append(evs, txn(20, change(1, record.Update, 20, "1", "b"), change(1, record.Delete, 20, "2", "x"))...)
	evs = append(evs, txn(30, change(1, record.Insert, 30, "3", "c"))...)
	out, hows, _, err := r.stageEvents(context.Background(), evs, false, 5)
	if err != nil {
		t.Fatal(err)
	}
	want := "B5 I1:0=old C5 B10 I1:1=A C10 B20 U1:1=B D1:2=x C20 B30 I1:3=C C30"
	if got := describeEvents(out, hows); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
	if calls != 1 || sizes[0] != 5 {
		t.Errorf("plugin calls %d with %v records, want 1 call with the slice's 5 changes", calls, sizes)
	}

	// A TRUNCATE inside a transaction cuts the batch; a table without
	// stages passes as it is, between the others.
	calls, sizes = 0, nil
	trunc := postgres.Event{Kind: postgres.EventTruncate, CommitLSN: 40, Truncated: []*record.Relation{stageTestRels[2]}}
	evs = txn(40, change(1, record.Insert, 40, "4", "d"), trunc, change(2, record.Insert, 40, "5", "e"), change(1, record.Insert, 40, "6", "f"))
	out, hows, _, err = r.stageEvents(context.Background(), evs, false, 5)
	if err != nil {
		t.Fatal(err)
	}
	want = "B40 I1:4=D T I2:5=e I1:6=F C40"
	if got := describeEvents(out, hows); got != want {
		t.Errorf("events with a truncate:\n got %s\nwant %s", got, want)
	}
	if calls != 2 {
		t.Errorf("plugin calls %d (%v), want 2: one on each side of the truncate", calls, sizes)
	}

	// A filter reading the new row: an update that passes may bring the
	// row into the filter (upsert); one that fails takes it out (delete
	// if present); a delete removes the row if the sink has it.
	f, err := rowexpr.CompileFilter(`after.v != 'out'`, rowexpr.Table{Name: stageTestRels[1].Table, Columns: []rowexpr.Column{{Name: "id", TypeOID: 23, Key: true}, {Name: "v", TypeOID: 25}}})
	if err != nil {
		t.Fatal(err)
	}
	r.chain.stages = []*chainStage{{cfg: &TransformStage{Kind: "filter", Origin: "test (transforms[0])"}, covers: map[uint32]bool{1: true}, filters: map[uint32]*rowexpr.Filter{1: f}}}
	evs = txn(50, change(1, record.Insert, 50, "7", "out"), change(1, record.Insert, 50, "8", "in"),
		change(1, record.Update, 50, "8", "out"), change(1, record.Update, 50, "9", "in"), change(1, record.Delete, 50, "9", ""), change(2, record.Insert, 50, "1", "out"))
	out, hows, _, err = r.stageEvents(context.Background(), evs, false, 5)
	if err != nil {
		t.Fatal(err)
	}
	want = "B50 I1:8=in ?U1:8=out +U1:9=in ?D1:9= I2:1=out C50"
	if got := describeEvents(out, hows); got != want {
		t.Errorf("events through a row filter:\n got %s\nwant %s", got, want)
	}
}

// TestTransformChainApply: the API the full copy and backfills use drops
// what a filter refuses and computes set columns, and an expression error
// names the stage, the table, the row's key and the position.
func TestTransformChainApply(t *testing.T) {
	tbl := rowexpr.Table{Name: stageTestRels[1].Table, Columns: []rowexpr.Column{{Name: "id", TypeOID: 23, Key: true}, {Name: "v", TypeOID: 25}}}
	f, err := rowexpr.CompileFilter(`after.v != 'skip'`, tbl)
	if err != nil {
		t.Fatal(err)
	}
	s, err := rowexpr.CompileSet(map[string]string{"v": `after.v + '/' + string(after.id * 10 / (after.id - 3))`}, tbl)
	if err != nil {
		t.Fatal(err)
	}
	c := &transformChain{
		stages: []*chainStage{
			{cfg: &TransformStage{Kind: "filter", Origin: "p.yaml:9 (transforms[0])"}, covers: map[uint32]bool{1: true}, filters: map[uint32]*rowexpr.Filter{1: f}},
			{cfg: &TransformStage{Kind: "set", Origin: "p.yaml:10 (transforms[1])"}, covers: map[uint32]bool{1: true}, sets: map[uint32]*rowexpr.Set{1: s}},
		},
		tables: map[uint32]*chainTable{1: {name: stageTestRels[1].Table}},
	}
	var in []*record.Record
	for _, ev := range []postgres.Event{change(1, record.Insert, 0, "1", "a"), change(1, record.Insert, 0, "2", "skip"), change(2, record.Insert, 0, "4", "b"), change(1, record.Insert, 0, "4", "c")} {
		in = append(in, &ev.Record)
	}
	out, err := c.Apply(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range out {
		got = append(got, fmt.Sprintf("%d:%s=%s", r.Rel.ID, r.New[0].Data, r.New[1].Data))
	}
	if strings.Join(got, " ") != "1:1=a/-5 2:4=b 1:4=c/40" {
		t.Errorf("Apply gave %v", got)
	}
	bad := change(1, record.Insert, 0, "3", "d")
	_, err = c.Apply(context.Background(), []*record.Record{&bad.Record})
	if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), `p.yaml:10 (transforms[1]): insert of table s.staged, key ("id")=(3): set "v": position 38: division by zero`) {
		t.Errorf("Apply on a row the expression fails on: %v", err)
	}
}

// TestStageEventsParksAtFailingTransaction: when an expression fails on a
// row of the third transaction of a slice, the events of the two before
// it come back with the error, and nothing of the failing one.
func TestStageEventsParksAtFailingTransaction(t *testing.T) {
	tbl := rowexpr.Table{Name: stageTestRels[1].Table, Columns: []rowexpr.Column{{Name: "id", TypeOID: 23, Key: true}, {Name: "v", TypeOID: 25}}}
	s, err := rowexpr.CompileSet(map[string]string{"v": `string(100 / (after.id - 3))`}, tbl)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{
		mapping: &mapping{opts: map[uint32]*tableOptions{}},
		chain: &transformChain{
			stages: []*chainStage{{cfg: &TransformStage{Kind: "set", Origin: "p.yaml:7 (transforms[0])"}, covers: map[uint32]bool{1: true}, sets: map[uint32]*rowexpr.Set{1: s}}},
			tables: map[uint32]*chainTable{1: {name: stageTestRels[1].Table}},
		},
	}
	var evs []postgres.Event
	evs = append(evs, txn(10, change(1, record.Insert, 10, "1", "a"))...)
	evs = append(evs, txn(20, change(2, record.Insert, 20, "9", "b"), change(1, record.Insert, 20, "2", "b"))...)
	evs = append(evs, txn(30, change(1, record.Insert, 30, "4", "c"), change(1, record.Insert, 30, "3", "d"))...)
	evs = append(evs, txn(40, change(1, record.Insert, 40, "5", "e"))...)
	out, hows, _, err := r.stageEvents(context.Background(), evs, false, 5)
	if err == nil || !strings.Contains(err.Error(), `p.yaml:7 (transforms[0]): insert of table s.staged, key ("id")=(3) at 0/1E: set "v": position 12: division by zero`) {
		t.Fatalf("want the division by zero on row 3, got %v", err)
	}
	want := "B10 I1:1=-50 C10 B20 I2:9=b I1:2=-100 C20"
	if got := describeEvents(out, hows); got != want {
		t.Errorf("events before the failing transaction:\n got %s\nwant %s", got, want)
	}
}

// TestChainTrack: a table that joins is covered by the stages whose scope
// takes it (a plugin stage included) and compiled for its shape; a shape
// a stage does not fit is refused naming the stage, the table and the
// problem, and leaves the chain as it was; the same shape again changes
// nothing; a rename out of a scope leaves that stage; untrack forgets the
// table.
func TestChainTrack(t *testing.T) {
	inApp := func(n record.TableName) bool { return n.Schema == "app" }
	onlyT := func(n record.TableName) bool { return n.Name == "t" }
	c := &transformChain{incremental: true, tables: map[uint32]*chainTable{}, stages: []*chainStage{
		{cfg: &TransformStage{Kind: "plugin", Match: inApp, Origin: "p.yaml:8 (transforms[0])"}, covers: map[uint32]bool{}, plugin: transforms.Func(func(_ context.Context, b *record.Batch) (*record.Batch, error) { return b, nil })},
		{cfg: &TransformStage{Kind: "filter", Filter: "after.n > 1", Match: onlyT, Origin: "p.yaml:9 (transforms[1])"}, covers: map[uint32]bool{}, filters: map[uint32]*rowexpr.Filter{}, sets: map[uint32]*rowexpr.Set{}},
		{cfg: &TransformStage{Kind: "set", Set: map[string]string{"v": `"x"`}, Match: inApp, Origin: "p.yaml:10 (transforms[2])"}, covers: map[uint32]bool{}, filters: map[uint32]*rowexpr.Filter{}, sets: map[uint32]*rowexpr.Set{}},
	}}
	shape := func(name string, cols ...rowexpr.Column) *tableShape {
		n := record.TableName{Schema: "app", Name: name}
		return &tableShape{oid: 7, name: n, key: []string{"id"}, cols: rowexpr.Table{Name: n, Columns: append([]rowexpr.Column{{Name: "id", TypeOID: 23, Key: true}}, cols...)}}
	}
	v, n := rowexpr.Column{Name: "v", TypeOID: 25}, rowexpr.Column{Name: "n", TypeOID: 23}
	gained, lost, changed, err := c.track(shape("t", v, n))
	if err != nil || !changed || len(gained) != 3 || len(lost) != 0 {
		t.Fatalf("track a new table: gained %v, lost %v, changed %v, err %v; want the three stages", gained, lost, changed, err)
	}
	if !c.stages[0].covers[7] || c.stages[1].filters[7] == nil || c.stages[2].sets[7] == nil || !c.has(7) || c.generation() != 1 {
		t.Fatalf("after track: plugin covers %v, filter %v, set %v, has %v, gen %d", c.stages[0].covers[7], c.stages[1].filters[7], c.stages[2].sets[7], c.has(7), c.generation())
	}
	if _, _, changed, err := c.track(shape("t", v, n)); err != nil || changed || c.generation() != 1 {
		t.Errorf("the same shape again: changed %v, err %v, gen %d; want nothing changed", changed, err, c.generation())
	}
	// n dropped: the filter no longer fits; nothing changes.
	f := c.stages[1].filters[7]
	_, _, _, err = c.track(shape("t", v))
	if err == nil || !strings.Contains(err.Error(), "p.yaml:9 (transforms[1]): filter on table app.t: position 7: unknown field n") {
		t.Errorf("track with the filter's column dropped: %v", err)
	}
	if c.stages[1].filters[7] != f || c.generation() != 1 {
		t.Error("a refused shape changed the chain")
	}
	// n becomes numeric: compiled again.
	if _, _, changed, err := c.track(shape("t", v, rowexpr.Column{Name: "n", TypeOID: 1700})); err != nil || !changed || c.stages[1].filters[7] == f {
		t.Errorf("track with n numeric: changed %v, err %v; want the filter compiled again", changed, err)
	}
	// Renamed out of the filter's scope.
	gained, lost, _, err = c.track(shape("u", v))
	if err != nil || len(gained) != 0 || len(lost) != 1 || lost[0] != "p.yaml:9 (transforms[1])" || c.stages[1].covers[7] || !c.stages[0].covers[7] {
		t.Errorf("rename out of the filter's scope: gained %v, lost %v, err %v", gained, lost, err)
	}
	// A table in scope without the column a set writes is refused.
	if _, _, _, err := c.track(&tableShape{oid: 8, name: record.TableName{Schema: "app", Name: "w"}, key: []string{"id"}, cols: rowexpr.Table{Columns: []rowexpr.Column{{Name: "id", TypeOID: 23, Key: true}}}}); err == nil || !strings.Contains(err.Error(), "p.yaml:10 (transforms[2]): on table app.w") || c.has(8) {
		t.Errorf("a joining table without the set's column: %v", err)
	}
	c.untrack(7)
	if c.has(7) || c.stages[0].covers[7] || c.stages[2].sets[7] != nil {
		t.Error("untrack left the table covered")
	}
}

// TestStageEventsStopsAtBarrier: with DDL replication, staging stops after
// a DDL event and after the first change of a relation the stream has not
// seen (its table may join), so that the changes after them are staged
// once these are applied.
func TestStageEventsStopsAtBarrier(t *testing.T) {
	ddlLog := &record.Relation{ID: 99, Table: postgres.DDLLogTable, Columns: []record.Column{{Name: "id", TypeOID: 20, Key: true}, {Name: "tag", TypeOID: 25}}}
	r := &runner{
		mapping: &mapping{opts: map[uint32]*tableOptions{}},
		chain:   &transformChain{stages: []*chainStage{{cfg: &TransformStage{Kind: "plugin"}, covers: map[uint32]bool{1: true}, plugin: transforms.Func(func(_ context.Context, b *record.Batch) (*record.Batch, error) { return b, nil })}}, tables: map[uint32]*chainTable{1: {}}},
	}
	r.ddl = &ddlRun{rels: map[uint32]*record.Relation{1: stageTestRels[1]}, ignored: map[uint32]bool{}}
	ddl := postgres.Event{Kind: postgres.EventChange, CommitLSN: 10, Record: record.Record{Op: record.Insert, Rel: ddlLog, Format: record.Text, New: []record.Value{{Data: []byte("1")}, {Data: []byte("ALTER TABLE")}}}}
	evs := txn(10, change(1, record.Insert, 10, "1", "a"), ddl, change(1, record.Insert, 10, "2", "b"), change(2, record.Insert, 10, "3", "c"), change(2, record.Insert, 10, "4", "d"))
	var windows []int
	for from := 0; from < len(evs); {
		_, _, n, err := r.stageEvents(context.Background(), evs[from:], false, 5)
		if err != nil || n == 0 {
			t.Fatalf("stageEvents: n %d, err %v", n, err)
		}
		windows = append(windows, n)
		from += n
		if from == 5 {
			r.ddl.rels[2] = stageTestRels[2] // the stream applied table 2's first change
		}
	}
	// B I1 DDL | I1 I2 | I2 C
	if fmt.Sprint(windows) != "[3 2 2]" {
		t.Errorf("windows %v, want [3 2 2]: one ending at the DDL event, one at table 2's new relation", windows)
	}
}

// TestStateColumns: the columns a DDL event captures (types as
// format_type renders them, qualified; a collation other than the type's)
// resolve at the source to their base type's OID and to what their
// collation does to a where condition: modifiers, arrays, domains over
// domains, a type gone since (0), the database default under C (byte
// order), an ICU collation (a locale) and a domain's own collation.
func TestStateColumns(t *testing.T) {
	src := pgtest.Source(t)
	dsn := pgtest.NewDB(t, src)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `CREATE SCHEMA "S p"; CREATE DOMAIN "S p".d1 AS bigint; CREATE DOMAIN "S p"."D 2" AS "S p".d1 CHECK (VALUE > 0);
CREATE DOMAIN "S p".icu AS text COLLATE "und-x-icu"`); err != nil {
		t.Fatal(err)
	}
	var cols []postgres.ColumnState
	for i, typ := range []string{"integer", "numeric(10,2)", "character varying(20)", `"S p"."D 2"`, "integer[]", `"char"`, "boolean", `"S p".gone`, "text", "text", `"S p".icu`} {
		cols = append(cols, postgres.ColumnState{Num: i + 1, Name: fmt.Sprintf("c%d", i), Type: typ})
	}
	cols[9].Collation = `pg_catalog."und-x-icu"`
	got, err := stateColumns(t.Context(), conn, cols)
	if err != nil {
		t.Fatal(err)
	}
	var oids []uint32
	for _, c := range got {
		oids = append(oids, c.TypeOID)
	}
	if want := []uint32{23, 1700, 1043, 20, 1007, 18, 16, 0, 25, 25, 25}; !slices.Equal(oids, want) {
		t.Errorf("oids %v, want %v", oids, want)
	}
	if got[3].TypeName != "bigint" || got[7].TypeName != `"S p".gone` || got[3].Name != "c3" || got[7].Name != "c7" {
		t.Errorf("columns %+v", got)
	}
	if got[9].Collation != "und-x-icu" || got[10].Collation != "und-x-icu" || got[0].Collation != "" {
		t.Errorf("collations %q %q %q, want und-x-icu, und-x-icu and none", got[9].Collation, got[10].Collation, got[0].Collation)
	}
	// The oracle: the same columns read from a table's catalog.
	if _, err := conn.Exec(t.Context(), `CREATE TABLE "S p".t (c0 integer, c1 numeric(10,2), c2 varchar(20), c3 "S p"."D 2", c4 integer[], c5 "char", c6 boolean, c8 text, c9 text COLLATE "und-x-icu", c10 "S p".icu)`); err != nil {
		t.Fatal(err)
	}
	var oid uint32
	if err := conn.QueryRow(t.Context(), `SELECT '"S p".t'::regclass::oid`).Scan(&oid); err != nil {
		t.Fatal(err)
	}
	want, err := whereColumns(t.Context(), conn, &postgres.Table{OID: oid, Name: record.TableName{Schema: "S p", Name: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Delete(got, 7, 8); !slices.Equal(got, want) {
		t.Errorf("from the captured state:\n%+v\nfrom the catalog:\n%+v", got, want)
	}
}
