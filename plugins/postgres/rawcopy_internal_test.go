package postgres

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// binaryStream builds a binary COPY stream of rows (nil: NULL).
func binaryStream(ext []byte, rows ...[][]byte) []byte {
	out := append([]byte(nil), binaryCopyHeader[:15]...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(ext)))
	out = append(out, ext...)
	for _, r := range rows {
		out = binary.BigEndian.AppendUint16(out, uint16(len(r)))
		for _, v := range r {
			if v == nil {
				out = binary.BigEndian.AppendUint32(out, 0xffffffff)
				continue
			}
			out = binary.BigEndian.AppendUint32(out, uint32(len(v)))
			out = append(out, v...)
		}
	}
	return append(out, 0xff, 0xff)
}

// TestCopyScannerPieces feeds a binary COPY stream split at every pair of
// offsets: the tuple and byte counts never depend on where the pieces
// end, and a header extension, NULLs and empty values are passed over.
func TestCopyScannerPieces(t *testing.T) {
	stream := binaryStream([]byte("ext"),
		[][]byte{[]byte("abc"), nil, {}},
		[][]byte{{}, []byte("hello"), []byte("x")},
		[][]byte{nil, nil, nil})
	for i := 0; i <= len(stream); i++ {
		for j := i; j <= len(stream); j++ {
			s := copyScanner{ncols: 3}
			var err error
			first, short := true, false
			for _, p := range [][]byte{stream[:i], stream[i:j], stream[j:]} {
				if len(p) == 0 {
					continue
				}
				if first && len(p) < 11 {
					// Too short to hold the signature: PostgreSQL sends
					// the header with the first tuple or the trailer.
					short = true
					break
				}
				first = false
				if err = s.feed(p); err != nil {
					break
				}
			}
			if short {
				continue
			}
			if err != nil || s.state != scanEnd || s.rows != 3 || s.bytes != 9 {
				t.Fatalf("split at %d and %d: err %v, state %d, %d rows, %d bytes; want the trailer, 3 rows, 9 bytes", i, j, err, s.state, s.rows, s.bytes)
			}
		}
	}
}

// TestCopyScannerRejects: a tuple of the wrong width, data after the
// trailer and a stream without the signature are errors.
func TestCopyScannerRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"width":      {binaryStream(nil, [][]byte{[]byte("a")}), "a tuple of 1 fields, want 2"},
		"after":      {append(binaryStream(nil), 0, 2), "data after the trailer"},
		"signature":  {[]byte("COPY\n\xff\r\n\x00 not binary"), "no binary COPY signature"},
		"length":     {append(binaryStream(nil)[:19], 0, 2, 0xff, 0xff, 0xff, 0xf0), "field length"},
		"negext":     {append(binaryCopyHeader[:15:15], 0xff, 0xff, 0xff, 0xfe), "negative header extension"},
		"emptyfirst": {nil, "no binary COPY signature"},
	} {
		s := copyScanner{ncols: 2}
		err := s.feed(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
	}
}

// TestRawChunkQuery: the bounds of a composite-key chunk and a block range
// are read from settings, never written into the SQL, and cast to the key
// columns' types; the where filter and the column list are kept.
func TestRawChunkQuery(t *testing.T) {
	tbl := &Table{Name: record.TableName{Schema: "s", Name: "t x"}, Columns: []Column{
		{Name: "k1", TypeName: "text"}, {Name: "k2", TypeName: "integer"}, {Name: "v", TypeName: "bytea"},
	}, Filter: `"v" IS NOT NULL`}
	sql, names, values, err := rawChunkQuery(tbl, MethodKey, []string{"k1", "k2"}, Chunk{ID: 3, Lo: []string{"a'b", "1"}, Hi: []string{"z", "9"}}, []string{"k1", "v"})
	if err != nil {
		t.Fatal(err)
	}
	want := `COPY (SELECT "k1", "v" FROM ONLY "s"."t x" WHERE ("k1", "k2") >= (pg_catalog.current_setting('sluice.chunk_1')::text, pg_catalog.current_setting('sluice.chunk_2')::integer) AND ("k1", "k2") < (pg_catalog.current_setting('sluice.chunk_3')::text, pg_catalog.current_setting('sluice.chunk_4')::integer) AND ("v" IS NOT NULL)) TO STDOUT (FORMAT binary)`
	if sql != want {
		t.Errorf("sql:\n%s\nwant\n%s", sql, want)
	}
	if strings.Join(names, ",") != "sluice.chunk_1,sluice.chunk_2,sluice.chunk_3,sluice.chunk_4" || strings.Join(values, ",") != "a'b,1,z,9" {
		t.Errorf("settings %v = %v", names, values)
	}
	sql, _, values, err = rawChunkQuery(tbl, MethodCTID, nil, Chunk{ID: 1, Lo: []string{"10"}}, []string{"v"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sql, "ctid >= pg_catalog.current_setting('sluice.chunk_1')::pg_catalog.tid") || strings.Contains(sql, "ctid <") || len(values) != 1 || values[0] != "(10,0)" {
		t.Errorf("block range: %s with %v", sql, values)
	}
	if _, _, _, err := rawChunkQuery(tbl, MethodKey, []string{"gone"}, Chunk{Lo: []string{"1"}}, []string{"v"}); err == nil {
		t.Errorf("a key column that no longer exists is not an error")
	}
	// A whole table without a filter is copied straight from its heap; with
	// a filter it stays a query.
	if sql, _, _, _ = rawChunkQuery(tbl, MethodScan, nil, Chunk{}, []string{"k1", "v"}); !strings.HasPrefix(sql, "COPY (SELECT") {
		t.Errorf("a filtered whole-table read: %s", sql)
	}
	bare := *tbl
	bare.Filter = ""
	for _, method := range []string{MethodScan, MethodWhole} {
		sql, names, _, err := rawChunkQuery(&bare, method, nil, Chunk{}, []string{"k1", "v"})
		if want := `COPY "s"."t x" ("k1", "v") TO STDOUT (FORMAT binary)`; err != nil || sql != want || len(names) != 0 {
			t.Errorf("%s: an unfiltered whole-table read: %s (%v, settings %v), want %s", method, sql, err, names, want)
		}
	}
}

// TestRawChunkQueryPlan: bounds read from settings still drive a block
// range scan (keyless tables) and an index scan over a composite key, so
// a chunk's query never scans the whole table.
func TestRawChunkQueryPlan(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.NewDB(t, pgtest.Source(t))
	conn, err := Connect(ctx, dsn, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE public.nk (a int, b text);
CREATE TABLE public.ck (k1 text, k2 int, v text, PRIMARY KEY (k1, k2));
INSERT INTO public.nk SELECT g, 'b' || g FROM generate_series(1, 20000) g;
INSERT INTO public.ck SELECT 'k' || (g % 10), g, 'v' FROM generate_series(1, 20000) g;
ANALYZE`); err != nil {
		t.Fatal(err)
	}
	nk := &Table{Name: record.TableName{Schema: "public", Name: "nk"}, Columns: []Column{{Name: "a", TypeName: "integer"}, {Name: "b", TypeName: "text"}}}
	ck := &Table{Name: record.TableName{Schema: "public", Name: "ck"}, Columns: []Column{{Name: "k1", TypeName: "text"}, {Name: "k2", TypeName: "integer"}, {Name: "v", TypeName: "text"}}}
	for _, tc := range []struct {
		t      *Table
		method string
		key    []string
		c      Chunk
		want   string
	}{
		{nk, MethodCTID, nil, Chunk{Lo: []string{"10"}, Hi: []string{"20"}}, "Tid Range Scan"},
		{ck, MethodKey, []string{"k1", "k2"}, Chunk{Lo: []string{"k3", "100"}, Hi: []string{"k4", "5"}}, "Index"},
	} {
		sql, names, values, err := rawChunkQuery(tc.t, tc.method, tc.key, tc.c, []string{tc.t.Columns[1].Name})
		if err != nil {
			t.Fatal(err)
		}
		sel := strings.TrimSuffix(strings.TrimPrefix(sql, "COPY ("), ") TO STDOUT (FORMAT binary)")
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
			t.Fatal(err)
		}
		for i := range names {
			if _, err := tx.Exec(ctx, "SELECT pg_catalog.set_config($1, $2, true)", names[i], values[i]); err != nil {
				t.Fatal(err)
			}
		}
		var plan []string
		rows, err := tx.Query(ctx, "EXPLAIN (COSTS OFF) "+sel)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		_ = tx.Rollback(ctx)
		if p := strings.Join(plan, "\n"); !strings.Contains(p, tc.want) || strings.Contains(p, "Seq Scan") {
			t.Errorf("%s: plan\n%s\nwant a %s", tc.t.Name, p, tc.want)
		}
	}
}
