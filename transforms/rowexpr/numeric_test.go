package rowexpr

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine/record"
)

// numTable has numeric columns a and b, and columns of the other number
// kinds to mix them with.
var numTable = Table{
	Name: record.TableName{Schema: "public", Name: "prices"},
	Columns: []Column{
		{Name: "id", TypeOID: oidInt4, TypeName: "integer", Key: true},
		{Name: "a", TypeOID: oidNumeric, TypeName: "numeric"},
		{Name: "b", TypeOID: oidNumeric, TypeName: "numeric(12,2)"},
		{Name: "q", TypeOID: oidInt8, TypeName: "bigint"},
		{Name: "f", TypeOID: oidFloat8, TypeName: "double precision"},
		{Name: "s", TypeOID: 25, TypeName: "text"},
	},
}

// numRecord is an insert of (1, a, b, q, f, s); "\\N" is NULL.
func numRecord(a, b, q, f string) *record.Record {
	r := &record.Record{Op: record.Insert, Rel: &record.Relation{ID: 2, Table: numTable.Name}}
	for _, c := range numTable.Columns {
		r.Rel.Columns = append(r.Rel.Columns, record.Column{Name: c.Name, TypeOID: c.TypeOID, Key: c.Key})
	}
	r.New = vals("1", a, b, q, f, "x")
	return r
}

// setText runs `set: {col: src}` on rec and returns the column's text.
func setText(t *testing.T, col, src string, rec *record.Record) (string, error) {
	t.Helper()
	s, err := CompileSet(map[string]string{col: src}, numTable)
	if err != nil {
		t.Fatalf("CompileSet(%s: %q): %v", col, src, err)
	}
	if err := s.Apply(rec, false, time.Time{}); err != nil {
		return "", err
	}
	j := rec.Rel.ColumnIndex(col)
	if rec.New[j].Null {
		return "NULL", nil
	}
	return string(rec.New[j].Data), nil
}

func keep(t *testing.T, src string, rec *record.Record) bool {
	t.Helper()
	f, err := CompileFilter(src, numTable)
	if err != nil {
		t.Fatalf("CompileFilter(%q): %v", src, err)
	}
	k, err := f.Keep(rec, time.Time{})
	if err != nil {
		t.Fatalf("Keep(%q): %v", src, err)
	}
	return k
}

// TestNumericExact: numeric arithmetic is exact, as PostgreSQL's is; each
// of these comes out differently in float64. The wanted texts are what
// PostgreSQL 15 prints for the same SQL expression.
func TestNumericExact(t *testing.T) {
	cases := []struct {
		a, b, q, f string
		col, src   string
		want       string
	}{
		{"0.1", "19.99", "3", "0.5", "a", "after.a + 0.2", "0.3"},
		{"0.1", "19.99", "3", "0.5", "b", "after.b * 3", "59.97"},
		{"0.1", "19.99", "3", "0.5", "b", "after.b * after.q", "59.97"},
		{"0.1", "19.99", "3", "0.5", "a", "after.b * 1.1", "21.989"},
		{"0.1", "19.99", "3", "0.5", "a", "after.b * 1.50", "29.9850"},
		{"0.1", "19.99", "3", "0.5", "a", "after.b * 1_000.0", "19990.000"},
		{"0.1", "19.99", "3", "0.5", "a", "len('été') * 0 + after.b * -1.50", "-29.9850"},
		{"0.1", "19.99", "3", "0.5", "a", "after.a + after.a + after.a", "0.3"},
		{"0.1", "19.99", "3", "0.5", "a", "after.b + 0.01", "20.00"},
		{"0.1", "19.99", "3", "0.5", "a", "after.b - 1.5", "18.49"},
		{"0.1", "19.99", "3", "0.5", "a", "-after.b", "-19.99"},
		{"0.1", "19.99", "3", "0.5", "a", "2 - after.b", "-17.99"},
		{"0.1", "19.99", "3", "0.5", "a", "after.f * after.b", "9.995"},
		{"9223372036854775809", "1", "3", "0.5", "a", "after.a + 1", "9223372036854775810"},
		{"123456789012345678901234567890.123456789", "1", "3", "0.5", "a", "after.a * 10 - 0.000000001", "1234567890123456789012345678901.234567889"},
		{"0.00", "1", "3", "0.5", "a", "-after.a * 5", "0.00"},
		// Division: PostgreSQL's scale (select_div_scale), rounded half
		// away from zero.
		{"1", "3", "3", "0.5", "a", "after.a / after.b", "0.33333333333333333333"},
		{"10", "4", "3", "0.5", "a", "after.a / after.b", "2.5000000000000000"},
		{"19.99", "3", "3", "0.5", "a", "after.a / after.b", "6.6633333333333333"},
		{"19.99", "3", "3", "0.5", "a", "after.a / 4", "4.9975000000000000"},
		{"1", "7000", "3", "0.5", "a", "after.a / after.b", "0.00014285714285714286"},
		{"123456789.123", "0.007", "3", "0.5", "a", "after.a / after.b", "17636684160.42857143"},
		{"2", "3.0000", "3", "0.5", "a", "after.a / after.b", "0.66666666666666666667"},
		{"99999999", "1", "3", "0.5", "a", "after.a / after.b", "99999999.000000000000"},
		{"0.00000000000000000005", "3", "3", "0.5", "a", "after.a / after.b", "0.000000000000000000016666666666666667"},
		{"100000000000000000000", "3", "3", "0.5", "a", "after.a / after.b", "33333333333333333333"},
		{"7", "7", "3", "0.5", "a", "after.a / after.b", "1.00000000000000000000"},
		// Remainder: truncated division, the dividend's sign, the larger scale.
		{"10.5", "3", "3", "0.5", "a", "after.a % after.b", "1.5"},
		{"-7", "2", "3", "0.5", "a", "after.a % after.b", "-1"},
		{"7.00", "0.3", "3", "0.5", "a", "after.a % after.b", "0.10"},
		{"5", "1.25", "3", "0.5", "a", "after.a % after.b", "0.00"},
		{"-0.3", "0.2", "3", "0.5", "a", "after.a % after.b", "-0.1"},
		// Helpers, as PostgreSQL's round, trunc, ceil, floor, abs.
		{"19.99", "2.675", "3", "0.5", "a", "round(after.a, 1)", "20.0"},
		{"19.99", "2.675", "3", "0.5", "a", "round(after.b, 2)", "2.68"},
		{"19.99", "2.675", "3", "0.5", "a", "trunc(after.a, 1)", "19.9"},
		{"19.99", "2.675", "3", "0.5", "a", "round(after.a, -1)", "20"},
		{"-2.5", "2.675", "3", "0.5", "a", "round(after.a)", "-3"},
		{"1234.5678", "2.675", "3", "0.5", "a", "round(after.a, -2)", "1200"},
		{"-19.99", "2.675", "3", "0.5", "a", "trunc(after.a)", "-19"},
		{"1.5", "2.675", "3", "0.5", "a", "round(after.a, 3)", "1.500"},
		{"-1.5", "1.2", "3", "0.5", "a", "ceil(after.a)", "-1"},
		{"-1.5", "1.2", "3", "0.5", "a", "floor(after.a)", "-2"},
		{"-1.5", "1.2", "3", "0.5", "a", "ceil(after.b)", "2"},
		{"-1.5", "1.0", "3", "0.5", "a", "floor(after.b)", "1"},
		{"-1.5", "1.0", "3", "0.5", "a", "abs(after.a)", "1.5"},
		{"-1.5", "1.0", "3", "0.5", "a", "numeric('12.340') + after.a", "10.840"},
		{"-1.5", "1.0", "3", "0.5", "a", "numeric(after.q) / 4", "0.75000000000000000000"},
		// Values the expression cannot know statically still compute exactly.
		{"\\N", "19.99", "3", "0.5", "a", "(after.a ?? 0) + after.b * 2", "39.98"},
		{"0.1", "19.99", "3", "0.5", "a", "(after.a ?? 0) + 0.2", "0.3"},
		// Into the other number columns: a float column reads the decimal
		// text; an int column takes an integral numeric.
		{"19.99", "1", "3", "0.5", "f", "after.a / 4", "4.9975000000000000"},
		{"19.99", "1", "3", "0.5", "q", "after.a * 100", "1999"},
		{"19.99", "1", "3", "0.5", "q", "int(after.a)", "19"},
		{"19.99", "1", "3", "0.5", "q", "int(round(after.a))", "20"},
		{"19.99", "1", "3", "0.5", "f", "float(after.a) * 2", "39.98"},
	}
	for _, c := range cases {
		got, err := setText(t, c.col, c.src, numRecord(c.a, c.b, c.q, c.f))
		if err != nil || got != c.want {
			t.Errorf("a=%s b=%s q=%s f=%s: set %s: %s gave %q, %v; want %q", c.a, c.b, c.q, c.f, c.col, c.src, got, err, c.want)
		}
	}

	filters := []struct {
		a, b, src string
		want      bool
	}{
		{"0.3", "0.1", "after.a == 0.3", true},
		{"0.3", "0.1", "after.b + 0.2 == 0.3", true},
		{"0.3", "0.1", "after.b + 0.2 == after.a", true},
		{"0.3", "0.1", "after.b * 3 != 0.3", false},
		{"0.30", "0.3", "after.a == after.b", true},
		{"0.3", "0.1", "0.3 <= after.a && after.a < 0.30000000000000004", true},
		{"9223372036854775809", "1", "after.a > 9223372036854775807", true},
		{"9223372036854775809", "1", "after.a == numeric('9223372036854775808') + 1", true},
		{"59.97", "19.99", "after.b * 3 == after.a", true},
		{"-1", "1", "-after.a == after.b", true},
		{"0.1", "1", "after.a + after.f > 0.6", false},
		{"0.1", "1", "after['a' + ''] + 0.2 == 0.3", true},
		{"0.1", "1", "abs(-after.a) >= 0.1", true},
	}
	for _, c := range filters {
		if got := keep(t, c.src, numRecord(c.a, c.b, "3", "0.5")); got != c.want {
			t.Errorf("a=%s b=%s: filter %s gave %v, want %v", c.a, c.b, c.src, got, c.want)
		}
	}
}

// TestNumericSpecial: NaN and ±Infinity behave as in PostgreSQL 14+.
func TestNumericSpecial(t *testing.T) {
	cases := []struct{ a, b, src, want string }{
		{"NaN", "0", "after.a / after.b", "NaN"},
		{"1", "Infinity", "after.a / after.b", "0"},
		{"Infinity", "Infinity", "after.a - after.b", "NaN"},
		{"Infinity", "0", "after.a * -1", "-Infinity"},
		{"Infinity", "0", "after.a * after.b", "NaN"},
		{"Infinity", "1", "after.a % after.b", "NaN"},
		{"5", "Infinity", "after.a % after.b", "5"},
		{"NaN", "1", "after.a + 1", "NaN"},
		{"-Infinity", "1", "round(after.a, 2)", "-Infinity"},
		{"1", "1", "after.a + float('Inf')", "Infinity"},
	}
	for _, c := range cases {
		got, err := setText(t, "a", c.src, numRecord(c.a, c.b, "1", "0.5"))
		if err != nil || got != c.want {
			t.Errorf("a=%s b=%s: %s gave %q, %v; want %q", c.a, c.b, c.src, got, err, c.want)
		}
	}
	filters := []struct {
		a, b, src string
		want      bool
	}{
		{"NaN", "NaN", "after.a == after.b", true},
		{"NaN", "Infinity", "after.a > after.b", true},
		{"NaN", "1", "after.a == float('NaN')", true},
		{"Infinity", "1", "after.a > 1e300", true},
		{"-Infinity", "1", "after.a < -1e300", true},
	}
	for _, c := range filters {
		if got := keep(t, c.src, numRecord(c.a, c.b, "3", "0.5")); got != c.want {
			t.Errorf("a=%s b=%s: filter %s gave %v, want %v", c.a, c.b, c.src, got, c.want)
		}
	}
	// Into an int column NaN is refused; into a float column it is NaN.
	if _, err := setText(t, "q", "after.a", numRecord("NaN", "1", "1", "1")); err == nil || !strings.Contains(err.Error(), "not an integer") {
		t.Errorf("NaN into bigint: %v", err)
	}
	if got, err := setText(t, "f", "after.a", numRecord("-Infinity", "1", "1", "1")); err != nil || got != "-Infinity" {
		t.Errorf("-Infinity into double precision: %q, %v", got, err)
	}
	if _, err := setText(t, "q", "int(after.a)", numRecord("Infinity", "1", "1", "1")); err == nil || !strings.Contains(err.Error(), "cannot convert numeric Infinity to int") {
		t.Errorf("int(Infinity): %v", err)
	}
}

// TestNumericRuntimeErrors: a zero divisor and a non-integral value for
// an int column are errors with the position, never a guess.
func TestNumericRuntimeErrors(t *testing.T) {
	cases := []struct {
		a, b, col, src string
		pos            int
		want           string
	}{
		{"19.99", "0", "a", "after.a / after.b", 9, "division by zero"},
		{"19.99", "0.00", "a", "after.a % after.b", 9, "division by zero"},
		{"Infinity", "0", "a", "after.a / after.b", 9, "division by zero"},
		{"19.99", "0", "a", "1 + (after.a / (after.b * 2))", 14, "division by zero"},
		{"19.99", "1", "q", "after.a", 0, `the result 19.99 is not an integer but the column takes int`},
		{"1e30", "1", "q", "int(after.a)", 1, "out of the range of int"},
		{"\\N", "1", "a", "after.a + 1", 9, "invalid operation: nil + numeric"},
	}
	for _, c := range cases {
		_, err := setText(t, c.col, c.src, numRecord(c.a, c.b, "1", "1"))
		var ee *EvalError
		if !errors.As(err, &ee) || ee.Pos != c.pos || !strings.Contains(err.Error(), c.want) {
			t.Errorf("a=%s b=%s: %s: %v; want an *EvalError at %d with %q", c.a, c.b, c.src, err, c.pos, c.want)
		}
	}
}

// TestNumericCompileErrors: type clashes with numeric are found when the
// stage is compiled, with the position and numeric named as such.
func TestNumericCompileErrors(t *testing.T) {
	filters := []struct{ src, want string }{
		{`after.a + 'x' > 1`, "position 9: invalid operation: + (mismatched types numeric and string)"},
		{`after.a < after.s`, "position 9: invalid operation: < (mismatched types numeric and string)"},
		{`after.a * 2`, "a filter must be a boolean expression, but this one gives numeric"},
		{`round(after.a, 'x') > 1`, "the number of digits round rounds to must be an int (got string)"},
		{`abs(after.s) > 1`, "invalid argument for abs (type string)"},
		{`after.a + after.nosuch > 1`, "unknown field nosuch"},
		{`-(after.a + true) > 1`, "mismatched types numeric and bool"},
	}
	for _, c := range filters {
		_, err := CompileFilter(c.src, numTable)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CompileFilter(%q) = %v, want an *Error containing %q", c.src, err, c.want)
		}
	}
	sets := []struct {
		col, src, want string
	}{
		{"s", "after.a * 2", `the expression gives numeric but column "s" is text (an expression of type string); convert with string(...)`},
		{"a", "after.s", "convert with numeric(...)"},
		{"a", "after.a > 1", "the expression gives bool"},
	}
	for _, c := range sets {
		if _, err := CompileSet(map[string]string{c.col: c.src}, numTable); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CompileSet(%s: %q) = %v, want %q", c.col, c.src, err, c.want)
		}
	}
	// What compiles: numeric into numeric, float and int columns (the
	// last checked per value), string(numeric) into text.
	ok := map[string]string{"a": "after.a * 2", "f": "after.a", "q": "after.a * 100", "s": "string(after.a)"}
	if _, err := CompileSet(ok, numTable); err != nil {
		t.Errorf("CompileSet(%v): %v", ok, err)
	}
	if got, err := setText(t, "s", "string(after.a * 2)", numRecord("1.50", "1", "1", "1")); err != nil || got != "3.00" {
		t.Errorf("string(numeric) = %q, %v", got, err)
	}
}

func BenchmarkFilterNumeric(b *testing.B) {
	f, err := CompileFilter(`after.a > 1.5 && after.b * 3 <= 100`, numTable)
	if err != nil {
		b.Fatal(err)
	}
	rec := numRecord("10.75", "19.99", "3", "0.5")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Keep(rec, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFilterFloat is BenchmarkFilterNumeric over double precision
// columns: the cost of exactness is the difference.
func BenchmarkFilterFloat(b *testing.B) {
	tbl := Table{Name: numTable.Name, Columns: append([]Column(nil), numTable.Columns...)}
	tbl.Columns[1].TypeOID, tbl.Columns[2].TypeOID = oidFloat8, oidFloat8
	f, err := CompileFilter(`after.a > 1.5 && after.b * 3 <= 100`, tbl)
	if err != nil {
		b.Fatal(err)
	}
	rec := numRecord("10.75", "19.99", "3", "0.5")
	rec.Rel.Columns[1].TypeOID, rec.Rel.Columns[2].TypeOID = oidFloat8, oidFloat8
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Keep(rec, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetNumeric(b *testing.B) { benchmarkSet(b, `round(after.b * 1.1, 2)`) }

// BenchmarkSetNumericQuo is a numeric division, whose scale comes from
// the operands' base-10000 weights (divScale).
func BenchmarkSetNumericQuo(b *testing.B) { benchmarkSet(b, `after.a / after.b`) }

// benchmarkSet measures setting column b to src over a row of numTable.
func benchmarkSet(b *testing.B, src string) {
	s, err := CompileSet(map[string]string{"b": src}, numTable)
	if err != nil {
		b.Fatal(err)
	}
	row := vals("1", "10.75", "19.99", "3", "0.5", "x")
	r := numRecord("1", "1", "1", "1").Rel
	b.ReportAllocs()
	for b.Loop() {
		rec := &record.Record{Op: record.Insert, Rel: r, New: row}
		if err := s.Apply(rec, false, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseNumeric(t *testing.T) {
	for in, want := range map[string]string{
		"12.50": "12.50", "-0.001": "-0.001", "123456789012345678": "123456789012345678",
		"1234567890123456789.5": "1234567890123456789.5", "1e3": "1000", "1.5E-3": "0.0015",
		"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity", "-0": "0", ".5": "0.5",
	} {
		n, err := ParseNumeric(in)
		if err != nil || n.String() != want {
			t.Errorf("ParseNumeric(%q) = %v, %v; want %s", in, n, err, want)
		}
	}
	for _, in := range []string{"", "-", "1.2.3", "12a", " 1", "sNaN", "--1"} {
		if n, err := ParseNumeric(in); err == nil {
			t.Errorf("ParseNumeric(%q) = %v, want an error", in, n)
		}
	}
}

// TestNumericIn: `in` compares a numeric by value, not by representation.
func TestNumericIn(t *testing.T) {
	for src, want := range map[string]bool{
		"after.a in [0.3, 1]":          true,
		"after.a in [0.31, 1]":         false,
		"after.a not in [1, 2]":        true,
		"after.b in [1, 2, 3]":         true,
		"after.q in [3, 4]":            true,
		"after['a' + ''] in [0.3]":     true,
		"after.a in [after.b * 0.1]":   true,
		"after.s in ['x', 'y']":        true,
		"(after.a ?? 0) in [0.300, 2]": true,
	} {
		if got := keep(t, src, numRecord("0.30", "3.00", "3", "1")); got != want {
			t.Errorf("filter %s gave %v, want %v", src, got, want)
		}
	}
}
