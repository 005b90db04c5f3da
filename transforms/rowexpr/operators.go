package rowexpr

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/vm/runtime"
)

// How numeric values take part in expr-lang expressions.
//
// expr-lang knows int and float64 only, so a patcher rewrites, before the
// type check, every operator whose operands involve a Numeric (or a value
// whose type is only known at run time, such as `after.amount ?? 0`) into
// a call of one of the functions below. Each function has a Validate
// hook, so the type checker knows the result type (numeric + int is
// numeric, numeric + float64 is float64, numeric < float64 is bool,
// numeric + string is a compile error at the operator's position) and a
// run-time part that does the exact arithmetic (float64 arithmetic as
// PostgreSQL's float8 when a float64 takes part), or expr-lang's own for
// plain ints and floats. The `/` and `**` (`^`) operators go through the
// same path for ints and floats too, so that a zero divisor, 0 ** -1 or
// -8 ** 0.5 is an error rather than ±Inf or NaN in the data. Calls of
// sum are rewritten too (aggregates.go).
//
// The builtins abs, ceil, floor, round, int, float, max, min, mean and
// median are replaced by versions that also take numeric values
// (delegating to expr-lang's own for everything else); greatest and least
// are added; round and trunc take an optional number of
// fraction digits, and numeric(x) makes a numeric from an int, a float or
// a text.

var (
	anyType   = reflect.TypeOf((*any)(nil)).Elem()
	boolType  = reflect.TypeOf(true)
	intType   = reflect.TypeOf(0)
	floatType = reflect.TypeOf(float64(0))
)

// binaryFuncs names the function each patched operator becomes.
var binaryFuncs = map[string]string{
	"+": "__sluice_add", "-": "__sluice_sub", "*": "__sluice_mul", "/": "__sluice_div", "%": "__sluice_mod",
	"==": "__sluice_eq", "!=": "__sluice_ne", "<": "__sluice_lt", "<=": "__sluice_le", ">": "__sluice_gt", ">=": "__sluice_ge",
	"**": "__sluice_pow", "^": "__sluice_pow",
}

func isComparison(op string) bool {
	switch op {
	case "==", "!=", "<", "<=", ">", ">=":
		return true
	}
	return false
}

// unknownType: a type the checker does not know (interface, or nil for
// the nil literal).
func unknownType(t reflect.Type) bool { return t == nil || t.Kind() == reflect.Interface }

func numberType(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func floatKind(t reflect.Type) bool {
	return t != nil && (t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32)
}

// typeString names a type as messages show it.
func typeString(t reflect.Type) string {
	switch {
	case t == nil:
		return "nil"
	case t == numericType:
		return "numeric"
	}
	return t.String()
}

// patches tells whether the patcher rewrites op over operands of types l
// and r.
func patches(op string, l, r reflect.Type) bool {
	ln, rn := l == numericType, r == numericType
	if ln || rn {
		return true
	}
	lu, ru := unknownType(l), unknownType(r)
	if op == "/" || op == "**" || op == "^" {
		return (numberType(l) || lu) && (numberType(r) || ru)
	}
	if (l == nil && r == nil) || (!lu && !ru) {
		return false
	}
	// One side unknown, the other a number or unknown: the unknown side
	// may be a numeric at run time.
	return (lu || numberType(l)) && (ru || numberType(r))
}

// binaryType is the result type of op over l and r, or the compile error.
func binaryType(op string, l, r reflect.Type) (reflect.Type, error) {
	ln, rn := l == numericType, r == numericType
	lu, ru := unknownType(l), unknownType(r)
	operand := func(t reflect.Type, n, u bool) bool { return n || u || numberType(t) || t == floatLitType }
	if (op == "==" || op == "!=") && (l == nil || r == nil) {
		return boolType, nil // comparing with nil
	}
	if !operand(l, ln, lu) || !operand(r, rn, ru) {
		return nil, fmt.Errorf("invalid operation: %s (mismatched types %s and %s)", op, typeString(l), typeString(r))
	}
	// A numeric beside a double precision value is converted to it.
	withFloat := (ln && floatKind(r)) || (rn && floatKind(l))
	switch {
	case op == "%" && withFloat:
		return nil, fmt.Errorf("invalid operation: %% (mismatched types %s and %s: PostgreSQL has no %% for double precision; convert with numeric(...) or int(...))", typeString(l), typeString(r))
	case isComparison(op):
		return boolType, nil
	case lu || ru:
		return anyType, nil
	case withFloat:
		return floatType, nil
	case ln || rn:
		return numericType, nil
	}
	return floatType, nil // int or float64 / or ** int or float64
}

// numericPatcher is the expr-lang visitor that rewrites operators (see
// the top of this file). It is repeatable: the calls it makes are left
// untyped, so that the type checker checks their arguments through the
// functions' Validate hooks; an operator over such a call waits for the
// next pass, when the checker has typed it.
//
// expr-lang's checker does not look into a call that already has a type
// (it trusts the patcher that set it), so errors in the operands would go
// unreported once a call is typed: each pass therefore notes the type the
// checker gave each of these calls and marks the call untyped again, and
// the final check re-checks it whole.
type numericPatcher struct {
	src     []rune // the expression, for the text of number literals
	applied bool
	pending map[ast.Node]bool         // calls made in this pass, not typed yet
	types   map[ast.Node]reflect.Type // calls' types as the last check had them
}

func (p *numericPatcher) Reset() {
	p.applied = false
	clear(p.pending)
	clear(p.types)
}

// typeOf is n's type as the last check had it.
func (p *numericPatcher) typeOf(n ast.Node) reflect.Type {
	if t, ok := p.types[n]; ok {
		return t
	}
	return n.Type()
}

// ours reports whether n is a call this patcher made.
func ours(n *ast.CallNode) bool {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		return false
	}
	if id.Value == "__sluice_neg" || id.Value == "__sluice_in" || id.Value == "__sluice_sum" {
		return true
	}
	for _, fn := range binaryFuncs {
		if fn == id.Value {
			return true
		}
	}
	return false
}

func (p *numericPatcher) patch(node *ast.Node, fn string, args ...ast.Node) {
	call := &ast.CallNode{Callee: &ast.IdentifierNode{Value: fn}, Arguments: args}
	ast.Patch(node, call)
	if p.pending == nil {
		p.pending = map[ast.Node]bool{}
	}
	p.pending[call] = true
	p.applied = true
}

func (p *numericPatcher) ShouldRepeat() bool { return p.applied }

func (p *numericPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.CallNode:
		p.aggregateLiterals(n)
		if ours(n) && !p.pending[n] {
			if p.types == nil {
				p.types = map[ast.Node]reflect.Type{}
			}
			p.types[n] = n.Type()
			n.SetType(anyType)
		}
	case *ast.BinaryNode:
		if n.Operator == "in" {
			p.visitIn(node, n)
			return
		}
		fn, ok := binaryFuncs[n.Operator]
		if !ok {
			return
		}
		if p.pending[n.Left] || p.pending[n.Right] {
			p.applied = true // look again once the operand is typed
			return
		}
		l, r := p.typeOf(n.Left), p.typeOf(n.Right)
		if !patches(n.Operator, l, r) {
			return
		}
		left, right := n.Left, n.Right
		// A number literal beside a numeric becomes a numeric constant
		// once, at compile time, rather than at every evaluation.
		if l == numericType {
			right = p.numericLiteral(right)
		}
		if r == numericType {
			left = p.numericLiteral(left)
		}
		// Beside an operand whose type is known at run time only, a float
		// literal is read as a numeric if that operand is one.
		if l != nil && unknownType(l) {
			right = p.floatLiteral(right)
		}
		if r != nil && unknownType(r) {
			left = p.floatLiteral(left)
		}
		p.patch(node, fn, left, right)
	case *ast.BuiltinNode:
		if n.Name == "sum" && len(n.Arguments) > 0 {
			p.patchSum(node, n)
		}
	case *ast.UnaryNode:
		if n.Operator != "-" {
			return
		}
		if p.pending[n.Node] {
			p.applied = true
			return
		}
		if t := p.typeOf(n.Node); t == numericType || (unknownType(t) && t != nil) {
			p.patch(node, "__sluice_neg", n.Node)
		}
	}
}

// visitIn rewrites `x in list` over a numeric (or unknown) x, which
// expr-lang would compare with reflect.DeepEqual (0.30 is not 0.3 there).
func (p *numericPatcher) visitIn(node *ast.Node, n *ast.BinaryNode) {
	if p.pending[n.Left] || p.pending[n.Right] {
		p.applied = true
		return
	}
	l, r := p.typeOf(n.Left), p.typeOf(n.Right)
	if (l != numericType && !unknownType(l)) || !(unknownType(r) || r.Kind() == reflect.Slice || r.Kind() == reflect.Array) {
		return
	}
	// Float literals in a written list are numeric literals, as in SQL's
	// IN (0.1, 0.2).
	if arr, ok := n.Right.(*ast.ArrayNode); ok {
		for i, e := range arr.Nodes {
			arr.Nodes[i] = p.floatLiteral(e)
		}
	}
	p.patch(node, "__sluice_in", n.Left, n.Right)
}

// numericLiteral turns an int or float literal (or its negation) into a
// numeric constant; other nodes are returned as they are. The constant is
// the literal as written when that is a plain decimal, so 1.50 keeps its
// scale of 2 as a numeric literal does in SQL (19.99 * 1.50 is 29.9850).
func (p *numericPatcher) numericLiteral(n ast.Node) ast.Node {
	neg := false
	x := n
	if u, ok := x.(*ast.UnaryNode); ok && (u.Operator == "-" || u.Operator == "+") {
		neg, x = u.Operator == "-", u.Node
	}
	var v Numeric
	switch lit := x.(type) {
	case *ast.IntegerNode:
		v = numericFromInt(int64(lit.Value))
	case *ast.FloatNode:
		v = numericFromFloat(lit.Value)
		if text, ok := p.literalText(lit); ok {
			if w, err := ParseNumeric(text); err == nil && w.toFloat() == lit.Value {
				v = w
			}
		}
	default:
		return n
	}
	if neg {
		v = v.neg()
	}
	c := &ast.ConstantNode{Value: v}
	c.SetType(numericType)
	c.SetLocation(n.Location())
	return c
}

// floatLiteral turns a float literal (or its negation) into a floatLit
// constant; other nodes are returned as they are.
func (p *numericPatcher) floatLiteral(n ast.Node) ast.Node {
	c, ok := p.numericLiteral(n).(*ast.ConstantNode)
	if !ok {
		return n
	}
	x := n
	if u, ok := x.(*ast.UnaryNode); ok {
		x = u.Node
	}
	lit, ok := x.(*ast.FloatNode)
	if !ok {
		return n // an int literal is exact either way
	}
	f := lit.Value
	if u, ok := n.(*ast.UnaryNode); ok && u.Operator == "-" {
		f = -f
	}
	fl := &ast.ConstantNode{Value: floatLit{f: f, n: c.Value.(Numeric)}}
	fl.SetType(floatLitType)
	fl.SetLocation(n.Location())
	return fl
}

// literalText is the text of a literal node in the expression.
func (p *numericPatcher) literalText(n ast.Node) (string, bool) {
	loc := n.Location()
	if loc.From < 0 || loc.To > len(p.src) || loc.From >= loc.To {
		return "", false
	}
	return strings.ReplaceAll(string(p.src[loc.From:loc.To]), "_", ""), true
}

// numericOptions are the expr-lang options that make numeric work for
// the expression src.
func numericOptions(src string) []expr.Option {
	opts := []expr.Option{expr.Patch(&numericPatcher{src: []rune(src)})}
	for op, name := range binaryFuncs {
		opts = append(opts, function(binaryFunction(op, name)))
	}
	for _, f := range []*builtin.Function{negFunction(), inFunction(), absFunction(), roundFunction("round", false), roundFunction("trunc", true),
		ceilFloorFunction("ceil"), ceilFloorFunction("floor"), intFunction(), floatFunction(), numericFunction(),
		aggregateFunction("max"), aggregateFunction("min"), aggregateFunction("mean"), aggregateFunction("median"),
		aggregateFunction("greatest"), aggregateFunction("least"), sumFunction()} {
		opts = append(opts, function(f))
	}
	return opts
}

func function(f *builtin.Function) expr.Option {
	return func(c *conf.Config) { c.Functions[f.Name] = f }
}

// binaryFunction is the function a patched operator op calls.
func binaryFunction(op, name string) *builtin.Function {
	var plain func(a, b any) any
	switch op {
	case "+":
		plain = runtime.Add
	case "-":
		plain = runtime.Subtract
	case "*":
		plain = runtime.Multiply
	case "%":
		plain = func(a, b any) any { return runtime.Modulo(a, b) }
	case "==":
		plain = func(a, b any) any { return runtime.Equal(a, b) }
	case "!=":
		plain = func(a, b any) any { return !runtime.Equal(a, b) }
	case "<":
		plain = func(a, b any) any { return runtime.Less(a, b) }
	case "<=":
		plain = func(a, b any) any { return runtime.LessOrEqual(a, b) }
	case ">":
		plain = func(a, b any) any { return runtime.More(a, b) }
	case ">=":
		plain = func(a, b any) any { return runtime.MoreOrEqual(a, b) }
	}
	return &builtin.Function{
		Name: name,
		Validate: func(args []reflect.Type) (reflect.Type, error) {
			if len(args) != 2 {
				return anyType, fmt.Errorf("invalid number of arguments for %s (expected 2, got %d)", op, len(args))
			}
			return binaryType(op, args[0], args[1])
		},
		Func: func(args ...any) (any, error) {
			return evalBinary(op, plain, args[0], args[1])
		},
	}
}

// evalBinary is op over a and b: numeric arithmetic when a numeric takes
// part (float64 arithmetic when a double precision value does too),
// plain (expr-lang's own, or divideNumbers and floatPowPlain) otherwise.
func evalBinary(op string, plain func(a, b any) any, a, b any) (any, error) {
	_, an := a.(Numeric)
	_, bn := b.(Numeric)
	a, b = resolveLit(a, bn), resolveLit(b, an)
	if !an && !bn {
		switch op {
		case "/":
			return divideNumbers(a, b)
		case "**", "^":
			return floatPowPlain(a, b)
		}
		return plain(a, b), nil
	}
	_, af := a.(float64)
	_, bf := b.(float64)
	if af || bf {
		return floatOp(op, a, b)
	}
	x, okx := toNumeric(a)
	y, oky := toNumeric(b)
	if !okx || !oky {
		return notComparable(op, a, b)
	}
	switch op {
	case "+":
		return x.add(y)
	case "-":
		return x.sub(y)
	case "*":
		return x.mul(y)
	case "/":
		return x.quo(y)
	case "%":
		return x.rem(y)
	case "**", "^":
		return x.pow(y)
	case "==":
		return x.cmp(y) == 0, nil
	case "!=":
		return x.cmp(y) != 0, nil
	case "<":
		return x.cmp(y) < 0, nil
	case "<=":
		return x.cmp(y) <= 0, nil
	case ">":
		return x.cmp(y) > 0, nil
	}
	return x.cmp(y) >= 0, nil
}

// divideNumbers is / over ints and floats: a float64, and an error on a
// zero divisor (expr-lang's own gives ±Inf, which would slip into the
// data).
func divideNumbers(a, b any) (any, error) {
	x, ok1 := plainFloat(a)
	y, ok2 := plainFloat(b)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("invalid operation: %s / %s", typeName(a), typeName(b))
	}
	if y == 0 {
		return nil, errDivisionByZero
	}
	return x / y, nil
}

func plainFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

func oneArg(name string, args []reflect.Type) error {
	if len(args) != 1 {
		return fmt.Errorf("invalid number of arguments for %s (expected 1, got %d)", name, len(args))
	}
	return nil
}

func negFunction() *builtin.Function {
	return &builtin.Function{
		Name: "__sluice_neg",
		Validate: func(args []reflect.Type) (reflect.Type, error) {
			if err := oneArg("-", args); err != nil {
				return anyType, err
			}
			return args[0], nil
		},
		Func: func(args ...any) (any, error) {
			if n, ok := args[0].(Numeric); ok {
				return n.neg(), nil
			}
			return runtime.Negate(args[0]), nil
		},
	}
}

// inFunction is `x in list` where x may be a numeric: an element equals
// x as == has it (exactly, or as double precision for a double precision
// element).
func inFunction() *builtin.Function {
	return &builtin.Function{
		Name: "__sluice_in",
		Validate: func(args []reflect.Type) (reflect.Type, error) {
			if len(args) != 2 {
				return anyType, fmt.Errorf("invalid number of arguments for in (expected 2, got %d)", len(args))
			}
			return boolType, nil
		},
		Func: func(args ...any) (any, error) {
			x, ok := args[0].(Numeric)
			list := reflect.ValueOf(args[1])
			if list.Kind() != reflect.Slice && list.Kind() != reflect.Array {
				return runtime.In(args[0], args[1]), nil
			}
			if !ok {
				elems := make([]any, list.Len())
				for i := range elems {
					elems[i] = resolveLit(list.Index(i).Interface(), false)
				}
				return runtime.In(args[0], elems), nil
			}
			for i := range list.Len() {
				// An element as == compares it with x: a double precision
				// value as double precision, anything else exactly.
				eq, err := evalBinary("==", nil, x, resolveLit(list.Index(i).Interface(), true))
				if err != nil {
					return nil, err
				}
				if eq == true {
					return true, nil
				}
			}
			return false, nil
		},
	}
}

// builtinFast is expr-lang's own one-argument builtin name.
func builtinFast(name string) func(any) any {
	return builtin.Builtins[builtin.Index[name]].Fast
}

// unaryNumberFunction builds a one-argument function over numbers (and
// text, with takesText) that works on numeric itself and leaves any other
// value to expr-lang's own builtin of that name; resultOf gives the result
// type for an argument type, onNumeric the result for a numeric.
func unaryNumberFunction(name string, takesText bool, resultOf func(reflect.Type) reflect.Type, onNumeric func(Numeric) (any, error)) *builtin.Function {
	fast := builtinFast(name)
	return &builtin.Function{
		Name: name,
		Validate: func(args []reflect.Type) (reflect.Type, error) {
			if err := oneArg(name, args); err != nil {
				return anyType, err
			}
			if t := args[0]; t == numericType || numberType(t) || unknownType(t) || (takesText && t.Kind() == reflect.String) {
				return resultOf(t), nil
			}
			return anyType, fmt.Errorf("invalid argument for %s (type %s)", name, typeString(args[0]))
		},
		Func: func(args ...any) (any, error) {
			if n, ok := args[0].(Numeric); ok {
				return onNumeric(n)
			}
			return fast(args[0]), nil
		},
	}
}

// absFunction is abs(x), of the argument's type.
func absFunction() *builtin.Function {
	return unaryNumberFunction("abs", false, func(t reflect.Type) reflect.Type { return t },
		func(n Numeric) (any, error) { return n.abs(), nil })
}

// roundFunction is round(x[, digits]) (half away from zero) or
// trunc(x[, digits]) (toward zero): numeric gives numeric with
// max(digits, 0) fraction digits, as in PostgreSQL; a float gives a
// float64 rounded at its shortest decimal text (round(2.675, 2) is
// 2.68); an int gives a float64 (round(x) as in expr-lang).
func roundFunction(name string, truncate bool) *builtin.Function {
	var fast func(any) any
	if !truncate {
		fast = builtinFast("round")
	}
	return &builtin.Function{
		Name: name,
		Validate: func(args []reflect.Type) (reflect.Type, error) {
			if len(args) != 1 && len(args) != 2 {
				return anyType, fmt.Errorf("invalid number of arguments for %s (expected 1 or 2, got %d)", name, len(args))
			}
			if len(args) == 2 && !unknownType(args[1]) && args[1].Kind() != reflect.Int {
				return anyType, fmt.Errorf("the number of digits %s rounds to must be an int (got %s)", name, typeString(args[1]))
			}
			switch t := args[0]; {
			case t == numericType:
				return numericType, nil
			case numberType(t):
				return floatType, nil
			case unknownType(t):
				return anyType, nil
			}
			return anyType, fmt.Errorf("invalid argument for %s (type %s)", name, typeString(args[0]))
		},
		Func: func(args ...any) (any, error) {
			digits := 0
			if len(args) == 2 {
				d, ok := args[1].(int)
				if !ok {
					return nil, fmt.Errorf("the number of digits %s rounds to must be an int (got %s)", name, typeName(args[1]))
				}
				digits = d
			}
			if n, ok := args[0].(Numeric); ok {
				return n.roundTo(int64(digits), truncate), nil
			}
			if len(args) == 1 && fast != nil {
				return fast(args[0]), nil
			}
			n, ok := toNumeric(args[0])
			if !ok {
				return nil, fmt.Errorf("invalid argument for %s (type %s)", name, typeName(args[0]))
			}
			return n.roundTo(int64(digits), truncate).toFloat(), nil
		},
	}
}

// ceilFloorFunction is ceil(x) or floor(x): numeric for a numeric, float
// for another number.
func ceilFloorFunction(name string) *builtin.Function {
	return unaryNumberFunction(name, false, func(t reflect.Type) reflect.Type {
		switch {
		case t == numericType:
			return numericType
		case numberType(t):
			return floatType
		}
		return anyType
	}, func(n Numeric) (any, error) { return n.ceilFloor(name == "ceil"), nil })
}

// intFunction is int(x): numeric is truncated toward zero like a float
// (NaN, ±Infinity and values beyond int64 are errors).
func intFunction() *builtin.Function {
	return unaryNumberFunction("int", true, func(reflect.Type) reflect.Type { return intType },
		func(n Numeric) (any, error) { return n.toInt() })
}

// floatFunction is float(x): numeric gives the nearest float64.
func floatFunction() *builtin.Function {
	return unaryNumberFunction("float", true, func(reflect.Type) reflect.Type { return floatType },
		func(n Numeric) (any, error) { return n.toFloat(), nil })
}

// numericFunction is numeric(x): an int exactly, a float through its
// shortest decimal text, a text in PostgreSQL's numeric input form
// ("123.45", "1e-3", "NaN", "Infinity"); nil stays nil.
func numericFunction() *builtin.Function {
	return &builtin.Function{
		Name: "numeric",
		Validate: func(args []reflect.Type) (reflect.Type, error) {
			if err := oneArg("numeric", args); err != nil {
				return anyType, err
			}
			if t := args[0]; t == numericType || numberType(t) || unknownType(t) || t.Kind() == reflect.String {
				return numericType, nil
			}
			return anyType, fmt.Errorf("invalid argument for numeric (type %s)", typeString(args[0]))
		},
		Func: func(args ...any) (any, error) {
			switch x := args[0].(type) {
			case nil:
				return nil, nil
			case string:
				return ParseNumeric(x)
			}
			if n, ok := toNumeric(args[0]); ok {
				return n, nil
			}
			return nil, errors.New("invalid argument for numeric (type " + typeName(args[0]) + ")")
		},
	}
}

// notComparable is the result of op on operands that are not both numbers:
// == is false and != true (as for values of different kinds), any other
// operator an error.
func notComparable(op string, a, b any) (any, error) {
	switch op {
	case "==":
		return false, nil
	case "!=":
		return true, nil
	}
	return nil, fmt.Errorf("invalid operation: %s %s %s", typeName(a), op, typeName(b))
}
