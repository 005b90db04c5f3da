package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// The stream loop's side of the watermark method, without databases: keys
// changed between the marks leave the chunk, a TRUNCATE in the window
// voids it, a transaction that changed the table before the low mark and
// that the chunk's snapshot saw in progress makes it read again, and only
// the pipeline's own marks count.
func TestBackfillWindow(t *testing.T) {
	rel := &record.Relation{ID: 42, Table: record.TableName{Schema: "app", Name: "t"},
		Columns: []record.Column{{Name: "id", Key: true}, {Name: "v"}}}
	other := &record.Relation{ID: 43, Table: record.TableName{Schema: "app", Name: "u"},
		Columns: []record.Column{{Name: "id", Key: true}}}
	wm := &record.Relation{ID: 7, Table: postgres.WatermarkTable,
		Columns: []record.Column{{Name: "pipeline"}, {Name: "mark"}, {Name: "written_at"}}}
	val := func(s string) record.Value { return record.Value{Data: []byte(s)} }
	row := func(id int) []record.Value { return []record.Value{val(strconv.Itoa(id)), val("v")} }
	change := func(xid uint32, r *record.Relation, op record.Op, old, new []record.Value) *postgres.Event {
		return &postgres.Event{Kind: postgres.EventChange, Xid: xid, Record: record.Record{Op: op, Rel: r, Old: old, New: new}}
	}
	mark := func(pipeline, m string) *postgres.Event {
		return change(1, wm, record.Update, nil, []record.Value{val(pipeline), val(m), val("now")})
	}
	newB := func() (*backfiller, *bfChunk) {
		b := newBackfiller(&runner{cfg: Config{Name: "p"}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
		c := newChunk("1/0/n/1", 42, []string{"id"})
		for id := 1; id <= 9; id++ {
			c.rows = append(c.rows, record.Record{Op: record.Insert, Rel: rel, New: row(id)})
		}
		c.ready = true
		b.cur.Store(c)
		return b, c
	}
	feed := func(b *backfiller, evs ...*postgres.Event) {
		t.Helper()
		for _, ev := range evs {
			own, err := b.change(context.Background(), nil, ev)
			if err != nil {
				t.Fatal(err)
			}
			if want := ev.Record.Rel == wm; own != want {
				t.Fatalf("change on %s: own = %v, want %v", ev.Record.Rel.Table, own, want)
			}
		}
	}
	ids := func(recs []*record.Record) []string {
		var out []string
		for _, r := range recs {
			out = append(out, string(r.New[0].Data))
		}
		return out
	}

	b, c := newB()
	feed(b,
		change(100, rel, record.Update, nil, row(1)), // before the low mark: not dropped
		mark("other", c.low),                         // another pipeline's mark
		change(101, rel, record.Update, nil, row(2)),
		mark("p", c.low),
		change(102, rel, record.Update, nil, row(5)),
		change(102, rel, record.Delete, row(6), nil),
		change(103, rel, record.Update, row(7), row(70)), // re-keyed
		change(103, other, record.Update, nil, row(3)),   // another table
	)
	if !c.inWindow {
		t.Fatal("the low mark did not open the window")
	}
	c.snap = postgres.XidSnapshot{Xmin: 90, Xmax: 600, Xip: []uint32{555}}
	keep, err := c.keep()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(keep), []string{"1", "2", "3", "4", "8", "9"}; !equalStrings(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}

	c.snap.Xip = []uint32{555, 101} // changed the table before the low mark, in progress for the chunk's read
	if _, err := c.keep(); !errors.Is(err, errChunkRetry) {
		t.Errorf("keep with an overlapping in-progress transaction: %v, want errChunkRetry", err)
	}

	b, c = newB()
	feed(b, mark("p", c.low))
	b.truncate(&postgres.Event{Kind: postgres.EventTruncate, Xid: 200, Truncated: []*record.Relation{rel}})
	if keep, err := c.keep(); err != nil || len(keep) != 0 {
		t.Errorf("after a TRUNCATE in the window: kept %v (%v), want nothing", ids(keep), err)
	}

	b, c = newB()
	c.ready = false
	if _, err := c.keep(); err == nil {
		t.Error("keep before the chunk was read: want an error")
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
