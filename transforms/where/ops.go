package where

import (
	"errors"
	"math"
	"strings"
	"unicode/utf8"
)

// Comparison operators, as the program passes them to the cmp functions.
const (
	opEq = iota
	opNe
	opLt
	opLe
	opGt
	opGe
	opDistinct    // IS DISTINCT FROM: never NULL
	opNotDistinct // IS NOT DISTINCT FROM
)

var cmpOps = map[string]int{"=": opEq, "<>": opNe, "<": opLt, "<=": opLe, ">": opGt, ">=": opGe}

var cmpNames = [...]string{"=", "<>", "<", "<=", ">", ">=", "IS DISTINCT FROM", "IS NOT DISTINCT FROM"}

// compare3 applies a comparison with SQL's NULL rules: NULL compared with
// anything is NULL, except for IS [NOT] DISTINCT FROM, which treats NULL
// as a value equal to itself.
func compare3(op int, aNull, bNull bool, cmp func() int) Tri {
	if op == opDistinct || op == opNotDistinct {
		var same bool
		if aNull || bNull {
			same = aNull == bNull
		} else {
			same = cmp() == 0
		}
		return triOf(same == (op == opNotDistinct))
	}
	if aNull || bNull {
		return Null
	}
	c := cmp()
	switch op {
	case opEq:
		return triOf(c == 0)
	case opNe:
		return triOf(c != 0)
	case opLt:
		return triOf(c < 0)
	case opLe:
		return triOf(c <= 0)
	case opGt:
		return triOf(c > 0)
	}
	return triOf(c >= 0)
}

// cmpFloat orders floats as PostgreSQL does: NaN equals NaN and is
// greater than every other value; -0 equals 0.
func cmpFloat(a, b float64) int {
	an, bn := math.IsNaN(a), math.IsNaN(b)
	switch {
	case an && bn:
		return 0
	case an:
		return 1
	case bn:
		return -1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// trimBpchar drops the trailing spaces that character(n) comparisons
// ignore.
func trimBpchar(s string) string { return strings.TrimRight(s, " ") }

func cmpTim(a, b Tim) int {
	if a.Inf != 0 || b.Inf != 0 {
		return cmpInt(int64(a.Inf), int64(b.Inf))
	}
	return cmpInt(a.V, b.V)
}

// intRangeError is PostgreSQL's message for an integer overflow.
func intRangeError(width int) error {
	switch width {
	case 16:
		return errors.New("smallint out of range")
	case 32:
		return errors.New("integer out of range")
	}
	return errors.New("bigint out of range")
}

func inRange(v int64, width int) bool {
	switch width {
	case 16:
		return v >= math.MinInt16 && v <= math.MaxInt16
	case 32:
		return v >= math.MinInt32 && v <= math.MaxInt32
	}
	return true
}

// intArith computes a op b in an integer type of the given width (16,
// 32, 64 bits), with PostgreSQL's overflow and division-by-zero errors.
// Division truncates toward zero; the remainder has the dividend's sign.
func intArith(op byte, width int, a, b int64) (int64, error) {
	var r int64
	switch op {
	case '+':
		r = a + b
		if width == 64 && (a > 0 && b > 0 && r < 0 || a < 0 && b < 0 && r >= 0) {
			return 0, intRangeError(width)
		}
	case '-':
		r = a - b
		if width == 64 && (a >= 0 && b < 0 && r < 0 || a < 0 && b > 0 && r >= 0) {
			return 0, intRangeError(width)
		}
	case '*':
		r = a * b
		if width == 64 && a != 0 && (r/a != b || a == -1 && b == math.MinInt64 || b == -1 && a == math.MinInt64) {
			return 0, intRangeError(width)
		}
	case '/':
		if b == 0 {
			return 0, errDivZero
		}
		if b == -1 {
			r = -a
			if width == 64 && a == math.MinInt64 {
				return 0, intRangeError(width)
			}
		} else {
			r = a / b
		}
	case '%':
		if b == 0 {
			return 0, errDivZero
		}
		if b == -1 {
			return 0, nil
		}
		r = a % b
	default:
		return 0, errors.New("unknown integer operator")
	}
	if !inRange(r, width) {
		return 0, intRangeError(width)
	}
	return r, nil
}

var (
	errFloatOverflow  = errors.New("value out of range: overflow")
	errFloatUnderflow = errors.New("value out of range: underflow")
)

// floatArith computes a op b in double precision with PostgreSQL's checks
// (float8pl, float8mi, float8mul, float8div): an infinite result from
// finite inputs is an overflow error, a zero result from non-zero inputs
// an underflow error, and division by zero an error.
func floatArith(op byte, a, b float64) (float64, error) {
	var r float64
	switch op {
	case '+':
		r = a + b
	case '-':
		r = a - b
	case '*':
		r = a * b
		if r == 0 && a != 0 && b != 0 {
			return 0, errFloatUnderflow
		}
	case '/':
		if b == 0 && !math.IsNaN(a) {
			return 0, errDivZero
		}
		r = a / b
		if math.IsInf(r, 0) && !math.IsInf(a, 0) {
			return 0, errFloatOverflow
		}
		if r == 0 && a != 0 && !math.IsInf(b, 0) {
			return 0, errFloatUnderflow
		}
		return r, nil
	default:
		return 0, errors.New("unknown float operator")
	}
	if math.IsInf(r, 0) && !math.IsInf(a, 0) && !math.IsInf(b, 0) {
		return 0, errFloatOverflow
	}
	return r, nil
}

// float4Arith is floatArith in single precision (float4pl, ...): the
// operation is rounded to float32.
func float4Arith(op byte, a64, b64 float64) (float64, error) {
	a, b := float32(a64), float32(b64)
	isInf := func(f float32) bool { return math.IsInf(float64(f), 0) }
	var r float32
	switch op {
	case '+':
		r = a + b
	case '-':
		r = a - b
	case '*':
		r = a * b
		if r == 0 && a != 0 && b != 0 {
			return 0, errFloatUnderflow
		}
	case '/':
		if b == 0 && !math.IsNaN(float64(a)) {
			return 0, errDivZero
		}
		r = a / b
		if isInf(r) && !isInf(a) {
			return 0, errFloatOverflow
		}
		if r == 0 && a != 0 && !isInf(b) {
			return 0, errFloatUnderflow
		}
		return float64(r), nil
	default:
		return 0, errors.New("unknown float operator")
	}
	if isInf(r) && !isInf(a) && !isInf(b) {
		return 0, errFloatOverflow
	}
	return float64(r), nil
}

// dateToTimestamp converts a date to a timestamp (midnight; for
// timestamptz midnight UTC), with PostgreSQL's range error.
func dateToTimestamp(d Tim) (Tim, error) {
	if d.Inf != 0 || d.Null {
		return d, nil
	}
	if d.V >= timestampEndJulian-postgresEpochJDate {
		return Tim{}, errors.New("date out of range for timestamp")
	}
	return Tim{V: d.V * usecsPerDay}, nil
}

// asciiLower and asciiUpper change the case of ASCII letters only, as
// PostgreSQL's lower() and upper() do under the C and POSIX collations.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

func asciiUpper(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'a' && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// likeTok is one element of a compiled LIKE pattern.
type likeTok struct {
	kind byte // 'c' a character, '_' any one character, '%' any run
	r    rune
}

// likePattern is a compiled LIKE or ILIKE pattern.
type likePattern struct {
	toks  []likeTok
	lower bool // ILIKE: match ASCII-lower-cased text
}

// compileLike compiles a LIKE pattern with PostgreSQL's rules: % matches
// any run of characters, _ one character, and the escape character (\ by
// default; none if esc is empty) makes the next character literal. A
// pattern ending in the escape character is an error.
func compileLike(pat string, esc string, ilike bool) (*likePattern, error) {
	if utf8.RuneCountInString(esc) > 1 {
		return nil, errors.New("invalid escape string: it must be empty or one character")
	}
	if ilike {
		pat = asciiLower(pat)
	}
	escR := rune(-1)
	if esc != "" {
		escR, _ = utf8.DecodeRuneInString(esc)
	}
	p := &likePattern{lower: ilike}
	rs := []rune(pat)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == escR:
			if i+1 == len(rs) {
				return nil, errors.New("LIKE pattern must not end with escape character")
			}
			i++
			p.toks = append(p.toks, likeTok{kind: 'c', r: rs[i]})
		case r == '%':
			if n := len(p.toks); n > 0 && p.toks[n-1].kind == '%' {
				continue
			}
			p.toks = append(p.toks, likeTok{kind: '%'})
		case r == '_':
			p.toks = append(p.toks, likeTok{kind: '_'})
		default:
			p.toks = append(p.toks, likeTok{kind: 'c', r: r})
		}
	}
	return p, nil
}

// match reports whether s matches the pattern: a greedy match that
// backtracks to the last %, linear in practice.
func (p *likePattern) match(s string) bool {
	if p.lower {
		s = asciiLower(s)
	}
	rs := []rune(s)
	toks := p.toks
	si, pi := 0, 0
	starP, starS := -1, 0
	for si < len(rs) {
		if pi < len(toks) {
			switch t := toks[pi]; {
			case t.kind == '%':
				starP, starS = pi, si
				pi++
				continue
			case t.kind == '_' || t.r == rs[si]:
				pi++
				si++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		si, pi = starS, starP+1
	}
	for pi < len(toks) && toks[pi].kind == '%' {
		pi++
	}
	return pi == len(toks)
}
