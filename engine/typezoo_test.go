package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres"
)

// zooCol is a column of the type zoo and its edge values (SQL expressions
// assignable to the column). Row i gets vals[i % len(vals)]; one extra row
// holds NULL in every column.
type zooCol struct {
	name, typ string
	vals      []string
}

// builtinZoo holds only built-in types: a table of them travels in binary.
var builtinZoo = []zooCol{
	{"i2", "smallint", []string{`'-32768'`, `'32767'`, `'0'`, `'-1'`}},
	{"i4", "integer", []string{`'-2147483648'`, `'2147483647'`, `'0'`}},
	{"i8", "bigint", []string{`'-9223372036854775808'`, `'9223372036854775807'`, `'0'`}},
	{"num", "numeric", []string{
		`'-123456789012345678901234567890.123456789012345678901234567890'`, `'NaN'`,
		`('0.' || repeat('0', 300) || '1')::numeric`, `'Infinity'`, `'-Infinity'`, `'-0.000001'`,
		`(repeat('9', 1000) || '.' || repeat('9', 1000))::numeric`, `'0'`}},
	{"num_p", "numeric(30,10)", []string{`'-12345678901234567890.0123456789'`, `'0.0000000001'`, `'NaN'`}},
	{"f4", "real", []string{`'NaN'`, `'Infinity'`, `'-Infinity'`, `'-0'`, `'1e-45'`, `'3.4028235e38'`, `'1.17549435e-38'`, `'0.1'`}},
	{"f8", "double precision", []string{`'NaN'`, `'Infinity'`, `'-Infinity'`, `'-0'`, `'5e-324'`, `'1.7976931348623157e308'`, `'2.2250738585072014e-308'`, `'0.1'`}},
	{"b", "boolean", []string{`true`, `false`}},
	{"t", "text", []string{
		`E'tab\there\nnewline\\backslash\rCR'`, `'Ünïcödé 日本語 ελληνικά'`, `'😀👍🏽🏳️‍🌈'`, `''`,
		`E'\\N'`, `E'\\.'`, `E'line1\n\\.\nline3\n'`, `' leading and trailing '`, `'NULL'`}},
	{"vc", "varchar(10)", []string{`'ten chars!'`, `''`, `'ünïcödé'`, `E'a\tb\\c'`}},
	{"ch", "char(5)", []string{`'ab'`, `''`, `'ünïcö'`}},
	{"c1", `"char"`, []string{`'a'`, `' '`, `'\310'`, `''`}},
	{"nm", "name", []string{`'a name with spaces'`, `repeat('x', 63)`, `'ünï "quoted"'`}},
	{"by", "bytea", []string{`'\x'`, `'\x00'`, `'\xdeadbeef00ff5c'`,
		`(SELECT decode(string_agg(lpad(to_hex(g), 2, '0'), '' ORDER BY g), 'hex') FROM generate_series(0, 255) g)`}},
	{"d", "date", []string{`'infinity'`, `'-infinity'`, `'4713-01-01 BC'`, `'5874897-12-31'`, `'0001-01-01 BC'`, `'2000-02-29'`}},
	{"ts", "timestamp", []string{`'infinity'`, `'-infinity'`, `'4713-01-01 00:00:00 BC'`, `'294276-12-31 23:59:59.999999'`,
		`'2000-01-01 12:34:56.789012'`, `'0001-12-31 23:59:59.999999 BC'`}},
	{"tstz", "timestamptz", []string{`'infinity'`, `'-infinity'`, `'4713-01-02 00:00:00+00 BC'`, `'294276-12-31 23:59:59.999999+00'`,
		`'2021-03-04 05:06:07.123456+05:30'`, `'1969-12-31 23:59:59.999999-08'`}},
	{"tm", "time", []string{`'00:00:00'`, `'23:59:59.999999'`, `'24:00:00'`, `'12:34:56.5'`}},
	{"ttz", "timetz", []string{`'00:00:00+00'`, `'23:59:59.999999-15:59'`, `'24:00:00+15:59'`, `'12:34:56.789+05:30'`}},
	{"iv", "interval", []string{`'1 year 2 mons 3 days 04:05:06.789012'`, `'-1 year -2 mons +3 days -04:05:06.000001'`,
		`'178000000 years'`, `'-178000000 years'`, `'0'`, `'1 mon -30 days 00:00:00.000001'`}},
	{"m", "money", []string{`'-92233720368547758.08'`, `'92233720368547758.07'`, `'0'`, `'-1.50'`, `'1234567.89'`}},
	{"j", "json", []string{`'{"a":1,  "a" : 2 ,"b":[1,2 , 3]}'`, `'[]'`, `'"str"'`, `'null'`,
		`E'{"esc":"\\u00e9\\n\\"q\\"",   "n": 1.0e10 }'`, `E' \n{ } \t'`}},
	{"jb", "jsonb", []string{`'{"b": [1, 2.50, null, true], "a": {"nested": "é \"q\""}}'`, `'[]'`, `'"string"'`, `'null'`,
		`'{"big": 1e400, "neg": -0.0000001}'`, `'{}'`}},
	{"x", "xml", []string{`'<a b="1">x &amp; y<c/></a>'`, `'plain text fragment'`, `''`}},
	{"u", "uuid", []string{`'00000000-0000-0000-0000-000000000000'`, `'ffffffff-ffff-ffff-ffff-ffffffffffff'`, `'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'`}},
	{"ip", "inet", []string{`'192.168.1.5/24'`, `'::1'`, `'2001:db8::1/64'`, `'0.0.0.0/0'`, `'255.255.255.255'`, `'::ffff:1.2.3.4'`}},
	{"cd", "cidr", []string{`'10.0.0.0/8'`, `'2001:db8::/32'`, `'0.0.0.0/0'`, `'::/0'`, `'192.168.1.128/25'`}},
	{"mac", "macaddr", []string{`'08:00:2b:01:02:03'`, `'ff:ff:ff:ff:ff:ff'`, `'00:00:00:00:00:00'`}},
	{"mac8", "macaddr8", []string{`'08:00:2b:01:02:03:04:05'`, `'00:00:00:00:00:00:00:00'`, `'08:00:2b:01:02:03'`}},
	{"bt", "bit(8)", []string{`B'10101010'`, `B'00000000'`, `B'11111111'`}},
	{"vb", "varbit", []string{`B''`, `B'1'`, `B'101010101010101010101'`, `B'0000000000000000'`}},
	{"tsv", "tsvector", []string{`'a fat cat sat on a mat and ate a fat rat'`, `$$'has space':1 'it''s':2A fat:3B,4C,5D$$`, `''`}},
	{"tsq", "tsquery", []string{`'fat & (rat | cat)'`, `'!a <-> b:*'`, `$$'has space' & 'it''s':AB$$`, `'a <3> b'`}},
	{"pt", "point", []string{`'(1.5,-2.5)'`, `'(0,0)'`, `'(1e300,-1e-300)'`, `'(NaN,Infinity)'`}},
	{"ln", "line", []string{`'{1,-1,0}'`, `'{0,1,-2.5}'`}},
	{"ls", "lseg", []string{`'[(0,0),(1,1)]'`, `'[(-1.5,2),(3,-4.25)]'`}},
	{"bx", "box", []string{`'((1,1),(0,0))'`, `'((-1,-1),(-1,-1))'`}},
	{"pa", "path", []string{`'[(0,0),(1,1),(2,0)]'`, `'((0,0),(1,1),(2,0))'`}},
	{"pg", "polygon", []string{`'((0,0),(1,1),(1,0))'`, `'((0,0))'`}},
	{"ci", "circle", []string{`'<(0,0),1.5>'`, `'<(1e10,-1e-10),0>'`}},
	{"r4", "int4range", []string{`'empty'`, `'[1,10)'`, `'(,5]'`, `'(,)'`, `'[-2147483648,2147483647)'`}},
	{"r8", "int8range", []string{`'empty'`, `'[-9223372036854775808,9223372036854775807)'`, `'(0,)'`}},
	{"rn", "numrange", []string{`'empty'`, `'(1.5,2.5]'`, `'[,0.0000000001)'`, `'(,)'`, `'[-Infinity,Infinity]'`}},
	{"rts", "tsrange", []string{`'empty'`, `'[2000-01-01,infinity)'`, `'(-infinity,"2000-01-01 00:00:00.000001"]'`, `'["4713-01-01 00:00:00 BC",)'`}},
	{"rtz", "tstzrange", []string{`'empty'`, `'["2021-01-01 00:00+00","2021-01-02 00:00+05")'`, `'(,)'`}},
	{"rd", "daterange", []string{`'empty'`, `'[2000-01-01,2000-02-01)'`, `'(,)'`, `'[-infinity,infinity]'`}},
	{"mr", "int4multirange", []string{`'{}'`, `'{[1,3),[5,7)}'`, `'{(,0),[10,)}'`}},
	{"ia", "integer[]", []string{`'{{1,2,3},{4,5,6}}'`, `'{1,NULL,3}'`, `'[0:1]={1,2}'`, `'{}'`, `'[-5:-4][2:3]={{1,2},{3,4}}'`}},
	{"ta", "text[]", []string{
		`ARRAY['a"b', 'c,d', '{e}', '', 'NULL', NULL, ' sp ', E'back\\slash', E'tab\there', E'new\nline', E'\\N']`,
		`'{}'`, `'[2:3]={x,y}'`, `ARRAY[ARRAY['a', 'b'], ARRAY['c d', 'e"f']]`}},
	{"fa", "double precision[]", []string{`'{NaN,Infinity,-Infinity,-0,5e-324}'`, `'{}'`}},
	{"na", "numeric[]", []string{`'{NaN,1.5,-Infinity,NULL}'`, `'{{1},{2}}'`}},
	{"ba", "bytea[]", []string{`ARRAY['\x00'::bytea, '\xff', '\x', NULL]`, `'{}'`}},
	{"ja", "jsonb[]", []string{`ARRAY['{"a": [1, "x,y"]}'::jsonb, 'null', NULL]`}},
	{"tza", "timestamptz[]", []string{`ARRAY['infinity'::timestamptz, '2000-01-01 00:00:00.000001+00', NULL]`}},
	{"ra", "int4range[]", []string{`'{"[1,2)",empty,"(,)"}'`}},
	{"o", "oid", []string{`'0'`, `'4294967295'`, `'12345'`}},
	{"lsn", "pg_lsn", []string{`'0/0'`, `'FFFFFFFF/FFFFFFFF'`, `'16/B374D848'`}},
}

// userZoo are the columns of user-defined types: composites and arrays of
// enums make a table travel in text format.
var userZoo = []zooCol{
	{"comp", "zoo.addr", []string{
		`ROW('Main St, "1"', 5, ARRAY['a', 'b,c'], 'happy')::zoo.addr`, `ROW(NULL, NULL, NULL, NULL)::zoo.addr`,
		`ROW(E'back\\slash (paren) \t', -1, '{}', 'with space')::zoo.addr`, `ROW('', 0, ARRAY[NULL]::text[], NULL)::zoo.addr`}},
	{"comps", "zoo.addr[]", []string{
		`ARRAY[ROW('x,y', 1, ARRAY['{}'], 'sad')::zoo.addr, NULL, ROW(NULL, NULL, NULL, NULL)::zoo.addr]`, `'{}'`}},
	{"mo", "zoo.mood", []string{`'sad'`, `'happy'`, `'with space'`, `$$quote's$$`, `E'back\\slash, {x}'`}},
	{"mos", "zoo.mood[]", []string{`ARRAY['sad', 'with space', NULL]::zoo.mood[]`, `'{}'`, `ARRAY[$$quote's$$, E'back\\slash, {x}']::zoo.mood[]`}},
	{"dt", "zoo.short_text", []string{`'ok'`, `''`, `E'tab\t\\'`}},
	{"dm", "zoo.happy_mood", []string{`'happy'`, `'ok'`}},
}

// binUserZoo are user-defined types that still travel in binary: enums,
// domains over built-in types or enums, ranges over built-in types.
var binUserZoo = []zooCol{
	{"mo", "zoo.mood", []string{`'sad'`, `'with space'`, `$$quote's$$`}},
	{"dt", "zoo.short_text", []string{`'ok'`, `E'tab\t\\'`}},
	{"dm", "zoo.happy_mood", []string{`'happy'`, `E'back\\slash, {x}'`}},
	{"fr", "zoo.floatrange", []string{`'empty'`, `'[-Infinity,1.5)'`, `'(,)'`}},
	{"dia", "zoo.int_arr", []string{`'{1,2,3}'`, `'[0:1]={1,NULL}'`}},
}

const zooTypes = `
CREATE SCHEMA zoo;
CREATE TYPE zoo.mood AS ENUM ('sad', 'ok', 'happy', 'with space', 'quote''s', E'back\\slash, {x}');
CREATE TYPE zoo.addr AS (street text, no integer, tags text[], m zoo.mood);
CREATE DOMAIN zoo.short_text AS text CHECK (length(VALUE) <= 20);
CREATE DOMAIN zoo.happy_mood AS zoo.mood CHECK (VALUE <> 'sad');
CREATE TYPE zoo.floatrange AS RANGE (SUBTYPE = float8);
CREATE DOMAIN zoo.int_arr AS integer[];
`

// zooSQL creates the table and inserts its rows, one INSERT per row.
func zooSQL(table string, cols []zooCol) string {
	var b strings.Builder
	defs := []string{"id integer PRIMARY KEY"}
	names := []string{"id"}
	rows := 0
	for _, c := range cols {
		defs = append(defs, qi(c.name)+" "+c.typ)
		names = append(names, qi(c.name))
		rows = max(rows, len(c.vals))
	}
	fmt.Fprintf(&b, "CREATE TABLE %s (\n\t%s\n);\n", table, strings.Join(defs, ",\n\t"))
	for i := 0; i < rows; i++ {
		vals := []string{fmt.Sprint(i + 1)}
		for _, c := range cols {
			vals = append(vals, c.vals[i%len(c.vals)])
		}
		fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES (%s);\n", table, strings.Join(names, ", "), strings.Join(vals, ", "))
	}
	// The last row: NULL everywhere but the key.
	fmt.Fprintf(&b, "INSERT INTO %s (id) VALUES (%d);\n", table, rows+1)
	return b.String()
}

func TestTypeZoo(t *testing.T) {
	e := newEnv(t)
	e.srcExec(zooTypes)
	tables := map[string][]zooCol{
		"zoo.zoo_text":    append(append([]zooCol(nil), builtinZoo...), userZoo...),
		"zoo.zoo_bin":     builtinZoo,
		"zoo.zoo_binuser": binUserZoo,
	}
	for name, cols := range tables {
		e.srcExec(zooSQL(name, cols))
	}
	wantBinary := map[string]bool{"zoo.zoo_text": false, "zoo.zoo_bin": true, "zoo.zoo_binuser": true}

	// Which copy path each table takes, as the product decides it.
	src, err := pgx.Connect(t.Context(), e.srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(t.Context())
	var oids []uint32
	for name := range tables {
		var oid uint32
		if err := src.QueryRow(t.Context(), "SELECT $1::regclass::oid", name).Scan(&oid); err != nil {
			t.Fatal(err)
		}
		oids = append(oids, oid)
	}
	loaded, err := postgres.LoadTables(t.Context(), src, oids)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != len(tables) {
		t.Fatalf("LoadTables returned %d tables, want %d", len(loaded), len(tables))
	}
	for _, tb := range loaded {
		key := tb.Name.Schema + "." + tb.Name.Name
		if tb.Binary != wantBinary[key] {
			t.Errorf("%s: Table.Binary = %v, want %v", key, tb.Binary, wantBinary[key])
		}
	}

	sum := runOK(t, e.config(schemaSel("zoo")...))
	if sum.Tables != 3 || sum.TablesCreated != 3 {
		t.Errorf("summary: %d tables, %d created; want 3 and 3", sum.Tables, sum.TablesCreated)
	}
	var wantRows int64
	for _, cols := range tables {
		n := 0
		for _, c := range cols {
			n = max(n, len(c.vals))
		}
		wantRows += int64(n + 1)
	}
	if sum.Rows != wantRows {
		t.Errorf("summary: %d rows copied, want %d", sum.Rows, wantRows)
	}

	for name, cols := range tables {
		assertSameData(t, e.srcDSN, e.dstDSN, []string{name})
		assertSameColumnTypes(t, e.srcDSN, e.dstDSN, name)
		for _, c := range cols {
			assertSameColumn(t, e.srcDSN, e.dstDSN, name, c.name)
		}
	}
}

// assertSameColumnTypes compares the column names and types of a table on
// both sides.
func assertSameColumnTypes(t *testing.T, srcDSN, dstDSN, table string) {
	t.Helper()
	get := func(dsn string) []string {
		conn := oracleConn(t, dsn)
		defer conn.Close(context.Background())
		rows, err := conn.Query(t.Context(), `SELECT attname || ' ' || format_type(atttypid, atttypmod)
			FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, table)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	s, d := get(srcDSN), get(dstDSN)
	if strings.Join(s, "\n") != strings.Join(d, "\n") {
		t.Errorf("%s: column types differ:\nsource: %q\nsink:   %q", table, s, d)
	}
}

// assertSameColumn compares one column's text rendering row by row, so a
// failure shows the value that differs.
func assertSameColumn(t *testing.T, srcDSN, dstDSN, table, col string) {
	t.Helper()
	type row struct {
		id int32
		v  *string
	}
	get := func(dsn string) []row {
		conn := oracleConn(t, dsn)
		defer conn.Close(context.Background())
		rows, err := conn.Query(t.Context(), "SELECT id, "+qi(col)+"::text FROM "+table+" ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		var out []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.v); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	s, d := get(srcDSN), get(dstDSN)
	if len(s) != len(d) {
		t.Errorf("%s.%s: %d rows at the source, %d at the sink", table, col, len(s), len(d))
		return
	}
	show := func(v *string) string {
		if v == nil {
			return "NULL"
		}
		if len(*v) > 120 {
			return fmt.Sprintf("%q…(%d bytes)", (*v)[:120], len(*v))
		}
		return fmt.Sprintf("%q", *v)
	}
	for i := range s {
		if s[i].id != d[i].id || (s[i].v == nil) != (d[i].v == nil) || (s[i].v != nil && *s[i].v != *d[i].v) {
			t.Errorf("%s.%s id %d: source %s, sink (id %d) %s", table, col, s[i].id, show(s[i].v), d[i].id, show(d[i].v))
		}
	}
}

// TestExtensionTypes copies columns of types that come from extensions
// (their OIDs differ between databases, so they travel in text), with the
// extensions created at the sink by the schema sync.
func TestExtensionTypes(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`
CREATE EXTENSION hstore;
CREATE EXTENSION citext;
CREATE EXTENSION ltree;
CREATE EXTENSION cube;
CREATE TABLE public.ext (
	id integer PRIMARY KEY,
	h hstore, hs hstore[],
	c citext, cs citext[],
	l ltree, lq lquery,
	cu cube
);
INSERT INTO public.ext VALUES
	(1, 'a=>1, "b c"=>NULL, "q\"uote"=>"back\\slash"', ARRAY['x=>y'::hstore, ''], 'MiXeD Case', ARRAY['A', 'b'], 'Top.Science.Astronomy', '*.Astronomy.*', '(1, 2, 3),(4, 5, 6)'),
	(2, '', '{}', '', '{}', '', '*', '(0)'),
	(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE public.ext_key (c citext PRIMARY KEY, n integer);
INSERT INTO public.ext_key SELECT 'Key ' || g, g FROM generate_series(1, 5000) g;
ANALYZE;`)
	cfg := e.config(schemaSel("public")...)
	cfg.ChunkRows = 1000 // chunk ext_key by its citext key
	sum := runOK(t, cfg)
	if sum.ChunksCopied < 4 {
		t.Errorf("summary: %d chunks copied, want ext_key chunked by its citext key", sum.ChunksCopied)
	}
	assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.ext", "public.ext_key"})
	assertSameColumnTypes(t, e.srcDSN, e.dstDSN, "public.ext")
	for _, c := range []string{"h", "hs", "c", "cs", "l", "lq", "cu"} {
		assertSameColumn(t, e.srcDSN, e.dstDSN, "public.ext", c)
	}
	assertNoDuplicates(t, e.dstDSN, "public.ext_key", "n")
}
