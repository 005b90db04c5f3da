package postgres

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
)

func TestArrayParam(t *testing.T) {
	recs := []*record.Record{
		{New: []record.Value{{Data: []byte(`plain`)}}},
		{New: []record.Value{{Null: true}}},
		{New: []record.Value{{Data: []byte(`q"uote\back{,}`)}}},
		{New: []record.Value{{Data: []byte{}}}},
		{New: []record.Value{{Data: []byte(`NULL`)}}},
	}
	got := string(arrayParam(recs, 0))
	want := `{"plain",NULL,"q\"uote\\back{,}","","NULL"}`
	if got != want {
		t.Errorf("arrayParam = %s, want %s", got, want)
	}
}

func TestRunKey(t *testing.T) {
	rel := &record.Relation{Columns: []record.Column{{Name: "a"}, {Name: "b"}, {Name: "v"}}}
	tbl := &ApplyTable{Key: []string{"a", "b"}}
	key := func(a, b *string) string {
		val := func(s *string) record.Value {
			if s == nil {
				return record.Value{Null: true}
			}
			return record.Value{Data: []byte(*s)}
		}
		return runKey(tbl, &record.Record{Rel: rel, New: []record.Value{val(a), val(b), {Data: []byte("x")}}})
	}
	if key(str("a"), str("bc")) == key(str("ab"), str("c")) {
		t.Error(`keys ("a","bc") and ("ab","c") collide`)
	}
	if key(str(""), str("x")) == key(nil, str("x")) {
		t.Error("an empty value and NULL collide")
	}
	if key(str("1"), str("2")) != key(str("1"), str("2")) {
		t.Error("equal keys differ")
	}
}

func TestDecodeChangeMalformed(t *testing.T) {
	s := &Stream{rels: map[uint32]*record.Relation{}}
	if _, _, err := s.decode(msgRelation(7, "public", "t", "id", "v")); err != nil {
		t.Fatal(err)
	}
	for name, msg := range map[string][]byte{
		"trailing bytes":     append(msgInsert(7, str("1"), str("x")), 'z'),
		"insert without N":   {'I', 0, 0, 0, 7, 'O', 0, 0},
		"delete without key": {'D', 0, 0, 0, 7, 'N', 0, 0},
		"short length":       {'I', 0, 0, 0, 7, 'N', 0, 1, 't', 0, 0, 0, 9, 'a'},
		"unknown kind":       {'I', 0, 0, 0, 7, 'N', 0, 1, 'q'},
		"too short":          {'U', 0, 0, 0},
	} {
		if _, ok, err := s.decode(msg); err == nil || ok || !strings.Contains(err.Error(), "malformed pgoutput message") {
			t.Errorf("%s: ok %v, err %v; want a malformed-message error", name, ok, err)
		}
	}
}
