package rename

import (
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
)

// FuzzRename builds rules from arbitrary names, patterns and a case
// policy, and checks what the rest of sluice relies on: New never panics
// and refuses an unknown case policy; when Check accepts a mapping, no two
// source tables or kept columns share a sink name, and every sink name is
// non-empty, at most 63 bytes, free of NUL and outside the schema sluice;
// Relation keeps the columns Column keeps, in order, without touching its
// input. The seed corpus is in testdata/fuzz/FuzzRename.
func FuzzRename(f *testing.F) {
	f.Add("public", "orders", "Orders", "id", "ID", "t_", "", "", "", uint8(0))
	f.Add("sales", "Orders", "orders", "Amount", "amount", "", "_v2", "", "", uint8(1))
	f.Add("app", "users_old", "users", "a", "b", "", "", "(.*)_old", "$1", uint8(0))
	f.Add("x", "a", "b", "c", "c", "", "", "[", "", uint8(2))
	f.Add("sluice", "t", "u", "c", "d", "", "", "", "", uint8(3))
	f.Add("s", strings.Repeat("n", 60), "m", "é", "É", "", "_long_suffix", "", "", uint8(2))
	f.Fuzz(func(t *testing.T, schema, a, b, colA, colB, prefix, suffix, pattern, repl string, cas uint8) {
		policy := Case(cas % 4)
		cfg := Config{Case: policy, CaseOrigin: "p.yaml:1"}
		if prefix != "" || suffix != "" || pattern != "" || repl != "" {
			cfg.Bulk = []BulkRename{{Schema: schema, Prefix: prefix, Suffix: suffix, Pattern: pattern, Replacement: repl, Origin: "p.yaml:2"}}
		}
		ta, tb := record.TableName{Schema: schema, Name: a}, record.TableName{Schema: schema, Name: b}
		cfg.Columns = []ColumnRename{{Table: ta, From: colA, To: colB, Origin: "p.yaml:3"}}
		r, err := New(cfg)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("New failed with an empty message")
			}
			return
		}
		if policy > CaseUpper {
			t.Fatalf("New accepted case policy %d", policy)
		}

		cols := []string{colA, colB + "_2"}
		tables := []record.TableName{ta, tb}
		if err := r.Check(tables, map[record.TableName][]string{ta: cols}); err == nil {
			da, db := r.Table(ta), r.Table(tb)
			if ta != tb && da == db {
				t.Fatalf("Check accepted %s and %s both mapped to %s", ta, tb, da)
			}
			for _, d := range []record.TableName{da, db} {
				for _, part := range []string{d.Schema, d.Name} {
					if part == "" || len(part) > maxIdentLen || strings.IndexByte(part, 0) >= 0 {
						t.Fatalf("Check accepted the sink name %q (part %q)", d, part)
					}
				}
				if d.Schema == ReservedSchema {
					t.Fatalf("Check accepted a table in schema %s: %s", ReservedSchema, d)
				}
			}
			seen := map[string]string{}
			for _, c := range cols {
				name, dropped := r.Column(ta, c)
				if dropped {
					continue
				}
				if prev, dup := seen[name]; dup && prev != c {
					t.Fatalf("Check accepted columns %q and %q both mapped to %q", prev, c, name)
				}
				if name == "" || len(name) > maxIdentLen {
					t.Fatalf("Check accepted the sink column %q", name)
				}
				seen[name] = c
			}
		} else if err.Error() == "" {
			t.Fatal("Check failed with an empty message")
		}

		// Table is a function of its input.
		if r.Table(ta) != r.Table(ta) {
			t.Fatal("Table is not deterministic")
		}
		src := &record.Relation{ID: 7, Table: ta, Columns: []record.Column{{Name: colA, TypeOID: 23, Key: true}, {Name: colB + "_2", TypeOID: 25}}}
		before := slices.Clone(src.Columns)
		dst, keep := r.Relation(src)
		if !slices.Equal(src.Columns, before) || src.Table != ta {
			t.Fatal("Relation modified its input")
		}
		if dst.ID != src.ID || dst.Table != r.Table(ta) || len(dst.Columns) != len(keep) {
			t.Fatalf("Relation: id %d table %s, %d columns for %d kept", dst.ID, dst.Table, len(dst.Columns), len(keep))
		}
		for i, k := range keep {
			if i > 0 && k <= keep[i-1] {
				t.Fatalf("Relation: keep %v not increasing", keep)
			}
			name, dropped := r.Column(ta, src.Columns[k].Name)
			if dropped || dst.Columns[i].Name != name || dst.Columns[i].TypeOID != src.Columns[k].TypeOID || dst.Columns[i].Key != src.Columns[k].Key {
				t.Fatalf("Relation: column %d is %+v, want %q from %+v", i, dst.Columns[i], name, src.Columns[k])
			}
		}
		for i, c := range src.Columns {
			if _, dropped := r.Column(ta, c.Name); !dropped && !slices.Contains(keep, i) {
				t.Fatalf("Relation dropped column %q, which Column keeps", c.Name)
			}
		}
	})
}
