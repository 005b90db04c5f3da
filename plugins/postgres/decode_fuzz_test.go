package postgres

import (
	"encoding/binary"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
)

// pgoutput message builders for seeds (protocol version 1).
func msgRelation(id uint32, ns, name string, cols ...string) []byte {
	b := []byte{'R'}
	b = binary.BigEndian.AppendUint32(b, id)
	b = append(append(b, ns...), 0)
	b = append(append(b, name...), 0)
	b = append(b, 'd')
	b = binary.BigEndian.AppendUint16(b, uint16(len(cols)))
	for i, c := range cols {
		b = append(b, byte(i&1))
		b = append(append(b, c...), 0)
		b = binary.BigEndian.AppendUint32(b, 25)
		b = binary.BigEndian.AppendUint32(b, 0xffffffff)
	}
	return b
}

func tuple(vals ...*string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(vals)))
	for _, v := range vals {
		switch {
		case v == nil:
			b = append(b, 'n')
		case *v == "\x00unchanged":
			b = append(b, 'u')
		default:
			b = append(b, 't')
			b = binary.BigEndian.AppendUint32(b, uint32(len(*v)))
			b = append(b, *v...)
		}
	}
	return b
}

func str(s string) *string { return &s }

func msgInsert(id uint32, vals ...*string) []byte {
	b := []byte{'I'}
	b = binary.BigEndian.AppendUint32(b, id)
	return append(append(b, 'N'), tuple(vals...)...)
}

func msgUpdate(id uint32, old, new []*string) []byte {
	b := []byte{'U'}
	b = binary.BigEndian.AppendUint32(b, id)
	if old != nil {
		b = append(append(b, 'O'), tuple(old...)...)
	}
	return append(append(b, 'N'), tuple(new...)...)
}

func msgBegin(lsn uint64, xid uint32) []byte {
	b := []byte{'B'}
	b = binary.BigEndian.AppendUint64(b, lsn)
	b = binary.BigEndian.AppendUint64(b, 0)
	return binary.BigEndian.AppendUint32(b, xid)
}

func msgCommit(lsn, end uint64) []byte {
	b := []byte{'C', 0}
	b = binary.BigEndian.AppendUint64(b, lsn)
	b = binary.BigEndian.AppendUint64(b, end)
	return binary.BigEndian.AppendUint64(b, 0)
}

func TestDecodeMessages(t *testing.T) {
	s := &Stream{rels: map[uint32]*record.Relation{}}
	if _, ok, err := s.decode(msgRelation(7, "public", "t", "id", "big")); err != nil || ok {
		t.Fatalf("relation: ok %v err %v", ok, err)
	}
	ev, ok, err := s.decode(msgBegin(100, 9))
	if err != nil || !ok || ev.Kind != EventBegin || ev.CommitLSN != 100 || ev.Xid != 9 {
		t.Fatalf("begin: %+v %v %v", ev, ok, err)
	}
	ev, ok, err = s.decode(msgUpdate(7, []*string{str("1"), str("old")}, []*string{str("1"), str("\x00unchanged")}))
	if err != nil || !ok || ev.Kind != EventChange {
		t.Fatalf("update: %+v %v %v", ev, ok, err)
	}
	r := ev.Record
	if r.Op != record.Update || r.Position != 100 || r.Rel.Table.Name != "t" || string(r.Old[1].Data) != "old" || !r.New[1].Unchanged || string(r.New[0].Data) != "1" {
		t.Fatalf("update decoded wrong: %+v", r)
	}
	ev, _, err = s.decode(msgInsert(7, str("2"), nil))
	if err != nil || !ev.Record.New[1].Null {
		t.Fatalf("insert with NULL: %+v %v", ev.Record, err)
	}
	ev, _, err = s.decode(msgCommit(100, 120))
	if err != nil || ev.Kind != EventCommit || ev.EndLSN != 120 {
		t.Fatalf("commit: %+v %v", ev, err)
	}
	if _, _, err := s.decode(msgInsert(8, str("x"))); err == nil {
		t.Error("a change for an undescribed relation was accepted")
	}
}

// FuzzDecode feeds arbitrary pgoutput messages to the decoder after a
// valid relation description: it must never panic, and every change it
// accepts has its values copied out of the input buffer.
func FuzzDecode(f *testing.F) {
	f.Add(msgBegin(1, 1))
	f.Add(msgInsert(7, str("1"), str("x")))
	f.Add(msgInsert(7, str("1")))
	f.Add(msgUpdate(7, []*string{str("1"), nil}, []*string{str("2"), str("\x00unchanged")}))
	f.Add(msgCommit(1, 2))
	f.Add(msgRelation(8, "s", "u", "a"))
	f.Add([]byte{'T', 0, 0, 0, 1, 0, 0, 0, 0, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &Stream{rels: map[uint32]*record.Relation{}}
		if _, _, err := s.decode(msgRelation(7, "public", "t", "id", "v")); err != nil {
			t.Fatal(err)
		}
		buf := append([]byte(nil), data...)
		ev, ok, err := s.decode(buf)
		if err != nil || !ok || ev.Kind != EventChange {
			return
		}
		var before []string
		for _, v := range ev.Record.New {
			before = append(before, string(v.Data))
		}
		for i := range buf {
			buf[i] ^= 0xff // the decoder must not alias the input
		}
		for i, v := range ev.Record.New {
			if string(v.Data) != before[i] {
				t.Fatal("decoded values alias the input buffer")
			}
		}
	})
}
