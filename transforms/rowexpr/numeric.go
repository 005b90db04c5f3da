package rowexpr

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/cockroachdb/apd/v3"
)

// Numeric is a PostgreSQL numeric value inside an expression: an exact
// decimal of any precision, or NaN, Infinity or -Infinity (numeric has
// them since PostgreSQL 14). Numeric values are immutable; the zero
// Numeric is not a valid value.
//
// The digits are github.com/cockroachdb/apd/v3 decimals. The arithmetic
// follows PostgreSQL's numeric operators:
//
//   - +, - and * are exact (the result has as many fraction digits as
//     they need: the larger scale for + and -, the sum of the scales
//     for *).
//   - / rounds half away from zero to the scale PostgreSQL's
//     select_div_scale picks: at least 16 significant digits, and no
//     fewer fraction digits than either operand has (at most 1000).
//     1/3 is 0.33333333333333333333, 10/4 is 2.5000000000000000.
//   - % is the remainder of the division truncated toward zero (its sign
//     is the dividend's), with the larger scale of the two operands.
//   - A zero divisor is a runtime error, as in PostgreSQL.
//   - NaN equals NaN and sorts above every other value, Infinity included
//     (PostgreSQL's order); NaN in arithmetic gives NaN; Infinity -
//     Infinity and Infinity * 0 give NaN; x / ±Infinity is 0.
//
// An int operand is converted exactly. A number literal written beside a
// numeric is read as written, as SQL reads a numeric literal: 0.3 is
// exactly 0.3 (after.amount == 0.3 holds for a column holding 0.3) and
// 1.50 has two fraction digits. Any other float64 operand (a real/double
// precision column, a float computed at run time) makes the operation a
// double precision one, as in PostgreSQL (numeric_float.go); numeric(x)
// converts a float64 through its shortest decimal text, the digits Go
// and PostgreSQL print for it (a float NaN or ±Inf becomes numeric NaN
// or ±Infinity).
//
// Limits: values up to apd's exponent range (about 1e±100000; PostgreSQL
// allows up to 131072 digits before the point), beyond which reading
// the value or an operation is an error rather than a rounded result.
type Numeric struct{ d *apd.Decimal }

var numericType = reflect.TypeOf(Numeric{})

// exact is the context of the exact operations: no rounding (precision
// 0), an error only where the exponent leaves apd's range; NaN results
// (Infinity - Infinity) are values, not errors.
var exact = apd.Context{
	MaxExponent: apd.MaxExponent,
	MinExponent: apd.MinExponent,
	Traps:       apd.SystemOverflow | apd.SystemUnderflow | apd.Overflow | apd.Underflow,
}

// PostgreSQL's limits for the scale of a division and of round/trunc.
const (
	minSigDigits    = 16    // NUMERIC_MIN_SIG_DIGITS
	maxDisplayScale = 1000  // NUMERIC_MAX_DISPLAY_SCALE
	maxRoundScale   = 16383 // NUMERIC_DSCALE_MAX
	minRoundScale   = -131072
)

var errDivisionByZero = errors.New("division by zero")

// ParseNumeric reads a numeric value in PostgreSQL's text form
// ("-12.50", "1e3", "NaN", "Infinity", "-Infinity").
func ParseNumeric(s string) (Numeric, error) {
	if d, ok := parseShort(s); ok {
		return Numeric{d}, nil
	}
	d := new(apd.Decimal)
	if _, _, err := exact.SetString(d, s); err != nil || d.Form == apd.NaNSignaling || strings.TrimSpace(s) != s || s == "" {
		return Numeric{}, fmt.Errorf("%q is not a numeric value", s)
	}
	return Numeric{d}, nil
}

// parseShort reads the common case of ParseNumeric, a plain decimal of
// at most 18 digits, without apd's general parser.
func parseShort(s string) (*apd.Decimal, bool) {
	i, neg := 0, false
	if len(s) > 0 && s[0] == '-' {
		i, neg = 1, true
	}
	var coeff int64
	var exp int32
	digits, dot := 0, false
	for ; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '.' && !dot:
			dot = true
		case ch >= '0' && ch <= '9' && digits < 18:
			coeff = coeff*10 + int64(ch-'0')
			digits++
			if dot {
				exp--
			}
		default:
			return nil, false
		}
	}
	if digits == 0 {
		return nil, false
	}
	d := new(apd.Decimal).SetFinite(coeff, exp)
	d.Negative = neg && coeff != 0
	return d, true
}

// String returns the value as PostgreSQL prints it: plain notation with
// every fraction digit of its scale, or NaN, Infinity, -Infinity.
func (n Numeric) String() string {
	if n.d == nil {
		return "<invalid numeric>"
	}
	switch n.d.Form {
	case apd.NaN, apd.NaNSignaling:
		return "NaN"
	case apd.Infinite:
		if n.d.Negative {
			return "-Infinity"
		}
		return "Infinity"
	}
	d := n.d
	if d.Negative && d.Coeff.Sign() == 0 {
		// PostgreSQL has no negative zero.
		d = new(apd.Decimal).Set(d)
		d.Negative = false
	}
	return d.Text('f')
}

func (n Numeric) isNaN() bool { return n.d.Form == apd.NaN || n.d.Form == apd.NaNSignaling }

// numericFromInt converts an integer exactly.
func numericFromInt(i int64) Numeric { return Numeric{new(apd.Decimal).SetInt64(i)} }

// numericFromFloat converts f through its shortest decimal text.
func numericFromFloat(f float64) Numeric {
	d := new(apd.Decimal)
	switch {
	case math.IsNaN(f):
		d.Form = apd.NaN
	case math.IsInf(f, 0):
		d.Form = apd.Infinite
		d.Negative = f < 0
	default:
		if _, _, err := exact.SetString(d, strconv.FormatFloat(f, 'g', -1, 64)); err != nil {
			panic(fmt.Sprintf("rowexpr: float %v has no decimal form: %v", f, err)) // unreachable: Go prints every finite float in a form apd reads
		}
	}
	return Numeric{d}
}

// toNumeric converts an operand of a numeric operation.
func toNumeric(v any) (Numeric, bool) {
	switch x := v.(type) {
	case Numeric:
		return x, x.d != nil
	case int:
		return numericFromInt(int64(x)), true
	case int64:
		return numericFromInt(x), true
	case int32:
		return numericFromInt(int64(x)), true
	case float64:
		return numericFromFloat(x), true
	case float32:
		return numericFromFloat(float64(x)), true
	}
	return Numeric{}, false
}

func isNaNDec(d *apd.Decimal) bool { return d.Form == apd.NaN || d.Form == apd.NaNSignaling }

func nanNumeric() Numeric { return Numeric{&apd.Decimal{Form: apd.NaN}} }

// scaleOf is the number of fraction digits (PostgreSQL's display scale).
func scaleOf(d *apd.Decimal) int64 {
	if d.Exponent < 0 {
		return -int64(d.Exponent)
	}
	return 0
}

func pow10(n int64) *apd.BigInt {
	if n <= 18 {
		p := int64(1)
		for range n {
			p *= 10
		}
		return apd.NewBigInt(p)
	}
	return new(apd.BigInt).Exp(apd.NewBigInt(10), apd.NewBigInt(n), nil)
}

func (n Numeric) add(m Numeric) (Numeric, error) {
	d := new(apd.Decimal)
	if _, err := exact.Add(d, n.d, m.d); err != nil {
		return Numeric{}, fmt.Errorf("numeric %s + %s: %w", n, m, err)
	}
	return Numeric{d}, nil
}

func (n Numeric) sub(m Numeric) (Numeric, error) {
	d := new(apd.Decimal)
	if _, err := exact.Sub(d, n.d, m.d); err != nil {
		return Numeric{}, fmt.Errorf("numeric %s - %s: %w", n, m, err)
	}
	return Numeric{d}, nil
}

func (n Numeric) mul(m Numeric) (Numeric, error) {
	d := new(apd.Decimal)
	if _, err := exact.Mul(d, n.d, m.d); err != nil {
		return Numeric{}, fmt.Errorf("numeric %s * %s: %w", n, m, err)
	}
	return Numeric{d}, nil
}

func (n Numeric) neg() Numeric {
	if n.isNaN() || (n.d.Form == apd.Finite && n.d.Coeff.Sign() == 0) {
		return n
	}
	return Numeric{new(apd.Decimal).Neg(n.d)}
}

func (n Numeric) abs() Numeric {
	if !n.d.Negative {
		return n
	}
	return Numeric{new(apd.Decimal).Abs(n.d)}
}

// cmp compares in PostgreSQL's order: NaN equals NaN and is above all.
func (n Numeric) cmp(m Numeric) int {
	a, b := n.isNaN(), m.isNaN()
	switch {
	case a && b:
		return 0
	case a:
		return 1
	case b:
		return -1
	}
	return n.d.Cmp(m.d)
}

// quo divides as PostgreSQL's numeric_div does (see Numeric).
func (n Numeric) quo(m Numeric) (Numeric, error) {
	x, y := n.d, m.d
	if isNaNDec(x) || isNaNDec(y) {
		return nanNumeric(), nil
	}
	if x.Form == apd.Infinite {
		if y.Form == apd.Infinite {
			return nanNumeric(), nil
		}
		if y.IsZero() {
			return Numeric{}, errDivisionByZero
		}
		d := &apd.Decimal{Form: apd.Infinite, Negative: x.Negative != y.Negative}
		return Numeric{d}, nil
	}
	if y.Form == apd.Infinite {
		return numericFromInt(0), nil
	}
	if y.IsZero() {
		return Numeric{}, errDivisionByZero
	}
	return divRound(x, y, divScale(x, y)), nil
}

// divScale is PostgreSQL's select_div_scale: enough fraction digits for
// at least 16 significant digits of the quotient, no fewer than either
// operand's scale, at most 1000. Weights are counted in PostgreSQL's
// base-10000 digits so that the choice is the server's, digit for digit.
func divScale(x, y *apd.Decimal) int64 {
	w1, f1, _ := nbaseDigits(x)
	w2, f2, _ := nbaseDigits(y)
	qweight := w1 - w2
	if f1[0] <= f2[0] {
		qweight--
	}
	rscale := minSigDigits - qweight*4
	rscale = max(rscale, scaleOf(x), scaleOf(y), 0)
	return min(rscale, maxDisplayScale)
}

// nbaseDigits returns d as PostgreSQL stores it in base-10000 digits,
// as far as its low-precision estimates read it: the weight (power of
// 10000) of the first non-zero digit and the first (up to) four digits
// from there, n of them, trailing zero digits left out; 0 and none for
// zero.
func nbaseDigits(d *apd.Decimal) (weight int64, digits [4]int64, n int) {
	if d.Coeff.Sign() == 0 {
		return 0, digits, 0
	}
	var buf [40]byte
	text := d.Coeff.Append(buf[:0], 10)              // no allocation below 2**64
	lead := int64(len(text)) - 1 + int64(d.Exponent) // power of 10 of the first digit
	weight = lead / 4
	if lead < 0 && lead%4 != 0 {
		weight-- // floor division
	}
	for text[len(text)-1] == '0' {
		text = text[:len(text)-1]
	}
	width := int(lead - 4*weight + 1) // decimal digits of the first base-10000 digit: 1..4
	for i := 0; i < len(text) && n < len(digits); n++ {
		var v int64
		for range width {
			v *= 10
			if i < len(text) {
				v += int64(text[i] - '0')
				i++
			}
		}
		digits[n] = v
		width = 4
	}
	return weight, digits, n
}

// rem is PostgreSQL's numeric_mod (see Numeric).
func (n Numeric) rem(m Numeric) (Numeric, error) {
	x, y := n.d, m.d
	if isNaNDec(x) || isNaNDec(y) {
		return nanNumeric(), nil
	}
	if x.Form == apd.Infinite {
		if y.Form == apd.Finite && y.IsZero() {
			return Numeric{}, errDivisionByZero
		}
		return nanNumeric(), nil
	}
	if y.Form == apd.Infinite {
		return n, nil
	}
	if y.IsZero() {
		return Numeric{}, errDivisionByZero
	}
	e := min(x.Exponent, y.Exponent)
	a := new(apd.BigInt).Mul(&x.Coeff, pow10(int64(x.Exponent-e)))
	b := new(apd.BigInt).Mul(&y.Coeff, pow10(int64(y.Exponent-e)))
	r := new(apd.BigInt).Rem(a, b)
	d := apd.NewWithBigInt(r, e)
	d.Negative = r.Sign() != 0 && x.Negative
	return Numeric{d}, nil
}

// roundTo rounds n to scale fraction digits (negative: to the left of
// the point), half away from zero, or toward zero when truncate; the
// result has max(scale, 0) fraction digits, like PostgreSQL's round and
// trunc. NaN and ±Infinity are returned as they are.
func (n Numeric) roundTo(scale int64, truncate bool) Numeric {
	if n.d.Form != apd.Finite {
		return n
	}
	scale = min(max(scale, minRoundScale), maxRoundScale)
	x := n.d
	target := -scale // the exponent of the last kept digit
	if int64(x.Exponent) >= target {
		// Nothing to round away; pad with zeros to a positive scale.
		if int64(x.Exponent) == target || scale <= 0 {
			return n
		}
		c := new(apd.BigInt).Mul(&x.Coeff, pow10(int64(x.Exponent)-target))
		d := apd.NewWithBigInt(c, int32(target))
		d.Negative = x.Negative && c.Sign() != 0
		return Numeric{d}
	}
	div := pow10(target - int64(x.Exponent))
	q, r := new(apd.BigInt).QuoRem(&x.Coeff, div, new(apd.BigInt))
	if !truncate && r.Add(r, r).Cmp(div) >= 0 {
		q.Add(q, apd.NewBigInt(1))
	}
	exp := target
	if scale < 0 {
		// Digits left of the point: the result is an integer (scale 0).
		q.Mul(q, pow10(-scale))
		exp = 0
	}
	d := apd.NewWithBigInt(q, int32(exp))
	d.Negative = x.Negative && q.Sign() != 0
	return Numeric{d}
}

// ceilFloor returns the smallest integer >= n (ceil) or the largest <= n.
func (n Numeric) ceilFloor(ceil bool) Numeric {
	if n.d.Form != apd.Finite {
		return n
	}
	t := n.roundTo(0, true)
	if t.cmp(n) != 0 && (n.d.Negative != ceil) {
		step := numericFromInt(1)
		if !ceil {
			step = numericFromInt(-1)
		}
		t, _ = t.add(step)
	}
	return t
}

// integer returns n's value as an integer text when n is integral.
func (n Numeric) integerText() (string, bool) {
	if n.d.Form != apd.Finite {
		return "", false
	}
	t := n.roundTo(0, true)
	if t.cmp(n) != 0 {
		return "", false
	}
	return t.String(), true
}

// toInt converts n to an int, truncating toward zero like int() does for
// floats.
func (n Numeric) toInt() (int, error) {
	if n.d.Form != apd.Finite {
		return 0, fmt.Errorf("cannot convert numeric %s to int", n)
	}
	t := n.roundTo(0, true)
	i, err := t.d.Int64()
	if err != nil || int64(int(i)) != i {
		return 0, fmt.Errorf("numeric %s is out of the range of int", n)
	}
	return int(i), nil
}

// toFloat converts n to the nearest float64.
func (n Numeric) toFloat() float64 {
	switch {
	case n.isNaN():
		return math.NaN()
	case n.d.Form == apd.Infinite && n.d.Negative:
		return math.Inf(-1)
	case n.d.Form == apd.Infinite:
		return math.Inf(1)
	}
	// Beyond float64's range ParseFloat gives ±Inf (or ±0 for tiny
	// values) with ErrRange: the nearest float64, which is what float()
	// asks for.
	f, _ := strconv.ParseFloat(n.d.Text('e'), 64)
	return f
}
