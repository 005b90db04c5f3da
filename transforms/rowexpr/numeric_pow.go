package rowexpr

import (
	"errors"
	"math"
	"math/big"
	"strconv"

	"github.com/cockroachdb/apd/v3"
)

// Power (** and ^) as PostgreSQL 15 computes it: numeric_power for two
// numerics, dpow (double precision) when a double precision value takes
// part.
//
// The result scale of a numeric power is PostgreSQL 15's, digit for
// digit: for an integral exponent (that fits in 32 bits) at least 16
// fraction digits and no fewer than the base has (2.5 ** 2 is
// 6.2500000000000000, 0.1 ** 20 rounds to 0.0000000000000000); for any
// other exponent 16 significant digits (estimated from a low-precision
// logarithm as the server does) and no fewer fraction digits than either
// operand has (2 ** 0.5 is 1.4142135623730950). The digits are the
// exact value rounded half away from zero at that scale, which is what
// PostgreSQL's guard digits give, except where the exact value is within
// about 1e-8 of a last-digit unit from a tie: PostgreSQL's series stop
// early, sluice's do not ((1 + 1e-20) ** 1.5, exactly 1.5e-20 + 3.7e-41
// above 1, is 1.00000000000000000002 here, ...01 in PostgreSQL 15).
// PostgreSQL 16 changed the scale of integral exponents (it also counts
// the exponent's fraction digits and the result's size); sluice follows
// 15.

var (
	errZeroNegativePower = errors.New("zero raised to a negative power is undefined")
	errComplexPower      = errors.New("a negative number raised to a non-integer power yields a complex result")
	errNumericOverflow   = errors.New("value overflows numeric format")
	errFloatOverflow     = errors.New("value out of range: overflow")
	errFloatUnderflow    = errors.New("value out of range: underflow")
)

// maxResultScale is NUMERIC_MAX_RESULT_SCALE, a limit of numeric_power.
const maxResultScale = 2000

// sign is -1, 0 or 1 (±Infinity ±1); n is not NaN.
func (n Numeric) sign() int {
	switch {
	case n.d.Form == apd.Finite && n.d.Coeff.Sign() == 0:
		return 0
	case n.d.Negative:
		return -1
	}
	return 1
}

// integral reports whether n is a whole number; infinities are, NaN is
// not (PostgreSQL's numeric_is_integral).
func (n Numeric) integral() bool {
	switch n.d.Form {
	case apd.Infinite:
		return true
	case apd.Finite:
		t := n.roundTo(0, true)
		return t.cmp(n) == 0
	}
	return false
}

// odd reports whether n is an odd whole number.
func (n Numeric) odd() bool {
	if n.d.Form != apd.Finite || !n.integral() {
		return false
	}
	t := n.roundTo(0, true)
	return t.d.Coeff.Bit(0) == 1
}

func numericOne(scale int64) Numeric {
	return Numeric{apd.NewWithBigInt(pow10(scale), int32(-scale))}
}

func numericZero(scale int64) Numeric { return Numeric{apd.New(0, int32(-scale))} }

func (n Numeric) isOne() bool {
	return n.d.Form == apd.Finite && n.d.Cmp(apd.New(1, 0)) == 0
}

// pow is numeric_power: n ** m.
func (n Numeric) pow(m Numeric) (Numeric, error) {
	if n.d.Form != apd.Finite || m.d.Form != apd.Finite {
		return n.powSpecial(m)
	}
	s1, s2 := n.sign(), m.sign()
	if s1 == 0 && s2 < 0 {
		return Numeric{}, errZeroNegativePower
	}
	if s1 < 0 && !m.integral() {
		return Numeric{}, errComplexPower
	}
	if m.integral() {
		if e, err := m.roundTo(0, true).d.Int64(); err == nil && e >= math.MinInt32 && e <= math.MaxInt32 {
			return n.powInt(e)
		}
	}
	return n.powReal(m)
}

// powSpecial is numeric_power when an operand is NaN or ±Infinity
// (POSIX pow's rules, as PostgreSQL applies them).
func (n Numeric) powSpecial(m Numeric) (Numeric, error) {
	switch {
	case n.isNaN():
		if m.d.Form == apd.Finite && m.sign() == 0 {
			return numericFromInt(1), nil
		}
		return nanNumeric(), nil
	case m.isNaN():
		if n.isOne() {
			return numericFromInt(1), nil
		}
		return nanNumeric(), nil
	}
	s1, s2 := n.sign(), m.sign()
	if s1 == 0 && s2 < 0 {
		return Numeric{}, errZeroNegativePower
	}
	if s1 < 0 && !m.integral() {
		return Numeric{}, errComplexPower
	}
	switch {
	case n.isOne(), s2 == 0:
		return numericFromInt(1), nil
	case s1 == 0:
		return numericFromInt(0), nil
	case m.d.Form == apd.Infinite:
		var gtOne bool
		if n.d.Form == apd.Infinite {
			gtOne = true
		} else {
			if n.d.Negative && n.abs().isOne() {
				return numericFromInt(1), nil
			}
			gtOne = n.abs().cmp(numericFromInt(1)) > 0
		}
		if gtOne == (s2 > 0) {
			return Numeric{&apd.Decimal{Form: apd.Infinite}}, nil
		}
		return numericFromInt(0), nil
	case !n.d.Negative: // +Infinity
		if s2 > 0 {
			return n, nil
		}
		return numericFromInt(0), nil
	}
	// -Infinity
	if s2 < 0 {
		return numericFromInt(0), nil
	}
	return Numeric{&apd.Decimal{Form: apd.Infinite, Negative: m.odd()}}, nil
}

// powInt is numeric_power for a whole exponent e of 32 bits:
// PostgreSQL 15's power_var_int at its scale.
func (n Numeric) powInt(e int64) (Numeric, error) {
	rscale := min(max(minSigDigits, scaleOf(n.d)), maxDisplayScale)
	switch e {
	case 0:
		return numericOne(rscale), nil
	case 1:
		return n.roundTo(rscale, false), nil
	case -1:
		return divRound(apd.New(1, 0), n.d, rscale), nil
	case 2:
		sq, err := n.mul(n)
		if err != nil {
			return Numeric{}, errNumericOverflow
		}
		return sq.roundTo(rscale, false), nil
	}
	if n.sign() == 0 {
		return numericZero(rscale), nil
	}
	// The decimal weight of the result, as the server estimates it.
	w, digits, nd := nbaseDigits(n.d)
	f, p := float64(digits[0]), w*4
	for i := 1; i < nd; i++ {
		f = f*10000 + float64(digits[i])
		p -= 4
	}
	f = float64(e) * (math.Log10(f) + float64(p))
	if f > numericMaxWeight+1 {
		// Beyond numeric's 131072 digits before the point: PostgreSQL
		// refuses it once it has the digits (at once beyond its cruder
		// 3 * 32767 * 4), with the same error.
		return Numeric{}, errNumericOverflow
	}
	if f+1 < -float64(rscale) || f+1 < -maxDisplayScale {
		return numericZero(rscale), nil
	}
	neg := e < 0
	if neg {
		e = -e
	}
	// Significant digits the rounding needs, and guard digits for the
	// rounding of the multiplications (none is rounded when the exact
	// result has no more digits: each product is a factor of it).
	prec := max(rscale+int64(math.Ceil(f))+2, 1) + 20 + int64(len(strconv.FormatInt(e, 10)))
	result := roundedDec{c: big.NewInt(1)}
	base := roundedDec{c: new(big.Int).Set(n.d.Coeff.MathBigInt()), e: int64(n.d.Exponent)}
	if n.d.Negative {
		base.c.Neg(base.c)
	}
	for bits := e; ; {
		if bits&1 == 1 {
			result = result.mul(base, prec)
		}
		bits >>= 1
		if bits == 0 {
			break
		}
		base = base.mul(base, prec)
	}
	r := result.decimal()
	if r == nil {
		return Numeric{}, errNumericOverflow
	}
	var res Numeric
	if neg {
		res = divRound(apd.New(1, 0), r, rscale)
	} else {
		res = Numeric{r}.roundTo(rscale, false)
	}
	if res.d.Coeff.Sign() != 0 && int64(res.d.NumDigits())+int64(res.d.Exponent) > numericMaxWeight {
		return Numeric{}, errNumericOverflow
	}
	return res, nil
}

// numericMaxWeight is the most digits numeric has before the point.
const numericMaxWeight = 131072

// roundedDec is c * 10^e, for powers whose exact digits are too many.
type roundedDec struct {
	c *big.Int
	e int64
}

// mul is x * y rounded (half to even) to at most prec digits.
func (x roundedDec) mul(y roundedDec, prec int64) roundedDec {
	c := new(big.Int).Mul(x.c, y.c)
	e := x.e + y.e
	// Digits of c, from its bit length (within one).
	if digits := int64(float64(c.BitLen())*math.Log10(2)) + 1; digits > prec+1 {
		drop := digits - prec - 1
		div := new(big.Int).Exp(big.NewInt(10), big.NewInt(drop), nil)
		q, r := new(big.Int).QuoRem(c, div, new(big.Int))
		r.Abs(r).Lsh(r, 1)
		if cmp := r.Cmp(div); cmp > 0 || (cmp == 0 && q.Bit(0) == 1) {
			if c.Sign() < 0 {
				q.Sub(q, big.NewInt(1))
			} else {
				q.Add(q, big.NewInt(1))
			}
		}
		c, e = q, e+drop
	}
	return roundedDec{c: c, e: e}
}

// decimal is x as an apd decimal, nil beyond numeric's range.
func (x roundedDec) decimal() *apd.Decimal {
	digits := int64(len(x.c.Text(10)))
	if x.c.Sign() < 0 {
		digits--
	}
	if x.e+digits > numericMaxWeight || x.e < math.MinInt32 || x.e > math.MaxInt32 {
		return nil
	}
	d := new(apd.Decimal)
	d.Coeff.SetMathBigInt(new(big.Int).Abs(x.c))
	d.Exponent = int32(x.e)
	d.Negative = x.c.Sign() < 0
	return d
}

// powReal is numeric_power for an exponent that is not a whole number of
// 32 bits: exp(m * ln(n)) at the scale PostgreSQL's power_var picks.
func (n Numeric) powReal(m Numeric) (Numeric, error) {
	if n.sign() == 0 {
		return numericZero(minSigDigits), nil
	}
	negative := n.d.Negative && m.odd()
	base := n.abs()
	lnDweight := estimateLnDweight(base.d)
	// A low-precision exp * ln(base) estimates the result's weight.
	localRscale := max(8-lnDweight, 0)
	lnBase, err := lnRounded(base.d, localRscale)
	if err != nil {
		return Numeric{}, errNumericOverflow
	}
	lnNum, err := lnBase.mul(m)
	if err != nil {
		return Numeric{}, errNumericOverflow
	}
	val, _ := strconv.ParseFloat(lnNum.roundTo(localRscale, false).d.Text('e'), 64)
	if math.Abs(val) > maxResultScale*3.01 {
		if val > 0 {
			return Numeric{}, errNumericOverflow
		}
		return numericZero(maxDisplayScale), nil
	}
	val *= 0.434294481903252
	rscale := minSigDigits - int64(val)
	rscale = min(max(rscale, scaleOf(base.d), scaleOf(m.d), 0), maxDisplayScale)
	sig := max(rscale+int64(val), 0)
	prec := uint32(sig + 30)
	ctx := apd.Context{Precision: prec, MaxExponent: apd.MaxExponent, MinExponent: apd.MinExponent,
		Traps: apd.SystemOverflow | apd.SystemUnderflow | apd.Overflow | apd.Underflow, Rounding: apd.RoundHalfEven}
	ln, t, r := new(apd.Decimal), new(apd.Decimal), new(apd.Decimal)
	if err := lnPrec(&ctx, ln, base.d); err != nil {
		return Numeric{}, errNumericOverflow
	}
	if _, err := ctx.Mul(t, ln, m.d); err != nil {
		return Numeric{}, errNumericOverflow
	}
	// exp_var's own limit: |x| below 6000, beyond it an error or zero.
	if tf, err := t.Float64(); err != nil || math.Abs(tf) >= maxResultScale*3 {
		if !t.Negative {
			return Numeric{}, errNumericOverflow
		}
		return numericZero(rscale), nil
	}
	if err := expPrec(&ctx, r, t); err != nil {
		return Numeric{}, errNumericOverflow
	}
	res := Numeric{r}.roundTo(rscale, false)
	if negative && res.sign() != 0 {
		res = res.neg()
	}
	return res, nil
}

// expPrec sets d to e**x at ctx's precision. apd's Exp is not used: it
// gives up beyond about 2500 digits (too many iterations of its series),
// has few guard digits for large x, and takes e**x as 1 where |x| is
// below float64's range ((1 + 1e-499) ** -2.5 came out as 1.000...).
// Here x is halved h times, to below 2**-expHalvings, e**r is summed as
// its Taylor series and squared h times, with guard digits for the
// squarings.
func expPrec(ctx *apd.Context, d, x *apd.Decimal) error {
	const expHalvings = 16
	h := expHalvings
	if adj := int64(x.Exponent) + x.NumDigits(); adj > 0 { // |x| < 10**adj
		h += int(math.Ceil(float64(adj) * math.Log2(10)))
	}
	if h > 62 {
		return errNumericOverflow
	}
	wc := *ctx
	wc.Precision = ctx.Precision + 30
	r, term, sum := new(apd.Decimal), apd.New(1, 0), apd.New(1, 0)
	if _, err := wc.Quo(r, x, apd.New(1<<h, 0)); err != nil {
		return err
	}
	// The terms fall below the last digit of sum (about 1).
	last := -int64(wc.Precision) - 1
	for i := int64(1); ; i++ {
		if _, err := wc.Mul(term, term, r); err != nil {
			return err
		}
		if _, err := wc.Quo(term, term, apd.New(i, 0)); err != nil {
			return err
		}
		if term.IsZero() || int64(term.Exponent)+term.NumDigits() < last {
			break
		}
		if _, err := wc.Add(sum, sum, term); err != nil {
			return err
		}
	}
	for range h {
		if _, err := wc.Mul(sum, sum, sum); err != nil {
			return err
		}
	}
	_, err := ctx.Round(d, sum)
	return err
}

// lnPrec sets d to ln(x), x > 0, at ctx's precision. apd's Ln, beyond
// 0.1 of 1, iterates on its Exp (slow, and it gives up beyond about 2870
// digits); within 0.1 of 1 it sums a power series. So x is first brought
// within 0.01 of 1 by square roots (as PostgreSQL's ln_var does, to
// within 0.1): ln(x) = 2**k * ln(x**(1/2**k)).
func lnPrec(ctx *apd.Context, d, x *apd.Decimal) error {
	wc := *ctx
	wc.Precision = ctx.Precision + 15
	lo, hi := apd.New(99, -2), apd.New(101, -2)
	y := new(apd.Decimal).Set(x)
	k := 0
	for ; y.Cmp(lo) < 0 || y.Cmp(hi) > 0; k++ {
		if k == 62 { // beyond numeric's range
			return errNumericOverflow
		}
		if _, err := wc.Sqrt(y, y); err != nil {
			return err
		}
	}
	if _, err := wc.Ln(d, y); err != nil {
		return err
	}
	if _, err := wc.Mul(d, d, apd.New(1<<k, 0)); err != nil {
		return err
	}
	_, err := ctx.Round(d, d)
	return err
}

// lnRounded is ln(x) rounded half away from zero to scale fraction
// digits, as ln_var gives it.
func lnRounded(x *apd.Decimal, scale int64) (Numeric, error) {
	// ln(x) has at most 6 digits before the point for apd's range.
	ctx := apd.Context{Precision: uint32(scale + 6 + 20), MaxExponent: apd.MaxExponent, MinExponent: apd.MinExponent,
		Traps: apd.SystemOverflow | apd.SystemUnderflow | apd.Overflow | apd.Underflow, Rounding: apd.RoundHalfEven}
	d := new(apd.Decimal)
	if err := lnPrec(&ctx, d, x); err != nil {
		return Numeric{}, err
	}
	return Numeric{d}.roundTo(scale, false), nil
}

// estimateLnDweight is PostgreSQL's estimate_ln_dweight: the decimal
// weight of ln(x) for a positive x.
func estimateLnDweight(x *apd.Decimal) int64 {
	one := apd.New(1, 0)
	if x.Cmp(apd.New(9, -1)) >= 0 && x.Cmp(apd.New(11, -1)) <= 0 {
		d := new(apd.Decimal)
		_, _ = exact.Sub(d, x, one)
		if d.Coeff.Sign() == 0 {
			return 0
		}
		w, digits, _ := nbaseDigits(d)
		return w*4 + int64(math.Log10(float64(digits[0])))
	}
	w, digits, nd := nbaseDigits(x)
	v, dweight := digits[0], w*4
	if nd > 1 {
		v = v*10000 + digits[1]
		dweight -= 4
	}
	ln := math.Log(float64(v)) + float64(dweight)*2.302585092994046
	return int64(math.Log10(math.Abs(ln)))
}

// divRound is x / y rounded half away from zero to scale fraction digits
// (x, y finite, y not zero).
func divRound(x, y *apd.Decimal, rscale int64) Numeric {
	k := int64(x.Exponent) - int64(y.Exponent) + rscale
	num := new(apd.BigInt).Set(&x.Coeff)
	den := new(apd.BigInt).Set(&y.Coeff)
	if k >= 0 {
		num.Mul(num, pow10(k))
	} else {
		den.Mul(den, pow10(-k))
	}
	q, r := new(apd.BigInt).QuoRem(num, den, new(apd.BigInt))
	if r.Add(r, r).Cmp(den) >= 0 {
		q.Add(q, apd.NewBigInt(1))
	}
	d := apd.NewWithBigInt(q, int32(-rscale))
	d.Negative = q.Sign() != 0 && x.Negative != y.Negative
	return Numeric{d}
}

// floatPow is PostgreSQL's dpow: x ** y in double precision, NaN and
// infinities by POSIX's rules, errors where PostgreSQL has them. The
// finite case is the exact power correctly rounded (the C library's pow,
// which PostgreSQL calls, is within half a unit in the last place of it
// in all but rare cases; Go's math.Pow is not).
func floatPow(x, y float64) (float64, error) {
	switch {
	case math.IsNaN(x):
		if math.IsNaN(y) || y != 0 {
			return math.NaN(), nil
		}
		return 1, nil
	case math.IsNaN(y):
		if x != 1 {
			return math.NaN(), nil
		}
		return 1, nil
	case x == 0 && y < 0:
		return 0, errZeroNegativePower
	case x < 0 && math.Floor(y) != y:
		return 0, errComplexPower
	case math.IsInf(y, 0):
		ax := math.Abs(x)
		switch {
		case ax == 1:
			return 1, nil
		case y > 0 && ax > 1, y < 0 && ax < 1:
			return math.Inf(1), nil
		}
		return 0, nil
	case math.IsInf(x, 0):
		oddY := math.Floor(y/2) != y/2
		switch {
		case y == 0:
			return 1, nil
		case x > 0 && y > 0:
			return x, nil
		case x > 0:
			return 0, nil
		case y > 0 && oddY:
			return x, nil
		case y > 0:
			return -x, nil
		case oddY:
			return math.Copysign(0, -1), nil
		}
		return 0, nil
	case y == 0 || x == 1:
		return 1, nil
	case x == 0: // y > 0: ±0, the sign of x for an odd whole y
		if math.Floor(y/2) != y/2 {
			return x, nil
		}
		return 0, nil
	}
	negative := x < 0 && math.Floor(y/2) != y/2 // y is whole here when x < 0
	ax := math.Abs(x)
	// Far outside double precision's range: no need for digits.
	if l := y * math.Log10(ax); l > 400 {
		return 0, errFloatOverflow
	} else if l < -400 {
		return 0, errFloatUnderflow
	}
	ctx := apd.Context{Precision: 40, MaxExponent: apd.MaxExponent, MinExponent: apd.MinExponent,
		Traps: apd.SystemOverflow | apd.SystemUnderflow | apd.Overflow | apd.Underflow, Rounding: apd.RoundHalfEven}
	r := new(apd.Decimal)
	if _, err := ctx.Pow(r, exactFloat(ax), exactFloat(y)); err != nil {
		return 0, errFloatOverflow
	}
	f, _ := strconv.ParseFloat(r.Text('e'), 64)
	switch {
	case math.IsInf(f, 0):
		return 0, errFloatOverflow
	case f == 0:
		return 0, errFloatUnderflow
	}
	if negative {
		f = -f
	}
	return f, nil
}

// exactFloat is the exact decimal value of a finite float64.
func exactFloat(f float64) *apd.Decimal {
	mant, exp := math.Frexp(f)
	m := int64(mant * (1 << 53))
	e := exp - 53
	for m != 0 && m%2 == 0 {
		m /= 2
		e++
	}
	d := apd.New(m, 0) // the sign in d.Negative, |m| in d.Coeff
	switch {
	case e > 0:
		d.Coeff.Mul(&d.Coeff, new(apd.BigInt).Exp(apd.NewBigInt(2), apd.NewBigInt(int64(e)), nil))
	case e < 0:
		// m / 2^-e = m * 5^-e / 10^-e
		d.Coeff.Mul(&d.Coeff, new(apd.BigInt).Exp(apd.NewBigInt(5), apd.NewBigInt(int64(-e)), nil))
		d.Exponent = int32(e)
	}
	return d
}
