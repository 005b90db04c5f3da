package where

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// The translation to expr-lang. Every SQL operation becomes a call of a
// function defined here, typed with the value types of value.go, so that
// expr-lang's checker verifies the translation against the table's
// columns; AND, OR and COALESCE become let/ternary chains so that they
// stop at the first deciding operand, as PostgreSQL usually does:
//
//	amount > 100 AND region IN ('eu', 'us')
//
// becomes
//
//	(let v0 = cmpN(4, c0, kN(0)); isF(v0) ? v0 : and3(v0, inS(c1, 0)))
//
// where c0, c1 are the row's decoded columns and kN(0), list 0 the
// compiled constants.

// EvalError is an error evaluating the filter on one row: the same
// operation would fail in PostgreSQL (an overflow, a division by zero), or
// the row cannot be evaluated (a value not sent). Pos is the position of
// the operation in the expression (1-based, 0 if none).
type EvalError struct {
	Pos int
	Err error
}

func (e *EvalError) Error() string {
	if e.Pos > 0 {
		return fmt.Sprintf("where: position %d: %v", e.Pos, e.Err)
	}
	return "where: " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *EvalError) Unwrap() error { return e.Err }

func evalErr(pos int, err error) error { return &EvalError{Pos: pos, Err: err} }

// gen writes the program of one filter.
type gen struct {
	f  *Filter
	nv int
}

func (g *gen) newVar() string {
	g.nv++
	return fmt.Sprintf("v%d", g.nv-1)
}

// valClass is the suffix of the functions for a type's value: T(ri), I(nt),
// N(um), F(lt), S(tr), D (Tim), R(aw).
func valClass(t typ) string {
	switch {
	case t == tyBool:
		return "T"
	case t.isInt():
		return "I"
	case t == tyNumeric:
		return "N"
	case t.isFloat():
		return "F"
	case t.cat() == catString, t == tyUUID, t == tyUnknown:
		return "S"
	case t.cat() == catDatetime:
		return "D"
	}
	return "R"
}

// cmpClass is the suffix of the comparison functions for a type: as
// valClass, but character(n) compares without trailing spaces (B).
func cmpClass(t typ) string {
	if t == tyBpchar {
		return "B"
	}
	return valClass(t)
}

func (g *gen) constant(e *texpr) string {
	v := e.val
	if e.unk {
		if v == nil {
			v = Str{Null: true}
		} else {
			v = Str{V: v.(string)}
		}
	}
	g.f.consts = append(g.f.consts, v)
	return fmt.Sprintf("k%s(%d)", valClass(e.typ), len(g.f.consts)-1)
}

func (g *gen) emit(e *texpr) string {
	switch e.kind {
	case eColumn:
		return fmt.Sprintf("c%d", e.col)
	case eConst:
		return g.constant(e)
	case eCast:
		return g.cast(e)
	case eCmp:
		return fmt.Sprintf("cmp%s(%d, %s, %s)", cmpClass(e.opt), e.op, g.emit(e.args[0]), g.emit(e.args[1]))
	case eIn:
		return g.in(e)
	case eArith:
		l, r := g.emit(e.args[0]), g.emit(e.args[1])
		switch {
		case e.typ.isInt():
			return fmt.Sprintf("arI(%d, %d, %d, %s, %s)", e.op, intBits(e.typ), e.pos, l, r)
		case e.typ == tyNumeric:
			return fmt.Sprintf("arN(%d, %d, %s, %s)", e.op, e.pos, l, r)
		case e.typ == tyFloat4:
			return fmt.Sprintf("arF4(%d, %d, %s, %s)", e.op, e.pos, l, r)
		}
		return fmt.Sprintf("arF(%d, %d, %s, %s)", e.op, e.pos, l, r)
	case eNeg:
		if e.typ.isInt() {
			return fmt.Sprintf("negI(%d, %d, %s)", intBits(e.typ), e.pos, g.emit(e.args[0]))
		}
		return fmt.Sprintf("neg%s(%s)", valClass(e.typ), g.emit(e.args[0]))
	case eAnd:
		return g.chain(e.args, "isF", "and3")
	case eOr:
		return g.chain(e.args, "isT", "or3")
	case eNot:
		return "not3(" + g.emit(e.args[0]) + ")"
	case eIsNull:
		s := "isNull(" + g.emit(e.args[0]) + ")"
		if e.not {
			s = "not3(" + s + ")"
		}
		return s
	case eIsBool:
		s := fmt.Sprintf("isBool(%d, %s)", e.op, g.emit(e.args[0]))
		if e.not {
			s = "not3(" + s + ")"
		}
		return s
	case eLike:
		g.f.likes = append(g.f.likes, e.like)
		s := fmt.Sprintf("like(%d, %s)", len(g.f.likes)-1, g.emit(e.args[0]))
		if e.not {
			s = "not3(" + s + ")"
		}
		return s
	case eFunc:
		return g.function(e)
	case eCollate:
		return g.emit(e.args[0])
	}
	panic("where: unknown expression kind")
}

func (g *gen) cast(e *texpr) string {
	from, to, x := e.args[0].typ, e.typ, g.emit(e.args[0])
	switch {
	case from.isInt() && to == tyNumeric:
		return "i2n(" + x + ")"
	case from.isInt() && to == tyFloat8:
		return "i2f(" + x + ")"
	case from.isInt() && to == tyFloat4:
		return "i2f4(" + x + ")"
	case from == tyNumeric && to == tyFloat8:
		return fmt.Sprintf("n2f(%d, %s)", e.pos, x)
	case from == tyNumeric && to == tyFloat4:
		return fmt.Sprintf("n2f4(%d, %s)", e.pos, x)
	case from == tyBpchar && to.cat() == catString && to != tyBpchar:
		return "b2t(" + x + ")"
	case from == tyDate && (to == tyTimestamp || to == tyTimestamptz):
		return fmt.Sprintf("d2ts(%d, %s)", e.pos, x)
	}
	// integer widening, float4 to float8, string to string, timestamp to
	// and from timestamptz in UTC: the value is unchanged.
	return x
}

// chain writes an AND or OR that stops at the first operand that decides
// it (false for AND, true for OR).
func (g *gen) chain(args []*texpr, stop, combine string) string {
	if len(args) == 1 {
		return g.emit(args[0])
	}
	v := g.newVar()
	return fmt.Sprintf("(let %s = %s; %s(%s) ? %s : %s(%s, %s))", v, g.emit(args[0]), stop, v, v, combine, v, g.chain(args[1:], stop, combine))
}

func (g *gen) in(e *texpr) string {
	lhs := g.emit(e.args[0])
	cls := cmpClass(e.opt)
	consts := true
	for _, a := range e.args[1:] {
		if a.kind != eConst {
			consts = false
		}
	}
	if consts {
		list := make([]any, len(e.args)-1)
		for i, a := range e.args[1:] {
			list[i] = a.val
		}
		g.f.lists = append(g.f.lists, list)
		return fmt.Sprintf("in%s(%s, %d)", cls, lhs, len(g.f.lists)-1)
	}
	// Each comparison reads the left side from v.
	v := g.newVar()
	var s strings.Builder
	fmt.Fprintf(&s, "(let %s = %s; ", v, lhs)
	s.WriteString(g.orOver(v, cls, e.args[1:]))
	s.WriteString(")")
	return s.String()
}

func (g *gen) orOver(v, cls string, items []*texpr) string {
	cmp := fmt.Sprintf("cmp%s(%d, %s, %s)", cls, opEq, v, g.emit(items[0]))
	if len(items) == 1 {
		return cmp
	}
	w := g.newVar()
	return fmt.Sprintf("(let %s = %s; isT(%s) ? %s : or3(%s, %s))", w, cmp, w, w, w, g.orOver(v, cls, items[1:]))
}

func (g *gen) function(e *texpr) string {
	switch e.name {
	case "lower":
		return "lowerC(" + g.emit(e.args[0]) + ")"
	case "upper":
		return "upperC(" + g.emit(e.args[0]) + ")"
	case "length":
		if e.args[0].typ == tyBpchar {
			return "lenB(" + g.emit(e.args[0]) + ")"
		}
		return "lenS(" + g.emit(e.args[0]) + ")"
	case "abs":
		if e.typ.isInt() {
			return fmt.Sprintf("absI(%d, %d, %s)", intBits(e.typ), e.pos, g.emit(e.args[0]))
		}
		return fmt.Sprintf("abs%s(%s)", valClass(e.typ), g.emit(e.args[0]))
	case "coalesce":
		return g.coalesce(e.args)
	}
	panic("where: unknown function " + e.name)
}

func (g *gen) coalesce(args []*texpr) string {
	if len(args) == 1 {
		return g.emit(args[0])
	}
	v := g.newVar()
	return fmt.Sprintf("(let %s = %s; nn(%s) ? %s : %s)", v, g.emit(args[0]), v, v, g.coalesce(args[1:]))
}

// compileProgram translates the typed expression and compiles it with
// expr-lang against an environment holding one value per referenced
// column.
func (f *Filter) compileProgram(root *texpr) (*vm.Program, error) {
	g := &gen{f: f}
	src := g.emit(root)
	env := make(map[string]any, len(f.refs))
	for i, r := range f.refs {
		env[fmt.Sprintf("c%d", i)] = nullOf(r.typ)
	}
	opts := append([]expr.Option{expr.Env(env), expr.DisableAllBuiltins(), expr.MaxNodes(0)}, f.functions()...)
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, fmt.Errorf("internal error translating the expression: %w", err)
	}
	f.program = src
	return prog, nil
}

// Function signatures for expr-lang's checker.
var (
	sigCmp = map[string]any{
		"T": new(func(int, Tri, Tri) Tri), "I": new(func(int, Int, Int) Tri), "N": new(func(int, Num, Num) Tri),
		"F": new(func(int, Flt, Flt) Tri), "S": new(func(int, Str, Str) Tri), "B": new(func(int, Str, Str) Tri),
		"D": new(func(int, Tim, Tim) Tri),
	}
	sigIn = map[string]any{
		"T": new(func(Tri, int) Tri), "I": new(func(Int, int) Tri), "N": new(func(Num, int) Tri),
		"F": new(func(Flt, int) Tri), "S": new(func(Str, int) Tri), "B": new(func(Str, int) Tri),
		"D": new(func(Tim, int) Tri),
	}
	sigIsNull = []any{
		new(func(Tri) Tri), new(func(Int) Tri), new(func(Num) Tri), new(func(Flt) Tri),
		new(func(Str) Tri), new(func(Tim) Tri), new(func(Raw) Tri),
	}
	sigNN = []any{
		new(func(Tri) bool), new(func(Int) bool), new(func(Num) bool), new(func(Flt) bool),
		new(func(Str) bool), new(func(Tim) bool), new(func(Raw) bool),
	}
)

func isNullValue(v any) bool {
	switch v := v.(type) {
	case Tri:
		return v == Null
	case Int:
		return v.Null
	case Num:
		return v.Null
	case Flt:
		return v.Null
	case Str:
		return v.Null
	case Tim:
		return v.Null
	case Raw:
		return v.Null
	}
	return true
}

// compareValues compares two non-null values of one comparison class.
func compareValues(cls string, a, b any) int {
	switch cls {
	case "T":
		return cmpInt(int64(a.(Tri)), int64(b.(Tri)))
	case "I":
		return cmpInt(a.(Int).V, b.(Int).V)
	case "N":
		return cmpNum(a.(Num), b.(Num))
	case "F":
		return cmpFloat(a.(Flt).V, b.(Flt).V)
	case "S":
		return strings.Compare(a.(Str).V, b.(Str).V)
	case "B":
		return strings.Compare(trimBpchar(a.(Str).V), trimBpchar(b.(Str).V))
	case "D":
		return cmpTim(a.(Tim), b.(Tim))
	}
	panic("where: unknown comparison class " + cls)
}

// arithValue computes a op b for a numeric type t.
func arithValue(op byte, t typ, a, b any) (any, error) {
	switch {
	case t.isInt():
		x, y := a.(Int), b.(Int)
		if x.Null || y.Null {
			return Int{Null: true}, nil
		}
		v, err := intArith(op, intBits(t), x.V, y.V)
		return Int{V: v}, err
	case t == tyNumeric:
		x, y := a.(Num), b.(Num)
		if x.Null || y.Null {
			return Num{Null: true}, nil
		}
		return numArith(op, x, y)
	}
	x, y := a.(Flt), b.(Flt)
	if x.Null || y.Null {
		return Flt{Null: true}, nil
	}
	var v float64
	var err error
	if t == tyFloat4 {
		v, err = float4Arith(op, x.V, y.V)
	} else {
		v, err = floatArith(op, x.V, y.V)
	}
	return Flt{V: v}, err
}

// negValue computes -a for a numeric type t.
func negValue(t typ, a any) (any, error) {
	switch v := a.(type) {
	case Int:
		if v.Null {
			return v, nil
		}
		if v.V == math.MinInt64 || !inRange(-v.V, intBits(t)) {
			return nil, intRangeError(intBits(t))
		}
		return Int{V: -v.V}, nil
	case Num:
		if v.Null {
			return v, nil
		}
		return numNeg(v), nil
	case Flt:
		if v.Null {
			return v, nil
		}
		return Flt{V: -v.V}, nil
	}
	return nil, errors.New("internal error: negation of a non-number")
}

// functions returns the expr-lang functions of the filter's program.
func (f *Filter) functions() []expr.Option {
	var opts []expr.Option
	add := func(name string, fn func(p ...any) (any, error), types ...any) {
		opts = append(opts, expr.Function(name, fn, types...))
	}
	konst := func(p ...any) (any, error) { return f.consts[p[0].(int)], nil }
	add("kT", konst, new(func(int) Tri))
	add("kI", konst, new(func(int) Int))
	add("kN", konst, new(func(int) Num))
	add("kF", konst, new(func(int) Flt))
	add("kS", konst, new(func(int) Str))
	add("kD", konst, new(func(int) Tim))
	for cls, sig := range sigCmp {
		add("cmp"+cls, func(p ...any) (any, error) {
			a, b := p[1], p[2]
			return compare3(p[0].(int), isNullValue(a), isNullValue(b), func() int { return compareValues(cls, a, b) }), nil
		}, sig)
	}
	for cls, sig := range sigIn {
		add("in"+cls, func(p ...any) (any, error) {
			x := p[0]
			if isNullValue(x) {
				return Null, nil
			}
			res := False
			for _, item := range f.lists[p[1].(int)] {
				switch {
				case isNullValue(item):
					res = Null
				case compareValues(cls, x, item) == 0:
					return True, nil
				}
			}
			return res, nil
		}, sig)
	}
	add("arI", func(p ...any) (any, error) {
		op, width, pos := p[0].(int), p[1].(int), p[2].(int)
		a, b := p[3].(Int), p[4].(Int)
		if a.Null || b.Null {
			return Int{Null: true}, nil
		}
		v, err := intArith(byte(op), width, a.V, b.V)
		if err != nil {
			return nil, evalErr(pos, err)
		}
		return Int{V: v}, nil
	}, new(func(int, int, int, Int, Int) Int))
	arith := func(t typ) func(p ...any) (any, error) {
		return func(p ...any) (any, error) {
			v, err := arithValue(byte(p[0].(int)), t, p[2], p[3])
			if err != nil {
				return nil, evalErr(p[1].(int), err)
			}
			return v, nil
		}
	}
	add("arN", arith(tyNumeric), new(func(int, int, Num, Num) Num))
	add("arF", arith(tyFloat8), new(func(int, int, Flt, Flt) Flt))
	add("arF4", arith(tyFloat4), new(func(int, int, Flt, Flt) Flt))
	add("negI", func(p ...any) (any, error) {
		width, pos, a := p[0].(int), p[1].(int), p[2].(Int)
		if a.Null {
			return a, nil
		}
		if a.V == math.MinInt64 || !inRange(-a.V, width) {
			return nil, evalErr(pos, intRangeError(width))
		}
		return Int{V: -a.V}, nil
	}, new(func(int, int, Int) Int))
	add("negN", func(p ...any) (any, error) { return negValue(tyNumeric, p[0]) }, new(func(Num) Num))
	add("negF", func(p ...any) (any, error) { return negValue(tyFloat8, p[0]) }, new(func(Flt) Flt))
	add("absI", func(p ...any) (any, error) {
		width, pos, a := p[0].(int), p[1].(int), p[2].(Int)
		if a.Null || a.V >= 0 {
			return a, nil
		}
		if a.V == math.MinInt64 || !inRange(-a.V, width) {
			return nil, evalErr(pos, intRangeError(width))
		}
		return Int{V: -a.V}, nil
	}, new(func(int, int, Int) Int))
	add("absN", func(p ...any) (any, error) {
		a := p[0].(Num)
		if a.Null {
			return a, nil
		}
		return numAbs(a), nil
	}, new(func(Num) Num))
	add("absF", func(p ...any) (any, error) {
		a := p[0].(Flt)
		if a.Null {
			return a, nil
		}
		return Flt{V: math.Abs(a.V)}, nil
	}, new(func(Flt) Flt))
	add("i2n", func(p ...any) (any, error) {
		a := p[0].(Int)
		if a.Null {
			return Num{Null: true}, nil
		}
		return numFromInt(a.V), nil
	}, new(func(Int) Num))
	add("i2f", func(p ...any) (any, error) {
		a := p[0].(Int)
		return Flt{V: float64(a.V), Null: a.Null}, nil
	}, new(func(Int) Flt))
	add("i2f4", func(p ...any) (any, error) {
		a := p[0].(Int)
		return Flt{V: float64(float32(a.V)), Null: a.Null}, nil
	}, new(func(Int) Flt))
	n2f := func(bits int) func(p ...any) (any, error) {
		return func(p ...any) (any, error) {
			a := p[1].(Num)
			if a.Null {
				return Flt{Null: true}, nil
			}
			v, err := numToFloat(a, bits)
			if err != nil {
				return nil, evalErr(p[0].(int), err)
			}
			return Flt{V: v}, nil
		}
	}
	add("n2f", n2f(64), new(func(int, Num) Flt))
	add("n2f4", n2f(32), new(func(int, Num) Flt))
	add("b2t", func(p ...any) (any, error) {
		a := p[0].(Str)
		return Str{V: trimBpchar(a.V), Null: a.Null}, nil
	}, new(func(Str) Str))
	add("d2ts", func(p ...any) (any, error) {
		v, err := dateToTimestamp(p[1].(Tim))
		if err != nil {
			return nil, evalErr(p[0].(int), err)
		}
		return v, nil
	}, new(func(int, Tim) Tim))
	add("lowerC", func(p ...any) (any, error) {
		a := p[0].(Str)
		return Str{V: asciiLower(a.V), Null: a.Null}, nil
	}, new(func(Str) Str))
	add("upperC", func(p ...any) (any, error) {
		a := p[0].(Str)
		return Str{V: asciiUpper(a.V), Null: a.Null}, nil
	}, new(func(Str) Str))
	add("lenS", func(p ...any) (any, error) {
		a := p[0].(Str)
		return Int{V: int64(utf8.RuneCountInString(a.V)), Null: a.Null}, nil
	}, new(func(Str) Int))
	add("lenB", func(p ...any) (any, error) {
		a := p[0].(Str)
		return Int{V: int64(utf8.RuneCountInString(trimBpchar(a.V))), Null: a.Null}, nil
	}, new(func(Str) Int))
	add("like", func(p ...any) (any, error) {
		a := p[1].(Str)
		if a.Null {
			return Null, nil
		}
		return triOf(f.likes[p[0].(int)].match(a.V)), nil
	}, new(func(int, Str) Tri))
	add("and3", func(p ...any) (any, error) {
		a, b := p[0].(Tri), p[1].(Tri)
		switch {
		case a == False || b == False:
			return False, nil
		case a == Null || b == Null:
			return Null, nil
		}
		return True, nil
	}, new(func(Tri, Tri) Tri))
	add("or3", func(p ...any) (any, error) {
		a, b := p[0].(Tri), p[1].(Tri)
		switch {
		case a == True || b == True:
			return True, nil
		case a == Null || b == Null:
			return Null, nil
		}
		return False, nil
	}, new(func(Tri, Tri) Tri))
	add("not3", func(p ...any) (any, error) {
		switch p[0].(Tri) {
		case True:
			return False, nil
		case False:
			return True, nil
		}
		return Null, nil
	}, new(func(Tri) Tri))
	add("isT", func(p ...any) (any, error) { return p[0].(Tri) == True, nil }, new(func(Tri) bool))
	add("isF", func(p ...any) (any, error) { return p[0].(Tri) == False, nil }, new(func(Tri) bool))
	add("isBool", func(p ...any) (any, error) {
		v := p[1].(Tri)
		switch p[0].(int) {
		case isTrue:
			return triOf(v == True), nil
		case isFalse:
			return triOf(v == False), nil
		}
		return triOf(v == Null), nil
	}, new(func(int, Tri) Tri))
	add("isNull", func(p ...any) (any, error) { return triOf(isNullValue(p[0])), nil }, sigIsNull...)
	add("nn", func(p ...any) (any, error) { return !isNullValue(p[0]), nil }, sigNN...)
	return opts
}
