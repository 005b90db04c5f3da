package where

import (
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Num is a PostgreSQL numeric: an exact decimal M × 10^-Scale, where Scale
// is the value's display scale (dscale) as PostgreSQL keeps it (1.50 has
// scale 2), or one of the special values NaN, Infinity, -Infinity.
//
// math/big.Int is enough to compare and compute exactly; a decimal
// library would add a dependency without adding exactness. What must
// match PostgreSQL beyond exactness is the scale of a quotient, which
// div computes with PostgreSQL's own rule (select_div_scale).
type Num struct {
	M     *big.Int // nil for special values
	Scale int32
	Spec  numSpec
	Null  bool
}

type numSpec uint8

const (
	numFinite numSpec = iota
	numNaN
	numPosInf
	numNegInf
)

var bigTen = big.NewInt(10)

// pow10 returns 10^n.
func pow10(n int32) *big.Int {
	return new(big.Int).Exp(bigTen, big.NewInt(int64(n)), nil)
}

// numMaxScale is PostgreSQL's NUMERIC_MAX_DISPLAY_SCALE: the largest
// scale of a division result.
const numMaxScale = 1000

// errNumSyntax is returned by parseNumeric for malformed input.
var errNumSyntax = errors.New("invalid input syntax for type numeric")

// parseNumeric reads numeric input as PostgreSQL's numeric_in does:
// surrounding white space, NaN, [+-]Infinity (or inf), or a decimal with
// optional sign, fraction and exponent.
func parseNumeric(s string) (Num, error) {
	s = trimSpace(s)
	switch strings.ToLower(s) {
	case "nan":
		return Num{Spec: numNaN}, nil
	case "infinity", "+infinity", "inf", "+inf":
		return Num{Spec: numPosInf}, nil
	case "-infinity", "-inf":
		return Num{Spec: numNegInf}, nil
	}
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	var digits strings.Builder
	frac, i, seen := 0, 0, false
	for ; i < len(s) && isDigit(s[i]); i++ {
		digits.WriteByte(s[i])
		seen = true
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && isDigit(s[i]); i++ {
			digits.WriteByte(s[i])
			frac++
			seen = true
		}
	}
	if !seen {
		return Num{}, errNumSyntax
	}
	exp := int64(0)
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j == len(s) {
			return Num{}, errNumSyntax
		}
		for k := j; k < len(s); k++ {
			if !isDigit(s[k]) {
				return Num{}, errNumSyntax
			}
		}
		e, err := strconv.ParseInt(s[i+1:], 10, 32)
		if err != nil || e > 1000 || e < -1000 {
			return Num{}, errors.New("numeric exponent out of range")
		}
		exp = e
		i = len(s)
	}
	if i != len(s) {
		return Num{}, errNumSyntax
	}
	m, _ := new(big.Int).SetString(digits.String(), 10)
	if neg {
		m.Neg(m)
	}
	scale := int64(frac) - exp
	if scale < 0 {
		m.Mul(m, pow10(int32(-scale)))
		scale = 0
	}
	if scale > numMaxScale {
		return Num{}, errors.New("numeric value out of range: too many digits after the decimal point")
	}
	return Num{M: m, Scale: int32(scale)}, nil
}

// numFromInt converts an integer to numeric (scale 0).
func numFromInt(v int64) Num { return Num{M: big.NewInt(v)} }

// String renders the value as PostgreSQL's numeric_out does.
func (n Num) String() string {
	switch n.Spec {
	case numNaN:
		return "NaN"
	case numPosInf:
		return "Infinity"
	case numNegInf:
		return "-Infinity"
	}
	s := new(big.Int).Abs(n.M).String()
	if n.Scale > 0 {
		if len(s) <= int(n.Scale) {
			s = strings.Repeat("0", int(n.Scale)-len(s)+1) + s
		}
		s = s[:len(s)-int(n.Scale)] + "." + s[len(s)-int(n.Scale):]
	}
	if n.M.Sign() < 0 {
		s = "-" + s
	}
	return s
}

// align returns the unscaled values of a and b at a common scale.
func align(a, b Num) (*big.Int, *big.Int, int32) {
	switch {
	case a.Scale == b.Scale:
		return a.M, b.M, a.Scale
	case a.Scale < b.Scale:
		return new(big.Int).Mul(a.M, pow10(b.Scale-a.Scale)), b.M, b.Scale
	}
	return a.M, new(big.Int).Mul(b.M, pow10(a.Scale-b.Scale)), a.Scale
}

// sortKey orders special values as PostgreSQL does: -Infinity < finite <
// Infinity < NaN (NaN equals NaN and is greater than everything).
func (n Num) sortKey() int {
	switch n.Spec {
	case numNegInf:
		return 0
	case numPosInf:
		return 2
	case numNaN:
		return 3
	}
	return 1
}

// cmpNum compares two non-null numerics.
func cmpNum(a, b Num) int {
	ka, kb := a.sortKey(), b.sortKey()
	if ka != kb || ka != 1 {
		return cmpInt(int64(ka), int64(kb))
	}
	x, y, _ := align(a, b)
	return x.Cmp(y)
}

func (n Num) sign() int {
	switch n.Spec {
	case numPosInf:
		return 1
	case numNegInf:
		return -1
	case numNaN:
		return 0
	}
	return n.M.Sign()
}

func infOf(sign int) Num {
	if sign < 0 {
		return Num{Spec: numNegInf}
	}
	return Num{Spec: numPosInf}
}

var errDivZero = errors.New("division by zero")

// numArith computes a op b as PostgreSQL's numeric operators do,
// special values included.
func numArith(op byte, a, b Num) (Num, error) {
	if a.Spec == numNaN || b.Spec == numNaN {
		return Num{Spec: numNaN}, nil
	}
	if a.Spec != numFinite || b.Spec != numFinite {
		return numArithSpecial(op, a, b)
	}
	switch op {
	case '+', '-':
		x, y, s := align(a, b)
		r := new(big.Int)
		if op == '+' {
			r.Add(x, y)
		} else {
			r.Sub(x, y)
		}
		return Num{M: r, Scale: s}, nil
	case '*':
		return Num{M: new(big.Int).Mul(a.M, b.M), Scale: a.Scale + b.Scale}, nil
	case '/':
		if b.M.Sign() == 0 {
			return Num{}, errDivZero
		}
		return numDiv(a, b), nil
	case '%':
		if b.M.Sign() == 0 {
			return Num{}, errDivZero
		}
		// a - trunc(a/b)*b, at the larger scale.
		x, y, s := align(a, b)
		return Num{M: new(big.Int).Rem(x, y), Scale: s}, nil
	}
	return Num{}, errors.New("unknown numeric operator")
}

// numArithSpecial handles infinities (NaN is handled by the caller), as in
// PostgreSQL 14 and later.
func numArithSpecial(op byte, a, b Num) (Num, error) {
	nan := Num{Spec: numNaN}
	sa, sb := a.sign(), b.sign()
	switch op {
	case '+':
		switch {
		case a.Spec != numFinite && b.Spec != numFinite:
			if a.Spec == b.Spec {
				return a, nil
			}
			return nan, nil
		case a.Spec != numFinite:
			return a, nil
		}
		return b, nil
	case '-':
		switch {
		case a.Spec != numFinite && b.Spec != numFinite:
			if a.Spec != b.Spec {
				return a, nil
			}
			return nan, nil
		case a.Spec != numFinite:
			return a, nil
		}
		return infOf(-sb), nil
	case '*':
		if sa == 0 || sb == 0 {
			return nan, nil
		}
		return infOf(sa * sb), nil
	case '/':
		if a.Spec != numFinite {
			if b.Spec != numFinite {
				return nan, nil
			}
			if sb == 0 {
				return Num{}, errDivZero
			}
			return infOf(sa * sb), nil
		}
		// finite / infinity
		return Num{M: new(big.Int)}, nil
	case '%':
		if a.Spec != numFinite {
			if sb == 0 && b.Spec == numFinite {
				return Num{}, errDivZero
			}
			return nan, nil
		}
		return a, nil // finite % infinity
	}
	return Num{}, errors.New("unknown numeric operator")
}

// numDiv divides two finite numerics with b ≠ 0 as PostgreSQL's
// numeric_div does: the result scale comes from select_div_scale (at
// least 16 significant digits, at least either input's scale, at most
// 1000), and the quotient is rounded half away from zero at that scale.
func numDiv(a, b Num) Num {
	rscale := divScale(a, b)
	// q = a/b × 10^rscale = a.M × 10^(rscale - a.Scale + b.Scale) / b.M
	num := new(big.Int).Set(a.M)
	den := new(big.Int).Set(b.M)
	if e := rscale - a.Scale + b.Scale; e >= 0 {
		num.Mul(num, pow10(e))
	} else {
		den.Mul(den, pow10(-e))
	}
	neg := num.Sign()*den.Sign() < 0
	num.Abs(num)
	den.Abs(den)
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	// round half away from zero: r/den >= 1/2
	if r.Lsh(r, 1).Cmp(den) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if neg {
		q.Neg(q)
	}
	return Num{M: q, Scale: rscale}
}

// divScale is PostgreSQL's select_div_scale. Weights and first digits are
// those of PostgreSQL's base-10000 representation.
func divScale(a, b Num) int32 {
	w1, d1 := nbaseLead(a)
	w2, d2 := nbaseLead(b)
	qweight := w1 - w2
	if d1 <= d2 {
		qweight--
	}
	const minSigDigits, decDigits = 16, 4
	rscale := int32(minSigDigits - qweight*decDigits)
	rscale = max(rscale, a.Scale, b.Scale, 0)
	return min(rscale, numMaxScale)
}

// nbaseLead returns the weight and the value of the first non-zero
// base-10000 digit of a finite numeric (0, 0 for zero).
func nbaseLead(n Num) (weight int, first int) {
	if n.M.Sign() == 0 {
		return 0, 0
	}
	s := new(big.Int).Abs(n.M).String()
	e10 := len(s) - 1 - int(n.Scale) // exponent of the leading decimal digit
	weight = floorDiv(e10, 4)
	k := e10 - 4*weight + 1 // decimal digits in the first base-10000 digit
	for len(s) < k {
		s += "0"
	}
	first, _ = strconv.Atoi(s[:k])
	return weight, first
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func numNeg(a Num) Num {
	switch a.Spec {
	case numPosInf:
		return Num{Spec: numNegInf}
	case numNegInf:
		return Num{Spec: numPosInf}
	case numNaN:
		return a
	}
	return Num{M: new(big.Int).Neg(a.M), Scale: a.Scale}
}

func numAbs(a Num) Num {
	switch a.Spec {
	case numNegInf:
		return Num{Spec: numPosInf}
	case numPosInf, numNaN:
		return a
	}
	return Num{M: new(big.Int).Abs(a.M), Scale: a.Scale}
}

// numToFloat converts as PostgreSQL's numeric_float8 (bits 64) and
// numeric_float4 (bits 32) do: through the decimal text, correctly
// rounded; a value beyond the type's range, or a non-zero value that
// rounds to zero, is an error.
func numToFloat(n Num, bits int) (float64, error) {
	switch n.Spec {
	case numNaN:
		return math.NaN(), nil
	case numPosInf:
		return math.Inf(1), nil
	case numNegInf:
		return math.Inf(-1), nil
	}
	f, err := strconv.ParseFloat(n.String(), bits)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, err
	}
	if math.IsInf(f, 0) || f == 0 && n.M.Sign() != 0 {
		name := "double precision"
		if bits == 32 {
			name = "real"
		}
		return 0, errors.New("value " + truncateText(n.String(), 40) + " is out of range for type " + name)
	}
	return f, nil
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// trimSpace trims the characters C's isspace accepts, as PostgreSQL's
// input functions do.
func trimSpace(s string) string {
	return strings.Trim(s, " \t\n\r\v\f")
}
