package plugin

// The batch message. gRPC carries it as an opaque frame (see codec.go); this
// file is its layout, written and read without reflection or a code
// generator. All integers are unsigned varints unless noted; a string or a
// byte string is its length then its bytes.
//
//	frame    = version(1 byte, =1) kind(1 byte) body
//	kind 1   = a batch: the request, or a successful response
//	kind 2   = an error: string message (the plugin's own words)
//	batch    = end bytes(signed varint) nrels relation* nrecs record*
//	relation = 0 index       -- the request's relation number index,
//	                            unchanged (responses only)
//	         | 1 id schema name ncols column*
//	column   = name typeOID typeName key(1 byte)
//	record   = op(1 byte) format(1 byte) rel position ddl values(new) values(old)
//	rel      = 0 (no relation) | 1 + the relation's number in this frame
//	values   = 0 (nil) | 1 + n, then n times: flags(1 byte) [data]
//	flags    = 1 null | 2 unchanged | 4 data follows
//
// Relations travel once per frame; records refer to them by number. A
// response refers to a relation of the request by its number when the
// plugin kept it as it was, so the host gives the engine back the very
// pointer it sent (see Transform.Process's contract).

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/engine/record"
)

const wireVersion = 1

const (
	kindBatch byte = 1
	kindError byte = 2
)

const (
	relRef  byte = 0
	relFull byte = 1
)

const (
	flagNull      byte = 1
	flagUnchanged byte = 2
	flagData      byte = 4
)

// encodeError returns an error frame carrying msg.
func encodeError(msg string) []byte {
	buf := make([]byte, 0, 2+binary.MaxVarintLen64+len(msg))
	buf = append(buf, wireVersion, kindError)
	return appendString(buf, msg)
}

// relTable numbers the relations of one frame as they are met.
type relTable struct {
	num  map[*record.Relation]int
	rels []*record.Relation
}

func (t *relTable) add(r *record.Relation) int {
	if n, ok := t.num[r]; ok {
		return n
	}
	if t.num == nil {
		t.num = map[*record.Relation]int{}
	}
	t.num[r] = len(t.rels)
	t.rels = append(t.rels, r)
	return len(t.rels) - 1
}

// encodeBatch returns a batch frame for b and its relations in the order
// the frame numbers them. req, when set, lists the relations of the request
// being answered with copies of them as they arrived: a relation of the
// request that is still equal to its copy is sent as a reference.
func encodeBatch(b *record.Batch, req *received) ([]byte, []*record.Relation) {
	var rels relTable
	size := 2 + 2*binary.MaxVarintLen64
	for i := range b.Records {
		r := &b.Records[i]
		if r.Rel != nil {
			rels.add(r.Rel)
		}
		size += 4 + 2*binary.MaxVarintLen64 + len(r.DDL) + valuesSize(r.New) + valuesSize(r.Old)
	}
	for _, rel := range rels.rels {
		size += 16 + len(rel.Table.Schema) + len(rel.Table.Name)
		for _, c := range rel.Columns {
			size += 16 + len(c.Name) + len(c.TypeName)
		}
	}
	buf := make([]byte, 0, size)
	buf = append(buf, wireVersion, kindBatch)
	buf = binary.AppendUvarint(buf, uint64(b.End))
	buf = binary.AppendVarint(buf, b.Bytes)
	buf = binary.AppendUvarint(buf, uint64(len(rels.rels)))
	for _, rel := range rels.rels {
		if n, ok := req.unchanged(rel); ok {
			buf = append(buf, relRef)
			buf = binary.AppendUvarint(buf, uint64(n))
			continue
		}
		buf = append(buf, relFull)
		buf = appendRelation(buf, rel)
	}
	buf = binary.AppendUvarint(buf, uint64(len(b.Records)))
	for i := range b.Records {
		r := &b.Records[i]
		buf = append(buf, byte(r.Op), byte(r.Format))
		if r.Rel == nil {
			buf = append(buf, 0)
		} else {
			buf = binary.AppendUvarint(buf, uint64(rels.num[r.Rel]+1))
		}
		buf = binary.AppendUvarint(buf, uint64(r.Position))
		buf = appendString(buf, r.DDL)
		buf = appendValues(buf, r.New)
		buf = appendValues(buf, r.Old)
	}
	return buf, rels.rels
}

func valuesSize(vs []record.Value) int {
	n := binary.MaxVarintLen64
	for i := range vs {
		n += 1 + binary.MaxVarintLen32 + len(vs[i].Data)
	}
	return n
}

func appendRelation(buf []byte, rel *record.Relation) []byte {
	buf = binary.AppendUvarint(buf, uint64(rel.ID))
	buf = appendString(buf, rel.Table.Schema)
	buf = appendString(buf, rel.Table.Name)
	buf = binary.AppendUvarint(buf, uint64(len(rel.Columns)))
	for _, c := range rel.Columns {
		buf = appendString(buf, c.Name)
		buf = binary.AppendUvarint(buf, uint64(c.TypeOID))
		buf = appendString(buf, c.TypeName)
		if c.Key {
			buf = append(buf, 1)
		} else {
			buf = append(buf, 0)
		}
	}
	return buf
}

func appendValues(buf []byte, vs []record.Value) []byte {
	if vs == nil {
		return append(buf, 0)
	}
	buf = binary.AppendUvarint(buf, uint64(len(vs))+1)
	for i := range vs {
		v := &vs[i]
		var f byte
		if v.Null {
			f |= flagNull
		}
		if v.Unchanged {
			f |= flagUnchanged
		}
		if v.Data != nil {
			f |= flagData
		}
		buf = append(buf, f)
		if v.Data != nil {
			buf = binary.AppendUvarint(buf, uint64(len(v.Data)))
			buf = append(buf, v.Data...)
		}
	}
	return buf
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// received is what the plugin side keeps of a request to answer it: the
// relations it decoded, and copies of them to notice a plugin that changed
// one in place against the contract (it is then sent whole).
type received struct {
	num      map[*record.Relation]int
	pristine []record.Relation
}

func newReceived(rels []*record.Relation) *received {
	r := &received{num: make(map[*record.Relation]int, len(rels)), pristine: make([]record.Relation, len(rels))}
	for i, rel := range rels {
		r.num[rel] = i
		r.pristine[i] = *rel
		r.pristine[i].Columns = append([]record.Column(nil), rel.Columns...)
	}
	return r
}

func (r *received) unchanged(rel *record.Relation) (int, bool) {
	if r == nil {
		return 0, false
	}
	n, ok := r.num[rel]
	if !ok {
		return 0, false
	}
	p := &r.pristine[n]
	if rel.ID != p.ID || rel.Table != p.Table || len(rel.Columns) != len(p.Columns) {
		return 0, false
	}
	for i := range rel.Columns {
		if rel.Columns[i] != p.Columns[i] {
			return 0, false
		}
	}
	return n, true
}

// relCache gives the same pointer for the same relation sent whole by a
// plugin in successive responses, so a plugin that reshapes a table
// replaces its relation consistently across batches. Keys are the
// relation's encoded bytes. It is bounded: past maxCachedRelations it
// starts over.
type relCache map[string]*record.Relation

const maxCachedRelations = 4096

// errMalformed is wrapped by every decoding error.
var errMalformed = errors.New("malformed batch message")

// decoded is one frame read back.
type decoded struct {
	kind  byte
	msg   string // kindError
	batch *record.Batch
	rels  []*record.Relation // the frame's relations, in order
}

// decodeFrame reads a frame. Values of the batch are sub-slices of data,
// which the caller must not reuse. req lists the request's relations for
// references in a response (nil when decoding a request, which has none);
// cache, when set, maps relations sent whole to stable pointers.
func decodeFrame(data []byte, req []*record.Relation, cache relCache) (*decoded, error) {
	d := &decoder{b: data}
	if v := d.byte(); d.err == nil && v != wireVersion {
		return nil, fmt.Errorf("%w: version %d, want %d (plugin and host built with different SDKs?)", errMalformed, v, wireVersion)
	}
	out := &decoded{kind: d.byte()}
	switch out.kind {
	case kindError:
		out.msg = d.str()
	case kindBatch:
		out.batch, out.rels = d.batch(req, cache)
	default:
		if d.err == nil {
			d.fail("unknown kind %d", out.kind)
		}
	}
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d bytes left over", len(d.b)-d.off)
	}
	if d.err != nil {
		return nil, d.err
	}
	return out, nil
}

type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w at byte %d: %s", errMalformed, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated")
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) uint32() uint32 {
	v := d.uvarint()
	if v > 1<<32-1 {
		d.fail("%d does not fit 32 bits", v)
		return 0
	}
	return uint32(v)
}

// count reads a count of items that take at least min bytes each, so a
// corrupt count cannot make the decoder allocate more than the frame holds.
func (d *decoder) count(min int) int {
	v := d.uvarint()
	if d.err == nil && v > uint64(len(d.b)-d.off)/uint64(min) {
		d.fail("count %d exceeds the frame", v)
		return 0
	}
	return int(v)
}

// bytes returns the next byte string as a sub-slice of the frame, its
// capacity capped so that appending to it cannot overwrite what follows.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("length %d exceeds the frame", n)
		return nil
	}
	end := d.off + int(n)
	s := d.b[d.off:end:end]
	d.off = end
	return s
}

func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) batch(req []*record.Relation, cache relCache) (*record.Batch, []*record.Relation) {
	b := &record.Batch{End: record.LSN(d.uvarint()), Bytes: d.varint()}
	nrels := d.count(2)
	rels := make([]*record.Relation, 0, nrels)
	for i := 0; i < nrels && d.err == nil; i++ {
		switch tag := d.byte(); tag {
		case relRef:
			n := d.uvarint()
			if d.err == nil && n >= uint64(len(req)) {
				d.fail("relation reference %d: the request has %d relations", n, len(req))
			}
			if d.err == nil {
				rels = append(rels, req[n])
			}
		case relFull:
			start := d.off
			rel := d.relation()
			if d.err != nil {
				break
			}
			if cache != nil {
				key := string(d.b[start:d.off])
				if c, ok := cache[key]; ok {
					rel = c
				} else {
					if len(cache) >= maxCachedRelations {
						clear(cache)
					}
					cache[key] = rel
				}
			}
			rels = append(rels, rel)
		default:
			d.fail("relation tag %d", tag)
		}
	}
	nrecs := d.count(6)
	if d.err != nil {
		return nil, nil
	}
	b.Records = make([]record.Record, nrecs)
	var slab []record.Value
	for i := range b.Records {
		if d.err != nil {
			break
		}
		r := &b.Records[i]
		r.Op = record.Op(d.byte())
		r.Format = record.Format(d.byte())
		if n := d.uvarint(); n > 0 {
			if n > uint64(len(rels)) {
				d.fail("record %d: relation %d of %d", i, n, len(rels))
				break
			}
			r.Rel = rels[n-1]
		}
		r.Position = record.LSN(d.uvarint())
		r.DDL = d.str()
		r.New = d.values(&slab, nrecs-i)
		r.Old = d.values(&slab, nrecs-i)
	}
	if d.err != nil {
		return nil, nil
	}
	return b, rels
}

// values reads a record's values. They are carved from *slab, each
// record's capped so that growing one cannot overwrite the next; a new
// slab is sized for the records left, assumed as wide as this one.
func (d *decoder) values(slab *[]record.Value, left int) []record.Value {
	c := d.uvarint()
	if d.err != nil || c == 0 {
		return nil
	}
	b, off := d.b, d.off
	if c-1 > uint64(len(b)-off) {
		d.fail("value count %d exceeds the frame", c-1)
		return nil
	}
	n := int(c - 1)
	s := *slab
	if cap(s)-len(s) < n {
		s = make([]record.Value, 0, n*max(left, 1))
	}
	start := len(s)
	for range n {
		if off >= len(b) {
			d.off = off
			d.fail("truncated")
			return nil
		}
		f := b[off]
		off++
		if f&^(flagNull|flagUnchanged|flagData) != 0 {
			d.off = off
			d.fail("value flags %#x", f)
			return nil
		}
		v := record.Value{Null: f&flagNull != 0, Unchanged: f&flagUnchanged != 0}
		if f&flagData != 0 {
			var l uint64
			if off < len(b) && b[off] < 0x80 {
				l = uint64(b[off])
				off++
			} else {
				var k int
				l, k = binary.Uvarint(b[off:])
				if k <= 0 {
					d.off = off
					d.fail("bad varint")
					return nil
				}
				off += k
			}
			if l > uint64(len(b)-off) {
				d.off = off
				d.fail("length %d exceeds the frame", l)
				return nil
			}
			end := off + int(l)
			v.Data = b[off:end:end]
			off = end
		}
		s = append(s, v)
	}
	d.off = off
	*slab = s
	return s[start:len(s):len(s)]
}

func (d *decoder) relation() *record.Relation {
	rel := &record.Relation{ID: d.uint32()}
	rel.Table.Schema = d.str()
	rel.Table.Name = d.str()
	n := d.count(4)
	if d.err != nil {
		return nil
	}
	rel.Columns = make([]record.Column, n)
	for i := range rel.Columns {
		c := &rel.Columns[i]
		c.Name = d.str()
		c.TypeOID = d.uint32()
		c.TypeName = d.str()
		c.Key = d.byte() != 0
	}
	return rel
}

// validate checks what the engine relies on in a batch a plugin returned:
// known operations and formats, values lined up with their relation's
// columns, and no value that is neither null, unchanged nor data.
func validate(b *record.Batch) error {
	for i := range b.Records {
		r := &b.Records[i]
		if r.Op < record.Insert || r.Op > record.DDL {
			return fmt.Errorf("record %d: unknown operation %d", i, r.Op)
		}
		if r.Format != record.Text && r.Format != record.Binary {
			return fmt.Errorf("record %d: unknown value format %d", i, r.Format)
		}
		if r.Rel == nil && r.Op != record.DDL {
			return fmt.Errorf("record %d: %s without a relation", i, r.Op)
		}
		if r.Rel != nil {
			n := len(r.Rel.Columns)
			if (r.Op == record.Insert || r.Op == record.Update) && len(r.New) != n {
				return fmt.Errorf("record %d: %s of %s has %d new values for %d columns", i, r.Op, r.Rel.Table, len(r.New), n)
			}
			if r.Old != nil && len(r.Old) != n {
				return fmt.Errorf("record %d: %s of %s has %d old values for %d columns", i, r.Op, r.Rel.Table, len(r.Old), n)
			}
		}
		for _, vs := range [2][]record.Value{r.New, r.Old} {
			for j := range vs {
				if v := &vs[j]; v.Data == nil && !v.Null && !v.Unchanged {
					return fmt.Errorf("record %d: value %d is neither null, unchanged nor data", i, j)
				}
			}
		}
	}
	return nil
}
