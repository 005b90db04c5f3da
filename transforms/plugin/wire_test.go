package plugin

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
)

func testRel(name string) *record.Relation {
	return &record.Relation{ID: 16384, Table: record.TableName{Schema: "public", Name: name}, Columns: []record.Column{
		{Name: "id", TypeOID: 23, TypeName: "integer", Key: true},
		{Name: "email", TypeOID: 25, TypeName: "text"},
		{Name: "blob", TypeOID: 17, TypeName: "bytea"},
	}}
}

func testBatch(a, b *record.Relation) *record.Batch {
	return &record.Batch{End: 0x1_0000_0042, Bytes: 99, Records: []record.Record{
		{Op: record.Insert, Rel: a, Format: record.Text, Position: 7,
			New: []record.Value{{Data: []byte("1")}, {Data: []byte("j@example.com")}, {Null: true}}},
		{Op: record.Update, Rel: b, Format: record.Binary, Position: 8,
			New: []record.Value{{Data: []byte{0, 0, 0, 2}}, {Data: []byte{}}, {Unchanged: true}},
			Old: []record.Value{{Data: []byte{0, 0, 0, 2}}, {Null: true}, {Null: true}}},
		{Op: record.Delete, Rel: a, Format: record.Text, Position: 9,
			Old: []record.Value{{Data: []byte("3")}, {Null: true}, {Null: true}}},
		{Op: record.DDL, DDL: "ALTER TABLE a ADD COLUMN x int", Position: 9},
	}}
}

func TestWireRoundTrip(t *testing.T) {
	a, b := testRel("a"), testRel("b")
	in := testBatch(a, b)
	req, rels := encodeBatch(in, nil)
	if len(rels) != 2 || rels[0] != a || rels[1] != b {
		t.Fatalf("request relations %v", rels)
	}
	// The plugin side.
	d, err := decodeFrame(req, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.kind != kindBatch || len(d.rels) != 2 {
		t.Fatalf("decoded kind %d with %d relations", d.kind, len(d.rels))
	}
	if !reflect.DeepEqual(d.batch, in) {
		t.Fatalf("request round trip:\n got %+v\nwant %+v", d.batch, in)
	}
	if d.batch.Records[1].New[1].Data == nil {
		t.Fatal("an empty value came back as nil")
	}
	if d.batch.Records[0].Rel != d.batch.Records[2].Rel {
		t.Fatal("records of one relation got different pointers")
	}

	// The plugin keeps a, replaces b with a new shape, drops the delete.
	rcv := newReceived(d.rels)
	out := d.batch
	nb := *out.Records[1].Rel
	nb.Table.Name = "b_masked"
	out.Records[1].Rel = &nb
	out.Records[0].New[1].Data = []byte("j***@example.com")
	out.Records = append(out.Records[:2], out.Records[3])
	resp, _ := encodeBatch(out, rcv)

	// The host side.
	cache := relCache{}
	got, err := decodeFrame(resp, rels, cache)
	if err != nil {
		t.Fatal(err)
	}
	if got.batch.Records[0].Rel != a {
		t.Error("an unchanged relation did not come back as the host's pointer")
	}
	if r := got.batch.Records[1].Rel; r == b || r.Table.Name != "b_masked" {
		t.Errorf("replaced relation came back as %+v", r)
	}
	if v := string(got.batch.Records[0].New[1].Data); v != "j***@example.com" {
		t.Errorf("changed value %q", v)
	}
	if len(got.batch.Records) != 3 || got.batch.Records[2].DDL == "" {
		t.Errorf("records %+v", got.batch.Records)
	}
	if err := validate(got.batch); err != nil {
		t.Error(err)
	}

	// The same new shape in the next response is the same pointer.
	again, err := decodeFrame(resp, rels, cache)
	if err != nil {
		t.Fatal(err)
	}
	if again.batch.Records[1].Rel != got.batch.Records[1].Rel {
		t.Error("a replaced relation got a new pointer in the next batch")
	}
}

func TestWireRelationChangedInPlaceIsSentWhole(t *testing.T) {
	a := testRel("a")
	req, rels := encodeBatch(&record.Batch{Records: []record.Record{{Op: record.Insert, Rel: a, New: make([]record.Value, 3)}}}, nil)
	d, err := decodeFrame(req, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv := newReceived(d.rels)
	d.rels[0].Columns[1].Name = "mail" // against the contract
	resp, _ := encodeBatch(d.batch, rcv)
	got, err := decodeFrame(resp, rels, relCache{})
	if err != nil {
		t.Fatal(err)
	}
	if r := got.batch.Records[0].Rel; r == a || r.Columns[1].Name != "mail" {
		t.Errorf("relation changed in place came back as %+v", r)
	}
	if a.Columns[1].Name != "email" {
		t.Error("the host's relation was changed")
	}
}

func TestWireError(t *testing.T) {
	d, err := decodeFrame(encodeError("no: bad card"), nil, nil)
	if err != nil || d.kind != kindError || d.msg != "no: bad card" {
		t.Fatalf("got %+v, %v", d, err)
	}
}

func TestWireMalformed(t *testing.T) {
	req, _ := encodeBatch(testBatch(testRel("a"), testRel("b")), nil)
	for n := range len(req) {
		if _, err := decodeFrame(req[:n], nil, nil); err == nil {
			t.Fatalf("truncated at %d of %d: no error", n, len(req))
		}
	}
	if _, err := decodeFrame(append(req, 0), nil, nil); err == nil || !strings.Contains(err.Error(), "left over") {
		t.Errorf("trailing byte: %v", err)
	}
	bad := append([]byte{9}, req[1:]...)
	if _, err := decodeFrame(bad, nil, nil); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("wrong version: %v", err)
	}
}

func TestValidate(t *testing.T) {
	a := testRel("a")
	for name, r := range map[string]record.Record{
		"short row":   {Op: record.Insert, Rel: a, New: make([]record.Value, 2)},
		"no relation": {Op: record.Insert, New: []record.Value{{Data: []byte("x")}}},
		"bad op":      {Op: 0, Rel: a},
		"empty value": {Op: record.Insert, Rel: a, New: []record.Value{{Data: []byte("1")}, {}, {Null: true}}},
		"short old":   {Op: record.Delete, Rel: a, Old: make([]record.Value, 1)},
	} {
		if err := validate(&record.Batch{Records: []record.Record{r}}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	a := testRel("a")
	req, _ := encodeBatch(testBatch(a, testRel("b")), nil)
	f.Add(req)
	f.Add(encodeError("x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decodeFrame(data, []*record.Relation{a}, relCache{})
		if err == nil && d.batch != nil {
			_ = validate(d.batch)
		}
	})
}

func BenchmarkWire(b *testing.B) {
	batch := benchBatch(1000)
	b.ReportAllocs()
	for b.Loop() {
		req, rels := encodeBatch(batch, nil)
		d, err := decodeFrame(req, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		resp, _ := encodeBatch(d.batch, newReceived(d.rels))
		if _, err := decodeFrame(resp, rels, relCache{}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchBatch(n int) *record.Batch {
	rel := &record.Relation{ID: 1, Table: record.TableName{Schema: "public", Name: "t"}}
	for i := range 8 {
		rel.Columns = append(rel.Columns, record.Column{Name: string(rune('a' + i)), TypeOID: 25, TypeName: "text"})
	}
	b := &record.Batch{}
	for i := range n {
		vals := make([]record.Value, 8)
		for j := range vals {
			vals[j].Data = []byte(strings.Repeat("x", 20+i%7+j))
		}
		b.Records = append(b.Records, record.Record{Op: record.Insert, Rel: rel, New: vals})
	}
	return b
}
