package rowexpr

import (
	"errors"
	"strings"
	"testing"
)

// TestNumericPower: ** and ^ over numerics give what PostgreSQL 15
// prints for the same SQL (numeric ^ numeric): its scale for whole and
// other exponents, the sign of a negative base, NaN and infinities, very
// large and very small results.
func TestNumericPower(t *testing.T) {
	cases := []struct{ a, b, src, want string }{
		{"2", "0.5", "after.a ** after.b", "1.4142135623730950"},
		{"2.0", "3", "after.a ^ after.b", "8.0000000000000000"},
		{"1.5", "2", "after.a ** 2.000000000000000000", "2.2500000000000000"}, // 15: the exponent's scale does not count
		{"0.1", "20", "after.a ** 20", "0.0000000000000000"},
		{"2", "-3", "after.a ** -3", "0.1250000000000000"},
		{"-2", "3", "after.a ** 3", "-8.0000000000000000"},
		{"1.1", "2.5", "after.a ** 2.5", "1.2690587062858834"},
		{"100", "1.5", "after.a ** 1.5", "1000.0000000000000"},
		{"10", "0.5", "after.a ** 0.5", "3.1622776601683793"},
		{"0.001", "0.5", "after.a ** 0.5", "0.03162277660168379"},
		{"2.5", "1", "after.a ** 1.00000000000000000000", "2.5000000000000000"},
		{"7", "1", "after.a ** 0.1234567890123456789", "1.2715489700048846287"},
		{"1e-30", "1", "after.a ** 0.5", "0.0000000000000010000000000000000"},
		{"123.456", "1", "after.a ** 1.5", "1371.7289437796434"},
		{"12345678901234567890", "1", "after.a ** 3", "1881676372353657772490265749424677022198701224860897069000.0000000000000000"},
		{"9.99", "1", "after.a ** 10", "9900448802.0974820988004499"},
		{"0.3", "1", "after.a ** -5", "411.5226337448559671"},
		{"0", "1", "after.a ** 0.0", "1.0000000000000000"},
		{"0.0", "1", "after.a ** 0.5", "0.0000000000000000"},
		{"1e-20", "1", "after.a ** 3", "0.00000000000000000000"},
		{"1.0001", "1", "after.a ** 100000", "22015.4560485521986457"},
		{"1.5", "1", "after.a ** 700", "1836036619842633264156504383509665755820768114549546076957662084804884794946963069038990367125769539194962166697037722810228.8191306997143287"},
		{"0.5", "1", "after.a ** 3000000000", "0." + strings.Repeat("0", 1000)},
		{"-0.5", "1", "after.a ** 3000000001", "0." + strings.Repeat("0", 1000)},
		{"10", "1", "after.a ** 40", "10000000000000000000000000000000000000000.0000000000000000"},
		{"1e26", "1", "after.a ** 99.5", "1" + strings.Repeat("0", 2587) + ".0"}, // beyond apd's Exp alone
		// 2888 significant digits: beyond apd's Ln (it failed "overflows").
		{"1" + strings.Repeat("0", 26) + "." + strings.Repeat("0", 300), "1", "after.a ** 99.5", "1" + strings.Repeat("0", 2587) + "." + strings.Repeat("0", 300)},
		// The exponent of e is below float64's range: apd's Exp took e**x
		// as 1 (it gave 1.000...000).
		{"1." + strings.Repeat("0", 498) + "1", "1", "after.a ** -2.5", "0." + strings.Repeat("9", 498) + "8"},
		// exp_var's own limit: e**x for x <= -6000 is zero.
		{"0.5", "1", "after.a ** 8680.5", "0." + strings.Repeat("0", 1000)},
		{"2", "10", "2 ** after.a", "4.0000000000000000"},
		// NaN and infinities, as POSIX pow.
		{"NaN", "0", "after.a ** 0", "1"},
		{"1", "0", "after.a ** numeric('NaN')", "1"},
		{"2", "0", "after.a ** numeric('Infinity')", "Infinity"},
		{"0", "0", "after.a ** numeric('Infinity')", "0"},
		{"-1", "0", "after.a ** numeric('Infinity')", "1"},
		{"0.5", "0", "after.a ** numeric('-Infinity')", "Infinity"},
		{"Infinity", "0", "after.a ** numeric('NaN')", "NaN"},
		{"-Infinity", "0", "after.a ** -3", "0"},
		{"-Infinity", "0", "after.a ** 3", "-Infinity"},
		{"-Infinity", "0", "after.a ** 2", "Infinity"},
	}
	for _, c := range cases {
		got, err := setText(t, "a", c.src, numRecord(c.a, c.b, "1", "0.5"))
		if err != nil || got != c.want {
			t.Errorf("a=%s b=%s: %s gave %.200q, %v; want %.200q", c.a, c.b, c.src, got, err, c.want)
		}
	}
}

// TestNumericAggregates: max, min, sum, mean and median over numerics
// as PostgreSQL's greatest, least, sum and avg: exact, the first of
// equal values, NaN above all, avg's scale; with a double precision
// value among them, double precision.
func TestNumericAggregates(t *testing.T) {
	cases := []struct{ a, b, col, src, want string }{
		{"1.50", "1.5", "a", "max(after.a, after.b)", "1.50"},
		{"1.5", "1.50", "a", "max(after.a, after.b)", "1.5"},
		{"NaN", "1", "a", "max(after.a, numeric('Infinity'))", "NaN"},
		{"NaN", "1", "a", "min(after.a, after.b)", "1"},
		{"0.1", "0.2", "a", "max(after.a, 0.15)", "0.15"},
		{"0.1", "0.2", "a", "min([after.a, after.b], -0.5)", "-0.5"},
		{"0.1", "0.2", "a", "max(after.a, after.q)", "3"},
		{"0.1", "0.2", "a", "sum([after.a, after.b, 0.30])", "0.60"},
		{"0.1", "0.2", "a", "sum([0.2, after.a])", "0.3"},
		{"0.1", "0.2", "a", "sum([after.a, after.b], # * 3)", "0.9"},
		{"Infinity", "0.2", "a", "sum([after.a, numeric('-Infinity')])", "NaN"},
		{"1", "2", "a", "mean([after.a, after.b])", "1.5000000000000000"},
		{"1.5", "2", "a", "mean([after.a, after.b, 3.25])", "2.2500000000000000"},
		{"1.5", "2", "a", "median([after.a, after.b, after.q])", "2"},
		{"1.5", "2", "a", "median([after.a, after.b])", "1.7500000000000000"},
		// greatest and least leave nil out, as PostgreSQL leaves NULL out.
		{"1.50", "1.5", "a", "greatest(after.a, nil, after.b)", "1.50"},
		{"\\N", "1.5", "a", "least(after.a, after.b, 2)", "1.5"},
		{"\\N", "1.5", "a", "least(after.a, nil)", "NULL"},
		{"1", "2", "s", "string(greatest(1, 2, nil))", "2"},
		// Without numerics: expr-lang's own.
		{"1", "2", "s", "string(sum([1, 2, 3]))", "6"},
		{"1", "2", "s", "string(max(1, 2.5))", "2.5"},
		{"1", "2", "s", "string(mean([1, 2]))", "1.5"},
		// A double precision value among them: double precision.
		{"0.1", "2", "s", "type(max(after.a, after.f)) + ' ' + string(max(after.a, after.f))", "float 0.5"},
		{"0.1", "2", "s", "type(sum([after.a, after.f]))", "float"},
	}
	for _, c := range cases {
		got, err := setText(t, c.col, c.src, numRecord(c.a, c.b, "3", "0.5"))
		if err != nil || got != c.want {
			t.Errorf("a=%s b=%s: %s gave %q, %v; want %q", c.a, c.b, c.src, got, err, c.want)
		}
	}
	for src, want := range map[string]string{"max(after.a, after.b)": "numeric", "min(after.a, 1, 0.5)": "numeric", "max(after.a, after.f)": "float64", "mean([after.a])": "interface {}", "greatest(after.a, after.b)": "numeric", "least(after.a, after.f)": "float64"} {
		if p, err := compile(src, numTable); err != nil || typeString(p.prog.Node().Type()) != want {
			t.Errorf("%s: %v; want type %s", src, err, want)
		}
	}
	if _, err := CompileFilter("max(after.a, after.s) > 1", numTable); err == nil || !strings.Contains(err.Error(), "invalid argument for max (type string)") {
		t.Errorf("max over a string: %v", err)
	}
	if _, err := CompileFilter("sum(after.a) > 1", numTable); err == nil || !strings.Contains(err.Error(), "sum takes only array (got numeric)") {
		t.Errorf("sum of a numeric: %v", err)
	}
}

// TestNumericWithDouble: a numeric beside a double precision value is
// converted to double precision as PostgreSQL does (numeric + double
// precision is double precision): the type is float64 at compile time,
// the arithmetic and comparisons are float8's; a float literal stays a
// numeric literal, also beside a value of unknown type.
func TestNumericWithDouble(t *testing.T) {
	for src, want := range map[string]string{
		"after.a + after.f": "float64", "after.f * after.a": "float64", "after.a ** after.f": "float64",
		"after.a + 0.5": "numeric", "after.a + after.q": "numeric", "after.f + after.q": "float64",
	} {
		p, err := compile(src, numTable)
		if err != nil || typeString(p.prog.Node().Type()) != want {
			t.Errorf("%s: %v, %v; want type %s", src, p, err, want)
			continue
		}
	}
	cases := []struct{ a, f, col, src, want string }{
		{"0.1", "0.2", "s", "string(after.a + after.f)", "0.30000000000000004"},
		{"0.1", "0.2", "a", "after.a + after.f", "0.30000000000000004"},
		{"0.1", "0.2", "a", "after.a + 0.2", "0.3"},
		{"0.1", "0.2", "a", "(after.a ?? 0) + 0.2", "0.3"},
		{"2", "0.5", "s", "string(after.a ** after.f)", "1.4142135623730951"},
		{"NaN", "NaN", "s", "string(after.a == after.f)", "true"},
		{"NaN", "Infinity", "s", "string(after.a > after.f)", "true"},
		{"0.10000000000000000001", "0.1", "s", "string(after.a == after.f)", "true"},
		{"0.10000000000000000001", "0.1", "s", "string(after.a == 0.1)", "false"},
		{"Infinity", "-Infinity", "s", "string(after.a + after.f)", "NaN"},
	}
	for _, c := range cases {
		got, err := setText(t, c.col, c.src, numRecord(c.a, "1", "3", c.f))
		if err != nil || got != c.want {
			t.Errorf("a=%s f=%s: %s gave %q, %v; want %q", c.a, c.f, c.src, got, err, c.want)
		}
	}
	for src, want := range map[string]bool{
		"after.a in [0.1]": false, "after.a in [after.f]": true, "after.a in [after.f + 1, 0.10000000000000000001]": true,
		"(after.a ?? 0) in [0.1, 2]": false, "after.q in [3.0, 4]": true,
	} {
		if got := keep(t, src, numRecord("0.10000000000000000001", "1", "3", "0.1")); got != want {
			t.Errorf("filter %s gave %v, want %v", src, got, want)
		}
	}
	if _, err := CompileFilter("after.a % after.f > 1", numTable); err == nil || !strings.Contains(err.Error(), "PostgreSQL has no % for double precision") {
		t.Errorf("numeric %% double precision: %v", err)
	}
}

// TestNumericPowerErrors: the errors of ** are PostgreSQL's, with the
// operator's position (the engine adds the stage's file:line).
func TestNumericPowerErrors(t *testing.T) {
	cases := []struct {
		a, f, src string
		pos       int
		want      string
	}{
		{"0", "1", "after.a ** -1", 9, "zero raised to a negative power is undefined"},
		{"0.00", "1", "1 + after.a ** -0.5", 13, "zero raised to a negative power is undefined"},
		{"-8", "1", "after.a ** 0.5", 9, "a negative number raised to a non-integer power yields a complex result"},
		{"-Infinity", "1", "after.a ^ 0.5", 9, "a negative number raised to a non-integer power yields a complex result"},
		{"0", "-Infinity", "after.a ** numeric('-Infinity')", 9, "zero raised to a negative power is undefined"},
		{"2", "1", "after.a ** 3000000000", 9, "value overflows numeric format"},
		{"-2", "1", "after.a ** 3000000000", 9, "value overflows numeric format"},
		{"2", "1", "after.a ** 8680.5", 9, "value overflows numeric format"}, // exp_var's: e**x for x >= 6000
		{"0.06", "1", "after.a ** -317748", 9, "value overflows numeric format"},
		{"0", "-1", "after.a ** after.f", 9, "zero raised to a negative power is undefined"},
		{"-2", "0.5", "after.a ** after.f", 9, "a negative number raised to a non-integer power yields a complex result"},
		{"1e308", "10", "after.a * after.f", 9, "value out of range: overflow"},
		{"1e-320", "1e-10", "after.a * after.f", 9, "value out of range: underflow"},
		{"1", "0", "after.a / after.f", 9, "division by zero"},
		{"1e400", "1", "after.a + after.f", 9, `"1` + strings.Repeat("0", 400) + `" is out of range for type double precision`},
		{"1", "1", "0 ** -1", 3, "zero raised to a negative power is undefined"},
		{"1", "-8", "after.f ** 0.5", 9, "a negative number raised to a non-integer power yields a complex result"},
		{"1", "10", "after.f ** 400", 9, "value out of range: overflow"},
	}
	for _, c := range cases {
		_, err := setText(t, "a", c.src, numRecord(c.a, "1", "1", c.f))
		var ee *EvalError
		if !errors.As(err, &ee) || ee.Pos != c.pos || !strings.Contains(err.Error(), c.want) {
			t.Errorf("a=%s f=%s: %s: %v; want an *EvalError at %d with %q", c.a, c.f, c.src, err, c.pos, c.want)
		}
	}
}

// BenchmarkNumericPowReal is a power with an exponent that is not whole
// (ln, then exp, at PostgreSQL's scale).
func BenchmarkNumericPowReal(b *testing.B) {
	x, err := ParseNumeric("123.456")
	if err != nil {
		b.Fatal(err)
	}
	y, err := ParseNumeric("1.5")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x.pow(y); err != nil {
			b.Fatal(err)
		}
	}
}
