package postgres

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluicehq/sluice/engine/record"
)

// The raw full copy: a chunk of a table that needs no per-row work (no
// transform, binary format) travels from the source's COPY ... TO STDOUT
// to the sink's COPY ... FROM STDIN as PostgreSQL's binary COPY stream,
// unchanged, in batches of whole COPY messages. Only the tuple framing is
// scanned, to count rows and value bytes.

// rawBuffers is how many released batch buffers a reader keeps: about as
// many as are in flight between it and its writer.
const rawBuffers = 4

// maxPooledBuffer is the largest batch buffer a reader keeps for reuse.
const maxPooledBuffer = 2 << 20

// copyReadBuffer is how much a copy reader's connection reads from its
// socket at once: pgx reads 8 KB at a time, and a chunk streams tens of
// megabytes.
const copyReadBuffer = 256 << 10

// bufferReads makes a connection read its socket through a larger buffer.
func bufferReads(cfg *pgx.ConnConfig) {
	build := cfg.BuildFrontend
	cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		return build(bufio.NewReaderSize(r, copyReadBuffer), w)
	}
}

// RawBatch is a piece of a binary COPY stream: whole CopyData messages of
// the source (the first holds the stream's header, the last its trailer),
// with the tuples and value bytes (as Batch.Bytes counts them) they hold.
type RawBatch struct {
	Data  []byte
	Rows  int64
	Bytes int64
	free  chan<- []byte // where Release returns Data for reuse
}

// Release hands the batch's buffer back to its reader for reuse; the batch
// must not be used after.
func (b RawBatch) Release() {
	if b.free == nil || cap(b.Data) > maxPooledBuffer {
		return // a buffer grown for a huge value is not kept
	}
	select {
	case b.free <- b.Data[:0]:
	default:
	}
}

// rawBoundPrefix names the transaction-local settings that carry a
// chunk's bounds into its COPY query, which cannot take parameters.
const rawBoundPrefix = "sluice.chunk_"

// rawChunkQuery builds the COPY that reads one chunk in binary format and
// the bounds to set first: the bounds are set as transaction-local settings
// (set_config, values as parameters) and the query reads them back with
// current_setting cast to the key column's type (a block's tid for a table
// without a key), so no value is ever written into the SQL.
func rawChunkQuery(t *Table, method string, key []string, c Chunk, cols []string) (sql string, names, values []string, err error) {
	quoted := make([]string, len(cols))
	for i, col := range cols {
		quoted[i] = record.QuoteIdent(col)
	}
	sel := "SELECT " + strings.Join(quoted, ", ") + " FROM ONLY " + t.Name.Quoted()
	conds, err := chunkConds(t, method, key, c, func(col *Column, v string) string {
		typeName := "pg_catalog.tid"
		if col != nil {
			typeName = col.TypeName
		}
		names = append(names, rawBoundPrefix+strconv.Itoa(len(names)+1))
		values = append(values, v)
		return "pg_catalog.current_setting('" + names[len(names)-1] + "')::" + typeName
	})
	if err != nil {
		return "", nil, nil, err
	}
	if len(conds) == 0 && !t.Partitioned {
		// The whole table, unfiltered: COPY reads it straight from the
		// heap (rows of this table only, like FROM ONLY; its row security
		// policies apply as to a SELECT), without the executor's
		// per-row projection of a query.
		return "COPY " + t.Name.Quoted() + " (" + strings.Join(quoted, ", ") + ") TO STDOUT (FORMAT binary)", nil, nil, nil
	}
	if len(conds) > 0 {
		sel += " WHERE " + strings.Join(conds, " AND ")
	}
	return "COPY (" + sel + ") TO STDOUT (FORMAT binary)", names, values, nil
}

// ReadChunkRaw reads one chunk of the columns cols (source names, in the
// sink's order) as a binary COPY stream and calls emit with batches of
// about lim.Bytes bytes or lim.Rows rows. Each batch passed to emit
// belongs to the callee from then on. The table must be t.Binary.
func (r *Reader) ReadChunkRaw(ctx context.Context, t *Table, plan *Plan, c Chunk, cols []string, lim BatchLimits, emit func(RawBatch) error) error {
	return r.readRaw(ctx, t, plan, c, cols, lim, emit, false)
}

// ReadScanRaw reads the whole table (its where filter applied) with one
// sequential scan, like ReadChunkRaw, but emits bare batches: tuples only,
// without the stream's header and trailer, so that several writers can
// each take any of them into a COPY of their own (CopyShareRaw).
func (r *Reader) ReadScanRaw(ctx context.Context, t *Table, cols []string, lim BatchLimits, emit func(RawBatch) error) error {
	return r.readRaw(ctx, t, ScanPlan(0, 1), Chunk{}, cols, lim, emit, true)
}

func (r *Reader) readRaw(ctx context.Context, t *Table, plan *Plan, c Chunk, cols []string, lim BatchLimits, emit func(RawBatch) error, bare bool) error {
	what := fmt.Sprintf("read %s chunk %d", t.Name, c.ID)
	if bare {
		what = fmt.Sprintf("read %s (one scan shared by several writers)", t.Name)
	}
	sql, names, values, err := rawChunkQuery(t, plan.Method, plan.Key, c, cols)
	if err != nil {
		return err
	}
	if len(names) > 0 {
		ph := make([]string, len(names))
		params := make([][]byte, 0, 2*len(names))
		for i, n := range names {
			ph[i] = fmt.Sprintf("pg_catalog.set_config($%d, $%d, true)", 2*i+1, 2*i+2)
			params = append(params, []byte(n), []byte(values[i]))
		}
		oids := make([]uint32, len(params))
		for i := range oids {
			oids[i] = pgtype.TextOID
		}
		rr := r.conn.PgConn().ExecParams(ctx, "SELECT "+strings.Join(ph, ", "), params, oids, nil, nil)
		if _, err := rr.Close(); err != nil {
			return fmt.Errorf("%s: set its bounds: %w", what, err)
		}
	}
	if r.free == nil {
		r.free = make(chan []byte, rawBuffers)
	}
	w := &rawBatcher{lim: lim, emit: emit, scan: copyScanner{ncols: len(cols)}, free: r.free, bare: bare}
	w.buf = w.newBuf()
	_, err = r.conn.PgConn().CopyTo(ctx, w, sql)
	switch {
	case errors.Is(w.err, errCopyStream):
		return fmt.Errorf("%s: %w", what, w.err)
	case w.err != nil:
		return w.err // emit's: the consumer's failure or the context's end
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	}
	if w.scan.state != scanEnd {
		return fmt.Errorf("%s: the binary COPY stream ended without its trailer", what)
	}
	if err := w.flush(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// rawBatcher is the io.Writer CopyTo writes each CopyData message to: it
// counts the tuples and gathers the messages into batches.
type rawBatcher struct {
	lim   BatchLimits
	emit  func(RawBatch) error
	scan  copyScanner
	buf   []byte
	rows  int64 // scan.rows at the start of buf
	bytes int64
	err   error // from emit or the scan: stops the copy
	free  chan []byte
	// bare: batches go out without the stream's header and trailer
	// (ReadScanRaw); headerGone once the header is cut off.
	bare, headerGone bool
}

func (w *rawBatcher) Write(p []byte) (int, error) {
	if err := w.scan.feed(p); err != nil {
		w.err = err
		return 0, err
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= w.lim.Bytes || (w.lim.Rows > 0 && w.scan.rows-w.rows >= int64(w.lim.Rows)) {
		if err := w.flush(); err != nil {
			w.err = err
			return 0, err
		}
	}
	return len(p), nil
}

func (w *rawBatcher) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	data := w.buf
	if w.bare {
		if !w.headerGone {
			// PostgreSQL's header has no extension area; one with an
			// area could not be cut off at a fixed length.
			if len(data) < len(binaryCopyHeader) || !bytes.Equal(data[:len(binaryCopyHeader)], binaryCopyHeader) {
				return fmt.Errorf("%w: a header other than PostgreSQL's plain one", errCopyStream)
			}
			data = data[len(binaryCopyHeader):]
			w.headerGone = true
		}
		if w.scan.state == scanEnd {
			// The trailer (a field count of -1) ends the stream, so it
			// ends the batch that holds it.
			if len(data) < 2 || !bytes.Equal(data[len(data)-2:], binaryCopyTrailer) {
				return fmt.Errorf("%w: the stream does not end with its trailer", errCopyStream)
			}
			data = data[:len(data)-2]
		}
	}
	b := RawBatch{Data: data, Rows: w.scan.rows - w.rows, Bytes: w.scan.bytes - w.bytes, free: w.free}
	w.rows, w.bytes = w.scan.rows, w.scan.bytes
	w.buf = w.newBuf()
	if len(b.Data) == 0 {
		b.Release()
		return nil
	}
	return w.emit(b)
}

// newBuf returns a released batch buffer, or a new one.
func (w *rawBatcher) newBuf() []byte {
	select {
	case b := <-w.free:
		return b
	default:
		return make([]byte, 0, w.lim.Bytes+64<<10)
	}
}

// copyScanner follows the framing of a binary COPY stream fed to it in
// pieces of any size: a header, tuples (a field count, then per field a
// length, -1 for NULL, and the value), and a trailer (a field count of -1).
type copyScanner struct {
	ncols   int
	started bool
	state   int
	skip    int    // bytes still to pass over (scanHeader, scanExt, scanData)
	acc     uint32 // the integer being read
	got     int    // its bytes read so far
	left    int    // fields left in the current tuple
	rows    int64
	bytes   int64 // value bytes, as Batch.Bytes counts them
}

const (
	scanHeader = iota // signature and flags
	scanExtLen
	scanExt
	scanCount
	scanLen
	scanData
	scanEnd
)

var errCopyStream = errors.New("malformed binary COPY stream")

func (s *copyScanner) feed(p []byte) error {
	if !s.started {
		// PostgreSQL sends the header with the first tuple or the trailer.
		if len(p) < 11 || string(p[:11]) != string(binaryCopyHeader[:11]) {
			return fmt.Errorf("%w: no binary COPY signature", errCopyStream)
		}
		s.started = true
		s.skip = 15 // signature and flags
	}
	for len(p) > 0 {
		if s.state == scanCount && s.got == 0 {
			// PostgreSQL sends each tuple in a message of its own: walk
			// whole tuples without the byte-wise state machine.
			if n, size, ok := s.wholeTuple(p); ok {
				s.rows++
				s.bytes += size
				p = p[n:]
				continue
			}
		}
		switch s.state {
		case scanEnd:
			return fmt.Errorf("%w: data after the trailer", errCopyStream)
		case scanHeader, scanExt, scanData:
			n := min(s.skip, len(p))
			s.skip -= n
			p = p[n:]
			if s.skip > 0 {
				return nil
			}
			if s.state == scanHeader {
				s.state = scanExtLen
			} else {
				s.nextField()
			}
		default:
			want := 4
			if s.state == scanCount {
				want = 2
			}
			for s.got < want && len(p) > 0 {
				s.acc = s.acc<<8 | uint32(p[0])
				p = p[1:]
				s.got++
			}
			if s.got < want {
				return nil
			}
			v := s.acc
			s.acc, s.got = 0, 0
			switch s.state {
			case scanExtLen:
				s.skip = int(int32(v))
				if s.skip < 0 {
					return fmt.Errorf("%w: negative header extension length", errCopyStream)
				}
				s.state = scanExt
				if s.skip == 0 {
					s.state = scanCount
				}
			case scanCount:
				n := int(int16(uint16(v)))
				if n == -1 {
					s.state = scanEnd
					continue
				}
				if n != s.ncols {
					return fmt.Errorf("%w: a tuple of %d fields, want %d", errCopyStream, n, s.ncols)
				}
				s.rows++
				s.left = n + 1
				s.nextField()
			case scanLen:
				l := int32(v)
				switch {
				case l == -1:
					s.nextField()
				case l < 0:
					return fmt.Errorf("%w: field length %d", errCopyStream, l)
				default:
					s.bytes += int64(l)
					s.skip = int(l)
					s.state = scanData
					if l == 0 {
						s.nextField()
					}
				}
			}
		}
	}
	return nil
}

// wholeTuple reports the length and value bytes of a well-formed tuple
// of ncols fields at the start of p, or ok false when p does not begin
// with a whole one (the state machine then takes it, reporting any error).
func (s *copyScanner) wholeTuple(p []byte) (n int, size int64, ok bool) {
	if len(p) < 2 || int(int16(binary.BigEndian.Uint16(p))) != s.ncols {
		return 0, 0, false
	}
	off := 2
	for range s.ncols {
		if len(p)-off < 4 {
			return 0, 0, false
		}
		l := int32(binary.BigEndian.Uint32(p[off:]))
		off += 4
		if l == -1 {
			continue
		}
		if l < 0 || len(p)-off < int(l) {
			return 0, 0, false
		}
		off += int(l)
		size += int64(l)
	}
	return off, size, true
}

// nextField moves on after a field (or a tuple's field count).
func (s *copyScanner) nextField() {
	s.left--
	if s.left > 0 {
		s.state = scanLen
	} else {
		s.state = scanCount
	}
}

// CopyChunkRaw is CopyChunk for a binary COPY stream passed through
// unchanged: cols are the sink's column names, in the stream's order.
func (w *Writer) CopyChunkRaw(ctx context.Context, target record.TableName, cols []string, key string, chunk int, batches <-chan RawBatch, errc <-chan error) (rows, size int64, err error) {
	return w.copyRaw(ctx, target, cols, key, chunk, &rawSource{ctx: ctx, batches: batches, errc: errc})
}

// copyRaw copies src's binary stream into the columns cols of target as
// chunk.
func (w *Writer) copyRaw(ctx context.Context, target record.TableName, cols []string, key string, chunk int, src *rawSource) (rows, size int64, err error) {
	rel := &record.Relation{Table: target, Columns: make([]record.Column, len(cols))}
	for i, c := range cols {
		rel.Columns[i] = record.Column{Name: c}
	}
	return w.copyChunk(ctx, target, copyFromSQL(target, rel, record.Binary), key, chunk, src)
}

// CopyShareRaw is CopyChunkRaw for bare batches (ReadScanRaw's), which
// several writers take from one channel: it adds the stream's header and
// trailer around the batches this writer gets, and ends its COPY once it
// holds quota rows (0: when the channel closes). Its share commits as
// chunk, like any chunk.
func (w *Writer) CopyShareRaw(ctx context.Context, target record.TableName, cols []string, key string, chunk int, quota int64, batches <-chan RawBatch, errc <-chan error) (rows, size int64, err error) {
	return w.copyRaw(ctx, target, cols, key, chunk, &rawSource{ctx: ctx, batches: batches, errc: errc, framed: true, cur: binaryCopyHeader, quota: quota})
}

// binaryCopyTrailer ends a binary COPY stream: a field count of -1.
var binaryCopyTrailer = []byte{0xff, 0xff}

// rawSource is the io.Reader pgconn's CopyFrom reads a raw stream from.
type rawSource struct {
	// framed: the batches are bare (CopyShareRaw); the header is sent
	// first (cur starts as it) and the trailer after the last batch.
	framed, trailed bool
	// quota, when above 0, ends the stream after the batch that brings
	// rows to it, without waiting for the channel to close.
	quota   int64
	ctx     context.Context
	batches <-chan RawBatch
	errc    <-chan error
	cur     []byte
	last    RawBatch // the batch cur is in, released when the next comes
	done    bool
	rows    int64
	bytes   int64
	srcErr  error
}

func (s *rawSource) Read(p []byte) (int, error) {
	for len(s.cur) == 0 {
		if !s.done && s.quota > 0 && s.rows >= s.quota {
			s.last.Release()
			s.last = RawBatch{}
			s.done = true
		}
		if s.done {
			if s.framed && !s.trailed {
				s.trailed = true
				s.cur = binaryCopyTrailer
				continue
			}
			return 0, io.EOF
		}
		select {
		case <-s.ctx.Done():
			return 0, s.ctx.Err()
		case b, ok := <-s.batches:
			if !ok {
				if s.errc != nil {
					if err := <-s.errc; err != nil {
						s.srcErr = err
						return 0, err
					}
				}
				// The last batch goes back to its reader too: the next
				// chunk reuses its buffer instead of allocating one.
				s.last.Release()
				s.last = RawBatch{}
				s.done = true
				continue
			}
			s.last.Release()
			s.last = b
			s.cur = b.Data
			s.rows += b.Rows
			s.bytes += b.Bytes
		}
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

func (s *rawSource) counts() (rows, bytes int64) { return s.rows, s.bytes }
func (s *rawSource) sourceErr() error            { return s.srcErr }
