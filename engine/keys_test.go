package engine_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestKeyTypesChunking chunks tables keyed by many types: chunk bounds are
// sampled as text at the source and bound back as parameters of the key's
// type, so every type's text form must round-trip and sort the same way.
func TestKeyTypesChunking(t *testing.T) {
	keys := []struct{ name, typ, expr string }{
		{"k_text_c", `text COLLATE "C"`, `format(E'k%s \\ "q"', g)`},
		{"k_text_default", `text`, `format('Ü %s', g)`},
		{"k_varchar", `varchar(20)`, `'v' || g`},
		{"k_char", `char(8)`, `'c' || g`},
		{"k_numeric", `numeric`, `CASE WHEN g = 1 THEN 'NaN'::numeric ELSE g / 7.0 - 100 END`},
		{"k_float8", `double precision`, `CASE WHEN g = 1 THEN 'Infinity' WHEN g = 2 THEN '-Infinity' WHEN g = 3 THEN 'NaN' ELSE g * 0.1 END`},
		{"k_float4", `real`, `(g * 0.3)::real`},
		{"k_timestamptz", `timestamptz`, `'2000-01-01 00:00:00.123456+00'::timestamptz + g * interval '1 hour 1 microsecond'`},
		{"k_timestamp", `timestamp`, `CASE WHEN g = 1 THEN '-infinity'::timestamp ELSE '0044-03-15 BC'::timestamp + g * interval '3 days' END`},
		{"k_date", `date`, `date '2000-01-01' + g`},
		{"k_uuid", `uuid`, `md5(g::text)::uuid`},
		{"k_bytea", `bytea`, `decode(md5(g::text), 'hex')`},
		{"k_enum", `keys.color`, `(enum_range(NULL::keys.color))[1 + g % 4]`},
		{"k_interval", `interval`, `g * interval '1 day 1 second'`},
		{"k_inet", `inet`, `('10.0.' || (g / 256) || '.' || (g % 256))::inet`},
		{"k_money", `money`, `(g * 1.25)::numeric::money`},
		{"k_intarr", `integer[]`, `ARRAY[g % 10, g]`},
		{"k_jsonb", `jsonb`, `jsonb_build_object('g', g)`},
		{"k_char1", `"char"`, `chr(1 + g % 127)::"char"`},
		{"k_bool", `boolean`, `g % 2 = 0`},
		{"k_domain", `keys.code`, `'code-' || g`},
	}
	var b strings.Builder
	b.WriteString(`CREATE SCHEMA keys;
CREATE TYPE keys.color AS ENUM ('red', 'green', 'blue', 'it''s');
CREATE DOMAIN keys.code AS text CHECK (VALUE LIKE 'code-%');
`)
	for _, k := range keys {
		// A second key column keeps keys unique where the first repeats.
		fmt.Fprintf(&b, "CREATE TABLE keys.%s (k %s NOT NULL, n integer NOT NULL, pad text, PRIMARY KEY (k, n));\n", k.name, k.typ)
		fmt.Fprintf(&b, "INSERT INTO keys.%s SELECT %s, g, repeat('x', 100) FROM generate_series(1, 3000) g;\n", k.name, k.expr)
	}
	b.WriteString("ANALYZE;\n")
	e := newEnv(t)
	e.srcExec(b.String())
	cfg := e.config(schemaSel("keys")...)
	cfg.ChunkRows = 300
	runOK(t, cfg)
	for _, k := range keys {
		tbl := "keys." + k.name
		if n := progressRows(t, e.dstDSN, "t", `"keys"."`+k.name+`"`); n < 5 {
			t.Errorf("%s: copied in %d chunks, want it chunked by its key (>= 5)", tbl, n)
		}
		assertSameData(t, e.srcDSN, e.dstDSN, []string{tbl})
		assertNoDuplicates(t, e.dstDSN, tbl, "n")
	}
}
