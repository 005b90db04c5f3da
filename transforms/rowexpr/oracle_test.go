package rowexpr

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// oracleExprs are set expressions over numeric a and b and int k, each
// with the SQL PostgreSQL evaluates for it; ERR stands for an error
// (division by zero).
var oracleExprs = []struct{ col, expr, sql string }{
	{"add", "after.a + after.b", "(a + b)::text"},
	{"sub", "after.a - after.b", "(a - b)::text"},
	{"mul", "after.a * after.b", "(a * b)::text"},
	{"quo", "after.a / after.b", "CASE WHEN b = 0 AND a <> 'NaN' THEN 'ERR' ELSE (a / b)::text END"},
	{"rem", "after.a % after.b", "CASE WHEN b = 0 AND a <> 'NaN' THEN 'ERR' ELSE (a % b)::text END"},
	{"rnd", "round(after.a, after.k)", "round(a, k)::text"},
	{"trc", "trunc(after.a, after.k)", "trunc(a, k)::text"},
	{"cei", "ceil(after.a)", "ceil(a)::text"},
	{"flo", "floor(after.a)", "floor(a)::text"},
	{"neg", "-after.a + after.k", "(-a + k)::text"},
	{"lit", "after.a * 1.0825 - 0.5", "(a * 1.0825 - 0.5)::text"},
	{"cmp", "after.a < after.b ? 'lt' : (after.a == after.b ? 'eq' : 'gt')", "CASE WHEN a < b THEN 'lt' WHEN a = b THEN 'eq' ELSE 'gt' END"},
}

// oracleValue is a random numeric text: up to 30 digits with up to 20
// fraction digits, sometimes zero, NaN or ±Infinity.
func oracleValue(r *rand.Rand) string {
	switch r.IntN(40) {
	case 0:
		return "NaN"
	case 1:
		return "Infinity"
	case 2:
		return "-Infinity"
	case 3:
		return "0"
	case 4:
		return "0.000"
	}
	digits := 1 + r.IntN(30)
	var b strings.Builder
	if r.IntN(3) == 0 {
		b.WriteByte('-')
	}
	for i := range digits {
		d := byte('0' + r.IntN(10))
		if i == 0 && d == '0' {
			d = '1'
		}
		b.WriteByte(d)
	}
	s := b.String()
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if scale := r.IntN(21); scale > 0 {
		for len(s) <= scale {
			s = "0" + s
		}
		s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// TestNumericOracle: on 3000 random pairs of numeric values, every
// expression of oracleExprs gives, as text, exactly what PostgreSQL gives
// for the same SQL: digits, scale, NaN and Infinity, errors.
func TestNumericOracle(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	dsn := pgtest.NewDB(t, pgtest.Source(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	r := rand.New(rand.NewPCG(5, 17))
	const n = 3000
	as, bs, ks := make([]string, n), make([]string, n), make([]int, n)
	for i := range n {
		as[i], bs[i], ks[i] = oracleValue(r), oracleValue(r), r.IntN(9)-3
		if i%5 == 0 {
			bs[i] = as[i] // equal values, and x / x, x % x
		}
	}
	cols := make([]string, len(oracleExprs))
	for i, e := range oracleExprs {
		cols[i] = e.sql
	}
	rows, err := conn.Query(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM unnest($1::numeric[], $2::numeric[], $3::int[]) WITH ORDINALITY AS o(a, b, k, i) ORDER BY i`, as, bs, ks)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) ([]string, error) {
		out := make([]string, len(oracleExprs))
		ptrs := make([]any, len(out))
		for i := range out {
			ptrs[i] = &out[i]
		}
		return out, row.Scan(ptrs...)
	})
	if err != nil || len(want) != n {
		t.Fatalf("PostgreSQL's answers: %d rows, %v", len(want), err)
	}

	tbl := Table{Name: record.TableName{Schema: "public", Name: "o"}, Columns: []Column{
		{Name: "id", TypeOID: oidInt4, Key: true}, {Name: "a", TypeOID: oidNumeric}, {Name: "b", TypeOID: oidNumeric}, {Name: "k", TypeOID: oidInt4},
	}}
	rel := &record.Relation{ID: 9, Table: tbl.Name}
	for _, c := range tbl.Columns {
		rel.Columns = append(rel.Columns, record.Column{Name: c.Name, TypeOID: c.TypeOID, Key: c.Key})
	}
	sets := make([]*Set, len(oracleExprs))
	for i, e := range oracleExprs {
		// Each expression writes a text column of its own.
		tt := tbl
		tt.Columns = append(append([]Column(nil), tbl.Columns...), Column{Name: e.col, TypeOID: 25, TypeName: "text"})
		expr := e.expr
		if !strings.Contains(expr, "?") {
			expr = "string(" + expr + ")"
		}
		s, err := CompileSet(map[string]string{e.col: expr}, tt)
		if err != nil {
			t.Fatalf("%s: %v", e.expr, err)
		}
		sets[i] = s
	}
	bad := 0
	for i := range n {
		for j, e := range oracleExprs {
			rl := *rel
			rl.Columns = append(append([]record.Column(nil), rel.Columns...), record.Column{Name: e.col, TypeOID: 25})
			rec := &record.Record{Op: record.Insert, Rel: &rl, New: vals(fmt.Sprint(i), as[i], bs[i], fmt.Sprint(ks[i]), "\\N")}
			got := "ERR"
			if err := sets[j].Apply(rec, false, time.Time{}); err == nil {
				got = string(rec.New[4].Data)
			} else if !strings.Contains(err.Error(), "division by zero") {
				got = "ERR " + err.Error()
			}
			if got != want[i][j] {
				bad++
				if bad <= 20 {
					t.Errorf("a=%s b=%s k=%d: %s gave %s, PostgreSQL %s", as[i], bs[i], ks[i], e.expr, got, want[i][j])
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d results differ from PostgreSQL's", bad, n*len(oracleExprs))
	}
}
