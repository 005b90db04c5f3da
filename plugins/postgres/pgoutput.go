package postgres

// A decoder of pgoutput's row-change messages (insert, update, delete:
// nearly every message of a busy stream) straight into record values. The
// message is copied once, out of the connection's buffer, and every value
// is a slice of that copy: no per-column allocation, no intermediate
// message structs. The formats (protocol version 1, "Logical Replication
// Message Formats" in PostgreSQL's documentation):
//
//	Insert: 'I', relation OID (uint32), 'N', tuple
//	Update: 'U', relation OID, optionally 'K' or 'O' and the old tuple, 'N', tuple
//	Delete: 'D', relation OID, 'K' or 'O', tuple
//	tuple:  column count (uint16), per column 'n' (NULL), 'u' (unchanged
//	        TOASTed value), or 't'/'b', a length (uint32) and that many bytes
//
// Every length is checked against the message before it is used.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/engine/record"
)

// decodeChange decodes an insert, update or delete message.
func (s *Stream) decodeChange(msg []byte) (Event, error) {
	if len(msg) < 6 {
		return Event{}, fmt.Errorf("malformed pgoutput message %q (%d bytes): truncated before its tuple", msg[0], len(msg))
	}
	// Values alias this copy, not the connection's buffer.
	data := append([]byte(nil), msg...)
	rel, err := s.relation(binary.BigEndian.Uint32(data[1:]))
	if err != nil {
		return Event{}, err
	}
	off := 5
	r := record.Record{Rel: rel}
	switch data[0] {
	case 'I':
		r.Op = record.Insert
		if data[off] != 'N' {
			return Event{}, malformed(data, fmt.Errorf("insert: tuple marker %q, want 'N'", data[off]))
		}
		if r.New, off, err = decodeTuple(data, off+1); err != nil {
			return Event{}, malformed(data, err)
		}
	case 'U':
		r.Op = record.Update
		if data[off] == 'K' || data[off] == 'O' {
			if r.Old, off, err = decodeTuple(data, off+1); err != nil {
				return Event{}, malformed(data, err)
			}
			if off >= len(data) {
				return Event{}, malformed(data, errors.New("update: truncated before its new tuple"))
			}
		}
		if data[off] != 'N' {
			return Event{}, malformed(data, fmt.Errorf("update: tuple marker %q, want 'N'", data[off]))
		}
		if r.New, off, err = decodeTuple(data, off+1); err != nil {
			return Event{}, malformed(data, err)
		}
	case 'D':
		r.Op = record.Delete
		if data[off] != 'K' && data[off] != 'O' {
			return Event{}, malformed(data, fmt.Errorf("delete: tuple marker %q, want 'K' or 'O'", data[off]))
		}
		if r.Old, off, err = decodeTuple(data, off+1); err != nil {
			return Event{}, malformed(data, err)
		}
	}
	if off != len(data) {
		return Event{}, malformed(data, fmt.Errorf("%d bytes after the last tuple", len(data)-off))
	}
	return s.change(r), nil
}

func malformed(data []byte, err error) error {
	return fmt.Errorf("malformed pgoutput message %q (%d bytes): %w", data[0], len(data), err)
}

// decodeTuple decodes the tuple at data[off:] and returns its values (slices
// of data) and the offset just past it.
func decodeTuple(data []byte, off int) ([]record.Value, int, error) {
	if off+2 > len(data) {
		return nil, 0, errors.New("truncated column count")
	}
	n := int(binary.BigEndian.Uint16(data[off:]))
	off += 2
	vals := make([]record.Value, n)
	for i := range vals {
		if off >= len(data) {
			return nil, 0, fmt.Errorf("truncated at column %d of %d", i+1, n)
		}
		kind := data[off]
		off++
		switch kind {
		case 'n':
			vals[i].Null = true
		case 'u':
			vals[i].Unchanged = true
		case 't', 'b':
			if off+4 > len(data) {
				return nil, 0, fmt.Errorf("truncated length of column %d", i+1)
			}
			l := int(binary.BigEndian.Uint32(data[off:]))
			off += 4
			if l < 0 || l > len(data)-off {
				return nil, 0, fmt.Errorf("column %d declares %d bytes but %d remain", i+1, l, len(data)-off)
			}
			vals[i].Data = data[off : off+l : off+l]
			off += l
		default:
			return nil, 0, fmt.Errorf("unknown column kind %q in column %d", kind, i+1)
		}
	}
	return vals, off, nil
}
