package verify

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// query runs sql with untyped text parameters and calls row with each
// result row in text form (the values are valid during the call only).
func query(ctx context.Context, conn *pgx.Conn, sql string, params [][]byte, row func(vals [][]byte) error) error {
	rr := conn.PgConn().ExecParams(ctx, sql, params, nil, nil, nil)
	for rr.NextRow() {
		if err := row(rr.Values()); err != nil {
			rr.Close()
			return err
		}
	}
	_, err := rr.Close()
	return err
}

// rowStream reads an ordered result row by row, keeping a copy of the
// current row.
type rowStream struct {
	rr  *pgconn.ResultReader
	cur []string
	ok  bool
}

func startStream(ctx context.Context, conn *pgx.Conn, sql string, params [][]byte) *rowStream {
	return &rowStream{rr: conn.PgConn().ExecParams(ctx, sql, params, nil, nil, nil)}
}

func (s *rowStream) next() {
	s.ok = s.rr.NextRow()
	if !s.ok {
		return
	}
	vals := s.rr.Values()
	if cap(s.cur) < len(vals) {
		s.cur = make([]string, len(vals))
	}
	s.cur = s.cur[:len(vals)]
	for i, v := range vals {
		s.cur[i] = string(v)
	}
}

func (s *rowStream) close() error {
	_, err := s.rr.Close()
	return err
}

// compareKeys orders keys column by column, each in byte order: the order
// of ORDER BY key::text COLLATE "C".
func compareKeys(a, b []string) int {
	for i := range a {
		if c := strings.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// mergeKeyed walks the (key..., hash) rows in scope at both sides,
// both ordered by key, and reports each row that is missing at the sink,
// extra at the sink, or different. Memory stays flat whatever the chunk's
// size.
func mergeKeyed(ctx context.Context, srcConn, dstConn *pgx.Conn, src, dst *side, sc scope, emit func(Diff)) error {
	srcSQL, srcParams, err := src.keyHashes(sc)
	if err != nil {
		return err
	}
	dstSQL, dstParams, err := dst.keyHashes(sc)
	if err != nil {
		return err
	}
	a := startStream(ctx, srcConn, srcSQL, srcParams)
	b := startStream(ctx, dstConn, dstSQL, dstParams)
	nk := len(src.key)
	key := func(s *rowStream) []string { return append([]string(nil), s.cur[:nk]...) }
	a.next()
	b.next()
	for a.ok || b.ok {
		var c int
		switch {
		case !b.ok:
			c = -1
		case !a.ok:
			c = 1
		default:
			c = compareKeys(a.cur[:nk], b.cur[:nk])
		}
		switch {
		case c < 0:
			emit(Diff{Kind: Missing, Key: key(a)})
			a.next()
		case c > 0:
			emit(Diff{Kind: Extra, Key: key(b)})
			b.next()
		default:
			if a.cur[nk] != b.cur[nk] {
				emit(Diff{Kind: Different, Key: key(a)})
			}
			a.next()
			b.next()
		}
	}
	aerr, berr := a.close(), b.close()
	if aerr != nil {
		return fmt.Errorf("source: %w", aerr)
	}
	if berr != nil {
		return fmt.Errorf("sink: %w", berr)
	}
	return nil
}

// mergeKeyless walks the (hash, copies, row) groups of the given buckets of
// a table without a key at both sides, ordered by hash, and reports the
// rows one side has more copies of.
func mergeKeyless(ctx context.Context, srcConn, dstConn *pgx.Conn, src, dst *side, buckets int, which []int, emit func(Diff)) error {
	srcSQL, params := src.bucketRows(buckets, which)
	dstSQL, _ := dst.bucketRows(buckets, which)
	a := startStream(ctx, srcConn, srcSQL, params)
	b := startStream(ctx, dstConn, dstSQL, params)
	copies := func(s *rowStream) (int64, error) { return strconv.ParseInt(s.cur[1], 10, 64) }
	a.next()
	b.next()
	var perr error
	for (a.ok || b.ok) && perr == nil {
		var c int
		switch {
		case !b.ok:
			c = -1
		case !a.ok:
			c = 1
		default:
			c = strings.Compare(a.cur[0], b.cur[0])
		}
		switch {
		case c < 0:
			n, err := copies(a)
			perr = err
			emit(Diff{Kind: Missing, Row: a.cur[2], Copies: n})
			a.next()
		case c > 0:
			n, err := copies(b)
			perr = err
			emit(Diff{Kind: Extra, Row: b.cur[2], Copies: n})
			b.next()
		default:
			na, err1 := copies(a)
			nb, err2 := copies(b)
			if err1 != nil || err2 != nil {
				perr = fmt.Errorf("bad row count %q / %q", a.cur[1], b.cur[1])
			}
			switch {
			case na > nb:
				emit(Diff{Kind: Missing, Row: a.cur[2], Copies: na - nb})
			case nb > na:
				emit(Diff{Kind: Extra, Row: b.cur[2], Copies: nb - na})
			}
			a.next()
			b.next()
		}
	}
	aerr, berr := a.close(), b.close()
	switch {
	case aerr != nil:
		return fmt.Errorf("source: %w", aerr)
	case berr != nil:
		return fmt.Errorf("sink: %w", berr)
	}
	return perr
}

// differingColumns reads the row with key at both sides and returns the
// compared columns (source names) whose text differs.
func differingColumns(ctx context.Context, srcConn, dstConn *pgx.Conn, src, dst *side, key []string) ([]string, error) {
	params := make([][]byte, len(key))
	for i, k := range key {
		params[i] = []byte(k)
	}
	var vals [2][]*string
	err := both(func(isSrc bool) error {
		conn, s, i := dstConn, dst, 1
		if isSrc {
			conn, s, i = srcConn, src, 0
		}
		return query(ctx, conn, s.rowByKey(), params, func(row [][]byte) error {
			vals[i] = make([]*string, len(row))
			for j, v := range row {
				if v != nil {
					str := string(v)
					vals[i][j] = &str
				}
			}
			return nil
		})
	})
	if err != nil || vals[0] == nil || vals[1] == nil || len(vals[0]) != len(vals[1]) {
		return nil, err
	}
	var cols []string
	for j := range vals[0] {
		a, b := vals[0][j], vals[1][j]
		if (a == nil) != (b == nil) || (a != nil && *a != *b) {
			if j < len(src.cols) {
				cols = append(cols, src.cols[j])
			}
		}
	}
	return cols, nil
}
