package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"strconv"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// bfFixture drives the stream loop's side of a backfill with crafted
// events: a table (OID 42, key id), the watermark table, and a chunk of
// rows 1..9 read at a snapshot the test chooses.
type bfFixture struct {
	t        *testing.T
	b        *backfiller
	rel, wm  *record.Relation
	pipeline string
}

func newBFFixture(t *testing.T) *bfFixture {
	return &bfFixture{t: t,
		b:   newBackfiller(&runner{cfg: Config{Name: "p"}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil),
		rel: &record.Relation{ID: 42, Table: record.TableName{Schema: "app", Name: "t"}, Columns: []record.Column{{Name: "id", Key: true}, {Name: "v"}}},
		wm: &record.Relation{ID: 7, Table: postgres.WatermarkTable,
			Columns: []record.Column{{Name: "pipeline"}, {Name: "mark"}, {Name: "written_at"}}},
		pipeline: "p"}
}

func bfRow(id int, v string) []record.Value {
	return []record.Value{{Data: []byte(strconv.Itoa(id))}, {Data: []byte(v)}}
}

// update feeds a streamed update of row id by transaction xid.
func (f *bfFixture) update(xid uint32, id int) {
	f.t.Helper()
	ev := &postgres.Event{Kind: postgres.EventChange, Xid: xid, Record: record.Record{Op: record.Update, Rel: f.rel, New: bfRow(id, "new")}}
	if own, err := f.b.change(context.Background(), nil, ev); own || err != nil {
		f.t.Fatalf("change of xid %d: own %v, err %v", xid, own, err)
	}
}

// mark feeds the pipeline's watermark.
func (f *bfFixture) mark(m string) {
	f.t.Helper()
	ev := &postgres.Event{Kind: postgres.EventChange, Xid: 1, Record: record.Record{Op: record.Update, Rel: f.wm,
		New: []record.Value{{Data: []byte(f.pipeline)}, {Data: []byte(m)}, {Data: []byte("now")}}}}
	if own, err := f.b.change(context.Background(), nil, ev); !own || err != nil {
		f.t.Fatalf("watermark %s: own %v, err %v", m, own, err)
	}
}

// chunk publishes a chunk of rows 1..9 read at snap, as the worker does.
func (f *bfFixture) chunk(snap postgres.XidSnapshot) *bfChunk {
	c := newChunk("1/0/n/1", 42, []string{"id"})
	for id := 1; id <= 9; id++ {
		c.rows = append(c.rows, record.Record{Op: record.Insert, Rel: f.rel, New: bfRow(id, "old")})
	}
	c.snap, c.ready = snap, true
	f.b.cur.Store(c)
	return c
}

// The narrow stale-overwrite hole: transaction 100 updated row 5 and its
// commit was decoded (and applied at the sink) before the backfill even
// had a chunk; it was still in PostgreSQL's list of running transactions
// (waiting for a synchronous standby) when the chunk's snapshot was taken,
// so the chunk holds row 5's value from before it. Written, that older
// value would overwrite the newer one at the sink: the chunk must be read
// again. Without the transactions remembered independently of the chunk,
// keep returns row 5.
func TestBackfillStaleBeforeChunk(t *testing.T) {
	for _, tc := range []struct {
		name string
		snap postgres.XidSnapshot
	}{
		{"in xip", postgres.XidSnapshot{Xmin: 100, Xmax: 120, Xip: []uint32{100}}},
		// Not yet below xmax: no transaction after it had ended.
		{"at xmax", postgres.XidSnapshot{Xmin: 95, Xmax: 100, Xip: []uint32{95}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newBFFixture(t)
			f.update(100, 5) // decoded before the chunk's bookkeeping started
			c := f.chunk(tc.snap)
			f.mark(c.low)
			keep, err := c.keep()
			if !errors.Is(err, errChunkRetry) {
				t.Fatalf("keep: kept %d rows (%v), want errChunkRetry: the chunk's snapshot did not see transaction 100", len(keep), err)
			}
		})
	}

	// Once a snapshot sees transaction 100 (the horizon the worker reads
	// between chunks, or an earlier chunk's), it is forgotten, and a chunk
	// read at a snapshot that sees it is written whole.
	f := newBFFixture(t)
	f.update(100, 5)
	f.b.horizon.Store(&postgres.XidSnapshot{Xmin: 101, Xmax: 101})
	f.update(102, 6) // applies the horizon
	if got, _, _ := f.b.recent.of(42); len(got) != 1 || got[0] != 102 {
		t.Fatalf("after a horizon that sees 100: remembered %v, want [102]", got)
	}
	c := f.chunk(postgres.XidSnapshot{Xmin: 103, Xmax: 103})
	f.mark(c.low)
	keep, err := c.keep()
	if err != nil || len(keep) != 9 {
		t.Fatalf("keep with every transaction seen: %d rows (%v), want 9", len(keep), err)
	}

	// A running transaction that changed only another table does not
	// make the chunk read again.
	f = newBFFixture(t)
	other := &record.Relation{ID: 43, Table: record.TableName{Schema: "app", Name: "u"}, Columns: []record.Column{{Name: "id", Key: true}, {Name: "v"}}}
	ev := &postgres.Event{Kind: postgres.EventChange, Xid: 100, Record: record.Record{Op: record.Update, Rel: other, New: bfRow(1, "x")}}
	if _, err := f.b.change(context.Background(), nil, ev); err != nil {
		t.Fatal(err)
	}
	c = f.chunk(postgres.XidSnapshot{Xmin: 100, Xmax: 120, Xip: []uint32{100}})
	f.mark(c.low)
	if keep, err := c.keep(); err != nil || len(keep) != 9 {
		t.Fatalf("keep with another table's transaction running: %d rows (%v), want 9", len(keep), err)
	}
}

// The transactions remembered for chunks stay bounded: a lagging stream
// delivers a backlog the horizon already sees, and none of it is kept;
// past the limit everything is forgotten, and a chunk whose snapshot may
// have one of the forgotten transactions running is read again, until a
// horizon shows they all ended.
func TestBackfillRecentXidsBound(t *testing.T) {
	f := newBFFixture(t)
	// A backlog of 100,000 transactions behind a horizon that sees them
	// all: nothing remembered, and the chunk's list is empty.
	f.b.horizon.Store(&postgres.XidSnapshot{Xmin: 200_000, Xmax: 200_000})
	for x := uint32(1000); x < 101_000; x++ {
		f.update(x, int(x%9)+1)
	}
	if f.b.recent.n != 0 {
		t.Fatalf("remembered %d transactions of a backlog the horizon sees, want 0", f.b.recent.n)
	}
	c := f.chunk(postgres.XidSnapshot{Xmin: 200_000, Xmax: 200_001})
	f.mark(c.low)
	if len(c.before) != 0 || c.lost {
		t.Fatalf("chunk after the backlog: %d transactions, lost %v; want none", len(c.before), c.lost)
	}

	// Without a horizon, at most the limit; beyond it the forgotten are
	// accounted for.
	f = newBFFixture(t)
	f.b.recent = newRecentXids(8)
	for x := uint32(1000); x < 1100; x++ {
		f.update(x, 1)
		if f.b.recent.n > 8 {
			t.Fatalf("remembered %d transactions, limit 8", f.b.recent.n)
		}
	}
	c = f.chunk(postgres.XidSnapshot{Xmin: 1050, Xmax: 1200, Xip: []uint32{1050}})
	f.mark(c.low)
	if len(c.before) > 8 || !c.lost || c.lostHi < 1090 || c.lostHi >= 1100 {
		t.Fatalf("chunk: %d transactions, lost %v up to %d; want at most 8, lost up to 1090..1099", len(c.before), c.lost, c.lostHi)
	}
	if _, err := c.keep(); !errors.Is(err, errChunkRetry) {
		t.Fatalf("keep with a forgotten transaction (1050) possibly running: %v, want errChunkRetry", err)
	}
	// Every forgotten transaction had ended for this snapshot: written.
	c.snap = postgres.XidSnapshot{Xmin: 1200, Xmax: 1200}
	if keep, err := c.keep(); err != nil || len(keep) != 9 {
		t.Fatalf("keep once all ended: %d rows (%v), want 9", len(keep), err)
	}
	// A horizon past them clears the loss and the remembered.
	f.b.horizon.Store(&postgres.XidSnapshot{Xmin: 1200, Xmax: 1200})
	f.update(1300, 2)
	if f.b.recent.lost || f.b.recent.n != 1 {
		t.Fatalf("after a horizon past all: lost %v, %d remembered; want false, 1", f.b.recent.lost, f.b.recent.n)
	}
}

// Transaction ids compare modulo 2^32, as PostgreSQL's do, across the
// wrap of the 32 bits pgoutput sends.
func TestXidSnapshotWraps(t *testing.T) {
	hi := uint32(math.MaxUint32 - 5)
	s := postgres.XidSnapshot{Xmin: hi, Xmax: 10, Xip: []uint32{hi, 3}}
	for _, c := range []struct {
		xid  uint32
		sees bool
	}{{hi - 1, true}, {hi, false}, {hi + 2, true}, {3, false}, {4, true}, {10, false}, {11, false}} {
		if got := s.Sees(c.xid); got != c.sees {
			t.Errorf("Sees(%d) = %v, want %v", c.xid, got, c.sees)
		}
	}
	if !s.MayRunAtOrBefore(hi) || s.MayRunAtOrBefore(hi-1) || !s.MayRunAtOrBefore(20) {
		t.Error("MayRunAtOrBefore across the wrap")
	}
}

// A chunk is written at its high mark only as the stream stands there:
// DDL on its table (or a partitioned table above it) streamed while the
// chunk was current makes it read again; DDL on another table does not,
// but raises the count the worker checks before it publishes a chunk; a
// table the run does not replicate fails the request; an object
// condition other than the one the chunk was read with reads it again.
func TestBackfillChunkCurrent(t *testing.T) {
	f := newBFFixture(t)
	ddlLog := &record.Relation{ID: 8, Table: postgres.DDLLogTable, Columns: []record.Column{{Name: "id"}, {Name: "tag"}, {Name: "relid"}}}
	ddl := func(relid uint32) {
		t.Helper()
		ev := &postgres.Event{Kind: postgres.EventChange, Xid: 300, Record: record.Record{Op: record.Insert, Rel: ddlLog,
			New: []record.Value{{Data: []byte("1")}, {Data: []byte("ALTER TABLE")}, {Data: []byte(strconv.Itoa(int(relid)))}}}}
		if own, err := f.b.change(context.Background(), nil, ev); own || err != nil {
			t.Fatalf("DDL event: own %v, err %v", own, err)
		}
	}
	c := f.chunk(postgres.XidSnapshot{Xmin: 1, Xmax: 1})
	// Without DDL capture the run replicates only the tables it started
	// with: a chunk of another (created in a selected schema since) would
	// fail in the stream again and again.
	if err := f.b.current(c); err == nil || errors.Is(err, errChunkRetry) || !isPermanent(err) {
		t.Fatalf("current for a table the run did not start with, DDL capture off: %v, want a permanent error", err)
	}
	f.b.initial[42] = true
	c.ancestors = []uint32{40}
	ddl(43)
	if c.ddl || f.b.ddlGen.Load() != 1 {
		t.Fatalf("DDL on another table: chunk marked %v, count %d; want false, 1", c.ddl, f.b.ddlGen.Load())
	}
	if err := f.b.current(c); err != nil {
		t.Fatalf("current after DDL on another table: %v", err)
	}
	ddl(40)
	if err := f.b.current(c); !errors.Is(err, errChunkRetry) {
		t.Fatalf("current after DDL on the partitioned table above: %v, want errChunkRetry", err)
	}
	c = f.chunk(postgres.XidSnapshot{Xmin: 1, Xmax: 1})
	ddl(42)
	if err := f.b.current(c); !errors.Is(err, errChunkRetry) {
		t.Fatalf("current after DDL on the table: %v, want errChunkRetry", err)
	}

	c = f.chunk(postgres.XidSnapshot{Xmin: 1, Xmax: 1})
	f.b.r.ddl = &ddlRun{tables: map[uint32]*postgres.ApplyTable{43: {}}}
	if err := f.b.current(c); err == nil || errors.Is(err, errChunkRetry) || !isPermanent(err) {
		t.Fatalf("current for a table the run does not replicate: %v, want a permanent error", err)
	}
	f.b.r.ddl.tables[42] = &postgres.ApplyTable{}
	f.b.r.mapping = &mapping{opts: map[uint32]*tableOptions{}}
	if err := f.b.current(c); err != nil {
		t.Fatalf("current for a replicated table: %v", err)
	}
	c.filter = `"v" <> 'x'` // read with a condition the stream no longer applies
	if err := f.b.current(c); !errors.Is(err, errChunkRetry) {
		t.Fatalf("current with another object condition: %v, want errChunkRetry", err)
	}
}
