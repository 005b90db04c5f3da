package rowexpr

import (
	"fmt"
	"math"
	"reflect"

	"github.com/cockroachdb/apd/v3"
)

// A numeric beside a double precision value: PostgreSQL has no operator
// for numeric and double precision together and converts the numeric
// (numeric + double precision is double precision + double precision),
// so the operation is done in float64 as the server's float8 operators
// do it: NaN equals NaN and sorts above every other value; a result that
// overflows or underflows, and a zero divisor, are errors; % is refused
// (PostgreSQL has no % for double precision). A numeric out of double
// precision's range is an error, as its cast is.
//
// A number literal is no double precision value: written beside a
// numeric it is read as the numeric it says (SQL's numeric literal),
// also when the other operand's type is only known at run time
// (`(after.amount ?? 0) + 0.2`): there the patcher passes a floatLit,
// which the operation reads as a numeric or as a float64, whichever its
// other operand calls for.

// floatLit is a float literal written beside an operand whose type is
// known at run time only: f as written in float64, n as a numeric.
type floatLit struct {
	f float64
	n Numeric
}

var floatLitType = reflect.TypeOf(floatLit{})

// resolveLit reads v, when it is a floatLit, as a numeric (numeric true)
// or a float64.
func resolveLit(v any, numeric bool) any {
	if l, ok := v.(floatLit); ok {
		if numeric {
			return l.n
		}
		return l.f
	}
	return v
}

// float8 converts n as numeric's cast to double precision does.
func (n Numeric) float8() (float64, error) {
	f := n.toFloat()
	if n.d.Form == apd.Finite && (math.IsInf(f, 0) || (f == 0 && n.sign() != 0)) {
		return 0, fmt.Errorf("%q is out of range for type double precision", n.String())
	}
	return f, nil
}

// asFloat8 converts an operand of a double precision operation.
func asFloat8(v any) (float64, bool, error) {
	switch x := v.(type) {
	case Numeric:
		f, err := x.float8()
		return f, true, err
	case float64:
		return x, true, nil
	case int:
		return float64(x), true, nil
	case floatLit:
		return x.f, true, nil
	}
	return 0, false, nil
}

// floatCmp compares as PostgreSQL's float8 comparisons do: NaN equals
// NaN and is above every other value.
func floatCmp(x, y float64) int {
	xn, yn := math.IsNaN(x), math.IsNaN(y)
	switch {
	case xn && yn:
		return 0
	case xn:
		return 1
	case yn:
		return -1
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// floatOp is op over a numeric and a double precision value, both
// converted to float64 (see above).
func floatOp(op string, a, b any) (any, error) {
	x, okx, err := asFloat8(a)
	if err != nil {
		return nil, err
	}
	y, oky, err := asFloat8(b)
	if err != nil {
		return nil, err
	}
	if !okx || !oky {
		return notComparable(op, a, b)
	}
	switch op {
	case "+", "-":
		r := x + y
		if op == "-" {
			r = x - y
		}
		if math.IsInf(r, 0) && !math.IsInf(x, 0) && !math.IsInf(y, 0) {
			return nil, errFloatOverflow
		}
		return r, nil
	case "*":
		r := x * y
		if math.IsInf(r, 0) && !math.IsInf(x, 0) && !math.IsInf(y, 0) {
			return nil, errFloatOverflow
		}
		if r == 0 && x != 0 && y != 0 {
			return nil, errFloatUnderflow
		}
		return r, nil
	case "/":
		if y == 0 && !math.IsNaN(x) {
			return nil, errDivisionByZero
		}
		r := x / y
		if math.IsInf(r, 0) && !math.IsInf(x, 0) {
			return nil, errFloatOverflow
		}
		if r == 0 && x != 0 && !math.IsInf(y, 0) {
			return nil, errFloatUnderflow
		}
		return r, nil
	case "**", "^":
		return floatPow(x, y)
	case "%":
		return nil, errNoFloatModulo(a, b)
	}
	c := floatCmp(x, y)
	switch op {
	case "==":
		return c == 0, nil
	case "!=":
		return c != 0, nil
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	}
	return c >= 0, nil
}

func errNoFloatModulo(a, b any) error {
	return fmt.Errorf("invalid operation: %s %% %s (PostgreSQL has no %% for double precision; convert with numeric(...) or int(...))", typeName(a), typeName(b))
}

// floatPowPlain is ** over ints and floats: float64 as PostgreSQL's
// double precision ^ (expr-lang's own gives ±Inf or NaN for 0 ** -1 and
// -8 ** 0.5, which would slip into the data).
func floatPowPlain(a, b any) (any, error) {
	x, ok1 := plainFloat(a)
	y, ok2 := plainFloat(b)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("invalid operation: %s ** %s", typeName(a), typeName(b))
	}
	return floatPow(x, y)
}
